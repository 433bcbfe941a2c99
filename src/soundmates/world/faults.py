"""Fault injection for the local server: which ``/v1`` requests fail (429, 5xx, a dropped connection), and how."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass

from soundmates.world.errors import ApiError

_5XX_MESSAGES = {500: "Server error.", 502: "Bad gateway.", 503: "Service unavailable"}
DROP = "drop"


@dataclass(frozen=True)
class FaultConfig:
    """Fractions of ``/v1`` requests that fail, decided by a hash of (seed, request, attempt).

    The same request (method, path and query) gets a fresh decision on each retry, and the
    decisions do not depend on the order concurrent clients arrive in: reruns are reproducible.
    """

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    retry_after: int = 1  # seconds, the Retry-After header of a 429
    latency_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("rate_429", "rate_5xx", "rate_drop"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a fraction between 0 and 1, got {v}")
        if self.rate_429 + self.rate_5xx + self.rate_drop > 1.0:
            raise ValueError("rate_429 + rate_5xx + rate_drop must not exceed 1")
        if self.retry_after < 0:
            raise ValueError(f"retry_after must be >= 0 seconds, got {self.retry_after}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms}")

    @property
    def active(self) -> bool:
        return self.rate_429 > 0 or self.rate_5xx > 0 or self.rate_drop > 0 or self.latency_ms > 0

    def decide(self, key: str, attempt: int) -> tuple[str | None, int]:
        """(fault kind or None, 5xx status) for the ``attempt``-th time ``key`` is requested."""
        h = hashlib.blake2b(f"{self.seed}|{key}|{attempt}".encode(), digest_size=8).digest()
        u = int.from_bytes(h[:6], "big") / 2**48
        status = (500, 502, 503)[h[6] % 3]
        if u < self.rate_429:
            return "429", 429
        if u < self.rate_429 + self.rate_5xx:
            return "5xx", status
        if u < self.rate_429 + self.rate_5xx + self.rate_drop:
            return "drop", 0
        return None, 200


class FaultInjector:
    """Applies a :class:`FaultConfig` to requests: counts attempts per request, sleeps the latency, decides."""

    def __init__(self, config: FaultConfig):
        self.config = config
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget the attempts (a fresh run gets the same decisions again)."""
        with self._lock:
            self._attempts.clear()

    def before(self, key: str) -> tuple[str, ApiError | None] | None:
        """Before answering request ``key`` (method and raw path): None to answer normally, else
        ``(kind, error)``: ``("429" | "5xx", the error to send)`` or ``("drop", None)``."""
        cfg = self.config
        if cfg.latency_ms:
            time.sleep(cfg.latency_ms / 1000.0)
        if not (cfg.rate_429 or cfg.rate_5xx or cfg.rate_drop):
            return None
        with self._lock:
            self._attempts[key] += 1
            attempt = self._attempts[key]
        kind, status = cfg.decide(key, attempt)
        if kind == "429":
            return kind, ApiError(429, "API rate limit exceeded", {"Retry-After": str(cfg.retry_after)})
        if kind == "5xx":
            return kind, ApiError(status, _5XX_MESSAGES[status])
        if kind == "drop":
            return DROP, None
        return None
