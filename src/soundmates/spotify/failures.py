"""How a failed Web API call is read: retryable failures, the typed error after the last retry, error bodies, Retry-After."""

from __future__ import annotations

import json
import math
import time
from email.utils import parsedate_to_datetime

import requests

from .errors import MalformedResponse, SpotifyUnavailable
from .transport import ResponseTooLarge

# A Retry-After beyond a day is read as a day: the run is deferred either way, and the time stays a number.
MAX_RETRY_AFTER_S = 86_400.0


class Transient(Exception):
    """A failure worth another try; ``wait_s`` is what the server asked for (Retry-After), if anything."""

    def __init__(self, kind: str, detail: str, wait_s: float | None = None):
        self.kind = kind  # "429" | "5xx" | "connection" | "unreadable" | "timeout" | "401"
        self.detail = detail
        self.wait_s = wait_s
        super().__init__(detail)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    None when absent or garbled (negative, NaN, not a number or a date): the caller then
    backs off on its own. A date in the past is 0; anything beyond ``MAX_RETRY_AFTER_S`` is
    read as that (an "infinite" wait must still be a time a scheduler can use).
    """
    if value is None:
        return None
    value = str(value).strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def transport_failure(
    endpoint: str, exc: requests.exceptions.RequestException, *, deadline_s: float, max_bytes: int, max_redirects: int
) -> Exception:
    """What a transport error of ``endpoint`` is: MalformedResponse (never retried) or a Transient failure."""
    if isinstance(exc, ResponseTooLarge):
        return MalformedResponse(
            f"malformed data: the answer of {endpoint} is larger than the {max_bytes:,} byte limit", endpoint=endpoint
        )
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return MalformedResponse(
            f"malformed data: {endpoint} redirects in a loop (more than {max_redirects} redirects)", endpoint=endpoint
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return Transient("timeout", f"no complete answer of {endpoint} within {deadline_s:g} s")
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return Transient("unreadable", f"an answer of {endpoint} that cannot be decompressed")
    return Transient("connection", f"{type(exc).__name__} on {endpoint}")


def unavailable_after_retries(endpoint: str, exc: Transient, n: int) -> Exception:
    """The typed error of a failure still there after ``n`` retries (the 429 and 401 kinds are the client's)."""
    if exc.kind == "unreadable":
        return MalformedResponse(f"malformed data: {exc.detail}, after {n} retries", endpoint=endpoint)
    if exc.kind == "5xx":
        return SpotifyUnavailable(f"Spotify API unavailable: {exc.detail}, still failing after {n} retries", endpoint=endpoint)
    if exc.kind == "timeout":
        return SpotifyUnavailable(f"Spotify API too slow: {exc.detail}, still failing after {n} retries", endpoint=endpoint)
    return SpotifyUnavailable(f"Spotify API unreachable: {exc.detail}, still failing after {n} retries", endpoint=endpoint)


def error_message(body: bytes) -> str | None:
    """The ``error.message`` of a Web API error body (or its text), whatever shape it has."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError, RecursionError):
        return body[:200].decode("utf-8", "replace") or None
    if isinstance(error, dict):
        return str(error.get("message") or "") or None
    return None if error is None else str(error)


def short(msg: object, n: int = 200) -> str:
    text = str(msg or "").replace("\n", " ").strip()
    return text if len(text) <= n else text[: n - 3] + "..."
