"""Many users through one ingestor: worker threads, results in the order of the refs, a stop after a dead API."""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from .ingest_summary import DeferredRef, IngestSummary, RunCounters, Tally
from .refs import InvalidProfileRef, parse_profile_ref

#: Users in flight per worker (queued or being fetched): enough that no worker waits for work.
IN_FLIGHT_PER_WORKER = 2
#: Users whose outcome waits to be recorded, per worker: finished users queue up behind a slow one
#: (a 6,000-track playlist) instead of idling the pool; results are still recorded in order.
WINDOW_PER_WORKER = 64

#: (the reference as given, user id or "", a worker's Future or the outcome already known, first listing of the user)
WindowEntry = tuple[str, str, "Future | tuple[str, Any]", bool]


class BatchRun:
    """One ``ingest_many`` run of ``ingestor`` (see :meth:`Ingestor.ingest_many` for the contract)."""

    def __init__(self, ingestor: Any, *, refresh: bool, progress: bool):
        self.ing = ingestor
        self.refresh = refresh
        self.progress = progress
        self.workers = max(1, int(getattr(ingestor.settings, "ingest_workers", 1)))
        self.window: deque[WindowEntry] = deque()

    def run(self, refs: Iterable[str]) -> IngestSummary:
        from tqdm import tqdm

        refs = list(refs)
        before = RunCounters.of(self.ing)
        self._calls0 = sum(before.calls.values())
        bar = tqdm(total=len(refs), desc="ingest", unit="user", file=sys.stderr, disable=not self.progress, dynamic_ncols=True)
        self.tally = Tally(bar, lambda: self.ing.client.api_calls - self._calls0)
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ingest") if self.workers > 1 else None
        try:
            for ref in refs:
                if self._schedule(ref):
                    self._throttle()
            self.tally.drain(self.window, 0)
        finally:
            if self.pool is not None:
                self.tally.stop.set()  # after an error that stops every user: the queued users are not started
                self.pool.shutdown(wait=True)
            bar.close()
        summary = self.tally.summary
        if self.tally.deferred:
            retry_after_s = self._retry_after_s()
            summary.deferred = [DeferredRef(ref=ref, retry_after_s=retry_after_s) for ref in self.tally.deferred]
        return before.fill(summary, RunCounters.of(self.ing))

    def _throttle(self) -> None:
        """Record the finished users at the head of the window; wait while too many are in flight or waiting."""
        drain_done(self.tally, self.window)
        while True:
            running = [w[2] for w in self.window if isinstance(w[2], Future) and not w[2].done()]
            if len(running) > IN_FLIGHT_PER_WORKER * self.workers:
                wait(running, return_when=FIRST_COMPLETED)
            elif len(self.window) > WINDOW_PER_WORKER * self.workers:
                self.tally.drain(self.window, WINDOW_PER_WORKER * self.workers)
            else:
                return
            drain_done(self.tally, self.window)

    def _schedule(self, ref: Any) -> bool:
        """Put one reference into the window: its outcome if known now, else the worker (or the call) that fetches it.

        True when the user is fetched (by a worker or here)."""
        ref_text = ref if isinstance(ref, str) else repr(ref)
        try:
            uid = parse_profile_ref(ref)
        except InvalidProfileRef as exc:
            self.window.append((ref_text, "", ("failed", f"invalid reference: {exc}"), False))
            return False
        if uid in self.tally.outcomes or any(w[1] == uid for w in self.window):
            self.window.append((ref_text, uid, ("repeat", None), False))
            return False
        if not self.refresh and self.ing.repo.exists(uid):
            self.window.append((ref_text, uid, ("skipped", None), True))
            return False
        stop = self.tally.stop
        # One worker until a user was ingested with the API's answers: the token is fetched once,
        # and a dead or rate-limiting API is found by one call, not by one per worker.
        if self.pool is not None and self.tally.summary.ingested > 0 and self.ing.client.api_calls > self._calls0:
            self.window.append((ref_text, uid, self.pool.submit(self.ing.attempt, uid, self.refresh, stop), True))
        else:
            self.tally.drain(self.window, 0)
            self.window.append((ref_text, uid, self.ing.attempt(uid, self.refresh, stop), True))
        return True

    def _retry_after_s(self) -> float:
        """Seconds from now until the API may be called again (rounded up to 0.1 s; at least 0.1)."""
        blocked = getattr(self.ing.client, "blocked_for_s", None)
        left = blocked() if callable(blocked) else float(self.ing.settings.spotify_retry_after_cap_s)
        return max(0.1, math.ceil(left * 10) / 10)


def drain_done(tally: Tally, window: deque[WindowEntry]) -> None:
    """Record the entries at the head of ``window`` whose outcome is known (stop at the first still running)."""
    while window and (not isinstance(window[0][2], Future) or window[0][2].done()):
        tally.drain(window, len(window) - 1)
