"""Match feedback: one thumbs up or down per (user, match), in one small SQLite table.

A person says whether a match fits (``soundmates feedback``, the dashboard's match cards); the
evaluation counts the votes and training may read them as positives and hard negatives
(``training_pairs``). The latest vote of a pair wins. Removing a user deletes every vote they gave
and every vote about them (``delete_users``), so what a person removes stays removed.

Why SQLite and not a feature group: votes are tiny, keyed by a pair, written one at a time from
several processes. WAL mode lets readers run while one writer commits; every write is one short
``BEGIN IMMEDIATE`` transaction with a bounded ``busy_timeout`` (then ``StoreUnavailable``).

This module owns the file (next to the feature store's tables); nobody else knows its name.
Whether a voter consented is the caller's check (``recommend``): this module stores what it is given.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from soundmates.sqlite_wal import connect_wal
from soundmates.store.base import StoreUnavailable

_FILE_NAME = "feedback.sqlite3"
BUSY_TIMEOUT_S = 30.0  # the longest a writer waits for another before StoreUnavailable
UP, DOWN = 1, -1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    user_id TEXT NOT NULL,      -- who voted
    other_id TEXT NOT NULL,     -- the match they voted on
    vote INTEGER NOT NULL CHECK (vote IN (1, -1)),
    updated_at REAL NOT NULL,   -- seconds since the epoch, UTC
    PRIMARY KEY (user_id, other_id)
);
CREATE INDEX IF NOT EXISTS feedback_by_other ON feedback (other_id);
"""


@dataclass(frozen=True)
class Vote:
    user_id: str
    other_id: str
    vote: int  # +1 up, -1 down
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clean(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"feedback {name} must be a non-empty user id, got {value!r}")
    return value.strip()


class FeedbackStore:
    """The votes in one SQLite file, one connection per thread (reopened after a fork)."""

    def __init__(self, directory: Path | str):
        self.path = Path(directory) / _FILE_NAME
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = connect_wal(self.path, BUSY_TIMEOUT_S, isolation_level=None)
            conn.executescript(_SCHEMA)
        except sqlite3.OperationalError as e:
            raise StoreUnavailable(f"the feedback store {self.path} cannot be opened ({e}); check the data dir") from e
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise StoreUnavailable(f"the feedback store is busy ({e}); try again in a moment") from e
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def record(self, user_id: str, other_id: str, vote: int) -> Vote:
        """Store ``user_id``'s vote on ``other_id`` (replacing an earlier one); returns it."""
        user_id, other_id = _clean(user_id, "user"), _clean(other_id, "match")
        if user_id == other_id:
            raise ValueError("feedback is about a match: the user and the match must differ")
        if vote not in (UP, DOWN):
            raise ValueError(f"a vote is +1 (up) or -1 (down), got {vote!r}")
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO feedback (user_id, other_id, vote, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_id, other_id) DO UPDATE SET vote = excluded.vote, updated_at = excluded.updated_at",
                (user_id, other_id, vote, now),
            )
        return Vote(user_id, other_id, vote, now)

    def votes(self, user_id: str | None = None) -> list[Vote]:
        """Every vote (or those ``user_id`` gave), oldest first."""
        sql = "SELECT user_id, other_id, vote, updated_at FROM feedback"
        args: tuple = ()
        if user_id is not None:
            sql, args = sql + " WHERE user_id = ?", (user_id,)
        rows = self._conn().execute(sql + " ORDER BY updated_at, user_id, other_id", args).fetchall()
        return [Vote(*r) for r in rows]

    def counts(self, user_id: str | None = None) -> dict[str, int]:
        """``{"up": n, "down": n, "voters": n}`` over every vote, or over the votes ``user_id`` gave."""
        sql = "SELECT COALESCE(SUM(vote = 1), 0), COALESCE(SUM(vote = -1), 0), COUNT(DISTINCT user_id) FROM feedback"
        args: tuple = ()
        if user_id is not None:
            sql, args = sql + " WHERE user_id = ?", (user_id,)
        up, down, voters = self._conn().execute(sql, args).fetchone()
        return {"up": int(up), "down": int(down), "voters": int(voters)}

    def delete_users(self, user_ids: list[str]) -> int:
        """Delete every vote given by or about any of ``user_ids``; returns how many."""
        if isinstance(user_ids, str):
            raise TypeError("takes a list of user ids, not one string")
        ids = [_clean(u, "user") for u in user_ids]
        if not ids:
            return 0
        marks = ", ".join("?" * len(ids))
        with self._write() as conn:
            cur = conn.execute(f"DELETE FROM feedback WHERE user_id IN ({marks}) OR other_id IN ({marks})", ids + ids)
        return int(cur.rowcount or 0)

    def training_pairs(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(positives, hard negatives) as (user, match) pairs: up votes and down votes."""
        pos: list[tuple[str, str]] = []
        neg: list[tuple[str, str]] = []
        for v in self.votes():
            (pos if v.vote == UP else neg).append((v.user_id, v.other_id))
        return pos, neg


_STORES: dict[Path, FeedbackStore] = {}
_STORES_LOCK = threading.Lock()


def feedback_store(settings: Any) -> FeedbackStore:
    """The data dir's feedback store (one object per directory, per process)."""
    key = Path(settings.store_dir).resolve()
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = FeedbackStore(key)
        return _STORES[key]


def training_pairs(settings: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The training hook the model stage may call: (positives, hard negatives) from the stored votes.

    Returns empty lists when nobody voted (no file is created for that).
    """
    if not (Path(settings.store_dir) / _FILE_NAME).is_file():
        return [], []
    return feedback_store(settings).training_pairs()
