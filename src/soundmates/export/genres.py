"""Genres for artists an export names only by name.

Exports carry artist names (and track URIs) but no genres. Resolution order,
cached per artist in SQLite (so each artist is resolved once, across imports
and processes):

1. the project's own artist→genre table (real Spotify genres for ~27k artists,
   shipped with the world data),
2. the Spotify API, when it still answers with genres (a callable supplied by
   the caller; development-mode apps often get none),
3. optional online sources when configured: MusicBrainz (no key, 1 request/s,
   genre data CC BY-NC-SA) and Last.fm ``artist.getTopTags`` (needs a key).
"""

from __future__ import annotations

import json
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from soundmates.sqlite_wal import connect_wal

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalize_artist_name(name: str) -> str:
    """Case, accents, punctuation, '&'/'and' and a leading 'The' do not matter when matching names."""
    s = unicodedata.normalize("NFKD", name)
    s = "".join(c for c in s if not unicodedata.combining(c)).casefold()
    s = s.replace("&", " and ")
    s = _PUNCT.sub(" ", s)
    s = _SPACE.sub(" ", s).strip()
    if s.startswith("the "):
        s = s[4:]
    return s


@dataclass(frozen=True)
class Resolution:
    genres: list[str] | None  # None = no source knew this artist
    source: str  # catalog | spotify | musicbrainz | lastfm | none


GenreLookup = Callable[[str], "list[str] | None"]


class _RateLimiter:
    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                time.sleep(self._next - now)
            self._next = max(now, self._next) + self.interval


def musicbrainz_lookup(base_url: str, user_agent: str = "Soundmates/0.1 (local)") -> GenreLookup:
    """MusicBrainz artist search, tags as genres; at most 1 request/s as its terms require."""
    import requests

    limiter = _RateLimiter(1.0)
    session = requests.Session()
    session.headers["User-Agent"] = user_agent

    def lookup(name: str) -> list[str] | None:
        limiter.wait()
        params: dict[str, str | int] = {"query": f'artist:"{name}"', "fmt": "json", "limit": 1}
        r = session.get(f"{base_url.rstrip('/')}/artist/", params=params, timeout=10)
        r.raise_for_status()
        artists = r.json().get("artists") or []
        if not artists or normalize_artist_name(artists[0].get("name", "")) != normalize_artist_name(name):
            return None
        tags = sorted(artists[0].get("tags") or [], key=lambda t: -int(t.get("count", 0)))
        return [t["name"] for t in tags[:5] if t.get("name")]

    return lookup


def lastfm_lookup(api_key: str, base_url: str = "https://ws.audioscrobbler.com/2.0/") -> GenreLookup:
    import requests

    limiter = _RateLimiter(4.0)
    session = requests.Session()

    def lookup(name: str) -> list[str] | None:
        limiter.wait()
        r = session.get(
            base_url, params={"method": "artist.getTopTags", "artist": name, "api_key": api_key, "format": "json"}, timeout=10
        )
        r.raise_for_status()
        tags = (r.json().get("toptags") or {}).get("tag") or []
        return [t["name"].lower() for t in tags[:5] if t.get("name")] or None

    return lookup


class GenreResolver:
    def __init__(
        self,
        cache_path: Path,
        catalog: dict[str, list[str]] | None = None,
        spotify: GenreLookup | None = None,
        online: Iterable[tuple[str, GenreLookup]] = (),
    ):
        """``catalog`` maps normalised names to genres; ``spotify`` takes an artist *name*
        (the caller knows how to reach the API for it); ``online`` = [(source name, lookup)]."""
        self.catalog = catalog if catalog is not None else load_catalog_table()
        self.spotify = spotify
        self.online = list(online)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect_wal(cache_path, 30, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS artist_genres (name TEXT PRIMARY KEY, genres TEXT, source TEXT NOT NULL, resolved_at REAL NOT NULL)"
        )
        self._db.commit()
        self.lookups = {"cache": 0, "catalog": 0, "spotify": 0, "musicbrainz": 0, "lastfm": 0, "none": 0}

    def _cached(self, key: str) -> Resolution | None:
        row = self._db.execute("SELECT genres, source FROM artist_genres WHERE name = ?", (key,)).fetchone()
        if row is None:
            return None
        return Resolution(json.loads(row[0]) if row[0] is not None else None, row[1])

    def _remember(self, key: str, res: Resolution) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO artist_genres VALUES (?, ?, ?, ?)",
                (key, json.dumps(res.genres) if res.genres is not None else None, res.source, time.time()),
            )

    def resolve(self, name: str) -> Resolution:
        key = normalize_artist_name(name)
        cached = self._cached(key)
        if cached is not None:
            self.lookups["cache"] += 1
            return cached
        res = self._resolve_uncached(name, key)
        self.lookups[res.source] = self.lookups.get(res.source, 0) + 1
        self._remember(key, res)
        return res

    def _resolve_uncached(self, name: str, key: str) -> Resolution:
        genres = self.catalog.get(key)
        if genres:
            return Resolution(list(genres), "catalog")
        sources: list[tuple[str, GenreLookup]] = ([("spotify", self.spotify)] if self.spotify else []) + self.online
        for source, lookup in sources:
            try:
                found = lookup(name)
            except Exception:  # noqa: BLE001 - an unreachable optional source must not fail an import
                continue
            if found:
                return Resolution(found, source)
        # Known to the catalog with no genres is still an answer ([]), else unknown (None).
        return Resolution([] if key in self.catalog else None, "none")

    def close(self) -> None:
        self._db.close()


def load_catalog_table() -> dict[str, list[str]]:
    """The shipped artist→genre table, keyed by normalised name."""
    from soundmates.catalog_data import artist_genre_table

    table: dict[str, list[str]] = {}
    for name, genres in artist_genre_table().items():
        key = normalize_artist_name(name)
        # Several catalog names can normalise alike; keep the one with most genres.
        if len(genres) >= len(table.get(key, ())):
            table[key] = list(genres)
    return table
