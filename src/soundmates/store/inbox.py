"""New-users inbox: profiles a user asked to add, waiting for the pipeline.

The dashboard (through ``Recommender.add``) queues a request; the Airflow
``process_inbox`` task claims pending requests, ingests and embeds them, and
marks each one ``done`` or ``failed`` with a reason. It lives in the
``new_users_inbox`` feature group, so it works on either backend.

Status flow::

    add_request -> pending -> (claim) processing -> done
                                                 -> failed -> (add_request again) pending

Every read-modify-write runs under ``store.exclusive`` so the dashboard and an
Airflow task never interleave on one entry (embedded backend: a file lock).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pandas as pd

from soundmates.store.base import INBOX_GROUP, FeatureStore, StoreError

PENDING, PROCESSING, DONE, FAILED = "pending", "processing", "done", "failed"
STATUSES = (PENDING, PROCESSING, DONE, FAILED)
# Re-adding one of these is a no-op (the request is queued, running, or already served).
_KEEP_ON_READD = {PENDING, PROCESSING, DONE}


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


def _now() -> datetime:
    # Microseconds, like the stored column, so an entry compares equal to its re-read.
    return datetime.now(UTC)


def _clean(value, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"inbox {name} must be a non-empty string, got {value!r}")
    return value.strip()


def _to_frame(entries: Iterable[InboxEntry]) -> pd.DataFrame:
    rows = [asdict(e) for e in entries]
    frame = pd.DataFrame(rows, columns=["user_id", "ref", "status", "reason", "source", "requested_at", "updated_at"])
    for col in ("requested_at", "updated_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def _from_row(row: dict) -> InboxEntry:
    def when(value) -> datetime:
        return pd.Timestamp(value).tz_convert("UTC").to_pydatetime() if value is not None and not pd.isna(value) else None

    reason = row.get("reason")
    return InboxEntry(
        user_id=str(row["user_id"]),
        ref=str(row["ref"]) if row.get("ref") is not None else "",
        status=str(row["status"]),
        reason=None if reason is None or (isinstance(reason, float) and pd.isna(reason)) else str(reason),
        source=str(row["source"]) if row.get("source") is not None else "",
        requested_at=when(row.get("requested_at")),
        updated_at=when(row.get("updated_at")),
    )


def _entries(frame: pd.DataFrame) -> list[InboxEntry]:
    return [_from_row(r) for r in frame.to_dict("records")]


def get(store: FeatureStore, user_id: str) -> InboxEntry | None:
    """The user's request, or None when they never asked."""
    found = _entries(store.read(INBOX_GROUP, keys=[_clean(user_id, "user_id")]))
    return found[0] if found else None


def add_request(store: FeatureStore, user_id: str, ref: str, source: str = "dashboard") -> InboxEntry:
    """Queue a user for the pipeline; idempotent.

    A pending, processing or done request is returned unchanged (no duplicate,
    no second run); a failed one is queued again with its reason cleared.
    """
    user_id, ref, source = _clean(user_id, "user_id"), _clean(ref, "ref"), _clean(source, "source")
    with store.exclusive(INBOX_GROUP):
        existing = get(store, user_id)
        if existing is not None and existing.status in _KEEP_ON_READD:
            return existing
        now = _now()
        entry = InboxEntry(user_id, ref, PENDING, None, source, requested_at=now, updated_at=now)
        store.upsert(INBOX_GROUP, _to_frame([entry]))
        return entry


def pending(store: FeatureStore, limit: int | None = None) -> list[InboxEntry]:
    """Pending requests, oldest first."""
    return _by_status(store, PENDING, limit)


def _by_status(store: FeatureStore, status: str, limit: int | None) -> list[InboxEntry]:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    frame = store.read(INBOX_GROUP)
    frame = frame[frame["status"] == status].sort_values(["requested_at", "user_id"], kind="stable")
    if limit is not None:
        frame = frame.head(limit)
    return _entries(frame)


def claim(store: FeatureStore, limit: int | None = None) -> list[InboxEntry]:
    """Move up to ``limit`` pending requests to ``processing`` and return them.

    Atomic with respect to other claimers: two Airflow tasks never get the same user.
    """
    with store.exclusive(INBOX_GROUP):
        todo = pending(store, limit)
        if not todo:
            return []
        now = _now()
        claimed = [InboxEntry(e.user_id, e.ref, PROCESSING, None, e.source, e.requested_at, now) for e in todo]
        store.upsert(INBOX_GROUP, _to_frame(claimed))
        return claimed


def mark(store: FeatureStore, user_id: str, status: str, reason: str | None = None) -> InboxEntry:
    """Set a request's status (``pending|processing|done|failed``), with an optional reason."""
    return mark_many(store, [user_id], status, reason)[0]


def mark_many(store: FeatureStore, user_ids: list[str], status: str, reason: str | None = None) -> list[InboxEntry]:
    """``mark`` for several users in one commit (a pipeline run finishing a batch)."""
    if status not in STATUSES:
        raise ValueError(f"inbox status must be one of {', '.join(STATUSES)}; got {status!r}")
    if isinstance(user_ids, str):
        raise TypeError("mark_many() takes a list of user ids, not one string")
    ids = [_clean(u, "user_id") for u in user_ids]
    if not ids:
        return []
    with store.exclusive(INBOX_GROUP):
        found = {e.user_id: e for e in _entries(store.read(INBOX_GROUP, keys=ids))}
        unknown = [u for u in ids if u not in found]
        if unknown:
            raise InboxEntryNotFound(f"no inbox request for user(s) {unknown}: add_request first")
        now = _now()
        updated = [
            InboxEntry(u, found[u].ref, status, reason, found[u].source, found[u].requested_at, now)
            for u in dict.fromkeys(ids)
        ]
        store.upsert(INBOX_GROUP, _to_frame(updated))
        return updated


def counts(store: FeatureStore) -> dict[str, int]:
    """Number of requests per status (every status present, 0 when none)."""
    frame = store.read(INBOX_GROUP)
    tally = frame["status"].value_counts().to_dict() if len(frame) else {}
    return {s: int(tally.get(s, 0)) for s in STATUSES}
