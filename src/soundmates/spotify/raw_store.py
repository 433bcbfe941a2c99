"""Ingest's storage layout: raw pages per user (gzip, written atomically), the shared artist cache, profiles, deletion.

Under ``settings.raw_dir`` (or a caller's private ``user_data_dir``, see :class:`IngestLayout`)::

    users/<key>/user.json.gz                          /users/{id}
    users/<key>/playlists.<offset>.json.gz            /users/{id}/playlists pages
    users/<key>/items.<playlist key>.<offset>.json.gz /playlists/{id}/items pages
    artists.jsonl                                     the artist cache shared by all users and runs

One folder per user, not one per playlist: creating a folder per playlist was ~9% of the ingest's
CPU. (Pages of the older per-playlist layout are not read; a resume fetches them again.)

``<key>`` is :func:`soundmates.keys.storage_key`. Nothing outside this module names these files.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soundmates import json_read
from soundmates.atomic import atomic_write_bytes
from soundmates.config import Settings
from soundmates.keys import storage_key, storage_names
from soundmates.profiles import ProfileRepository

log = logging.getLogger(__name__)

ARTISTS_FILE = "artists.jsonl"
# "items." + key + "." + offset + ".json.gz" (and the writer's ".tmp-" prefix) stays under 255 bytes.
_MAX_PLAYLIST_KEY_BYTES = 160


def load_page(path: Path) -> Any | None:
    """A stored raw page (None if absent or unreadable: it is fetched again)."""
    try:
        data = path.read_bytes()
        return json_read.loads(gzip.decompress(data) if path.suffix == ".gz" else data)
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, RecursionError):  # EOFError: a truncated gzip stream
        log.warning("ignoring unreadable raw file %s", path)
        return None


def save_page(path: Path, body: bytes) -> None:
    """Write aside and rename: a crash never leaves half a page under the final name.

    No fsync (unlike profiles): a raw page is a cache; losing the last pages to a power cut
    only costs refetching them, while an fsync per page would dominate the ingest.
    """
    if path.suffix == ".gz":
        # Item pages repeat whole track objects: gzip (fastest level) keeps raw/ ~8x smaller.
        body = gzip.compress(body, compresslevel=1)
    atomic_write_bytes(path, body, durable=False)


class UserPages:
    """Where one user's raw pages live (see the module docstring): one folder per user, pages named by prefix."""

    def __init__(self, user_dir: Path):
        self.dir = user_dir

    @property
    def user(self) -> Path:
        return self.dir / "user.json.gz"

    @property
    def playlists(self) -> str:
        return "playlists"

    def items(self, playlist_id: str) -> str:
        return f"items.{storage_key(playlist_id, _MAX_PLAYLIST_KEY_BYTES)}"

    def page(self, prefix: str, offset: int) -> Path:
        return self.dir / f"{prefix}.{offset}.json.gz"


def users_raw_dir(settings: Settings, user_data_dir: Path | None) -> Path:
    return (Path(user_data_dir) / "raw" if user_data_dir is not None else Path(settings.raw_dir)) / "users"


def profiles_dir(settings: Settings, user_data_dir: Path | None) -> Path:
    return Path(user_data_dir) / "profiles" if user_data_dir is not None else Path(settings.profiles_dir)


class IngestLayout:
    """The places of one ingestor: the data directory's, or a private ``user_data_dir`` for profiles and user pages
    (users who did not consent); the artist cache is always the data directory's (public catalogue data)."""

    def __init__(self, settings: Settings, user_data_dir: Path | None = None):
        self.settings = settings
        self.user_data_dir = user_data_dir
        self.users_dir = users_raw_dir(settings, user_data_dir)
        self.profiles_dir = profiles_dir(settings, user_data_dir)
        self.artists_path = Path(settings.raw_dir) / ARTISTS_FILE

    def user_pages(self, user_id: str) -> UserPages:
        return UserPages(self.users_dir / storage_key(user_id))

    def delete_user(self, user_id: str) -> dict[str, bool]:
        """Delete the raw pages and the profile of one user: ``{"raw": bool, "profile": bool}`` (True = deleted)."""
        raw = False
        for name in storage_names(user_id):  # the key, and the legacy name older files may have
            udir = self.users_dir / name
            if udir.exists():
                shutil.rmtree(udir)
                raw = True
        return {"raw": raw, "profile": ProfileRepository(self.profiles_dir).delete(user_id)}


class ArtistCache:
    """Raw artist objects by id, shared by every user and persisted in one append-only JSONL file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._artists: dict[str, dict | None] = {}
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            try:
                rec = json.loads(line)
                self._artists[str(rec["id"])] = rec.get("artist")
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash mid-append: that artist is fetched again

    def __contains__(self, artist_id: str) -> bool:
        return artist_id in self._artists

    def __len__(self) -> int:
        return len(self._artists)

    def get(self, artist_id: str) -> dict | None:
        return self._artists.get(artist_id)

    def add(self, found: Mapping[str, dict | None]) -> None:
        """Remember raw artists (None = unknown to the API), in memory and on disk."""
        if not found:
            return
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps({"id": aid, "artist": obj}, ensure_ascii=False) + "\n" for aid, obj in found.items())
        with FileLock(str(self.path) + ".lock"):
            with open(self.path, "a+b") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        lines = "\n" + lines  # close a torn line so the new records stay readable
                f.write(lines.encode("utf-8"))  # no fsync: a lost line only costs refetching that artist
        self._artists.update(found)
