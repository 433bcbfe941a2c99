"""What an ingest run reports: the summary model, one-line failure reasons, outcomes recorded in the order of the refs."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from .errors import ApiRefused, NoPublicPlaylists, SpotifyError, SpotifyUnavailable, UserNotFound

# After this many users in a row failed because the API is unreachable, the rest are not tried:
# a dead server would otherwise cost every user the full retry budget.
MAX_CONSECUTIVE_UNAVAILABLE = 3


class FailedRef(BaseModel):
    ref: str
    reason: str


class DeferredRef(BaseModel):
    """A user not done because the API rate-limited the run: try again after ``retry_after_s`` (from the run's end)."""

    ref: str
    retry_after_s: float


class IngestSummary(BaseModel):
    ingested: int = 0
    skipped: int = 0
    failed: list[FailedRef] = Field(default_factory=list)
    # Rate-limited, not failed: a Retry-After above the cap (or 429s past the retries) stopped fetching.
    deferred: list[DeferredRef] = Field(default_factory=list)
    api_calls: int = 0  # HTTP requests to the Web API, retries included (token requests excluded)
    calls_by_endpoint: dict[str, int] = Field(default_factory=dict)
    retries: dict[str, int] = Field(default_factory=dict)  # retried failures by kind: 429, 5xx, connection, ...
    token_requests: int = 0
    items_skipped: dict[str, int] = Field(default_factory=dict)  # episode, local, null
    playlists_skipped: dict[str, int] = Field(default_factory=dict)  # refused (403), not_found (404)
    raw_pages_reused: int = 0  # pages read from raw/ instead of the API (resumed runs)
    artists_fetched: int = 0
    ingested_user_ids: list[str] = Field(default_factory=list)
    elapsed_s: float = 0.0
    users_per_s: float = 0.0


def failure_reason(uid: str, exc: SpotifyError) -> str:
    """The one-line reason a summary lists for a user that failed with ``exc``."""
    if isinstance(exc, UserNotFound):
        return f"unknown user: Spotify has no user {uid!r} (404)"
    if isinstance(exc, NoPublicPlaylists):
        return exc.reason
    if isinstance(exc, ApiRefused):
        return f"refused by the API in development mode: {exc.reason}"
    return exc.reason


@dataclass(frozen=True)
class RunCounters:
    """The cumulative counters of an ingestor and its client at one moment; a run reports the difference."""

    calls: Counter
    retries: Counter
    token_requests: int
    items_skipped: Counter
    playlists_skipped: Counter
    raw_pages_reused: int
    artists_fetched: int
    at: float  # perf_counter

    @classmethod
    def of(cls, ingestor: Any) -> RunCounters:
        client = ingestor.client
        return cls(
            client.calls.copy(),
            client.retries.copy(),
            client.token_requests,
            ingestor.items_skipped.copy(),
            ingestor.playlists_skipped.copy(),
            ingestor.raw_pages_reused,
            ingestor.artists_fetched,
            time.perf_counter(),
        )

    def fill(self, summary: IngestSummary, now: RunCounters) -> IngestSummary:
        """Fill the run's counts (``now`` minus these) and speed into ``summary``."""
        calls = now.calls - self.calls
        summary.api_calls = sum(calls.values())
        summary.calls_by_endpoint = dict(sorted(calls.items()))
        summary.retries = dict(sorted((now.retries - self.retries).items()))
        summary.token_requests = now.token_requests - self.token_requests
        skipped, pl_skipped = now.items_skipped - self.items_skipped, now.playlists_skipped - self.playlists_skipped
        summary.items_skipped = {k: skipped.get(k, 0) for k in ("episode", "local", "null")}
        summary.playlists_skipped = {k: pl_skipped.get(k, 0) for k in ("refused", "not_found")}
        summary.raw_pages_reused = now.raw_pages_reused - self.raw_pages_reused
        summary.artists_fetched = now.artists_fetched - self.artists_fetched
        summary.elapsed_s = round(now.at - self.at, 3)
        summary.users_per_s = round(summary.ingested / summary.elapsed_s, 2) if summary.elapsed_s > 0 else 0.0
        return summary


class Tally:
    """The outcomes of one ``ingest_many`` run, recorded in the order of its references.

    An outcome is ``(kind, detail)``: ``ingested``, ``skipped``, ``deferred``, ``not attempted``, ``repeat`` (a user
    listed again) or ``failed`` with a SpotifyError or a reason.
    """

    def __init__(self, bar: Any, calls: Any):
        self.summary = IngestSummary()
        self.deferred: list[str] = []
        self.stop = threading.Event()  # set once the API failed for MAX_CONSECUTIVE_UNAVAILABLE users in a row
        self.outcomes: dict[str, tuple[str, Any]] = {}  # uid -> outcome, for a user listed again
        self._streak, self._last_unavailable = 0, ""
        self._bar, self._calls = bar, calls

    def drain(self, window: deque, keep: int) -> None:
        """Record the oldest entries of ``window`` (waiting for their workers) until at most ``keep`` are left."""
        while len(window) > keep:
            ref_text, uid, result, first = window.popleft()
            outcome = result.result() if isinstance(result, Future) else result
            if outcome[0] == "repeat":  # a user listed again: what its first listing came to
                outcome = self.outcomes.get(uid, ("skipped", None))
            elif uid and first:
                self.outcomes[uid] = outcome
            self.record(ref_text, uid, outcome, first)

    def record(self, ref_text: str, uid: str, outcome: tuple[str, Any], first: bool) -> None:
        kind, detail = outcome
        summary = self.summary
        if kind == "skipped" or (kind == "ingested" and not first):
            summary.skipped += 1
        elif kind == "ingested":
            self._streak = 0
            summary.ingested += 1
            summary.ingested_user_ids.append(uid)
        elif kind == "deferred":
            self.deferred.append(ref_text)
        elif kind == "not attempted":
            reason = f"not attempted: the Spotify API failed for {self._streak} users in a row ({self._last_unavailable})"
            summary.failed.append(FailedRef(ref=ref_text, reason=reason))
        else:
            self._record_failure(ref_text, uid, detail, first)
        self._bar.update(1)
        self._bar.set_postfix(
            ok=summary.ingested, failed=len(self.summary.failed), deferred=len(self.deferred), calls=self._calls()
        )

    def _record_failure(self, ref_text: str, uid: str, detail: Any, first: bool) -> None:
        reason = failure_reason(uid, detail) if isinstance(detail, SpotifyError) else str(detail)
        self.summary.failed.append(FailedRef(ref=ref_text, reason=reason))
        if first and isinstance(detail, SpotifyUnavailable):
            self._streak += 1
            self._last_unavailable = detail.reason
        elif first:
            self._streak = 0
        if self._streak >= MAX_CONSECUTIVE_UNAVAILABLE:
            self.stop.set()
