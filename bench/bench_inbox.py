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
    store.upsert(inbox.INBOX_GROUP, pd.DataFrame({
        "user_id": ids, "ref": [f"spotify:user:{u}" for u in ids], "status": "pending", "reason": None,
        "source": "bench", "requested_at": now, "updated_at": now,
    }))
    return "feature group"


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
    return {"inbox": kind, "queue_rows": QUEUE_ROWS, "add_request": _summary(add), "re_add": _summary(readd),
            "poll_counts": _summary(poll), "pending_20": _summary(page), "claim_10": _summary(claim)}


def run(out_dir: Path) -> dict:
    figures = measure()
    rows = [f"| {k} | {v['median_ms']} | {v['p95_ms']} |" for k, v in figures.items() if isinstance(v, dict)]
    markdown = (
        f"Inbox ({figures['inbox']}), {QUEUE_ROWS} pending requests already queued, {MEASURED} calls each "
        "(claim: 10 calls of 10), one process, the shared 2-core machine.\n\n| call | median ms | p95 ms |\n|---|---|---|\n"
        + "\n".join(rows)
    )
    return {"title": "New-users inbox", "markdown": markdown, **figures}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = measure()
    print(json.dumps(result, indent=1) if args.json else result)
