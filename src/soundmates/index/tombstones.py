"""Removed users: when each was removed, and whether new data has brought them back since.

A tombstone never expires and is never deleted. It blocks every vector of its user whose data
was read before the user came back (``revived_at``, set only by ``add_fresh`` with new data after
the removal), so an index built from a store read between the removal and the data deletion
cannot bring the old vector back, in this build or any later one.

Two copies are kept, ``tombstones.json`` and ``tombstones.backup.json``, each with a checksum of
its contents; the backup is written first. Readers merge every valid copy (per user, the newest
change wins), so one damaged or missing copy costs nothing; if no copy can be read, reading raises
``RemovalsUnreadable`` (fail closed: nothing is served rather than a removed user).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from filelock import FileLock

from soundmates.index._files import atomic_write_bytes, stat_key
from soundmates.index.errors import RemovalsUnreadable

FORMAT = 2
BACKUP_NAME = "tombstones.backup.json"


@dataclass(frozen=True)
class Tomb:
    removed_at: float  # epoch seconds of the latest removal
    revived_at: float | None = None  # epoch seconds new data brought the user back after it

    @property
    def removed(self) -> bool:
        return self.revived_at is None or not self.revived_at >= self.removed_at

    @property
    def changed_at(self) -> float:
        return max(self.removed_at, self.revived_at if self.revived_at is not None else -math.inf)

    def blocks(self, data_time: float | None) -> bool:
        """True if a vector made from data read (or added) at ``data_time`` must not be served."""
        if self.removed or data_time is None or self.revived_at is None:  # no revival: removed is True
            return True
        return not data_time >= self.revived_at  # NaN compares false: blocked


@dataclass(frozen=True)
class TombState:
    users: dict[str, Tomb]
    warnings: tuple[str, ...] = ()


def _canonical(users: dict[str, dict]) -> bytes:
    return json.dumps(users, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _as_time(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} is not a time")
    return float(value)


def _parse(data) -> dict[str, Tomb]:
    """Tombs from a decoded file (format 2, or the first format ``{user_id: removed_at ISO}``); ValueError if malformed."""
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    if "format" not in data:  # the first format: no checksum, ISO times
        return {str(k): Tomb(datetime.fromisoformat(str(v)).timestamp()) for k, v in data.items()}
    if data.get("format") != FORMAT or not isinstance(data.get("users"), dict):
        raise ValueError(f"unknown format {data.get('format')!r}")
    users = data["users"]
    if hashlib.sha256(_canonical(users)).hexdigest() != data.get("sha256"):
        raise ValueError("contents do not match their checksum")
    out = {}
    for uid, rec in users.items():
        if not isinstance(rec, dict):
            raise TypeError(f"entry for {uid!r} is not an object")
        revived = rec.get("revived_at")
        out[uid] = Tomb(
            _as_time(rec.get("removed_at"), "removed_at"), None if revived is None else _as_time(revived, "revived_at")
        )
    return out


def read_copy(path: Path) -> tuple[dict[str, Tomb] | None, str | None]:
    """(tombs, None) if readable, (None, None) if absent, (None, why) if damaged."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as e:
        return None, f"{path.name} cannot be read ({type(e).__name__}: {e.strerror or e})"
    try:
        return _parse(json.loads(raw.decode("utf-8"))), None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError, TypeError, OverflowError) as e:
        return None, f"{path.name} is damaged ({str(e)[:120]})"


def merge(*copies: dict[str, Tomb]) -> dict[str, Tomb]:
    out: dict[str, Tomb] = {}
    for copy in copies:
        for uid, tomb in copy.items():
            if uid not in out or tomb.changed_at > out[uid].changed_at:
                out[uid] = tomb
    return out


class Tombstones:
    """The removal records of one index directory; re-read only when a copy changes (cheap per query)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.backup_path = self.path.with_name(BACKUP_NAME)
        self._lock = FileLock(str(self.path) + ".lock")
        self._mem_lock = threading.Lock()
        self._cache_key: tuple | None = None
        self._cache: TombState | None = None

    # --- reading -------------------------------------------------------------
    def _read(self) -> TombState:
        primary, p_why = read_copy(self.path)
        backup, b_why = read_copy(self.backup_path)
        if primary is None and backup is None:
            if p_why is None and b_why is None:
                return TombState({})
            why = "; ".join(w or f"{n} is missing" for w, n in ((p_why, self.path.name), (b_why, BACKUP_NAME)))
            raise RemovalsUnreadable(
                f"the removed-users list cannot be read ({why}): nothing is served, so that no removed user "
                f"reappears; restore {self.path} from a backup copy"
            )
        warnings = []
        if primary is None:
            warnings.append(f"{p_why or self.path.name + ' is missing'}: removals are read from {BACKUP_NAME}")
        elif b_why:
            warnings.append(f"{b_why}: removals are read from {self.path.name}")
        return TombState(merge(backup or {}, primary or {}), tuple(warnings))

    def state(self) -> TombState:
        """Every removal record (RemovalsUnreadable if no copy is readable)."""
        key = (stat_key(self.path), stat_key(self.backup_path))
        with self._mem_lock:
            if key != self._cache_key or self._cache is None:
                self._cache = self._read()
                self._cache_key = key
            return self._cache

    def records(self) -> dict[str, Tomb]:
        return self.state().users

    def removed_ids(self) -> frozenset[str]:
        """Users removed and not brought back by new data since."""
        return frozenset(u for u, t in self.records().items() if t.removed)

    def is_removed(self, user_id: str) -> bool:
        t = self.records().get(user_id)
        return t is not None and t.removed

    def blocks(self, user_id: str, data_time: float | None) -> bool:
        t = self.records().get(user_id)
        return t is not None and t.blocks(data_time)

    def __contains__(self, user_id: str) -> bool:
        return self.is_removed(user_id)

    def __len__(self) -> int:
        """How many users were ever removed (records are never deleted)."""
        return len(self.records())

    # --- writing -------------------------------------------------------------
    def _write(self, users: dict[str, Tomb]) -> None:
        body = {u: {"removed_at": t.removed_at, "revived_at": t.revived_at} for u, t in sorted(users.items())}
        doc = {"format": FORMAT, "users": body, "sha256": hashlib.sha256(_canonical(body)).hexdigest()}
        data = json.dumps(doc, ensure_ascii=False, indent=0).encode("utf-8")
        atomic_write_bytes(self.backup_path, data)  # backup first: a crash in between leaves the backup ahead
        atomic_write_bytes(self.path, data)

    def add(self, user_id: str, at: float | None = None) -> bool:
        """Record a removal now (a repeated removal moves the time forward); False if already removed."""
        with self._lock:
            users = dict(self._read().users)
            was = users.get(user_id)
            users[user_id] = Tomb(time.time() if at is None else float(at))
            self._write(users)
            return was is None or not was.removed

    def revive(self, user_id: str, at: float) -> bool:
        """New data for a removed user arrived at ``at``: vectors from data read since then are served again."""
        with self._lock:
            users = dict(self._read().users)
            t = users.get(user_id)
            if t is None or not t.removed:
                return False
            users[user_id] = Tomb(t.removed_at, max(float(at), t.removed_at))
            self._write(users)
            return True

    def repair(self) -> bool:
        """Rewrite both copies if one is damaged or missing (and the other readable); True if rewritten."""
        with self._lock:
            st = self._read()
            if not st.warnings:
                return False
            self._write(st.users)
            return True
