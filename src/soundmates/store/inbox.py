"""New-users inbox: a job queue of profiles a user asked to add, in one small SQLite table.

The dashboard and the CLI (through ``Recommender.add``) queue a request; the
Airflow ``process_inbox`` task claims pending requests, ingests and embeds them,
and marks each one ``done`` or ``failed`` with a reason. The triggerer and the
sensor poll the pending count.

Status flow::

    add_request -> pending -> (claim) processing -> done
                                                 -> failed -> (add_request again) pending

Why SQLite and not a feature group: a queue needs an atomic claim and cheap
polls, not versioned history. WAL mode lets readers (the triggerer, the
dashboard) run while one writer commits; every write is one short
``BEGIN IMMEDIATE`` transaction, and ``busy_timeout`` bounds how long a writer
waits for another, so processes never interleave on one entry.

The queue itself (the SQLite file next to the feature store's tables, which nobody outside
``store/inbox_queue.py`` names) is :class:`InboxQueue`; this module keeps one per store directory
and process, and is the face every caller uses (a store in, entries out). A data dir from before keeps its queue: the rows of
an old ``new_users_inbox`` feature group are imported once, on first open.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from soundmates.store.base import INBOX_GROUP, FeatureStore
from soundmates.store.inbox_queue import (
    BUSY_TIMEOUT_S,
    DONE,
    FAILED,
    PENDING,
    PROCESSING,
    STATUSES,
    InboxEntry,
    InboxEntryNotFound,
    InboxQueue,
)

__all__ = [
    "BUSY_TIMEOUT_S",
    "DONE",
    "FAILED",
    "INBOX_GROUP",
    "PENDING",
    "PROCESSING",
    "STATUSES",
    "InboxEntry",
    "InboxEntryNotFound",
    "InboxQueue",
    "add_request",
    "claim",
    "counts",
    "delete",
    "get",
    "latest",
    "mark",
    "mark_many",
    "pending",
    "queue",
    "queue_for",
    "requeue_stale",
]

# --- one queue per store directory, per process ----------------------------------------------

_QUEUES: dict[Path, InboxQueue] = {}
_QUEUES_LOCK = threading.Lock()


def _queue_at(directory: Path, legacy_store: Callable[[], FeatureStore | None]) -> InboxQueue:
    key = Path(directory).resolve()
    with _QUEUES_LOCK:
        queue = _QUEUES.get(key)
        if queue is None:
            queue = _QUEUES[key] = InboxQueue(key, legacy_store)
        return queue


def _store_dir(store: FeatureStore) -> Path:
    root = getattr(store, "root", None)  # the embedded store's directory
    if root is not None:
        return Path(root)
    from soundmates.config import get_settings  # a remote store (Hopsworks): the queue stays in the data dir

    return get_settings().store_dir


def queue(store: FeatureStore) -> InboxQueue:
    """The inbox that belongs with ``store`` (imports an old feature-group inbox on first open)."""
    found = _queue_at(_store_dir(store), lambda: store)
    if not found._ready:
        found._legacy_store = lambda: store  # the caller's live handle, should the import be retried
    return found


def queue_for(settings: Any) -> InboxQueue:
    """The inbox of a data dir without opening the feature store (the triggerer's cheap poll)."""

    def legacy() -> FeatureStore | None:
        from soundmates.store import get_store

        return get_store(settings)

    return _queue_at(settings.store_dir, legacy)


# --- the public functions every caller uses (a store in, entries out) ------------------------


def get(store: FeatureStore, user_id: str) -> InboxEntry | None:
    """The user's request, or None when they never asked."""
    return queue(store).get(user_id)


def add_request(store: FeatureStore, user_id: str, ref: str, source: str = "dashboard") -> InboxEntry:
    """Queue a user for the pipeline; idempotent.

    A pending, processing or done request is returned unchanged (no duplicate,
    no second run); a failed one is queued again with its reason cleared.
    """
    return queue(store).add(user_id, ref, source)


def pending(store: FeatureStore, limit: int | None = None) -> list[InboxEntry]:
    """Pending requests, oldest first."""
    return queue(store).by_status(PENDING, limit)


def claim(store: FeatureStore, limit: int | None = None) -> list[InboxEntry]:
    """Move up to ``limit`` pending requests (oldest first) to ``processing`` and return them.

    Atomic across processes: two Airflow tasks never get the same user.
    """
    return queue(store).claim(limit)


def mark(store: FeatureStore, user_id: str, status: str, reason: str | None = None) -> InboxEntry:
    """Set a request's status (``pending|processing|done|failed``), with an optional reason."""
    return mark_many(store, [user_id], status, reason)[0]


def mark_many(store: FeatureStore, user_ids: list[str], status: str, reason: str | None = None) -> list[InboxEntry]:
    """``mark`` for several users in one transaction (a pipeline run finishing a batch)."""
    if isinstance(user_ids, str):
        raise TypeError("mark_many() takes a list of user ids, not one string")
    return queue(store).mark(user_ids, status, reason)


def requeue_stale(store: FeatureStore, older_than: timedelta) -> list[str]:
    """Put requests ``processing`` for longer than ``older_than`` back to ``pending``; their ids."""
    return queue(store).requeue_stale(older_than)


def delete(store: FeatureStore, user_ids: list[str]) -> int:
    """Remove these users' requests (a person removed from Soundmates); how many were removed."""
    return queue(store).delete(user_ids)


def counts(store: FeatureStore) -> dict[str, int]:
    """Number of requests per status (every status present, 0 when none)."""
    return queue(store).counts()


def latest(store: FeatureStore, status: str | None = None, limit: int | None = None) -> list[InboxEntry]:
    """Requests (all, or with ``status``), most recently updated first."""
    return queue(store).latest(status, limit)
