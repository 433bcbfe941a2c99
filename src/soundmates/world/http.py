"""HTTP/1.1 transport of the local server: the stdlib's threading server, keep-alive, one write per response.

The stdlib server gives full control over the wire, including closing a connection without a
byte of answer (a fault real clients meet). Everything else (routing, rendering, faults) lives in
``world/routes.py``; this module only turns bytes into a :class:`Request` and a :class:`Response`
into bytes.
"""

from __future__ import annotations

import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from soundmates.world.request import DROP, Request, Response
from soundmates.world.routes import respond

if TYPE_CHECKING:
    from soundmates.world.server import SpotifyServer


class WorldHTTPServer(ThreadingHTTPServer):
    """One thread per connection; ``app`` is the :class:`SpotifyServer` whose world it serves."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: SpotifyServer):
        self.app = app
        super().__init__(address, RequestHandler)


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections, as with the real API
    server: WorldHTTPServer
    server_version = "soundmates-spotify/1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.verbose:
            sys.stderr.write("spotify-server: " + (format % args) + "\n")

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        body = self._read_body() if self.command in ("POST", "PUT") else b""
        req = Request(self.server.app, self.command, parts.path, self.path, parts.query, self.headers, body)
        resp = respond(req)
        if resp is DROP:
            self._drop()
        else:
            self._write(resp)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _write(self, resp: Response) -> None:
        # Status line, headers and body in one write: two small writes on a keep-alive connection
        # meet Nagle + delayed ACK and cost ~40 ms a response.
        self.log_request(resp.status)
        lines = [
            f"{self.protocol_version} {resp.status} {self.responses.get(resp.status, ('',))[0]}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
        ]
        if resp.content_type is not None:
            lines.append(f"Content-Type: {resp.content_type}")
        lines.append(f"Content-Length: {len(resp.body)}")
        lines += [f"{k}: {v}" for k, v in resp.headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "strict")
        self.wfile.write(head + resp.body if self.command != "HEAD" else head)

    def _drop(self) -> None:
        # Close without a byte of response: the client sees a reset / remote disconnect.
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
