"""The request and response values the local server's handlers take and return (no HTTP plumbing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from soundmates.world.render import RawJSON, dumps

if TYPE_CHECKING:
    from soundmates.world.server import SpotifyServer

JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"


@dataclass
class Request:
    """One request as the handlers see it; ``target`` is the raw path with its query (the fault key)."""

    app: SpotifyServer
    method: str
    path: str
    target: str
    raw_query: str
    headers: Any  # a mapping with .get (the stdlib's parsed headers)
    body: bytes = b""
    _query: dict[str, list[str]] | None = field(default=None, repr=False)

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            self._query = parse_qs(self.raw_query, keep_blank_values=True)
        return self._query

    def header(self, name: str) -> str:
        return self.headers.get(name, "") or ""

    @property
    def bearer(self) -> str:
        """The token of an ``Authorization: Bearer …`` header ('' when there is none)."""
        return self.header("Authorization").partition(" ")[2].strip()


@dataclass(frozen=True)
class Response:
    """What to send: status, body bytes, content type, extra headers."""

    status: int
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


# A handler's answer when the connection must close without a byte of response (a fault mode).
DROP = Response(0, content_type=None)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    text = body if isinstance(body, RawJSON) else dumps(body)
    return Response(status, text.encode("utf-8"), JSON_TYPE, tuple((headers or {}).items()))
