"""A local Spotify-compatible Web API serving a generated world.

Stdlib ``ThreadingHTTPServer``: full control over the wire, including dropping a connection
without an answer (a fault real clients meet). Responses follow the shapes of the real API
(paging objects with absolute ``next`` URLs pointing at this server, Spotify's error bodies)
and validate against ``openapi.yml``.

``mode="development"`` reproduces what an ordinary (development-mode) app meets since Feb 2026:
removed endpoints answer 403, popularity/followers/markets/label are gone, artist genres are
often empty or missing, and playlists use ``items``/``item`` instead of ``tracks``/``track``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import sys
import threading
import time
from base64 import b64decode
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from soundmates.world import catalog, oauth, search
from soundmates.world.generator import (
    EPISODES_PER_SHOW,
    ROW_EPISODE,
    ROW_LOCAL,
    ROW_NULL,
    PlaylistSpec,
    TrackSpec,
    World,
    album_by_n,
    album_n,
    artist_by_id,
    artist_id,
    track_by_id,
    track_by_n,
)
from soundmates.world.ids import is_base62_id, make_id

MODES = ("full", "development")
MAX_IDS = 50
MAX_OFFSET = 100_000
_MARKETS = ["AR", "AU", "BR", "CA", "DE", "ES", "FR", "GB", "IN", "JP", "MX", "NL", "PL", "SE", "US"]


class ApiError(Exception):
    def __init__(self, status: int, message: str | None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        err: dict[str, Any] = {"status": self.status}
        if self.message is not None:
            err["message"] = self.message
        return {"error": err}


@dataclass(frozen=True)
class FaultConfig:
    """Fractions of ``/v1`` requests that fail, decided by a hash of (seed, request, attempt).

    The same request (method, path and query) gets a fresh decision on each retry, and the
    decisions do not depend on the order concurrent clients arrive in: reruns are reproducible.
    """

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    retry_after: int = 1  # seconds, the Retry-After header of a 429
    latency_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("rate_429", "rate_5xx", "rate_drop"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a fraction between 0 and 1, got {v}")
        if self.rate_429 + self.rate_5xx + self.rate_drop > 1.0:
            raise ValueError("rate_429 + rate_5xx + rate_drop must not exceed 1")
        if self.retry_after < 0:
            raise ValueError(f"retry_after must be >= 0 seconds, got {self.retry_after}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms}")

    @property
    def active(self) -> bool:
        return self.rate_429 > 0 or self.rate_5xx > 0 or self.rate_drop > 0 or self.latency_ms > 0

    def decide(self, key: str, attempt: int) -> tuple[str | None, int]:
        """(fault kind or None, 5xx status) for the ``attempt``-th time ``key`` is requested."""
        h = hashlib.blake2b(f"{self.seed}|{key}|{attempt}".encode(), digest_size=8).digest()
        u = int.from_bytes(h[:6], "big") / 2**48
        status = (500, 502, 503)[h[6] % 3]
        if u < self.rate_429:
            return "429", 429
        if u < self.rate_429 + self.rate_5xx:
            return "5xx", status
        if u < self.rate_429 + self.rate_5xx + self.rate_drop:
            return "drop", 0
        return None, 200


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class RawJSON(str):
    """A response body that is already JSON text (built from cached fragments)."""


def _image(key: str, size: int = 640) -> dict:
    return {"url": f"https://i.scdn.co/image/ab67616d0000b273{hashlib.md5(key.encode()).hexdigest()[:24]}",
            "height": size, "width": size}


class Renderer:
    """Builds the JSON objects of one world, as one server mode shows them."""

    def __init__(self, world: World, api_url: str, mode: str):
        self.world = world
        self.api = api_url  # ends with /v1/
        self.full = mode == "full"
        self.artists = catalog.artists()
        # Rendering dominates the server's time: cache what rows share (artists, albums, whole
        # tracks as JSON text). Cached objects are shared, so nothing may mutate them.
        self._artist_simple_cache: dict[int, dict] = {}
        self.album = lru_cache(maxsize=20_000)(self._album)
        self.track_json = lru_cache(maxsize=50_000)(self._track_json)
        self.episode_json = lru_cache(maxsize=10_000)(lambda n: _dumps(self.episode(n)))
        self.user_ref_json = lru_cache(maxsize=8192)(lambda i: _dumps(self.user_ref(i)))

    # --- users -----------------------------------------------------------------------------
    def user_ref(self, i: int) -> dict:
        uid = self.world.user_ids[i]
        return {
            "external_urls": {"spotify": f"https://open.spotify.com/user/{quote(uid, safe='')}"},
            "href": f"{self.api}users/{quote(uid, safe='')}",
            "id": uid,
            "type": "user",
            "uri": f"spotify:user:{uid}",
        }

    def user(self, i: int) -> dict:
        spec = self.world.user(i)
        out = {"display_name": spec.display_name, **self.user_ref(i), "images": []}
        if self.full:
            out["followers"] = {"href": None, "total": int(hashlib.md5(spec.id.encode()).digest()[0]) % 50}
        return out

    # --- artists ---------------------------------------------------------------------------
    def artist_simple(self, a: int) -> dict:
        cached = self._artist_simple_cache.get(a)
        if cached is not None:
            return cached
        aid = artist_id(a)
        self._artist_simple_cache[a] = out = {
            "external_urls": {"spotify": f"https://open.spotify.com/artist/{aid}"},
            "href": f"{self.api}artists/{aid}",
            "id": aid,
            "name": self.artists.names[a],
            "type": "artist",
            "uri": f"spotify:artist:{aid}",
        }
        return out

    def artist(self, a: int) -> dict:
        out = dict(self.artist_simple(a))
        out["images"] = [_image(f"artist{a}", 640), _image(f"artist{a}", 320)]
        genres = list(self.artists.genres[a])
        if self.full:
            out["followers"] = {"href": None, "total": int(self.artists.popularity[a]) ** 3}
            out["genres"] = genres
            out["popularity"] = int(self.artists.popularity[a])
        else:
            # Development mode: genres deprecated, often missing or empty (stable per artist).
            u = hashlib.md5(f"devgenres{a}".encode()).digest()[0] / 256
            if u < 0.3:
                out["genres"] = genres
            elif u < 0.6:
                out["genres"] = []
        return out

    # --- tracks ----------------------------------------------------------------------------
    def _album(self, an: int) -> dict:
        spec = album_by_n(an)
        cover = _image(f"album{an}")
        return {
            "album_type": spec.album_type,
            "total_tracks": spec.total_tracks,
            "available_markets": _MARKETS,
            "external_urls": {"spotify": f"https://open.spotify.com/album/{spec.id}"},
            "href": f"{self.api}albums/{spec.id}",
            "id": spec.id,
            "images": [{**cover, "height": size, "width": size} for size in (640, 300, 64)],
            "name": spec.name,
            "release_date": spec.release_date,
            "release_date_precision": spec.release_date_precision,
            "type": "album",
            "uri": f"spotify:album:{spec.id}",
            "artists": [self.artist_simple(spec.artist)],
        }

    def track(self, spec: TrackSpec) -> dict:
        artists = [self.artist_simple(spec.artist)]
        if spec.featured is not None:
            artists.append(self.artist_simple(spec.featured))
        out = {
            "album": self.album(album_n(spec.artist, spec.album)),
            "artists": artists,
            "disc_number": 1,
            "duration_ms": spec.duration_ms,
            "explicit": spec.explicit,
            "external_ids": {"isrc": f"QZ{spec.n % 10**10:010d}"},
            "external_urls": {"spotify": f"https://open.spotify.com/track/{spec.id}"},
            "href": f"{self.api}tracks/{spec.id}",
            "id": spec.id,
            "is_local": False,
            "name": spec.name,
            "preview_url": None,
            "track_number": spec.track_number,
            "type": "track",
            "uri": f"spotify:track:{spec.id}",
        }
        if self.full:
            out["available_markets"] = _MARKETS
            out["popularity"] = spec.popularity
        return out

    def _track_json(self, n: int) -> str:
        return _dumps(self.track(track_by_n(n)))

    def episode(self, n: int) -> dict:
        eid = make_id("episode", n)
        show = n // EPISODES_PER_SHOW
        sid = make_id("show", show)
        show_name = f"The {catalog.communities().labels[show % catalog.N_COMMUNITIES].title()} Podcast"
        day = 1 + n % 28
        return {
            "audio_preview_url": None,
            "description": "An episode.",
            "html_description": "<p>An episode.</p>",
            "duration_ms": 600_000 + (n * 7919) % 3_000_000,
            "explicit": False,
            "external_urls": {"spotify": f"https://open.spotify.com/episode/{eid}"},
            "href": f"{self.api}episodes/{eid}",
            "id": eid,
            "images": [_image(f"show{show}")],
            "is_externally_hosted": False,
            "is_playable": True,
            "languages": ["en"],
            "name": f"Episode {n % EPISODES_PER_SHOW + 1}",
            "release_date": f"2024-{1 + n % 12:02d}-{day:02d}",
            "release_date_precision": "day",
            "type": "episode",
            "uri": f"spotify:episode:{eid}",
            "show": {
                "available_markets": _MARKETS,
                "copyrights": [],
                "description": show_name,
                "html_description": f"<p>{show_name}</p>",
                "explicit": False,
                "external_urls": {"spotify": f"https://open.spotify.com/show/{sid}"},
                "href": f"{self.api}shows/{sid}",
                "id": sid,
                "images": [_image(f"show{show}")],
                "is_externally_hosted": False,
                "languages": ["en"],
                "media_type": "audio",
                "name": show_name,
                "publisher": "Soundmates Radio",
                "total_episodes": EPISODES_PER_SHOW,
                "type": "show",
                "uri": f"spotify:show:{sid}",
            },
        }

    def local_track(self, pl: PlaylistSpec, k: int) -> dict:
        # What the real API returns for a local file: ids, hrefs and uris null, a spotify:local: uri.
        name = f"{['Demo', 'Rehearsal', 'Bootleg', 'Voice memo', 'Mixtape'][k % 5]} {k + 1}"
        return {
            "album": {"album_type": None, "artists": [], "available_markets": [], "external_urls": {}, "href": None,
                      "id": None, "images": [], "name": "", "release_date": None, "release_date_precision": None,
                      "type": "album", "uri": None},
            "artists": [{"external_urls": {}, "href": None, "id": None, "name": "Unknown artist", "type": "artist",
                         "uri": None}],
            "available_markets": [],
            "disc_number": 0,
            "duration_ms": 180_000 + 1000 * k,
            "explicit": False,
            "external_ids": {},
            "external_urls": {},
            "href": None,
            "id": None,
            "is_local": True,
            "name": name,
            "popularity": 0,
            "preview_url": None,
            "track_number": 0,
            "type": "track",
            "uri": f"spotify:local:Unknown+artist::{quote(name, safe='')}:{180 + k}",
        }

    # --- playlists -------------------------------------------------------------------------
    def row_json(self, pl: PlaylistSpec, j: int) -> str:
        """:meth:`row` as JSON text, from cached fragments (the hot path of every ingest)."""
        kind = int(pl.kinds[j])
        value = int(pl.values[j])
        if kind == ROW_NULL:
            obj = "null"
        elif kind == ROW_EPISODE:
            obj = self.episode_json(value)
        elif kind == ROW_LOCAL:
            obj = _dumps(self.local_track(pl, value))
        else:
            obj = self.track_json(value)
        parts = ['{"added_at":"', _iso(pl.added_at[j]), '","added_by":', self.user_ref_json(pl.owner),
                 ',"is_local":', "true" if kind == ROW_LOCAL else "false",
                 ',"primary_color":null,"item":', obj, ',"video_thumbnail":{"url":null}']
        if self.full:
            parts += [',"track":', obj]
        parts.append("}")
        return "".join(parts)

    def playlist_simple(self, pl: PlaylistSpec) -> dict:
        ref = {"href": f"{self.api}playlists/{pl.id}/items", "total": pl.total}
        out = {
            "collaborative": False,
            "description": pl.description,
            "external_urls": {"spotify": f"https://open.spotify.com/playlist/{pl.id}"},
            "href": f"{self.api}playlists/{pl.id}",
            "id": pl.id,
            "images": [_image(f"pl{pl.n}")] if pl.total else [],
            "name": pl.name,
            "owner": {**self.user_ref(pl.owner), "display_name": self.world.user(pl.owner).display_name},
            "primary_color": None,
            "public": True,
            "snapshot_id": pl.snapshot_id,
            "items": ref,
            "type": "playlist",
            "uri": f"spotify:playlist:{pl.id}",
        }
        if self.full:
            out["tracks"] = {"href": f"{self.api}playlists/{pl.id}/tracks", "total": pl.total}
        return out

    def playlist_full(self, pl: PlaylistSpec, page_items: dict, page_tracks: dict | None) -> dict:
        out = self.playlist_simple(pl)
        out["followers"] = {"href": None, "total": pl.n % 17}
        out["items"] = page_items
        if page_tracks is not None:
            out["tracks"] = page_tracks
        else:
            out.pop("tracks", None)
        return out


def page(api: str, path: str, items_total: int, offset: int, limit: int, render) -> dict:
    """A paging object over ``range(items_total)``; ``render(start, stop)`` builds the items."""
    stop = min(items_total, offset + limit)

    def url(o: int) -> str:
        return f"{api}{path}?offset={o}&limit={limit}"

    return {
        "href": url(offset),
        "items": render(offset, stop) if offset < stop else [],
        "limit": limit,
        "next": url(offset + limit) if offset + limit < items_total else None,
        "offset": offset,
        "previous": url(max(0, offset - limit)) if offset > 0 else None,
        "total": items_total,
    }


def page_json(api: str, path: str, items_total: int, offset: int, limit: int, render_json) -> RawJSON:
    """:func:`page` with items given as JSON text by ``render_json(index)``."""
    shell = page(api, path, items_total, offset, limit, lambda a, b: [])
    stop = min(items_total, offset + limit)
    items = ",".join(render_json(j) for j in range(offset, stop))
    head = _dumps({k: v for k, v in shell.items() if k != "items"})
    return RawJSON(f'{head[:-1]},"items":[{items}]}}')


def _int_param(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    values = query.get(name)
    if not values:
        return default
    raw = values[-1].strip()
    try:
        v = int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid {name}") from None
    if not low <= v <= high:
        raise ApiError(400, f"Invalid {name}")
    return v


class SpotifyServer:
    """A local Spotify Web API for one world; a context manager that serves from a background thread.

    >>> with SpotifyServer(world_dir) as srv:          # port 0 = any free port
    ...     requests.post(srv.token_url, ...); requests.get(srv.api_url + "users/...")
    """

    def __init__(self, world_dir: str | Path, host: str = "127.0.0.1", port: int = 0, mode: str = "full",
                 faults: FaultConfig | None = None, verbose: bool = False):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.world = World(world_dir)
        self.host = host
        self.requested_port = port
        self.mode = mode
        self.faults = faults or FaultConfig()
        self.verbose = verbose
        # Tokens are signed, not stored: a token stays valid across server restarts on the same world.
        self._token_key = hashlib.sha256(f"soundmates-world-{self.world.seed}".encode()).digest()
        self._lock = threading.Lock()
        self._attempts: Counter[str] = Counter()
        self._stats_requests: Counter[str] = Counter()
        self._stats_status: Counter[str] = Counter()
        self._stats_faults: Counter[str] = Counter()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.renderer: Renderer | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1/"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/api/token"

    def start(self) -> "SpotifyServer":
        if self._httpd is not None:
            return self
        # Read users.txt and build the id index now: fail early on a broken file, and never make
        # the first client wait seconds (a 1M-user world) and time out.
        self.world.user_index("")
        httpd = _HTTPServer((self.host, self.requested_port), _Handler)
        httpd.app = self
        self._httpd = httpd
        self.renderer = Renderer(self.world, self.api_url, self.mode)
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"spotify-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> "SpotifyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    # --- stats -------------------------------------------------------------------------------
    def stats(self) -> dict:
        with self._lock:
            return {
                "total": sum(self._stats_requests.values()),
                "api_calls": sum(v for k, v in self._stats_requests.items() if k != "token"),
                "requests": dict(self._stats_requests),
                "status": dict(self._stats_status),
                "faults": dict(self._stats_faults),
                "mode": self.mode,
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._stats_requests.clear()
            self._stats_status.clear()
            self._stats_faults.clear()
            self._attempts.clear()

    def _count(self, endpoint: str, status: int, fault: str | None = None) -> None:
        with self._lock:
            self._stats_requests[endpoint] += 1
            self._stats_status[str(status)] += 1
            if fault:
                self._stats_faults[fault] += 1

    def _next_attempt(self, key: str) -> int:
        with self._lock:
            self._attempts[key] += 1
            return self._attempts[key]

    # --- tokens ------------------------------------------------------------------------------
    def issue_token(self) -> str:
        nonce = secrets.token_urlsafe(18)
        sig = hmac.new(self._token_key, nonce.encode(), hashlib.sha256).hexdigest()[:32]
        return f"BQ{nonce}.{sig}"

    def token_valid(self, token: str) -> bool:
        if not token.startswith("BQ") or "." not in token:
            return False
        nonce, _, sig = token[2:].rpartition(".")
        expected = hmac.new(self._token_key, nonce.encode(), hashlib.sha256).hexdigest()[:32]
        return hmac.compare_digest(sig, expected)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    app: SpotifyServer


# Endpoint names (for stats) of the routes development mode refuses since Feb 2026.
_DEV_REMOVED = {"user", "user_playlists", "artists", "tracks", "playlist_tracks"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections, as with the real API
    server: _HTTPServer
    server_version = "soundmates-spotify/1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.app.verbose:
            sys.stderr.write("spotify-server: " + (format % args) + "\n")

    # --- plumbing ----------------------------------------------------------------------------
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = (body if isinstance(body, RawJSON) else _dumps(body)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        # Headers and body in one write: two small writes on a keep-alive connection meet
        # Nagle + delayed ACK and cost ~40 ms a response.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(data)
        self.wfile.write(b"".join(self._headers_buffer))
        self._headers_buffer = []

    def _drop(self) -> None:
        # Close without a byte of response: the client sees a reset / remote disconnect.
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # --- verbs -------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        app = self.server.app
        parts = urlsplit(self.path)
        path = parts.path
        body = self._read_body() if self.command in ("POST", "PUT") else b""
        if path == "/_stats":
            if self.command == "DELETE":
                app.reset_stats()
                self._send(200, {"reset": True})
            else:
                self._send(200, app.stats())
            return
        if path == "/authorize":  # OAuth login/consent for one's own account (world/oauth.py)
            oauth.handle_authorize(self, parts.query)
            return
        if path == "/api/token":
            status, payload = self._token(body)
            app._count("token", status)
            self._send(status, payload)
            return
        endpoint, handler, args = self._route(path)
        query = parse_qs(parts.query, keep_blank_values=True)
        if endpoint is not None and path.startswith("/v1/"):
            faults = app.faults
            if faults.latency_ms:
                time.sleep(faults.latency_ms / 1000.0)
            if faults.rate_429 or faults.rate_5xx or faults.rate_drop:
                key = f"{self.command} {self.path}"
                kind, status = faults.decide(key, app._next_attempt(key))
                if kind == "429":
                    app._count(endpoint, 429, "429")
                    self._send(429, {"error": {"status": 429, "message": "API rate limit exceeded"}},
                               {"Retry-After": str(faults.retry_after)})
                    return
                if kind == "5xx":
                    app._count(endpoint, status, "5xx")
                    messages = {500: "Server error.", 502: "Bad gateway.", 503: "Service unavailable"}
                    self._send(status, {"error": {"status": status, "message": messages[status]}})
                    return
                if kind == "drop":
                    app._count(endpoint, 0, "drop")
                    self._drop()
                    return
        try:
            if endpoint is None:
                raise ApiError(404, "Service not found")
            if self.command != "GET":
                raise ApiError(405, "Method not allowed")
            self._check_auth()
            if app.mode == "development" and endpoint in _DEV_REMOVED:
                raise ApiError(403, "Forbidden")
            oauth.check_playlist_access(self, endpoint, args)
            result = handler(self, *args, query=query)
            app._count(endpoint, 200)
            self._send(200, result)
        except ApiError as err:
            app._count(endpoint or "unknown", err.status)
            self._send(err.status, err.body(), err.headers)
        except Exception as exc:  # a bug must answer 500, not kill the connection silently
            app._count(endpoint or "unknown", 500)
            sys.stderr.write(f"spotify-server: error on {self.path}: {exc!r}\n")
            self._send(500, {"error": {"status": 500, "message": "Server error."}})

    def _check_auth(self) -> None:
        header = self.headers.get("Authorization", "")
        if not header.strip():
            raise ApiError(401, "No token provided")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not self.server.app.token_valid(token.strip()):
            raise ApiError(401, "Invalid access token")

    def _token(self, body: bytes) -> tuple[int, dict]:
        if self.command != "POST":
            return 405, {"error": "invalid_request", "error_description": "Only POST is supported"}
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        client_id = (form.get("client_id") or [""])[-1]
        client_secret = (form.get("client_secret") or [""])[-1]
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                client_id, _, client_secret = b64decode(auth[6:].strip(), validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return 400, {"error": "invalid_client", "error_description": "Invalid client"}
        grant = (form.get("grant_type") or [""])[-1]
        if not grant:
            return 400, {"error": "unsupported_grant_type", "error_description": "grant_type parameter is missing"}
        if grant in ("authorization_code", "refresh_token"):
            return oauth.token_grant(self, grant, form, client_id, client_secret)
        if grant != "client_credentials":
            return 400, {"error": "unsupported_grant_type",
                         "error_description": "grant_type must be client_credentials, authorization_code or refresh_token"}
        if not client_id or not client_secret:
            return 400, {"error": "invalid_client", "error_description": "Invalid client"}
        return 200, {"access_token": self.server.app.issue_token(), "token_type": "Bearer", "expires_in": 3600}

    # --- routing -----------------------------------------------------------------------------
    def _route(self, path: str):
        if not path.startswith("/v1/"):
            return None, None, ()
        # Split the raw path first, then percent-decode each segment: an id may hold an encoded '/'.
        seg = [unquote(s) for s in path[len("/v1/"):].split("/")]
        if seg and seg[-1] == "" and len(seg) > 1:
            seg = seg[:-1]
        n = len(seg)
        if seg[0] == "me":
            return oauth.route_me(seg)
        if seg[0] == "users" and n == 2:
            return "user", _Handler._get_user, (seg[1],)
        if seg[0] == "users" and n == 3 and seg[2] == "playlists":
            return "user_playlists", _Handler._get_user_playlists, (seg[1],)
        if seg[0] == "playlists" and n == 2:
            return "playlist", _Handler._get_playlist, (seg[1],)
        if seg[0] == "playlists" and n == 3 and seg[2] in ("items", "tracks"):
            name = "playlist_items" if seg[2] == "items" else "playlist_tracks"
            return name, _Handler._get_playlist_rows, (seg[1], seg[2])
        if seg[0] == "artists" and n == 1:
            return "artists", _Handler._get_artists, ()
        if seg[0] == "artists" and n == 2:
            return "artist", _Handler._get_artist, (seg[1],)
        if seg[0] == "tracks" and n == 1:
            return "tracks", _Handler._get_tracks, ()
        if seg[0] == "tracks" and n == 2:
            return "track", _Handler._get_track, (seg[1],)
        if seg[0] == "search" and n == 1:
            return "search", _Handler._get_search, ()
        if seg[0] == "audio-features" and n in (1, 2):
            return "audio_features", _Handler._get_audio_features, ()
        return None, None, ()

    # --- endpoints ---------------------------------------------------------------------------
    def _user_index(self, user_id: str) -> int:
        i = self.server.app.world.user_index(user_id)
        if i is None:
            raise ApiError(404, "No such user")
        return i

    def _get_user(self, user_id: str, *, query) -> dict:
        return self.server.app.renderer.user(self._user_index(user_id))

    def _get_user_playlists(self, user_id: str, *, query) -> dict:
        app = self.server.app
        i = self._user_index(user_id)
        limit = _int_param(query, "limit", 20, 1, 50)
        offset = _int_param(query, "offset", 0, 0, MAX_OFFSET)
        pls = app.world.playlists(i)
        r = app.renderer
        return page(app.api_url, f"users/{quote(user_id, safe='')}/playlists", len(pls), offset, limit,
                    lambda a, b: [r.playlist_simple(p) for p in pls[a:b]])

    def _playlist(self, playlist_id: str) -> PlaylistSpec:
        pl = self.server.app.world.playlist(playlist_id)
        if pl is None:
            if not is_base62_id(playlist_id):
                raise ApiError(400, "Invalid base62 id")
            raise ApiError(404, "Resource not found")
        return pl

    def _rows_page(self, pl: PlaylistSpec, which: str, offset: int, limit: int) -> dict:
        app = self.server.app
        r = app.renderer
        return page_json(app.api_url, f"playlists/{pl.id}/{which}", pl.total, offset, limit,
                         lambda j: r.row_json(pl, j))

    def _get_playlist(self, playlist_id: str, *, query) -> dict:
        app = self.server.app
        pl = self._playlist(playlist_id)
        # Rarely called by an ingest: the embedded pages are built as plain dicts.
        items = self._rows_page(pl, "items", 0, 50 if app.mode == "development" else 100)
        items = json.loads(items)
        tracks = json.loads(self._rows_page(pl, "tracks", 0, 100)) if app.mode == "full" else None
        return app.renderer.playlist_full(pl, items, tracks)

    def _get_playlist_rows(self, playlist_id: str, which: str, *, query) -> dict:
        pl = self._playlist(playlist_id)
        max_limit = 100 if which == "tracks" else 50
        limit = _int_param(query, "limit", 20 if which == "items" else 100, 1, max_limit)
        offset = _int_param(query, "offset", 0, 0, 10**9)
        return self._rows_page(pl, which, offset, limit)

    @staticmethod
    def _ids(query) -> list[str]:
        raw = (query.get("ids") or [None])[-1]
        if raw is None:
            raise ApiError(400, "Missing required parameter: ids")
        ids = [s.strip() for s in raw.split(",")]
        if not raw.strip() or any(not s for s in ids):
            raise ApiError(400, "invalid id")
        if len(ids) > MAX_IDS:
            raise ApiError(400, "Too many ids requested")
        if any(not is_base62_id(s) for s in ids):
            raise ApiError(400, "invalid id")
        return ids

    def _get_artists(self, *, query) -> dict:
        r = self.server.app.renderer
        out = []
        for aid in self._ids(query):
            a = artist_by_id(aid)
            out.append(None if a is None else r.artist(a))
        return {"artists": out}

    def _get_artist(self, aid: str, *, query) -> dict:
        if not is_base62_id(aid):
            raise ApiError(400, "invalid id")
        a = artist_by_id(aid)
        if a is None:
            raise ApiError(404, "Resource not found")
        return self.server.app.renderer.artist(a)

    def _get_tracks(self, *, query) -> dict:
        r = self.server.app.renderer
        out = []
        for tid in self._ids(query):
            spec = track_by_id(tid)
            out.append(None if spec is None else r.track(spec))
        return {"tracks": out}

    def _get_track(self, tid: str, *, query) -> dict:
        if not is_base62_id(tid):
            raise ApiError(400, "invalid id")
        spec = track_by_id(tid)
        if spec is None:
            raise ApiError(404, "Resource not found")
        return self.server.app.renderer.track(spec)

    def _get_search(self, *, query) -> dict:
        try:
            return search.search_response(query, self.server.app.api_url, self.server.app.renderer.artist)
        except search.BadSearch as err:
            raise ApiError(400, str(err)) from None

    def _get_audio_features(self, *, query) -> dict:
        # Refused to new apps since Nov 2024, with this exact (message-less) body.
        raise ApiError(403, None)
