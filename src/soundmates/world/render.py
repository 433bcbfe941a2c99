"""JSON bodies of a world's objects as the Spotify Web API shows them (per server mode), and paging objects.

Rendering is the server's hot path (an ingest reads ~100 playlist rows per request): what rows share
(artists, albums, whole tracks) is cached as JSON text and pages are assembled from those fragments.
Cached objects are shared, so nothing may mutate them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import msgspec

from soundmates.world import catalog
from soundmates.world.directory import World
from soundmates.world.discography import AlbumSpec, TrackSpec, album_by_n, album_n, artist_id, catalog_track
from soundmates.world.ids import make_id
from soundmates.world.playlists import EPISODES_PER_SHOW, ROW_EPISODE, ROW_LOCAL, ROW_NULL, PlaylistSpec

_MARKETS = ["AR", "AU", "BR", "CA", "DE", "ES", "FR", "GB", "IN", "JP", "MX", "NL", "PL", "SE", "US"]


def iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


_ENCODER = msgspec.json.Encoder()


def dumps(obj: Any) -> str:
    """Compact UTF-8 JSON text, as the API sends it: the same text as ``json.dumps(obj, ensure_ascii=False,
    separators=(",", ":"))`` for strings, ints, bools and null (tests/test_server.py checks; a float may be
    spelled differently, 1e16 for 1e+16, and the API sends none), ~10x faster (msgspec's C encoder)."""
    return _ENCODER.encode(obj).decode("utf-8")


class RawJSON(str):
    """A response body that is already JSON text (built from cached fragments)."""


def _image(key: str, size: int = 640) -> dict:
    return {
        "url": f"https://i.scdn.co/image/ab67616d0000b273{hashlib.md5(key.encode()).hexdigest()[:24]}",
        "height": size,
        "width": size,
    }


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
        self.album_json = lru_cache(maxsize=20_000)(lambda an: dumps(self.album(an)))
        self.artist_simple_json = lru_cache(maxsize=50_000)(lambda a: dumps(self.artist_simple(a)))
        self.track_json = lru_cache(maxsize=200_000)(self._track_json)
        self.projected_tracks: dict[Any, dict] = {}  # fields filter -> {track n: JSON}; see render_fields
        self.episode_json = lru_cache(maxsize=10_000)(lambda n: dumps(self.episode(n)))
        self.user_ref_json = lru_cache(maxsize=8192)(lambda i: dumps(self.user_ref(i)))

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
        spec = _catalog_album(an)
        return {name: get(self, spec) for name, get in ALBUM_FIELDS.items()}

    def album_fields(self, an: int, names: list[str]) -> dict:
        """``{name: self.album(an)[name]}`` for the ``names`` an album object has, computing only those."""
        spec = _catalog_album(an)
        return {name: get(self, spec) for name in names if (get := ALBUM_FIELDS.get(name)) is not None}

    def track(self, spec: TrackSpec, *, nested: bool = True) -> dict:
        """A full track object; ``nested=False`` leaves out ``album`` and ``artists`` (see :meth:`_track_json`)."""
        return {
            name: get(self, spec)
            for name, (get, full_only) in TRACK_FIELDS.items()
            if (nested or name not in _NESTED) and (self.full or not full_only)
        }

    def track_field(self, spec: TrackSpec, name: str) -> tuple[bool, Any]:
        """(does this mode's track object have field ``name``, its value): one field without building the rest."""
        found = TRACK_FIELDS.get(name)
        if found is None or (found[1] and not self.full):
            return False, None
        return True, found[0](self, spec)

    def _track_json(self, n: int) -> str:
        """:meth:`track` as JSON text: cached album and artist fragments plus the track's own fields.

        The same text ``dumps(self.track(spec))`` gives (tests/test_server.py checks), ~5x cheaper:
        encoding the nested album and artists again for every track was most of a page's time.
        """
        spec = catalog_track(n)
        artists = self.artist_simple_json(spec.artist)
        if spec.featured is not None:
            artists += "," + self.artist_simple_json(spec.featured)
        own = self.track(spec, nested=False)
        return f'{{"album":{self.album_json(album_n(spec.artist, spec.album))},"artists":[{artists}],' + dumps(own)[1:]

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
            "album": {
                "album_type": None,
                "artists": [],
                "available_markets": [],
                "external_urls": {},
                "href": None,
                "id": None,
                "images": [],
                "name": "",
                "release_date": None,
                "release_date_precision": None,
                "type": "album",
                "uri": None,
            },
            "artists": [{"external_urls": {}, "href": None, "id": None, "name": "Unknown artist", "type": "artist", "uri": None}],
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
    def rows_json(self, pl: PlaylistSpec, start: int, stop: int) -> str:
        """Rows ``start:stop`` of a playlist's items as comma-joined JSON text (the hot path of every ingest)."""
        owner = self.user_ref_json(pl.owner)
        kinds = pl.kinds[start:stop].tolist()
        values = pl.values[start:stop].tolist()
        added = pl.added_at[start:stop].tolist()
        rows = []
        for kind, value, ts in zip(kinds, values, added):
            if kind == ROW_NULL:
                obj = "null"
            elif kind == ROW_EPISODE:
                obj = self.episode_json(value)
            elif kind == ROW_LOCAL:
                obj = dumps(self.local_track(pl, value))
            else:
                obj = self.track_json(value)
            parts = [
                '{"added_at":"',
                iso(ts),
                '","added_by":',
                owner,
                ',"is_local":',
                "true" if kind == ROW_LOCAL else "false",
                ',"primary_color":null,"item":',
                obj,
                ',"video_thumbnail":{"url":null}',
            ]
            if self.full:
                parts += [',"track":', obj]
            parts.append("}")
            rows.append("".join(parts))
        return ",".join(rows)

    def playlist_simple(self, pl: PlaylistSpec) -> dict:
        ref = {"href": f"{self.api}playlists/{pl.id}/items", "total": pl.total}
        out = {
            "collaborative": getattr(pl, "collaborative", False),  # a playlist created through the API says
            "description": pl.description,
            "external_urls": {"spotify": f"https://open.spotify.com/playlist/{pl.id}"},
            "href": f"{self.api}playlists/{pl.id}",
            "id": pl.id,
            "images": [_image(f"pl{pl.n}")] if pl.total else [],
            "name": pl.name,
            "owner": {**self.user_ref(pl.owner), "display_name": self.world.user(pl.owner).display_name},
            "primary_color": None,
            "public": getattr(pl, "public", True),
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


def _catalog_album(an: int) -> AlbumSpec:
    spec = album_by_n(an)
    if spec is None:  # callers pass albums of catalogue tracks only
        raise KeyError(f"no album {an} in the catalogue")
    return spec


def _album_images(r: Renderer, spec: AlbumSpec) -> list[dict]:
    cover = _image(f"album{spec.n}")
    return [{**cover, "height": size, "width": size} for size in (640, 300, 64)]


#: An album object's fields in the API's order: name -> value of (renderer, spec). One table, so a
#: filtered album (``fields=...album(name,release_date)``) computes just the fields asked for.
ALBUM_FIELDS: dict[str, Callable[[Renderer, AlbumSpec], Any]] = {
    "album_type": lambda r, s: s.album_type,
    "total_tracks": lambda r, s: s.total_tracks,
    "available_markets": lambda r, s: _MARKETS,
    "external_urls": lambda r, s: {"spotify": f"https://open.spotify.com/album/{s.id}"},
    "href": lambda r, s: f"{r.api}albums/{s.id}",
    "id": lambda r, s: s.id,
    "images": _album_images,
    "name": lambda r, s: s.name,
    "release_date": lambda r, s: s.release_date,
    "release_date_precision": lambda r, s: s.release_date_precision,
    "type": lambda r, s: "album",
    "uri": lambda r, s: f"spotify:album:{s.id}",
    "artists": lambda r, s: [r.artist_simple(s.artist)],
}


def _track_artists(r: Renderer, spec: TrackSpec) -> list[dict]:
    artists = [r.artist_simple(spec.artist)]
    if spec.featured is not None:
        artists.append(r.artist_simple(spec.featured))
    return artists


#: A track object's fields in the API's order: name -> (value of (renderer, spec), only in full mode).
#: One table, so a filtered track (``fields``) computes just the fields asked for, with the same values.
TRACK_FIELDS: dict[str, tuple[Callable[[Renderer, TrackSpec], Any], bool]] = {
    "album": (lambda r, s: r.album(album_n(s.artist, s.album)), False),
    "artists": (_track_artists, False),
    "disc_number": (lambda r, s: 1, False),
    "duration_ms": (lambda r, s: s.duration_ms, False),
    "explicit": (lambda r, s: s.explicit, False),
    "external_ids": (lambda r, s: {"isrc": f"QZ{s.n % 10**10:010d}"}, False),
    "external_urls": (lambda r, s: {"spotify": f"https://open.spotify.com/track/{s.id}"}, False),
    "href": (lambda r, s: f"{r.api}tracks/{s.id}", False),
    "id": (lambda r, s: s.id, False),
    "is_local": (lambda r, s: False, False),
    "name": (lambda r, s: s.name, False),
    "preview_url": (lambda r, s: None, False),
    "track_number": (lambda r, s: s.track_number, False),
    "type": (lambda r, s: "track", False),
    "uri": (lambda r, s: f"spotify:track:{s.id}", False),
    "available_markets": (lambda r, s: _MARKETS, True),
    "popularity": (lambda r, s: s.popularity, True),
}
_NESTED = ("album", "artists")


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
    """:func:`page` with the items given as comma-joined JSON text by ``render_json(start, stop)``."""
    shell = page(api, path, items_total, offset, limit, lambda a, b: [])
    stop = min(items_total, offset + limit)
    items = render_json(offset, stop) if offset < stop else ""
    head = dumps({k: v for k, v in shell.items() if k != "items"})
    return RawJSON(f'{head[:-1]},"items":[{items}]}}')
