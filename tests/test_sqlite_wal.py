"""connect_wal: many connections opening one fresh SQLite file at the same moment all get WAL mode."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from soundmates.sqlite_wal import connect_wal

THREADS = 8
TRIALS = 40  # the plain "connect, PRAGMA journal_mode=WAL" failed in ~8% of such trials on this machine


def _open_together(path, threads: int = THREADS) -> list[BaseException]:
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def open_and_write() -> None:
        try:
            start.wait()
            conn = connect_wal(path, 10, isolation_level=None)
            conn.execute("CREATE TABLE IF NOT EXISTS t (a)")
            conn.execute("INSERT INTO t VALUES (1)")
            conn.close()
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    workers = [threading.Thread(target=open_and_write) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    return errors


def test_simultaneous_opens_of_a_fresh_file_all_succeed(tmp_path):
    for trial in range(TRIALS):
        path = tmp_path / f"f{trial}.sqlite3"
        assert _open_together(path) == []
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert check.execute("SELECT count(*) FROM t").fetchone()[0] == THREADS


def test_sets_the_busy_timeout(tmp_path):
    conn = connect_wal(tmp_path / "f.sqlite3", 2.5)
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2500
    conn.close()


def test_an_in_memory_file_keeps_memory_mode():
    conn = connect_wal(":memory:", 1)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "memory"
    conn.close()


def test_a_file_held_locked_past_the_bound_raises_within_it(tmp_path):
    path = tmp_path / "f.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (a)")
    holder.execute("BEGIN EXCLUSIVE")  # still in rollback-journal mode: nobody may switch it to WAL now
    began = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        connect_wal(path, 0.3)
    assert time.monotonic() - began < 5
    holder.execute("ROLLBACK")
    conn = connect_wal(path, 1)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    holder.close()
