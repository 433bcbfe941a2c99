"""The rate-limit state one Spotify client shares between its threads: Retry-After pauses, blocks past the cap, backoff.

A 429 whose ``Retry-After`` is within the cap pauses every thread of the client for that long
(the thread that was told waits it through its own retry); one above the cap, or 429s still
answered after every retry, blocks every later call until that time, and the block is reported
as :class:`~soundmates.spotify.errors.RateLimitExhausted` carrying the seconds to wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, NoReturn

from tenacity import wait_exponential_jitter

from .errors import RateLimitExhausted
from .failures import Transient, parse_retry_after, short


class RateLimit:
    """Retry-After bookkeeping of one client (thread-safe); ``cap_s`` is the longest wait taken in-line."""

    def __init__(self, cap_s: float, backoff_s: float):
        self.cap_s = cap_s
        self._lock = threading.Lock()
        self._local = threading.local()  # this thread's last Retry-After and its own pause
        self._paused_until = 0.0  # a Retry-After within the cap, seen by any thread: every thread waits for it
        # After a Retry-After above the cap, calls before this monotonic time fail at once
        # instead of hammering an API that asked us to stay away.
        self._blocked_until = 0.0
        self._blocked_for_s = 0.0
        self._backoff = wait_exponential_jitter(
            multiplier=max(0.0, backoff_s),
            max=max(1.0, 20 * backoff_s),
            jitter=max(0.0, backoff_s),
        )

    def blocked_for_s(self) -> float:
        """Seconds until the API may be called again after a rate limit (0 = not blocked)."""
        return max(0.0, self._blocked_until - time.monotonic())

    def check(self, endpoint: str) -> None:
        """Raise :class:`RateLimitExhausted` while a block is on: no call is sent before it ends."""
        now = time.monotonic()
        if now < self._blocked_until:
            raise RateLimitExhausted(
                f"rate limit: Retry-After {self._blocked_for_s:g} s exceeds the {self.cap_s:g} s cap "
                f"(still {self._blocked_until - now:.0f} s to wait)",
                retry_after_s=self._blocked_until - now,
                status=429,
                endpoint=endpoint,
            )

    def on_429(self, endpoint: str, headers: Mapping[str, str] | None) -> NoReturn:
        """Read a 429: block and raise :class:`RateLimitExhausted` past the cap, else pause and raise ``Transient``."""
        header = (headers or {}).get("Retry-After")
        wait_s = parse_retry_after(header)
        self._local.last_retry_after = wait_s
        if wait_s is not None and wait_s > self.cap_s:
            self.block(wait_s)
            raise RateLimitExhausted(
                f"rate limit: Retry-After {wait_s:g} s exceeds the {self.cap_s:g} s cap",
                retry_after_s=wait_s,
                status=429,
                endpoint=endpoint,
            )
        if wait_s:
            self.pause(wait_s)
        raise Transient("429", f"429 on {endpoint} (Retry-After {short(header, 40)})", wait_s)

    def exhausted(self, endpoint: str, retries: int) -> RateLimitExhausted:
        """Still rate-limited after every retry: stop calling for the last Retry-After (at least the cap)."""
        wait_s = max(getattr(self._local, "last_retry_after", None) or 0.0, self.cap_s)
        self.block(wait_s)
        return RateLimitExhausted(
            f"rate limit: still answered 429 after {retries} retries ({endpoint})",
            retry_after_s=wait_s,
            status=429,
            endpoint=endpoint,
        )

    def block(self, wait_s: float) -> None:
        """No call before ``wait_s`` from now: the API asked us to stay away longer than we wait in-line."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, time.monotonic() + wait_s)
            self._blocked_for_s = wait_s

    def pause(self, wait_s: float) -> None:
        """A 429 within the cap: this thread retries after ``wait_s`` (tenacity), the others wait as long."""
        until = time.monotonic() + wait_s
        with self._lock:
            self._paused_until = max(self._paused_until, until)
        self._local.own_pause_until = until

    def wait_for_pause(self) -> None:
        """Wait out a Retry-After another thread was given (this thread's own was waited by its retry)."""
        left = self._paused_until - time.monotonic()
        if left > 0 and self._paused_until > (getattr(self._local, "own_pause_until", None) or 0.0):
            time.sleep(min(left, self.cap_s))

    def wait(self, retry_state: Any) -> float:
        """Tenacity's wait before a retry: the server's Retry-After if it gave one, else jittered exponential backoff."""
        exc = retry_state.outcome.exception()
        if isinstance(exc, Transient) and exc.wait_s is not None:
            return exc.wait_s
        return self._backoff(retry_state)
