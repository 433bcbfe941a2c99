"""The default task arguments every Soundmates DAG starts from (one definition; a DAG states only what differs).

Imports nothing but the standard library: DAG files import it at parse time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

OWNER = "soundmates"


def default_args(
    *,
    retries: int = 2,
    retry_delay: timedelta = timedelta(seconds=10),
    max_retry_delay: timedelta = timedelta(minutes=5),
) -> dict[str, Any]:
    """``default_args`` for a DAG: owner, bounded retries with exponential backoff up to ``max_retry_delay``.

    A fresh dict each call, so one DAG changing its copy never changes another's.
    """
    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": True,
        "max_retry_delay": max_retry_delay,
    }
