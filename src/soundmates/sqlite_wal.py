"""Open a SQLite file in WAL mode when several threads or processes may open it at the same moment.

Switching a file to WAL needs a moment's exclusive lock, and SQLite answers ``database is locked``
at once, without calling the busy handler, when another connection is opening or switching the
same file just then (seen in CI: 4 threads opening a fresh feedback file, about 1 run in 100). So
the switch is retried, with a short growing pause, until the caller's bound; every other statement
waits through ``busy_timeout`` as usual. Once a file is in WAL mode it stays so, and later opens
only read the mode.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

_FIRST_PAUSE_S = 0.005
_LONGEST_PAUSE_S = 0.2


def connect_wal(path: Path | str, timeout_s: float, **connect_kwargs: Any) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode with ``busy_timeout`` = ``timeout_s``.

    Raises ``sqlite3.OperationalError`` when the file cannot be opened, or is still locked after
    ``timeout_s``; the connection is closed then.
    """
    conn = sqlite3.connect(path, timeout=timeout_s, **connect_kwargs)  # timeout= is SQLite's busy_timeout
    try:
        _switch_to_wal(conn, time.monotonic() + timeout_s)
    except BaseException:
        conn.close()
        raise
    return conn


def _switch_to_wal(conn: sqlite3.Connection, deadline: float) -> None:
    pause = _FIRST_PAUSE_S
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")  # an in-memory file keeps "memory": that is fine
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            if time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE_S)
