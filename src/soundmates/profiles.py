"""The canonical, typed profile every source produces.

The Spotify API ingest, a data-export import, OAuth for one's own account and
the HetRec Last.fm adapter all yield a :class:`Profile`; features, training,
the index and recommendations read nothing else. Missing data is ``None``
(Spotify stopped returning popularity and often genres), never a crash.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import msgspec
from pydantic import BaseModel, Field, ValidationError

from soundmates.atomic import atomic_write_text
from soundmates.keys import (
    legacy_filename,
    storage_key,
    storage_names,
    user_id_from_key,
)

PROFILE_SCHEMA_VERSION = 1
QUARANTINE_DIR = ".quarantine"

log = logging.getLogger(__name__)


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
    fetched_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
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


# --- fast read-only records -------------------------------------------------------------
# The same fields as the pydantic models above, decoded by msgspec's C decoder (~4x faster than
# ``Profile.model_validate_json``) for the features stage, which reads every profile and changes none.
# msgspec is strict where pydantic is lax (a number as a string, 3.0 for an int, NaN): whatever it refuses
# is handed to pydantic, which decides as before (coerces or rejects and quarantines), so a record only
# ever holds what ``Profile`` would hold, with the same values.


# Fields in alphabetical order (kw_only lets defaults come first), so ``to_builtins(order="deterministic")``
# (dict keys sorted) already yields what ``json.dumps(sort_keys=True)`` writes: no second sort for the hash.


class ArtistRecord(msgspec.Struct, kw_only=True):
    genres: list[str] | None = None
    id: str
    name: str
    popularity: int | None = None


class TrackRecord(msgspec.Struct, kw_only=True):
    album_name: str | None = None
    artist_ids: list[str]
    duration_ms: int | None = None
    explicit: bool | None = None
    id: str
    name: str
    popularity: int | None = None
    release_year: int | None = None


class PlaylistItemRecord(msgspec.Struct, kw_only=True):
    added_at: str | None = None
    track_id: str
    weight: float = 1.0


class PlaylistRecord(msgspec.Struct, kw_only=True):
    id: str
    items: list[PlaylistItemRecord] = msgspec.field(default_factory=list)
    name: str
    owner_id: str | None = None
    skipped_episodes: int = 0
    skipped_local: int = 0
    skipped_null: int = 0


class ProfileRecord(msgspec.Struct, kw_only=True):
    """A stored :class:`Profile` as read-only msgspec structs: same attributes, same ``content_hash()``."""

    artists: dict[str, ArtistRecord] = msgspec.field(default_factory=dict)
    display_name: str | None = None
    fetched_at: str = msgspec.field(default_factory=lambda: datetime.now(UTC).isoformat())
    playlists: list[PlaylistRecord] = msgspec.field(default_factory=list)
    schema_version: int = PROFILE_SCHEMA_VERSION
    source: str = "spotify"
    tracks: dict[str, TrackRecord] = msgspec.field(default_factory=dict)
    user_id: str

    @property
    def n_items(self) -> int:
        return sum(len(p.items) for p in self.playlists)

    def content_hash(self) -> str:
        """Equal to ``Profile.content_hash()`` of the same data (see the field order above)."""
        import hashlib

        payload = msgspec.to_builtins(self, order="deterministic")
        del payload["fetched_at"]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


_RECORD_DECODER = msgspec.json.Decoder(ProfileRecord)
AnyProfile = Profile | ProfileRecord  # what the features stage reads: the same attributes either way


def safe_filename(user_id: str) -> str:
    """The legacy, reversible file name of an id; new code names files with :func:`soundmates.keys.storage_key`."""
    return legacy_filename(user_id)


def user_id_from_filename(name: str) -> str:
    return unquote(name)


class ProfileRepository:
    """Canonical profiles as one JSON file per user (``<storage key>.json``): upsert by user id, never duplicated.

    A file that does not parse as a profile is moved to ``.quarantine/`` with a warning and
    treated as absent, so the next ingest fetches that user again instead of skipping them.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self._valid: dict[str, tuple[int, int]] = {}  # file name -> (mtime_ns, size) last seen valid
        self.quarantined: dict[str, Path] = {}  # user id -> where this repository moved their corrupt file

    def path(self, user_id: str) -> Path:
        return self.root / f"{storage_key(user_id)}.json"

    def _existing_path(self, user_id: str) -> Path | None:
        """The stored file of ``user_id``; a file under its legacy name is renamed to the key first."""
        names = storage_names(user_id)
        p = self.root / f"{names[0]}.json"
        if p.exists():
            return p
        for legacy in names[1:]:
            old = self.root / f"{legacy}.json"
            if old.exists():
                try:
                    os.replace(old, p)
                except OSError:
                    return old
                return p
        return None

    def save(self, profile: Profile) -> Path:
        p = self.path(profile.user_id)
        atomic_write_text(p, profile.model_dump_json())
        return p

    def load(self, user_id: str) -> Profile | None:
        p = self._existing_path(user_id)
        if p is None:
            return None
        try:
            seen = _file_identity(p)
            profile = Profile.model_validate_json(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ValidationError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            target = self.quarantine(p, exc, seen=seen)
            if target is not None:
                self.quarantined[user_id] = target
            return None
        if profile.user_id != user_id:
            # Not corrupt, but not this user's (a copied file, or a case-insensitive file system): leave it.
            log.warning("profile file %s holds user %r, not %r: ignored", p.name, profile.user_id, user_id)
            return None
        return profile

    def load_record(self, user_id: str) -> ProfileRecord | Profile | None:
        """Like :meth:`load`, faster: a :class:`ProfileRecord` when msgspec accepts the file, else :meth:`load`'s answer."""
        p = self._existing_path(user_id)
        if p is None:
            return None
        try:
            record = _RECORD_DECODER.decode(p.read_bytes())
        except FileNotFoundError:
            return None
        except (msgspec.DecodeError, OSError, RecursionError):  # msgspec.ValidationError is a DecodeError
            return self.load(user_id)  # pydantic decides: coerce, or reject and quarantine, exactly as before
        if record.user_id != user_id:
            return self.load(user_id)  # load logs and ignores the foreign file
        return record

    def quarantine(self, path: Path, why: BaseException, *, seen: tuple | None = None) -> Path | None:
        """Move a corrupt profile file aside (``.quarantine/<time>/<name>``) and say so.

        ``seen``: the file's identity when it was read; a file replaced since (a concurrent save) stays.
        """
        import time

        from soundmates.logs import one_line

        # .quarantine/<time>/<name>: the name stays as short as the profile's own
        qdir = self.root / QUARANTINE_DIR / str(time.time_ns())
        target = qdir / path.name
        try:
            if seen is not None and _file_identity(path) != seen:
                return None
            qdir.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("corrupt profile file %s could not be moved aside: %s", path, exc)
            return None
        self._valid.pop(path.name, None)
        log.warning(
            "corrupt profile file %s moved to %s (%s); the user will be fetched again", path.name, target, one_line(why, 200)
        )
        return target

    def exists(self, user_id: str) -> bool:
        """A readable profile is stored for ``user_id`` (a corrupt file is quarantined: False)."""
        p = self._existing_path(user_id)
        if p is None:
            return False
        try:
            st = p.stat()
        except FileNotFoundError:
            return False
        seen = (st.st_mtime_ns, st.st_size)
        if self._valid.get(p.name) == seen:
            return True
        if self.load(user_id) is None:
            return False
        self._valid[p.name] = seen
        return True

    def delete(self, user_id: str) -> bool:
        """Delete the stored profile and any quarantined copy of it."""
        deleted = False
        for name in storage_names(user_id):
            try:
                (self.root / f"{name}.json").unlink()
                deleted = True
            except FileNotFoundError:
                pass
            qdir = self.root / QUARANTINE_DIR
            if qdir.is_dir():
                for q in qdir.glob(f"*/{_glob_escape(name)}.json"):
                    q.unlink(missing_ok=True)
                    deleted = True
        return deleted

    def user_ids(self) -> list[str]:
        if not self.root.exists():
            return []
        ids = set()
        for p in self.root.glob("*.json"):
            if p.name.startswith(".tmp-"):
                continue
            uid = user_id_from_key(p.stem)
            if uid is None:  # a hashed key: the file says whose it is
                uid = _stored_user_id(p)
            if uid is not None:
                ids.add(uid)
        return sorted(ids)

    def __iter__(self) -> Iterator[Profile]:
        for uid in self.user_ids():
            prof = self.load(uid)
            if prof is not None:
                yield prof

    def __len__(self) -> int:
        return len(self.user_ids())


def _file_identity(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def _stored_user_id(path: Path) -> str | None:
    try:
        uid = json.loads(path.read_text(encoding="utf-8")).get("user_id")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return uid if isinstance(uid, str) and storage_key(uid) == path.stem else None
