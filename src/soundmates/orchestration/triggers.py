"""The trigger that waits in Airflow's triggerer for new-user requests.

``InboxPendingTrigger`` polls the new-users inbox (a small SQLite queue: one
indexed ``count``, under a millisecond) and fires once at least ``min_pending``
requests are pending. It subclasses
``BaseEventTrigger`` so the same class serves both ways Airflow 3 can wait on
an external event: deferred from :class:`soundmates.orchestration.sensors.NewUsersSensor`
(what ``soundmates_new_users`` uses), or inside an ``AssetWatcher``.

The read is still blocking file I/O (and may wait up to the queue's busy
timeout behind a writer), so it runs in a worker thread: the triggerer's event
loop serves every deferred task at once and must never block.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)

TRIGGER_CLASSPATH = "soundmates.orchestration.triggers.InboxPendingTrigger"


def count_pending(data_dir: str | None = None) -> int:
    """Number of pending requests in the new-users inbox (0 when the inbox does not exist yet)."""
    from soundmates.config import Settings, get_settings
    from soundmates.store import inbox

    settings = Settings(data_dir=Path(data_dir)) if data_dir else get_settings()
    # The queue itself, not the feature store: no Delta table or Hopsworks login per poll.
    return int(inbox.queue_for(settings).counts()[inbox.PENDING])


class InboxPendingTrigger(BaseEventTrigger):
    """Fire when the new-users inbox holds at least ``min_pending`` pending requests.

    ``data_dir`` is fixed when the task defers, so the triggerer reads the very
    store the task will process even if its own environment differs.
    """

    def __init__(self, *, min_pending: int = 1, poll_interval_s: float = 10.0, data_dir: str | None = None):
        super().__init__()
        if int(min_pending) < 1:
            raise ValueError(f"min_pending must be >= 1, got {min_pending!r}")
        if float(poll_interval_s) <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s!r}")
        self.min_pending = int(min_pending)
        self.poll_interval_s = float(poll_interval_s)
        self.data_dir = str(data_dir) if data_dir else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            TRIGGER_CLASSPATH,
            {"min_pending": self.min_pending, "poll_interval_s": self.poll_interval_s, "data_dir": self.data_dir},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                pending = await asyncio.to_thread(count_pending, self.data_dir)
            except Exception as exc:  # noqa: BLE001 - a store being written or briefly unreadable: try again next poll
                log.warning("new-users inbox not readable yet (%s: %s); polling again", type(exc).__name__, exc)
                pending = 0
            if pending >= self.min_pending:
                yield TriggerEvent({"status": "pending", "pending": pending, "data_dir": self.data_dir})
                return
            await asyncio.sleep(self.poll_interval_s)
