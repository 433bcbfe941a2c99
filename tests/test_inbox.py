"""The new-users inbox queue: its contract, concurrency across processes, and the import of an old feature group."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from soundmates.store import StoreUnavailable, inbox, inbox_queue
from soundmates.store.delta import DeltaFeatureStore


def wait_for_go(signals: str, name: str) -> None:
    (Path(signals) / f"ready-{name}").touch()
    deadline = time.monotonic() + 120
    while not (Path(signals) / "go").exists():
        assert time.monotonic() < deadline, "no go signal"
        time.sleep(0.01)


def claimer(root: str, signals: str, name: str) -> list[str]:
    store = DeltaFeatureStore(root)
    inbox.counts(store)  # warm imports before the start line
    wait_for_go(signals, name)
    got = []
    while batch := inbox.claim(store, limit=3):
        got += [e.user_id for e in batch]
    return got


def adder(root: str, signals: str, name: str) -> list[str]:
    store = DeltaFeatureStore(root)
    inbox.counts(store)
    wait_for_go(signals, name)
    return [inbox.add_request(store, f"user{i}", f"ref{i}", source=name).source for i in range(10)]


def many_adder(root: str, signals: str, name: str) -> list[str]:
    store = DeltaFeatureStore(root)
    inbox.counts(store)
    wait_for_go(signals, name)
    for i in range(200):
        inbox.add_request(store, f"{name}-{i:03d}", f"ref-{name}-{i}", source=name)
        if i % 2:
            inbox.add_request(store, f"shared-{i:03d}", f"ref-shared-{i}", source=name)  # both add these
    return [e.user_id for e in inbox.latest(store)]


def run_two(fn, root: Path, tmp_path: Path) -> list:
    signals = tmp_path / "signals"
    signals.mkdir()
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        futures = [pool.submit(fn, str(root), str(signals), name) for name in ("p1", "p2")]
        deadline = time.monotonic() + 120
        while not all((signals / f"ready-{n}").exists() for n in ("p1", "p2")):
            assert time.monotonic() < deadline and not any(f.done() for f in futures), "workers did not start"
            time.sleep(0.01)
        (signals / "go").touch()
        return [f.result() for f in futures]


def test_two_processes_claiming_at_once_never_get_the_same_user(tmp_path):
    root = tmp_path / "store"
    store = DeltaFeatureStore(root)
    for i in range(20):
        inbox.add_request(store, f"user{i:02d}", f"ref{i}")
    first, second = run_two(claimer, root, tmp_path)
    assert not set(first) & set(second), "a request was claimed twice"
    assert sorted(first + second) == [f"user{i:02d}" for i in range(20)]
    assert inbox.counts(store)["processing"] == 20


def test_two_processes_adding_the_same_users_at_once_store_each_once(tmp_path):
    root = tmp_path / "store"
    first, second = run_two(adder, root, tmp_path)
    store = DeltaFeatureStore(root)
    entries = inbox.latest(store)
    assert sorted(e.user_id for e in entries) == sorted(f"user{i}" for i in range(10))
    # Whoever came first owns each request; the other got that same entry back.
    stored = {e.user_id: e.source for e in entries}
    for i in range(10):
        assert first[i] == second[i] == stored[f"user{i}"]


def test_two_processes_adding_200_requests_each_lose_and_duplicate_nothing(tmp_path):
    root = tmp_path / "store"
    run_two(many_adder, root, tmp_path)
    store = DeltaFeatureStore(root)
    entries = inbox.latest(store)
    ids = [e.user_id for e in entries]
    expected = {f"{p}-{i:03d}" for p in ("p1", "p2") for i in range(200)} | {f"shared-{i:03d}" for i in range(1, 200, 2)}
    assert len(ids) == len(set(ids)) == 500 and set(ids) == expected
    assert inbox.counts(store) == {"pending": 500, "processing": 0, "done": 0, "failed": 0}
    claimed = inbox.claim(store)
    assert len(claimed) == 500 and inbox.claim(store) == []


def test_queue_contract_add_readd_mark_get_and_pending_order(tmp_path):
    store = DeltaFeatureStore(tmp_path / "store")
    assert inbox.get(store, "nobody") is None and inbox.pending(store) == [] and inbox.claim(store) == []
    for user in ("c", "a", "b"):  # requested in this order
        inbox.add_request(store, user, f"spotify:user:{user}", source="cli")
    assert [e.user_id for e in inbox.pending(store)] == ["c", "a", "b"], "oldest request first"
    assert [e.user_id for e in inbox.pending(store, limit=2)] == ["c", "a"]
    again = inbox.add_request(store, "a", "something else", source="dashboard")
    assert again == inbox.get(store, "a") and (again.ref, again.source) == ("spotify:user:a", "cli")

    (first,) = inbox.claim(store, limit=1)
    assert (first.user_id, first.status) == ("c", "processing") and inbox.get(store, "c") == first
    done = inbox.mark(store, "c", "done")
    assert inbox.get(store, "c") == done and done.updated_at >= first.updated_at
    assert inbox.add_request(store, "c", "x").status == "done", "a served request is not run twice"
    failed = inbox.mark(store, "a", "failed", reason="profile is private")
    assert inbox.get(store, "a").reason == "profile is private"
    requeued = inbox.add_request(store, "a", "spotify:user:a", source="dashboard")
    assert (requeued.status, requeued.reason) == ("pending", None) and requeued.requested_at >= failed.requested_at
    assert [e.user_id for e in inbox.pending(store)] == ["b", "a"], "a re-queued request waits behind older ones"
    assert inbox.counts(store) == {"pending": 2, "processing": 0, "done": 1, "failed": 0}
    assert [e.user_id for e in inbox.latest(store, status="pending", limit=1)] == ["a"], "newest update first"


def test_bad_input_is_refused_and_changes_nothing(tmp_path):
    store = DeltaFeatureStore(tmp_path / "store")
    inbox.add_request(store, "a", "ref-a")
    before = inbox.latest(store)
    with pytest.raises(ValueError, match="user_id must be a non-empty string"):
        inbox.add_request(store, "  ", "ref")
    with pytest.raises(ValueError, match="status must be one of pending, processing, done, failed"):
        inbox.mark(store, "a", "finished")
    with pytest.raises(inbox.InboxEntryNotFound, match=r"no inbox request for user\(s\) \['ghost'\]"):
        inbox.mark_many(store, ["a", "ghost"], "done")
    with pytest.raises(TypeError, match="list of user ids"):
        inbox.mark_many(store, "a", "done")
    with pytest.raises(ValueError, match="limit must be >= 0"):
        inbox.claim(store, limit=-1)
    assert inbox.latest(store) == before, "a refused mark_many marks none of the batch"


def test_delete_and_requeue_stale(tmp_path):
    store = DeltaFeatureStore(tmp_path / "store")
    for user in ("a", "b", "c"):
        inbox.add_request(store, user, f"ref-{user}")
    inbox.claim(store, limit=2)
    assert inbox.requeue_stale(store, timedelta(hours=1)) == [], "a fresh claim may belong to a live run"
    time.sleep(0.01)
    assert inbox.requeue_stale(store, timedelta(milliseconds=5)) == ["a", "b"]
    assert inbox.delete(store, ["b", "nobody"]) == 1 and inbox.get(store, "b") is None
    assert inbox.delete(store, ["b"]) == 0
    assert sorted(e.user_id for e in inbox.pending(store)) == ["a", "c"]


def test_a_writer_holding_the_queue_makes_others_wait_a_bounded_time(tmp_path, monkeypatch):
    monkeypatch.setattr(inbox_queue, "BUSY_TIMEOUT_S", 0.3)
    store = DeltaFeatureStore(tmp_path / "store")
    inbox.add_request(store, "a", "ref-a")
    holder = sqlite3.connect(inbox.queue(store).path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process mid-transaction
    try:
        assert inbox.counts(store)["pending"] == 1, "readers are not blocked by a writer (WAL)"
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable, match="busy or unreadable.*try again"):
            inbox.add_request(store, "b", "ref-b")
        assert time.monotonic() - t0 < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [e.user_id for e in inbox.latest(store)] == ["a"]
    assert inbox.add_request(store, "b", "ref-b").status == "pending"


def legacy_rows(*rows: tuple[str, str]) -> pd.DataFrame:
    start = pd.Timestamp("2026-11-30T10:00:00Z")
    return pd.DataFrame(
        {
            "user_id": [u for u, _ in rows],
            "ref": [f"spotify:user:{u}" for u, _ in rows],
            "status": [s for _, s in rows],
            "reason": [("private" if s == "failed" else None) for _, s in rows],
            "source": "dashboard",
            "requested_at": [start + pd.Timedelta(minutes=i) for i in range(len(rows))],
            "updated_at": [start + pd.Timedelta(minutes=i + 1) for i in range(len(rows))],
        }
    )


def test_an_old_feature_group_inbox_is_imported_once_and_left_alone(tmp_path):
    root = tmp_path / "store"
    old = DeltaFeatureStore(root)
    old.upsert(inbox.INBOX_GROUP, legacy_rows(("ann", "pending"), ("bob", "failed"), ("cat", "done"), ("dan", "pending")))

    store = DeltaFeatureStore(root)  # a later version opens the existing data dir
    assert [e.user_id for e in inbox.pending(store)] == ["ann", "dan"]
    bob = inbox.get(store, "bob")
    assert (bob.status, bob.reason, bob.ref) == ("failed", "private", "spotify:user:bob")
    assert bob.requested_at == pd.Timestamp("2026-11-30T10:01:00Z").to_pydatetime()
    assert inbox.counts(store) == {"pending": 2, "processing": 0, "done": 1, "failed": 1}
    assert len(old.read(inbox.INBOX_GROUP)) == 4, "the old group itself is left alone"

    inbox.mark(store, "ann", "done")
    old.upsert(inbox.INBOX_GROUP, legacy_rows(("eve", "pending")))  # written after the import: not imported
    fresh = DeltaFeatureStore(root)
    inbox._QUEUES.clear()  # as a new process would: open the file afresh
    assert inbox.get(fresh, "ann").status == "done", "the import ran once; it never overwrites the queue"
    assert inbox.get(fresh, "eve") is None


def test_the_trigger_counts_pending_from_the_data_dir(tmp_path):
    from soundmates.config import Settings
    from soundmates.orchestration.triggers import count_pending
    from soundmates.store import get_store

    data_dir = tmp_path / "data"
    assert count_pending(str(data_dir)) == 0
    store = get_store(Settings(data_dir=data_dir))
    for user in ("a", "b", "c"):
        inbox.add_request(store, user, f"ref-{user}")
    inbox.claim(store, limit=1)
    assert count_pending(str(data_dir)) == 2
