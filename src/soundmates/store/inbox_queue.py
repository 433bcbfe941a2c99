"""The new-users inbox's SQLite queue: the file's schema, its entries, and the atomic queue operations.

WAL mode lets readers run while one writer commits; every write is one short ``BEGIN IMMEDIATE``
transaction and ``busy_timeout`` bounds how long a writer waits (``store/inbox.py`` says why SQLite).
This module owns the file's name (``inbox.sqlite3``); ``store/inbox.py`` is what callers use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from soundmates.sqlite_wal import connect_wal
from soundmates.store.base import INBOX_GROUP, FeatureStore, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

PENDING, PROCESSING, DONE, FAILED = "pending", "processing", "done", "failed"
STATUSES = (PENDING, PROCESSING, DONE, FAILED)
# Re-adding one of these is a no-op (the request is queued, running, or already served).
_KEEP_ON_READD = (PENDING, PROCESSING, DONE)

_FILE_NAME = "inbox.sqlite3"
BUSY_TIMEOUT_S = 30.0  # the longest a writer waits for another one before giving up with StoreUnavailable
_LEGACY_DONE = "legacy_feature_group_imported"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = "user_id, ref, status, reason, source, requested_at, updated_at"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS inbox (
    user_id TEXT PRIMARY KEY,
    ref TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    reason TEXT,
    source TEXT NOT NULL,
    requested_at INTEGER NOT NULL,  -- microseconds since the epoch, UTC
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_status ON inbox (status, requested_at, user_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class InboxEntryNotFound(StoreError, KeyError):
    """``mark`` for a user who never asked to be added."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class InboxEntry:
    user_id: str
    ref: str
    status: str
    reason: str | None
    source: str
    requested_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict:
        d = asdict(self)
        d["requested_at"] = self.requested_at.isoformat()
        d["updated_at"] = self.updated_at.isoformat()
        return d


def _micros(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


def _entry(row: tuple) -> InboxEntry:
    user_id, ref, status, reason, source, requested_at, updated_at = row
    return InboxEntry(user_id, ref, status, reason, source, _from_micros(requested_at), _from_micros(updated_at))


def _legacy_micros(value: Any) -> int | None:
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return _micros(stamp.to_pydatetime())


def _clean(value, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"inbox {name} must be a non-empty string, got {value!r}")
    return value.strip()


def _clean_ids(user_ids: list[str]) -> list[str]:
    if isinstance(user_ids, str):
        raise TypeError("takes a list of user ids, not one string")
    return list(dict.fromkeys(_clean(u, "user_id") for u in user_ids))


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


class InboxQueue:
    """The queue in one SQLite file, through one connection per process (reopened after a fork)."""

    def __init__(self, directory: Path | str, legacy_store: Callable[[], FeatureStore | None] | None = None):
        self.path = Path(directory) / _FILE_NAME
        self._legacy_store = legacy_store
        self._ready = False  # schema made and the old feature group imported (or found absent)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None

    # --- connection and setup ------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:  # one connection per process, used by one thread at a time
            conn = self._open()
            try:
                yield conn
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(
                    f"the new-users inbox at {self.path} is busy or unreadable ({exc}); try again in a moment"
                ) from exc

    def _open(self) -> sqlite3.Connection:
        # Kept open: closing the last connection checkpoints and deletes the WAL, costing fsyncs on every call.
        if self._conn is not None and self._pid == os.getpid() and self.path.exists():
            return self._conn
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()  # the file was deleted under us (a wiped data dir): start afresh
        self._conn = None  # one inherited through fork is abandoned, never used (SQLite forbids it)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # WAL (persistent in the file): readers never block the writer
            conn = connect_wal(self.path, BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            self._setup(conn)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(
                f"cannot open the new-users inbox at {self.path}: {exc}; check that SOUNDMATES_DATA_DIR is a writable folder"
            ) from exc
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA synchronous = FULL")
        with self._write(conn):
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
        self._ready = self._import_legacy(conn)

    @staticmethod
    @contextlib.contextmanager
    def _write(conn: sqlite3.Connection) -> Iterator[None]:
        """One short write transaction: the write lock is taken up front, so read-then-write is atomic."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # never leave the kept connection inside a half-done transaction
                conn.execute("ROLLBACK")
            raise

    def _import_legacy(self, conn: sqlite3.Connection) -> bool:
        """Copy an old ``new_users_inbox`` feature group's rows in, once; the group itself is left alone.

        True once imported (by anyone) or found absent; False when the old store could not be read.
        """
        if conn.execute("SELECT 1 FROM meta WHERE key = ?", (_LEGACY_DONE,)).fetchone():
            return True
        rows = self._legacy_rows()
        if rows is None:
            return False  # try again on the next open; nothing marked
        with self._write(conn):
            if conn.execute("SELECT 1 FROM meta WHERE key = ?", (_LEGACY_DONE,)).fetchone():
                return True  # another process imported meanwhile
            # OR IGNORE: a request queued here before the import wins over its old copy.
            conn.executemany(f"INSERT OR IGNORE INTO inbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (_LEGACY_DONE, str(len(rows))))
        if rows:
            log.info("imported %d request(s) from the old %s feature group into %s", len(rows), INBOX_GROUP, self.path)
        return True

    def _legacy_rows(self) -> list[tuple] | None:
        try:
            store = self._legacy_store() if self._legacy_store else None
            if store is None or store.data_version(INBOX_GROUP) is None:
                return []
            frame = store.read(INBOX_GROUP)
        except Exception as exc:  # noqa: BLE001 - a store briefly unreadable must not stop the queue
            log.warning("old %s feature group not readable (%s); importing it later", INBOX_GROUP, exc)
            return None
        rows = []
        for r in frame.to_dict("records"):
            requested = _legacy_micros(r.get("requested_at"))
            updated = _legacy_micros(r.get("updated_at")) or requested
            if r.get("status") not in STATUSES or not r.get("user_id") or requested is None:
                continue  # not a request this queue could serve; the old group still holds it
            reason = r.get("reason") if isinstance(r.get("reason"), str) else None
            rows.append(
                (str(r["user_id"]), str(r.get("ref") or ""), r["status"], reason, str(r.get("source") or ""), requested, updated)
            )
        return rows

    # --- the queue's operations ----------------------------------------------------------
    def get(self, user_id: str) -> InboxEntry | None:
        with self._connect() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM inbox WHERE user_id = ?", (_clean(user_id, "user_id"),)).fetchone()
        return _entry(row) if row else None

    def add(self, user_id: str, ref: str, source: str) -> InboxEntry:
        user_id, ref, source = _clean(user_id, "user_id"), _clean(ref, "ref"), _clean(source, "source")
        now = _micros(datetime.now(UTC))
        with self._connect() as conn, self._write(conn):
            row = conn.execute(f"SELECT {_COLUMNS} FROM inbox WHERE user_id = ?", (user_id,)).fetchone()
            if row is not None and row[2] in _KEEP_ON_READD:
                return _entry(row)
            fresh = (user_id, ref, PENDING, None, source, now, now)
            conn.execute(f"INSERT OR REPLACE INTO inbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", fresh)
        return _entry(fresh)

    def by_status(self, status: str, limit: int | None = None) -> list[InboxEntry]:
        _check_limit(limit)
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM inbox WHERE status = ? ORDER BY requested_at, user_id LIMIT ?",
                (status, -1 if limit is None else limit),
            ).fetchall()
        return [_entry(r) for r in rows]

    def claim(self, limit: int | None = None) -> list[InboxEntry]:
        _check_limit(limit)
        now = _micros(datetime.now(UTC))
        with self._connect() as conn, self._write(conn):
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM inbox WHERE status = ? ORDER BY requested_at, user_id LIMIT ?",
                (PENDING, -1 if limit is None else limit),
            ).fetchall()
            ids = [r[0] for r in rows]
            conn.execute(
                f"UPDATE inbox SET status = ?, reason = NULL, updated_at = ? WHERE user_id IN ({_placeholders(len(ids))})",
                (PROCESSING, now, *ids),
            )
        return [_entry((r[0], r[1], PROCESSING, None, r[4], r[5], now)) for r in rows]

    def mark(self, user_ids: list[str], status: str, reason: str | None = None) -> list[InboxEntry]:
        if status not in STATUSES:
            raise ValueError(f"inbox status must be one of {', '.join(STATUSES)}; got {status!r}")
        ids = _clean_ids(user_ids)
        if not ids:
            return []
        now = _micros(datetime.now(UTC))
        where = f"user_id IN ({_placeholders(len(ids))})"
        with self._connect() as conn, self._write(conn):
            found = {r[0]: r for r in conn.execute(f"SELECT {_COLUMNS} FROM inbox WHERE {where}", ids)}
            unknown = [u for u in ids if u not in found]
            if unknown:
                raise InboxEntryNotFound(f"no inbox request for user(s) {unknown}: add_request first")
            conn.execute(f"UPDATE inbox SET status = ?, reason = ?, updated_at = ? WHERE {where}", (status, reason, now, *ids))
        return [_entry((u, found[u][1], status, reason, found[u][4], found[u][5], now)) for u in ids]

    def requeue_stale(self, older_than: timedelta) -> list[str]:
        cutoff = _micros(datetime.now(UTC) - older_than)
        now = _micros(datetime.now(UTC))
        with self._connect() as conn, self._write(conn):
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT user_id FROM inbox WHERE status = ? AND updated_at < ? ORDER BY requested_at, user_id",
                    (PROCESSING, cutoff),
                )
            ]
            conn.execute(
                f"UPDATE inbox SET status = ?, updated_at = ? WHERE user_id IN ({_placeholders(len(ids))})",
                (PENDING, now, *ids),
            )
        return ids

    def delete(self, user_ids: list[str]) -> int:
        ids = _clean_ids(user_ids)
        if not ids:
            return 0
        with self._connect() as conn, self._write(conn):
            return conn.execute(f"DELETE FROM inbox WHERE user_id IN ({_placeholders(len(ids))})", ids).rowcount

    def counts(self) -> dict[str, int]:
        with self._connect() as conn:
            tally = dict(conn.execute("SELECT status, count(*) FROM inbox GROUP BY status").fetchall())
        return {s: int(tally.get(s, 0)) for s in STATUSES}

    def latest(self, status: str | None = None, limit: int | None = None) -> list[InboxEntry]:
        _check_limit(limit)
        where, args = ("WHERE status = ?", [status]) if status is not None else ("", [])
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM inbox {where} ORDER BY updated_at DESC, user_id LIMIT ?",
                (*args, -1 if limit is None else limit),
            ).fetchall()
        return [_entry(r) for r in rows]
