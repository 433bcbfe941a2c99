"""``NewUsersSensor``: wait for new-user requests without holding a worker slot.

Deferrable by default: the first check runs on the worker (so a request that is
already waiting costs no trip through the triggerer), then the wait moves to the
triggerer via :class:`~soundmates.orchestration.triggers.InboxPendingTrigger`.
Reschedule mode with a short ``poke_interval`` is avoided on purpose: Airflow
3.1 can mark such runs failed (apache/airflow#71172, see shared/airflow/NOTES.md).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from soundmates.orchestration.triggers import InboxPendingTrigger, count_pending


class NewUsersSensor(BaseSensorOperator):
    """Succeeds (returning ``{"pending": n}``) once ``min_pending`` requests wait in the inbox."""

    template_fields = ("min_pending",)

    def __init__(
        self,
        *,
        min_pending: int | str = 1,
        trigger_poll_interval_s: float = 10.0,
        data_dir: str | None = None,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 30)  # only used when deferrable=False
        super().__init__(**kwargs)
        self.min_pending = min_pending
        self.trigger_poll_interval_s = trigger_poll_interval_s
        self.data_dir = data_dir
        self.deferrable = deferrable

    def _min_pending(self) -> int:
        try:
            value = int(self.min_pending)
        except (TypeError, ValueError):
            raise ValueError(f"min_pending must be a positive integer, got {self.min_pending!r}") from None
        if value < 1:
            raise ValueError(f"min_pending must be a positive integer, got {value}")
        return value

    def _data_dir(self) -> str:
        if self.data_dir:
            return str(self.data_dir)
        from soundmates.config import get_settings

        return str(get_settings().data_dir)

    def poke(self, context) -> bool:
        return count_pending(self._data_dir()) >= self._min_pending()

    def execute(self, context) -> Any:
        minimum = self._min_pending()
        pending = count_pending(self._data_dir())
        if pending >= minimum:
            self.log.info("%d request(s) pending in the new-users inbox", pending)
            return {"pending": pending}
        if not self.deferrable:
            super().execute(context)
            return {"pending": count_pending(self._data_dir())}
        self.log.info("no pending requests (need %d); deferring to the triggerer", minimum)
        self.defer(
            trigger=InboxPendingTrigger(
                min_pending=minimum, poll_interval_s=self.trigger_poll_interval_s, data_dir=self._data_dir()
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        event = event or {}
        self.log.info("the triggerer saw %s pending request(s)", event.get("pending"))
        return {"pending": int(event.get("pending", 0))}
