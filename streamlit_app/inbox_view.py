"""Read-only view of the new-users inbox for the pipeline page: which requests wait, which failed and why.

``Recommender.pipeline_status()`` gives only the counts; until the recommend API offers a
listing, this thin adapter lists the queue (``soundmates.store.inbox.latest``) for the
Recommender's own store handle. It never writes.
"""

from __future__ import annotations

from typing import Any

from soundmates.recommend.models import InboxEntry


def inbox_requests(rec: Any, status: str, limit: int = 20) -> list[InboxEntry]:
    """Up to ``limit`` requests with ``status``, newest update first; [] when the inbox cannot be read."""
    from soundmates.store import StoreError, inbox

    store = getattr(rec, "store", None)
    if store is None:
        return []
    try:
        found = inbox.latest(store, status=status, limit=limit)
    except StoreError:  # the queue busy or unreadable: the page shows an empty list, the counts still show
        return []
    return [InboxEntry(**e.to_dict()) for e in found]
