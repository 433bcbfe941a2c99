"""Spotify artist ids for artists an export names only by name: search the API once, cache, else a name key.

An export's track rows carry the artist's *name* only. Each name is looked up once through the
configured Spotify API (``GET /v1/search?type=artist``) and the answer cached per normalised name in
SQLite per API base URL (a hit and a miss alike), so later imports make no search call for it. When the API is not
configured, refuses, or finds no artist of that exact name, the artist gets a stable name key
(``x`` + hash of the normalised name); an unavailable API is not cached, so a later import retries.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from soundmates.spotify.errors import SpotifyError
from soundmates.sqlite_wal import connect_wal

from .genres import normalize_artist_name

ArtistSearch = Callable[[str], "list[dict[str, Any]]"]  # name -> artist objects, best first


def name_key(normalised_name: str) -> str:
    """The id of an artist known by name only (the same name always gets the same id)."""
    return "x" + hashlib.sha1(normalised_name.encode()).hexdigest()[:21]


def pick_artist_id(found: list[dict[str, Any]], key: str) -> str | None:
    """The id of the first search result whose name normalises to ``key`` (a near name is another artist)."""
    for artist in found:
        aid, name = artist.get("id"), artist.get("name")
        if isinstance(aid, str) and aid and isinstance(name, str) and normalize_artist_name(name) == key:
            return aid
    return None


class ArtistIdResolver:
    """Resolves artist names to Spotify ids through ``search`` (None: no API configured), cached in SQLite."""

    def __init__(self, cache_path: Path, search: ArtistSearch | None, api: str = ""):
        """``api`` names the API ``search`` asks (its base URL): ids of one API are never answers for another."""
        self.search = search
        self.api = api
        self.unavailable: str | None = None  # why the API stopped being asked during this import
        self.lookups = {"cache": 0, "search": 0, "not_found": 0, "name_key": 0}
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect_wal(cache_path, 30, check_same_thread=False)
        # artist_id NULL: the API was asked and knows no artist of that name.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS artist_ids "
            "(api TEXT NOT NULL, name TEXT NOT NULL, artist_id TEXT, resolved_at REAL NOT NULL, PRIMARY KEY (api, name))"
        )
        self._db.commit()

    def resolve(self, name: str) -> str:
        key = normalize_artist_name(name)
        row = self._db.execute("SELECT artist_id FROM artist_ids WHERE api = ? AND name = ?", (self.api, key)).fetchone()
        if row is not None:
            self.lookups["cache"] += 1
            return row[0] or name_key(key)
        if self.search is None or self.unavailable is not None:
            self.lookups["name_key"] += 1
            return name_key(key)
        try:
            found = self.search(name)
        except SpotifyError as exc:
            # One refusal is enough: the rest of this import uses name keys instead of waiting on each artist.
            self.unavailable = exc.reason
            self.lookups["name_key"] += 1
            return name_key(key)
        aid = pick_artist_id(found, key)
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO artist_ids VALUES (?, ?, ?, ?)", (self.api, key, aid, time.time()))
        self.lookups["search" if aid else "not_found"] += 1
        return aid or name_key(key)

    def close(self) -> None:
        self._db.close()
