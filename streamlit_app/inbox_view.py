"""Read-only view of the new-users inbox for the pipeline page: which requests wait, which failed and why.

``Recommender.pipeline_status()`` gives only the counts; until the recommend API offers a
listing, this thin adapter reads the ``new_users_inbox`` group (columns fixed by
docs/ARCHITECTURE.md) through the Recommender's own store handle. It never writes.
"""

from __future__ import annotations

from typing import Any

from soundmates.recommend.models import InboxEntry

INBOX_GROUP = "new_users_inbox"


def inbox_requests(rec: Any, status: str, limit: int = 20) -> list[InboxEntry]:
    """Up to ``limit`` requests with ``status``, newest update first; [] when the inbox does not exist yet."""
    import math

    store = getattr(rec, "store", None)
    if store is None:
        return []
    try:
        frame = store.read(INBOX_GROUP)
    except Exception:  # noqa: BLE001 - no inbox yet (nothing ever queued) reads as an empty list
        return []
    if frame is None or len(frame) == 0 or "status" not in frame.columns:
        return []
    frame = frame[frame["status"] == status]
    if "updated_at" in frame.columns:
        frame = frame.sort_values("updated_at", ascending=False, kind="stable")
    entries = []
    for row in frame.head(limit).to_dict("records"):
        clean = {
            k: (None if isinstance(v, float) and math.isnan(v) else str(v) if k.endswith("_at") and v is not None else v)
            for k, v in row.items()
            if k in InboxEntry.model_fields
        }
        entries.append(InboxEntry(**clean))
    return entries
