"""Bounded HTTP transports: every answer has one deadline and a size cap (requests' adapter, and a lean urllib3 GET).

requests' ``timeout=(connect, read)`` bounds each socket read, not the answer: a server that
sends one byte every 5 s keeps a 10 s read timeout waiting forever, and ``response.content``
reads a 600 MB body whole. :class:`BoundedAdapter` (mounted on a ``requests.Session``, the
documented extension point; nothing private of requests is overridden) gives the read timeout
the meaning callers want:

- connect within ``connect`` seconds, and have the status line, headers and the **whole body**
  within ``read`` seconds of sending (one wall-clock deadline; the socket's timeout shrinks to
  the time left before each read, so a trickle ends at the deadline, not one read later);
- the body, decoded (gzip/deflate/br as urllib3 ships them, decompressed in bounded steps), is
  read in chunks and refused as soon as it passes ``max_bytes`` (or when ``Content-Length``
  says it will), so memory stays bounded whatever the server sends.

The read body is handed on as ``response.raw = io.BytesIO(body)``, so ``response.content``,
``.json()`` and ``.text`` work as usual for every caller of the session (spotipy included).
Remaining hole: a server trickling the *headers* is bounded per read (``read`` seconds each),
not overall; urllib3 offers no hook between header lines.

:class:`BoundedGet` gives API GETs the same deadline, cap and errors on urllib3's own pool:
requests' per-call machinery (preparing, hooks, cookies, merging settings) was about half the
client's CPU for each call (1.05 vs 0.57 ms per call, side by side on the local server), and
ingest makes ~12 calls per user. Its failures are raised as the requests exceptions that
requests would have raised for the same fault, so callers read one set of errors.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

CHUNK = 64 * 1024


class DeadlineExceeded(requests.exceptions.ReadTimeout):
    """The whole answer did not arrive within the deadline."""


class ResponseTooLarge(requests.exceptions.RequestException):
    """The body is (or announced to be) larger than the cap; ``limit`` and ``size`` (None if unknown) in bytes."""

    def __init__(self, message: str, *, limit: int, size: int | None = None, **kw):
        self.limit = limit
        self.size = size
        super().__init__(message, **kw)


def _timeouts(timeout, default_s: float) -> tuple[float, float]:
    if timeout is None:
        return default_s, default_s
    if isinstance(timeout, tuple):
        connect, read = timeout
        return (default_s if connect is None else float(connect)), (default_s if read is None else float(read))
    return float(timeout), float(timeout)


class BoundedAdapter(HTTPAdapter):
    """``HTTPAdapter`` whose read timeout is the deadline of the whole answer; bodies over ``max_bytes`` are refused."""

    def __init__(self, *, max_bytes: int, default_timeout_s: float = 30.0, **kwargs):
        self.max_bytes = int(max_bytes)
        self.default_timeout_s = float(default_timeout_s)
        super().__init__(**kwargs)

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        connect_s, total_s = _timeouts(timeout, self.default_timeout_s)
        deadline = time.monotonic() + total_s
        response = super().send(
            request, stream=True, timeout=(min(connect_s, total_s), total_s), verify=verify, cert=cert, proxies=proxies
        )
        try:
            body = read_bounded(response.raw, response.headers, deadline, total_s, self.max_bytes, response=response)
        except BaseException:
            response.close()  # a half-read connection must never go back to the pool
            raise
        response.raw.release_conn()
        response.raw = io.BytesIO(body)
        return response


def read_bounded(raw, headers: Mapping[str, str], deadline: float, total_s: float, max_bytes: int, **exc_kw) -> bytes:
    """Read a urllib3 response's decoded body by the deadline, refusing it past ``max_bytes`` (requests' errors)."""
    declared = (headers.get("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(
            f"the answer announces {int(declared)} bytes, over the {max_bytes} byte limit",
            limit=max_bytes,
            size=int(declared),
            **exc_kw,
        )
    body = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"no complete answer within {total_s:g} s", **exc_kw)
        sock = getattr(raw.connection, "sock", None)
        if sock is not None:
            sock.settimeout(left)
        try:
            chunk = raw.read1(CHUNK, decode_content=True)
        except ReadTimeoutError:
            raise DeadlineExceeded(f"no complete answer within {total_s:g} s", **exc_kw) from None
        except DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(str(exc), **exc_kw) from None
        except (ProtocolError, OSError) as exc:
            raise requests.exceptions.ChunkedEncodingError(f"the answer was cut off ({type(exc).__name__})", **exc_kw) from None
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > max_bytes:
            raise ResponseTooLarge(f"the answer passed the {max_bytes} byte limit", limit=max_bytes, **exc_kw)


@dataclass(frozen=True)
class Answer:
    """A whole answer of :class:`BoundedGet`: what callers read of a ``requests.Response``."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str

    @property
    def is_redirect(self) -> bool:
        return "location" in self.headers and self.status_code in (301, 302, 303, 307, 308)


class BoundedGet:
    """GET on urllib3's connection pool with :class:`BoundedAdapter`'s deadline, cap and error types.

    No retries and no redirects inside (the caller decides both); gzip/deflate are asked for and
    decoded as requests does. Safe to share between threads (urllib3's pool is).
    """

    def __init__(self, *, max_bytes: int, pool_size: int, ca_certs: str | None = None):
        import certifi  # requests' own CA bundle, so https verifies as the session did

        self.max_bytes = int(max_bytes)
        self._pool = urllib3.PoolManager(
            num_pools=4, maxsize=max(1, pool_size), retries=False, ca_certs=ca_certs or certifi.where()
        )
        self._headers = {"User-Agent": requests.utils.default_user_agent(), "Accept-Encoding": "gzip, deflate"}

    def get(self, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str], timeout: tuple[float, float]) -> Answer:
        """One GET: connected within ``timeout[0]`` s, the whole answer within ``timeout[1]`` s of sending."""
        connect_s, total_s = timeout
        deadline = time.monotonic() + total_s
        if params:
            url += ("&" if "?" in url else "?") + urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True)
        try:
            raw = self._pool.request(
                "GET",
                url,
                headers={**self._headers, **headers},
                redirect=False,
                preload_content=False,
                timeout=urllib3.Timeout(connect=min(connect_s, total_s), read=total_s),
            )
        except (HTTPError, HTTPException, OSError) as exc:
            raise _as_requests_error(exc) from None
        try:
            body = read_bounded(raw, raw.headers, deadline, total_s, self.max_bytes)
        except BaseException:
            raw.close()  # closed, so a half-read connection is never reused: the pool opens a new one
            raw.release_conn()
            raise
        raw.release_conn()
        return Answer(raw.status, raw.headers, body, url)


def _as_requests_error(exc: BaseException) -> requests.exceptions.RequestException:
    """The requests exception requests' adapter raises for the same urllib3 failure (see ``HTTPAdapter.send``)."""
    if isinstance(exc, ConnectTimeoutError) and not isinstance(exc, NewConnectionError):
        return requests.exceptions.ConnectTimeout(str(exc))
    if isinstance(exc, ReadTimeoutError):
        return DeadlineExceeded(str(exc))
    if isinstance(exc, SSLError):
        return requests.exceptions.SSLError(str(exc))
    return requests.exceptions.ConnectionError(str(exc))


def bounded_session(*, max_bytes: int, default_timeout_s: float, max_redirects: int = 5) -> requests.Session:
    """A plain ``requests.Session`` (no retrying adapter) with :class:`BoundedAdapter` on http and https."""
    session = requests.Session()
    adapter = BoundedAdapter(max_bytes=max_bytes, default_timeout_s=default_timeout_s)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = max_redirects
    return session


def resolve_proxies_once(session: requests.Session, *urls: str) -> None:
    """Read the proxy and CA-bundle environment once instead of on every request.

    With ``trust_env`` on, requests re-reads ``*_PROXY``/``NO_PROXY`` for each request, a
    sizeable share of the client's CPU per call. When every URL we call resolves to the same
    proxies, pin them (and the CA bundle requests would take from the environment) and stop
    re-reading; otherwise keep requests' own per-request logic.
    """
    resolved = [requests.utils.get_environ_proxies(u) for u in urls]
    if all(r == resolved[0] for r in resolved):
        session.proxies.update(resolved[0])
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        session.trust_env = False


def api_get(session: requests.Session, api_url: str, *, max_bytes: int, pool_size: int):
    """The GET callable for the API's calls: :class:`BoundedGet`, or the session when a proxy applies to ``api_url``.

    urllib3's pool goes direct; a configured proxy (``*_PROXY``) keeps requests' handling of it.
    The callable takes ``(url, params, headers, timeout)`` and answers an object with
    ``status_code``, ``headers``, ``content``, ``url`` and ``is_redirect``.
    """
    if session.proxies or (session.trust_env and requests.utils.get_environ_proxies(api_url)):
        return lambda url, params, headers, timeout: session.get(
            url, params=params, headers=headers, allow_redirects=False, timeout=timeout
        )
    verify = session.verify if isinstance(session.verify, str) else None
    return BoundedGet(max_bytes=max_bytes, pool_size=pool_size, ca_certs=verify).get
