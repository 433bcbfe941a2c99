"""The inbox under concurrency: the dashboard and Airflow tasks in separate processes."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from pathlib import Path

from soundmates.store import inbox
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
    frame = store.read(inbox.INBOX_GROUP)
    assert sorted(frame["user_id"]) == sorted(f"user{i}" for i in range(10))
    # Whoever came first owns each request; the other got that same entry back.
    stored = dict(zip(frame["user_id"], frame["source"], strict=True))
    for i in range(10):
        assert first[i] == second[i] == stored[f"user{i}"]
