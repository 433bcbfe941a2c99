"""RateLimit, the Retry-After state a Spotify client's threads share: pauses within the cap, blocks past it."""

from __future__ import annotations

import threading
import time

import pytest

from soundmates.spotify.errors import RateLimitExhausted
from soundmates.spotify.failures import Transient
from soundmates.spotify.rate_limit import RateLimit


def test_a_retry_after_above_the_cap_blocks_every_later_call_until_then():
    limit = RateLimit(cap_s=30.0, backoff_s=0.1)
    assert limit.blocked_for_s() == 0.0
    with pytest.raises(RateLimitExhausted) as told:
        limit.on_429("user", {"Retry-After": "3600"})
    assert told.value.retry_after_s == 3600 and told.value.status == 429 and told.value.endpoint == "user"
    assert "exceeds the 30 s cap" in told.value.reason
    assert 3590 < limit.blocked_for_s() <= 3600
    with pytest.raises(RateLimitExhausted) as later:
        limit.check("playlists")  # no call is sent while blocked
    assert later.value.endpoint == "playlists" and "still" in later.value.reason and later.value.retry_after_s > 3590


def test_a_retry_after_within_the_cap_is_retried_after_it_and_pauses_the_other_threads():
    limit = RateLimit(cap_s=30.0, backoff_s=0.1)
    told_at = time.monotonic()
    with pytest.raises(Transient) as told:
        limit.on_429("user", {"Retry-After": "2"})
    assert told.value.kind == "429" and told.value.wait_s == 2.0
    limit.check("user")  # not blocked
    t0 = time.monotonic()
    limit.wait_for_pause()  # this thread's own pause is waited by its retry, not here
    assert time.monotonic() - t0 < 0.2
    woke_at: list[float] = []

    def other() -> None:
        limit.wait_for_pause()
        woke_at.append(time.monotonic())

    time.sleep(1.0)  # half the pause has passed when the other thread asks
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    # It waits what was left of the other thread's Retry-After: it wakes when that pause ends, not 2 s after
    # it began waiting (the slack is the scheduler's, not the limiter's: sleep may overshoot, never undershoot).
    assert told_at + 2.0 - 0.01 <= woke_at[0] < told_at + 2.0 + 0.5


def test_429s_past_the_retries_block_for_the_last_retry_after_or_at_least_the_cap():
    limit = RateLimit(cap_s=2.0, backoff_s=0.1)
    with pytest.raises(Transient):
        limit.on_429("user", {"Retry-After": "1"})
    exhausted = limit.exhausted("user", 3)
    assert isinstance(exhausted, RateLimitExhausted)
    assert exhausted.retry_after_s == 2.0 and "after 3 retries" in exhausted.reason
    assert 1.5 < limit.blocked_for_s() <= 2.0
    with pytest.raises(RateLimitExhausted):
        limit.check("user")


def test_the_wait_before_a_retry_is_the_servers_retry_after_else_bounded_backoff():
    limit = RateLimit(cap_s=30.0, backoff_s=0.5)

    class Outcome:
        def __init__(self, exc: BaseException):
            self._exc = exc

        def exception(self) -> BaseException:
            return self._exc

    class State:
        def __init__(self, exc: BaseException, attempt: int):
            self.outcome = Outcome(exc)
            self.attempt_number = attempt

    assert limit.wait(State(Transient("429", "x", 7.0), 1)) == 7.0
    backoffs = [limit.wait(State(Transient("5xx", "x"), n)) for n in range(1, 12)]
    assert all(0 <= w <= 20 * 0.5 for w in backoffs) and max(backoffs) > 0.5
