"""A requests transport adapter whose read timeout is a deadline for the whole answer, with a size cap.

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
"""

from __future__ import annotations

import io
import os
import time

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

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
            body = self._read_body(response, deadline, total_s)
        except BaseException:
            response.close()  # a half-read connection must never go back to the pool
            raise
        response.raw.release_conn()
        response.raw = io.BytesIO(body)
        return response

    def _read_body(self, response: requests.Response, deadline: float, total_s: float) -> bytes:
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise ResponseTooLarge(
                f"the answer announces {int(declared)} bytes, over the {self.max_bytes} byte limit",
                limit=self.max_bytes,
                size=int(declared),
                response=response,
            )
        raw = response.raw
        body = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(f"no complete answer within {total_s:g} s", response=response)
            sock = getattr(raw.connection, "sock", None)
            if sock is not None:
                sock.settimeout(left)
            try:
                chunk = raw.read1(CHUNK, decode_content=True)
            except ReadTimeoutError:
                raise DeadlineExceeded(f"no complete answer within {total_s:g} s", response=response) from None
            except DecodeError as exc:
                raise requests.exceptions.ContentDecodingError(str(exc), response=response) from None
            except (ProtocolError, OSError) as exc:
                raise requests.exceptions.ChunkedEncodingError(
                    f"the answer was cut off ({type(exc).__name__})", response=response
                ) from None
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > self.max_bytes:
                raise ResponseTooLarge(
                    f"the answer passed the {self.max_bytes} byte limit", limit=self.max_bytes, response=response
                )


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
