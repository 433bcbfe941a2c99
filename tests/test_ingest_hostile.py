"""Ingest against a hostile HTTP server (a small loopback server in this file).

Each user id names one misbehaviour of the server (a trickled body, a huge body, HTML, wrong
JSON shapes, a redirect loop, odd ``Retry-After`` values, ...). Each must end as a one-line
failure reason or a deferral for that user only, within a bounded time, with no traceback and
nothing corrupted in the data directory; a well-behaved user in the same batch is ingested.
Deadlines and caps are configured small (1 s, 1 MB) so the suite runs in seconds.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from soundmates.config import get_settings, reset_settings
from soundmates.profiles import ProfileRepository
from soundmates.spotify.ingest import Ingestor

DEADLINE_S = 1.0
MAX_BYTES = 1_000_000
CAP_S = 2.0
RETRIES = 1

GOOD_USER = {"id": "good", "display_name": "Good"}
GOOD_PLAYLISTS = {"items": [{"id": "p1", "name": "mix", "owner": {"id": "good"}, "items": {"total": 1}}], "next": None}
GOOD_ITEMS = {
    "items": [
        {
            "added_at": "2024-01-01T00:00:00Z",
            "item": {
                "id": "t1",
                "type": "track",
                "name": "Song",
                "artists": [{"id": "a1", "name": "Band"}],
                "album": {"name": "LP", "release_date": "1999-05-01"},
                "explicit": False,
                "popularity": 40,
                "duration_ms": 200000,
            },
        }
    ],
    "next": None,
}
GOOD_ARTISTS = {"artists": [{"id": "a1", "name": "Band", "genres": ["indie rock"], "popularity": 50}]}


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


class Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if TOKEN_MODE["mode"] in TOKEN_MODES:
                return TOKEN_MODES[TOKEN_MODE["mode"]](self)
            self._send(200, _json({"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        path = urlsplit(self.path).path.removeprefix("/v1/")
        parts = path.split("/")
        try:
            if parts[0] == "artists":
                return self._send(200, _json(GOOD_ARTISTS))
            if parts[0] == "playlists":
                return self._send(200, _json(GOOD_ITEMS if parts[1] == "p1" else PAGES[parts[1]]))
            uid = parts[1]
            if len(parts) == 3:  # /users/{id}/playlists
                return self._send(200, _json(PLAYLISTS.get(uid, GOOD_PLAYLISTS)))
            if uid in USERS:
                return USERS[uid](self)
            return self._send(200, _json({"id": uid, "display_name": uid}))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: that is the point of most cases

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        hdrs = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _head(self, status: int, headers: dict) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()


def trickle(h: Hostile) -> None:
    """A valid answer, one byte every 0.3 s (12 s in all): per-read timeouts never fire."""
    body = _json({"id": "trickle", "display_name": "slow........................"})
    h._head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
    for i in range(len(body)):
        h.wfile.write(body[i : i + 1])
        h.wfile.flush()
        time.sleep(0.3)


def huge(h: Hostile) -> None:
    """600 MB of JSON whitespace, as fast as the client reads it, no Content-Length."""
    h.close_connection = True
    h._head(200, {"Content-Type": "application/json", "Connection": "close"})
    chunk = b" " * (1 << 20)
    for _ in range(600):
        h.wfile.write(chunk)


def huge_declared(h: Hostile) -> None:
    h._head(200, {"Content-Type": "application/json", "Content-Length": str(600 * 10**6)})
    h.wfile.write(b"{")
    time.sleep(3)


def _bomb() -> bytes:
    """~200 kB of gzip that decompresses to 200 MB of spaces (built in 1 MB steps: memory stays small)."""
    import zlib

    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    mb = b" " * (1 << 20)
    return b"".join(z.compress(mb) for _ in range(200)) + z.flush()


def gzip_bomb(h: Hostile) -> None:
    h._send(200, BOMB, {"Content-Encoding": "gzip"})


def bad_gzip(h: Hostile) -> None:
    h._send(200, b"\x1f\x8b\x08\x00not really gzip at all", {"Content-Encoding": "gzip"})


def truncated(h: Hostile) -> None:
    h.close_connection = True
    h._head(200, {"Content-Type": "application/json", "Content-Length": "100"})
    h.wfile.write(b'{"id": "trunc')


def html(h: Hostile) -> None:
    h._send(200, b"<html><body><h1>Service temporarily unavailable</h1></body></html>", {"Content-Type": "text/html"})


def redirect_loop(h: Hostile) -> None:
    h._send(302, b"", {"Location": h.path})


def retry_after(value):
    """429 with ``Retry-After: value`` (a callable is called per request: dates relative to now)."""

    def handler(h: Hostile) -> None:
        header = value() if callable(value) else value
        h._send(429, _json({"error": {"status": 429, "message": "API rate limit exceeded"}}), {"Retry-After": header})

    return handler


def constant(status: int, body: bytes):
    return lambda h: h._send(status, body)


BOMB = _bomb()
USERS = {
    "trickle": trickle,
    "huge": huge,
    "huge-declared": huge_declared,
    "gzip-bomb": gzip_bomb,
    "bad-gzip": bad_gzip,
    "truncated": truncated,
    "html": html,
    "redirect-loop": redirect_loop,
    "json-list": constant(200, b"[1, 2, 3]"),
    "json-string": constant(200, b'"hello"'),
    "id-number": constant(200, b'{"id": 5, "display_name": "x"}'),
    "deep": constant(200, b"[" * 100_000 + b"]" * 100_000),
    "error-shapes": constant(400, b'{"error": [1, {"a": null}]}'),
    "teapot-html": constant(418, b"<html>" + b"x" * 5000),
    "retry-negative": retry_after("-5"),
    "retry-huge": retry_after("1e400"),
    "retry-nan": retry_after("nan"),
    "retry-words": retry_after("soon, maybe"),
    "retry-date": retry_after(lambda: formatdate(time.time() + 3600, usegmt=True)),
    "retry-past-date": retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
}
PLAYLISTS = {
    "pl-items-number": {"items": 5, "next": None},
    "pl-rows-garbage": {"items": [1, "x", None, {"id": 7}, []], "next": None},
    "pl-no-advance": {
        "items": [{"id": "e1", "name": "empty", "items": {"total": 0}}],
        "next": "http://x/v1/users/pl-no-advance/playlists?offset=0",
    },
    "pl-next-garbage": {"items": [{"id": "e1", "name": "empty", "items": {"total": 0}}], "next": {"offset": 50}},
    "items-shapes": {"items": [{"id": "odd", "name": "odd", "items": {"total": 3}}], "next": None},
}
PAGES = {"odd": {"items": [{"track": 5}, {"item": {"id": 3}}, "s", {"item": {"id": "", "type": "track"}}], "next": None}}

TOKEN_MODE = {"mode": "ok"}
TOKEN_MODES = {
    "refused": constant(400, b'{"error": "invalid_client", "error_description": "Invalid client"}'),
    "busy": lambda h: h._send(503, b"<html>busy</html>", {"Content-Type": "text/html"}),
    "trickle": trickle,
    "huge": huge,
}

# user id -> (outcome, what the reason starts with / the retry_after_s range)
EXPECTED = {
    "trickle": ("failed", "Spotify API too slow: no complete answer of user within 1 s, still failing after 1 retries"),
    "huge": ("failed", "malformed data: the answer of user is larger than the 1,000,000 byte limit"),
    "huge-declared": ("failed", "malformed data: the answer of user is larger than the 1,000,000 byte limit"),
    "gzip-bomb": ("failed", "malformed data: the answer of user is larger than the 1,000,000 byte limit"),
    "bad-gzip": ("failed", "malformed data: an answer of user that cannot be decompressed, after 1 retries"),
    "truncated": ("failed", "Spotify API unreachable: ChunkedEncodingError on user, still failing after 1 retries"),
    "html": ("failed", "malformed data: an answer of user that is not JSON, after 1 retries"),
    "redirect-loop": ("failed", "malformed data: user redirects in a loop (more than 5 redirects)"),
    "json-list": ("failed", "malformed data: user answered a JSON list, not an object"),
    "json-string": ("failed", "malformed data: user answered a JSON str, not an object"),
    "id-number": ("failed", "malformed data: the user object has no string id"),
    "deep": ("failed", "malformed data: user answered JSON nested too deeply to read"),
    "error-shapes": ("failed", "the Spotify API refused the request (400 on user): [1, {'a': None}]"),
    "teapot-html": ("failed", "the Spotify API refused the request (418 on user): <html>xxx"),
    "retry-negative": ("deferred", (CAP_S - 0.5, CAP_S)),
    "retry-huge": ("deferred", (86_000, 86_400)),
    "retry-nan": ("deferred", (CAP_S - 0.5, CAP_S)),
    "retry-words": ("deferred", (CAP_S - 0.5, CAP_S)),
    "retry-date": ("deferred", (3500, 3601)),
    "retry-past-date": ("deferred", (CAP_S - 0.5, CAP_S)),
    "pl-items-number": ("failed", "malformed data: the user_playlists page at offset 0 has no 'items' list"),
    "pl-rows-garbage": ("failed", "no public playlists"),
    "pl-no-advance": ("failed", "malformed data: user_playlists paging does not advance (offset 0 -> 0)"),
    "pl-next-garbage": ("failed", "malformed data: user_playlists paging has a 'next' that is not a link"),
    "items-shapes": ("failed", "no public playlists with music tracks"),
}


@pytest.fixture(scope="module")
def hostile_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def hostile_env(hostile_server, monkeypatch):
    env = {
        "SOUNDMATES_SPOTIFY_API_URL": f"{hostile_server}/v1/",
        "SOUNDMATES_SPOTIFY_TOKEN_URL": f"{hostile_server}/api/token",
        "SOUNDMATES_SPOTIFY_DEADLINE_S": str(DEADLINE_S),
        "SOUNDMATES_SPOTIFY_TIMEOUT_S": str(DEADLINE_S),
        "SOUNDMATES_SPOTIFY_MAX_RESPONSE_BYTES": str(MAX_BYTES),
        "SOUNDMATES_SPOTIFY_MAX_RETRIES": str(RETRIES),
        "SOUNDMATES_SPOTIFY_BACKOFF_S": "0.01",
        "SOUNDMATES_SPOTIFY_RETRY_AFTER_CAP_S": str(CAP_S),
        "SPOTIPY_CLIENT_ID": "id",
        "SPOTIPY_CLIENT_SECRET": "secret",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings()
    return env


def _check_data_dir(settings) -> None:
    """Every kept raw page is a readable JSON object; only the good user has a profile."""
    assert ProfileRepository(settings.profiles_dir).user_ids() in ([], ["good"])
    from soundmates.spotify.raw_store import UserPages

    for path in Path(settings.raw_dir).rglob(UserPages.LOG):
        pages = UserPages(path.parent)
        for name in pages.names():
            obj = pages.get(name)
            assert isinstance(obj, dict) and (name == UserPages.user or isinstance(obj.get("items"), list)), (path, name)


@pytest.mark.parametrize("uid", list(EXPECTED))
def test_each_misbehaviour_ends_as_one_line_reason_or_deferral_in_bounded_time(hostile_env, uid):
    settings = get_settings()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    summary = Ingestor(settings).ingest_many([uid, "good"], progress=False)
    elapsed = time.monotonic() - t0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024

    outcome, want = EXPECTED[uid]
    # a user's calls: at most 1 + RETRIES attempts, each within the deadline, plus backoff
    assert elapsed < (1 + RETRIES) * DEADLINE_S + 3, f"{uid} took {elapsed:.1f} s"
    assert grown_mb < 150, f"{uid}: memory grew by {grown_mb:.0f} MB"
    if outcome == "failed":
        assert summary.deferred == []
        assert [f.ref for f in summary.failed] == [uid]
        reason = summary.failed[0].reason
        assert reason.startswith(want), reason
        assert "\n" not in reason and len(reason) < 400
        assert summary.ingested_user_ids == ["good"], "one bad user never fails the batch"
    else:
        low, high = want
        assert summary.failed == [] and summary.ingested == 0
        assert [d.ref for d in summary.deferred] == [uid, "good"], "a rate limit defers the rest of the run"
        assert all(low <= d.retry_after_s <= high for d in summary.deferred), summary.deferred
    _check_data_dir(settings)


def test_rerun_after_a_malformed_user_answer_fetches_it_again(hostile_env):
    """A user answer of the wrong shape is never kept: the next run asks the API again."""
    settings = get_settings()
    first = Ingestor(settings).ingest_many(["id-number"], progress=False)
    second = Ingestor(settings).ingest_many(["id-number"], progress=False)
    assert first.failed[0].reason == second.failed[0].reason
    assert second.raw_pages_reused == 0 and second.calls_by_endpoint == {"user": 1}


def test_cli_over_all_misbehaviours_prints_no_traceback_and_one_json_object(hostile_env, tmp_path):
    # rate-limited users last: the first one stops fetching for the rest of the run
    uids = sorted(EXPECTED, key=lambda u: EXPECTED[u][0] == "deferred")
    env = dict(os.environ, **hostile_env, SOUNDMATES_DATA_DIR=str(tmp_path / "data"))
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "soundmates.cli.main", "ingest", "good", *uids, "--json", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    out = json.loads(proc.stdout)
    assert out["ingested"] == 1
    failed, deferred = {f["ref"] for f in out["failed"]}, {d["ref"] for d in out["deferred"]}
    assert failed | deferred == set(uids) and not failed & deferred
    assert all(set(d) == {"ref", "retry_after_s"} for d in out["deferred"])
    assert not any("rate limit" in f["reason"] for f in out["failed"])
    assert all("\n" not in f["reason"] for f in out["failed"])
    assert elapsed < 90
    reset_settings()
    _check_data_dir(get_settings().model_copy(update={"data_dir": tmp_path / "data"}))


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("busy", "Spotify API unavailable: 503 on token, still failing after 1 retries"),
        ("trickle", "Spotify API too slow: no complete answer of token within 1 s, still failing after 1 retries"),
        ("huge", "malformed data: the answer of token is larger than the 1,000,000 byte limit"),
    ],
)
def test_a_hostile_token_endpoint_is_bounded_too(hostile_env, monkeypatch, mode, reason):
    monkeypatch.setitem(TOKEN_MODE, "mode", mode)
    t0 = time.monotonic()
    summary = Ingestor(get_settings()).ingest_many(["good"], progress=False)
    assert time.monotonic() - t0 < (1 + RETRIES) * DEADLINE_S + 3
    assert [(f.ref, f.reason) for f in summary.failed] == [("good", reason)]


def test_refused_credentials_stop_the_run_with_the_reason(hostile_env, monkeypatch):
    from soundmates.spotify.errors import AuthenticationFailed

    monkeypatch.setitem(TOKEN_MODE, "mode", "refused")
    with pytest.raises(AuthenticationFailed, match=r"the token endpoint refused the credentials \(400\)"):
        Ingestor(get_settings()).ingest_many(["good"], progress=False)
