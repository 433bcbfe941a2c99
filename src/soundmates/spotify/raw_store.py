"""Ingest's storage layout: raw pages per user (one append-only page log each), the shared artist cache, profiles, deletion.

Under ``settings.raw_dir`` (or a caller's private ``user_data_dir``, see :class:`IngestLayout`)::

    users/<key>/pages.log    every raw answer of one user: /users/{id}, /users/{id}/playlists pages,
                             /playlists/{id}/items pages, each a framed, checksummed, zlib'd record
    artists.jsonl            the artist cache shared by all users and runs

One log per user, appended to, not a file per page: creating a file costs ~250-450 us of kernel
time on these disks and appending ~4 us, and an ingest keeps ~12 pages per user. A record torn
by a crash fails its checksum; it and anything after it read as missing (fetched again) and are
cut off before the next append. (Pages of the older layouts, ``*.json.gz`` files, are not read;
a resume fetches them again.)

``<key>`` is :func:`soundmates.keys.storage_key`. Nothing outside this module names these files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soundmates import json_read
from soundmates.config import Settings
from soundmates.keys import storage_key, storage_names
from soundmates.profiles import ProfileRepository

log = logging.getLogger(__name__)

ARTISTS_FILE = "artists.jsonl"
# Keeps a record's name short whatever the playlist id (ids are 22 characters; a hostile one may be any length).
_MAX_PLAYLIST_KEY_BYTES = 160


class UserPages:
    """One user's raw pages by name (``user``, ``playlists.<offset>``, ``items.<playlist key>.<offset>``), in one log.

    ``fresh=True`` (a refresh) starts the log over instead of adding to what a past run kept.
    Used by one thread at a time; ``close()`` when the user is done (or use it as a context manager).
    """

    LOG = "pages.log"
    user = "user"  # the name of the /users/{id} answer
    _HEAD = struct.Struct("<4sHII")  # magic, name bytes, payload bytes, crc32 of name + payload
    _MAGIC = b"SMP1"

    def __init__(self, user_dir: Path, *, fresh: bool = False):
        self.dir = user_dir
        self.path = user_dir / self.LOG
        self._fresh = fresh
        self._index: dict[str, bytes] | None = None  # name -> compressed payload, read once
        self._valid_end = 0  # where the last whole record of the log ends
        self._fd: int | None = None

    @staticmethod
    def playlists(offset: int) -> str:
        return f"playlists.{offset}"

    @staticmethod
    def items(playlist_id: str, offset: int) -> str:
        return f"items.{storage_key(playlist_id, _MAX_PLAYLIST_KEY_BYTES)}.{offset}"

    def get(self, name: str) -> Any | None:
        """The page stored under ``name`` (None if absent or unreadable: it is fetched again)."""
        payload = self._stored().get(name)
        if payload is None:
            return None
        try:
            return json_read.loads(zlib.decompress(payload))
        except (zlib.error, ValueError, RecursionError):
            log.warning("ignoring an unreadable raw page %s in %s", name, self.path)
            return None

    def names(self) -> list[str]:
        """The names of every page stored (readable or not)."""
        return list(self._stored())

    def _stored(self) -> dict[str, bytes]:
        if self._index is None:
            self._index = {} if self._fresh else self._read()
        return self._index

    def put(self, name: str, body: bytes) -> None:
        """Append the raw answer ``body`` under ``name`` (a later record of a name supersedes an earlier one).

        One ``write`` per record on an ``O_APPEND`` file; no fsync: a page is a cache, and losing
        the last ones to a power cut only costs refetching them.
        """
        if self._fd is None:
            self._fd = self._open_for_append()
        payload = zlib.compress(body, 1)  # item pages repeat whole track objects: ~8x smaller
        key = name.encode("utf-8", "surrogatepass")
        record = self._HEAD.pack(self._MAGIC, len(key), len(payload), zlib.crc32(payload, zlib.crc32(key))) + key + payload
        view = memoryview(record)
        while view:
            view = view[os.write(self._fd, view) :]
        if self._index is not None:
            self._index[name] = payload

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> UserPages:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_for_append(self) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | (os.O_TRUNC if self._fresh else 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except FileNotFoundError:  # the user's first page
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o600)
        if not self._fresh:
            if self._index is None or os.fstat(fd).st_size > self._valid_end:
                # Read again when it grew since it was read (another run of this user may be adding to it):
                # only a record torn now is cut off, never one that run finished since.
                self._index = {**(self._index or {}), **self._read()}
            if os.fstat(fd).st_size > self._valid_end:
                os.ftruncate(fd, self._valid_end)  # a record torn by a crash: cut off, so new records stay readable
        return fd

    def _read(self) -> dict[str, bytes]:
        """Every whole record of the log by name; sets where the last whole one ends."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("ignoring unreadable raw pages %s (%s)", self.path, exc)
            return {}
        index: dict[str, bytes] = {}
        pos, head = 0, self._HEAD
        while pos + head.size <= len(data):
            magic, name_len, payload_len, crc = head.unpack_from(data, pos)
            start = pos + head.size
            end = start + name_len + payload_len
            if magic != self._MAGIC or end > len(data):
                break
            key, payload = data[start : start + name_len], data[start + name_len : end]
            if zlib.crc32(payload, zlib.crc32(key)) != crc:
                break
            index[key.decode("utf-8", "surrogatepass")] = payload
            pos = end
        if pos < len(data):
            log.warning("raw pages %s end in a torn record after byte %d: what follows is fetched again", self.path, pos)
        self._valid_end = pos
        return index


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

    def user_pages(self, user_id: str, *, fresh: bool = False) -> UserPages:
        return UserPages(self.users_dir / storage_key(user_id), fresh=fresh)

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
    """Raw artist objects by id, shared by every user and run, persisted in one append-only JSONL file.

    Two ingest runs at once (the bootstrap's parallel batches) share it through the file:
    :meth:`refresh` takes in what the other appended since, so an artist it fetched is not fetched again.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._artists: dict[str, dict | None] = {}
        self._read_to = 0  # the file is read up to here (always the end of a whole line)
        self.refresh()

    def refresh(self) -> None:
        """Take in the lines appended since the file was last read (by any run); a partial last line waits."""
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size <= self._read_to:
                    return
                f.seek(self._read_to)
                self._take(f.read())
        except FileNotFoundError:
            return

    def _take(self, data: bytes, *, whole: bool = False) -> None:
        """Records of ``data`` (read from ``_read_to`` on) into memory; ``whole``: its last line is complete or torn."""
        end = len(data) if whole else data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
                self._artists[str(rec["id"])] = rec.get("artist")
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash mid-append: that artist is fetched again
        self._read_to += end

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
                end = f.seek(0, os.SEEK_END)
                if end > self._read_to:  # what other runs appended since: every writer holds the lock, so it is whole
                    f.seek(self._read_to)
                    self._take(f.read(end - self._read_to), whole=True)
                if end > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        lines = "\n" + lines  # close a torn line so the new records stay readable
                data = lines.encode("utf-8")
                f.write(data)  # no fsync: a lost line only costs refetching that artist
        self._read_to = end + len(data)
        self._artists.update(found)
