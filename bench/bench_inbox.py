"""New-users inbox: ms per ``add_request`` and per pending poll on a 1,000-request queue.

Runs against whichever ``soundmates.store.inbox`` is on the path, so the same
script measures the SQLite queue (this tree) and the old feature-group inbox
(``PYTHONPATH=<old tree>/src python -m bench.bench_inbox``). A poll is what the
triggerer and the sensor do: ``counts`` (and the dashboard's ``pending(limit=20)``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

QUEUE_ROWS = 1000
MEASURED = 50


def _fill(store, inbox, n: int) -> str:
    if hasattr(inbox, "queue"):  # the SQLite queue: fill through its own API
        for i in range(n):
            inbox.add_request(store, f"old{i:04d}", f"spotify:user:old{i:04d}", source="bench")
        return "sqlite"
    # The feature-group inbox: one upsert, or filling alone would take minutes.
    now = pd.Timestamp.now(tz="UTC")
    ids = [f"old{i:04d}" for i in range(n)]
    store.upsert(
        inbox.INBOX_GROUP,
        pd.DataFrame(
            {
                "user_id": ids,
                "ref": [f"spotify:user:{u}" for u in ids],
                "status": "pending",
                "reason": None,
                "source": "bench",
                "requested_at": now,
                "updated_at": now,
            }
        ),
    )
    return "feature group"


class FeatureGroupBaseline:
    """The old inbox's two hot calls, as it made them: a Delta feature group under the store's file lock."""

    def __init__(self, store, group: str):
        self.store, self.group = store, group

    def add_request(self, user_id: str, ref: str, source: str) -> None:
        with self.store.exclusive(self.group):
            if len(self.store.read(self.group, keys=[user_id])):
                return
            now = pd.Timestamp.now(tz="UTC")
            self.store.upsert(
                self.group,
                pd.DataFrame(
                    {
                        "user_id": [user_id],
                        "ref": ref,
                        "status": "pending",
                        "reason": None,
                        "source": source,
                        "requested_at": now,
                        "updated_at": now,
                    }
                ),
            )

    def count_pending(self) -> int:
        frame = self.store.read(self.group)
        return int((frame["status"] == "pending").sum())


def _ms(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _summary(samples: list[float]) -> dict:
    q = statistics.quantiles(samples, n=20)
    return {"median_ms": round(statistics.median(samples), 2), "p95_ms": round(q[-1], 2), "n": len(samples)}


def measure() -> dict:
    from soundmates.store import inbox
    from soundmates.store.delta import DeltaFeatureStore

    with tempfile.TemporaryDirectory() as tmp:
        store = DeltaFeatureStore(Path(tmp) / "store")
        kind = _fill(store, inbox, QUEUE_ROWS)
        assert inbox.counts(store)["pending"] == QUEUE_ROWS
        add = _ms(lambda i: inbox.add_request(store, f"new{i}", f"spotify:user:new{i}", source="bench"), MEASURED)
        readd = _ms(lambda i: inbox.add_request(store, f"new{i}", f"spotify:user:new{i}", source="bench"), MEASURED)
        poll = _ms(lambda i: inbox.counts(store)["pending"], MEASURED)
        page = _ms(lambda i: inbox.pending(store, limit=20), MEASURED)
        claim = _ms(lambda i: inbox.claim(store, limit=10), 10)
    return {
        "inbox": kind,
        "queue_rows": QUEUE_ROWS,
        "add_request": _summary(add),
        "re_add": _summary(readd),
        "poll_counts": _summary(poll),
        "pending_20": _summary(page),
        "claim_10": _summary(claim),
    }


def measure_baseline() -> dict:
    """Side by side in the same run: the same two calls on a 1,000-row feature group (the old design)."""
    from soundmates.store import INBOX_GROUP
    from soundmates.store.delta import DeltaFeatureStore

    with tempfile.TemporaryDirectory() as tmp:
        store = DeltaFeatureStore(Path(tmp) / "store")
        _fill(store, type("OldInbox", (), {"INBOX_GROUP": INBOX_GROUP}), QUEUE_ROWS)
        old = FeatureGroupBaseline(store, INBOX_GROUP)
        add = _ms(lambda i: old.add_request(f"new{i}", f"spotify:user:new{i}", "bench"), MEASURED)
        poll = _ms(lambda i: old.count_pending(), MEASURED)
    return {"add_request": _summary(add), "poll_counts": _summary(poll)}


def run(out_dir: Path) -> dict:
    figures = measure()
    baseline = measure_baseline()
    rows = [
        f"| {k} | {v['median_ms']} | {v['p95_ms']} | "
        + (f"{baseline[k]['median_ms']} | {baseline[k]['p95_ms']} |" if k in baseline else "- | - |")
        for k, v in figures.items()
        if isinstance(v, dict)
    ]
    markdown = (
        f"{QUEUE_ROWS} pending requests already queued, {MEASURED} calls each (claim: 10 calls of 10), one process, "
        "the shared 2-core machine; the feature-group columns replay the old inbox's calls on a Delta group in the "
        "same run.\n\n| call | SQLite median ms | SQLite p95 ms | feature group median ms | feature group p95 ms |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows)
    )
    return {"title": "New-users inbox", "markdown": markdown, **figures, "feature_group_baseline": baseline}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = measure()
    print(json.dumps(result, indent=1) if args.json else result)
