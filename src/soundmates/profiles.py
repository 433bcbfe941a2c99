"""The canonical, typed profile every source produces.

The Spotify API ingest, a data-export import, OAuth for one's own account and
the HetRec Last.fm adapter all yield a :class:`Profile`; features, training,
the index and recommendations read nothing else. Missing data is ``None``
(Spotify stopped returning popularity and often genres), never a crash.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, unquote

from pydantic import BaseModel, Field

PROFILE_SCHEMA_VERSION = 1


class Artist(BaseModel):
    id: str
    name: str
    # None = unknown (not returned by the API); [] = the API says: no genres.
    genres: list[str] | None = None
    popularity: int | None = None


class Track(BaseModel):
    id: str
    name: str
    artist_ids: list[str]
    album_name: str | None = None
    release_year: int | None = None
    explicit: bool | None = None
    popularity: int | None = None
    duration_ms: int | None = None


class PlaylistItem(BaseModel):
    track_id: str
    # 1.0 for a playlist row; listening weight (e.g. minutes played) for exports,
    # play counts for Last.fm.
    weight: float = 1.0
    added_at: str | None = None


class Playlist(BaseModel):
    id: str
    name: str
    owner_id: str | None = None
    items: list[PlaylistItem] = Field(default_factory=list)
    # Items that were no music track (counted, not kept).
    skipped_episodes: int = 0
    skipped_local: int = 0
    skipped_null: int = 0

    @property
    def track_ids(self) -> list[str]:
        return [it.track_id for it in self.items]


class Profile(BaseModel):
    schema_version: int = PROFILE_SCHEMA_VERSION
    user_id: str
    display_name: str | None = None
    source: str = "spotify"  # spotify | export | oauth | hetrec | ...
    fetched_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    playlists: list[Playlist] = Field(default_factory=list)
    tracks: dict[str, Track] = Field(default_factory=dict)
    artists: dict[str, Artist] = Field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return sum(len(p.items) for p in self.playlists)

    def content_hash(self) -> str:
        """Hash of the taste-relevant content (not fetch time), for incremental rebuilds."""
        import hashlib

        payload = self.model_dump(mode="json", exclude={"fetched_at"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def safe_filename(user_id: str) -> str:
    """A reversible, filesystem-safe name for any user id (legacy ids hold . _ # + and non-ASCII)."""
    name = quote(user_id, safe="-_")
    # '.' and '..' would be special; quote() keeps dots, so encode them too.
    return name.replace(".", "%2E")


def user_id_from_filename(name: str) -> str:
    return unquote(name)


def atomic_write_text(path: Path, text: str) -> None:
    """Write aside, fsync, rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class ProfileRepository:
    """Canonical profiles as one JSON file per user: upsert by user id, never duplicated."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, user_id: str) -> Path:
        return self.root / f"{safe_filename(user_id)}.json"

    def save(self, profile: Profile) -> Path:
        p = self.path(profile.user_id)
        atomic_write_text(p, profile.model_dump_json())
        return p

    def load(self, user_id: str) -> Profile | None:
        p = self.path(user_id)
        if not p.exists():
            return None
        return Profile.model_validate_json(p.read_text(encoding="utf-8"))

    def exists(self, user_id: str) -> bool:
        return self.path(user_id).exists()

    def delete(self, user_id: str) -> bool:
        try:
            self.path(user_id).unlink()
            return True
        except FileNotFoundError:
            return False

    def user_ids(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(
            user_id_from_filename(p.stem) for p in self.root.glob("*.json") if not p.name.startswith(".tmp-")
        )

    def __iter__(self) -> Iterator[Profile]:
        for uid in self.user_ids():
            prof = self.load(uid)
            if prof is not None:
                yield prof

    def __len__(self) -> int:
        return len(self.user_ids())
