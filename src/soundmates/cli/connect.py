"""`soundmates connect`: Connect with Spotify (OAuth with PKCE) from a terminal.

Prints the authorize URL, waits for Spotify's redirect on a one-shot loopback listener
(``http://127.0.0.1:PORT/``, the redirect URI to register in the Spotify Developer Dashboard),
exchanges the code and reads the account. Nothing is stored unless ``--add`` says so (consent).
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import typer

from ._common import emit_json
from ._common import fail as _fail

DEFAULT_PORT = 8888

_DONE_PAGE = (
    b"<!doctype html><html><head><meta charset='utf-8'><title>Soundmates</title></head><body>"
    b"<h1 id='connect-done'>Soundmates received Spotify's answer.</h1>"
    b"<p>You can close this tab and go back to the terminal.</p></body></html>"
)


class RedirectListener:
    """A one-shot HTTP listener on ``host:port`` for Spotify's redirect; bound at once, so a login
    that is quicker than the terminal never meets a closed port.

    Requests without ``code``/``error`` (a browser's favicon, a probe) are answered 404 and do not end the wait.
    Each connection is served on its own daemon thread with a socket timeout, so a client that
    connects and says nothing (or trickles) never holds the wait past its ``timeout_s``.
    """

    CLIENT_TIMEOUT_S = 5.0  # one connection's time to send its request line and headers

    def __init__(self, port: int, host: str = "127.0.0.1"):
        got: dict[str, str | None] = {}
        arrived = threading.Event()
        self.got = got
        self._arrived = arrived

        class Handler(BaseHTTPRequestHandler):
            timeout = self.CLIENT_TIMEOUT_S  # StreamRequestHandler: the connection's socket timeout

            def log_message(self, format, *args):
                pass

            def do_GET(self):
                q = parse_qs(urlsplit(self.path).query)
                if got or ("code" not in q and "error" not in q):
                    self.send_error(404)
                    return
                got.update({k: (q.get(k) or [None])[-1] for k in ("code", "state", "error")})
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(_DONE_PAGE)))
                    self.end_headers()
                    self.wfile.write(_DONE_PAGE)
                    self.wfile.flush()
                finally:
                    arrived.set()  # after the page: the command may exit at once, and the browser must get it

        class Server(ThreadingHTTPServer):
            daemon_threads = True  # an idle connection's thread never keeps the command alive
            block_on_close = False  # nor does closing wait for it

        try:
            self.httpd = Server((host, port), Handler)
        except OSError as exc:
            raise RuntimeError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def wait(self, timeout_s: float) -> dict[str, str | None]:
        import time

        deadline = time.monotonic() + timeout_s
        try:
            while not self._arrived.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no redirect from Spotify within {timeout_s:g} s")
                self.httpd.timeout = min(left, 0.2)
                self.httpd.handle_request()  # accepts at most one connection and hands it to a thread
        finally:
            self.httpd.server_close()
        return dict(self.got)


def connect_cmd(
    port: int = typer.Option(
        DEFAULT_PORT,
        "--port",
        min=1,
        max=65535,
        help="Loopback port of the redirect URI http://127.0.0.1:PORT/ (register it in your Spotify app).",
    ),
    timeout: float = typer.Option(300.0, "--timeout", min=1.0, help="Seconds to wait for the login."),
    matches: int = typer.Option(0, "--matches", min=0, max=100, help="Also show this many soundmates (needs a built index)."),
    add: bool = typer.Option(False, "--add", help="Consent: store the profile and queue it for the pipeline."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the authorize URL goes to stderr)."),
) -> None:
    """Connect your own Spotify account (OAuth with PKCE) and read your taste from it."""
    from soundmates.config import get_settings
    from soundmates.spotify.connect import ConnectError
    from soundmates.spotify.errors import SpotifyError

    settings = get_settings()
    try:
        flow, listener, url = _start(settings, port)
    except (ConnectError, RuntimeError) as exc:
        _fail_as(str(exc), as_json)
        return
    print(
        f"Open this URL in a browser and log in to Spotify:\n{url}\nWaiting for the redirect to {flow.redirect_uri} ...",
        file=sys.stderr if as_json else sys.stdout,
        flush=True,
    )
    try:
        account, profile, summary = _login(flow, listener, timeout, settings)
    except (ConnectError, SpotifyError, RuntimeError, TimeoutError) as exc:
        _fail_as(str(exc), as_json)
        return
    result: dict = {"account": account.model_dump(), "profile": summary.model_dump(), "stored": False}
    if add:
        result.update(_store(profile, settings))
    if matches:
        result.update(_matches(profile, matches, settings))
    if as_json:
        emit_json(result)
        return
    _print_text(result, account, summary)


def _fail_as(message: str, as_json: bool) -> None:
    """Exit with ``error: message``; with --json, the error is one JSON object on stdout too."""
    if as_json:
        emit_json({"error": message, "stored": False})
    _fail(message)


def _start(settings: Any, port: int) -> tuple[Any, RedirectListener, str]:
    """The PKCE flow for the loopback redirect URI, its listener (bound now) and the authorize URL."""
    from soundmates.spotify.connect import SpotifyConnect, loopback_redirect_uri

    flow = SpotifyConnect(settings, redirect_uri=loopback_redirect_uri(port))
    listener = RedirectListener(port)
    url, _state = flow.start()
    return flow, listener, url


def _login(flow: Any, listener: RedirectListener, timeout: float, settings: Any) -> tuple[Any, Any, Any]:
    """Wait for Spotify's redirect, exchange the code, then read the account's profile: (account, profile, summary)."""
    from soundmates.spotify.connect import fetch_profile

    got = listener.wait(timeout)
    account = flow.finish(code=got.get("code"), state=got.get("state"), error=got.get("error"))
    typer.echo(f"Connected as {account.display_name or account.user_id}; reading your playlists and top lists...", err=True)
    profile, summary = fetch_profile(flow.client(account.user_id), settings)
    return account, profile, summary


def _store(profile: Any, settings: Any) -> dict:
    """--add (consent): store the profile and queue it for the pipeline; the result's ``stored`` and ``inbox``."""
    from soundmates.recommend.connected import store_connected

    entry = store_connected(profile, settings)
    return {"stored": True, "inbox": entry.model_dump() if hasattr(entry, "model_dump") else dict(entry)}


def _matches(profile: Any, matches: int, settings: Any) -> dict:
    """--matches: the result's ``matches`` and ``warnings`` (no index yet is a warning, not a failure)."""
    from soundmates.recommend import RecommendError
    from soundmates.recommend.connected import recommend_for

    try:
        rec = recommend_for(profile, matches, settings)
    except RecommendError as exc:
        return {"matches": [], "warnings": [str(exc)]}
    return {
        "matches": [{"user_id": m.user_id, "display_name": m.display_name, "score": m.score} for m in rec.matches],
        "warnings": rec.warnings,
    }


def _print_text(result: dict, account: Any, summary: Any) -> None:
    """The text output: the account's counts, the matches, warnings on stderr, and whether anything was stored."""
    typer.echo(
        f"{account.user_id} ({account.display_name or 'no display name'}): {summary.tracks} tracks by {summary.artists} artists "
        f"from {summary.playlists_read} of {summary.playlists_listed} playlists, {summary.top_tracks} top tracks, "
        f"{summary.top_artists} top artists, {summary.followed_artists} followed, {summary.saved_tracks} saved; "
        f"{summary.api_calls} API calls"
    )
    for m in result.get("matches", []):
        typer.echo(f"  {m['score']:.3f}  {m['display_name'] or m['user_id']}  https://open.spotify.com/user/{m['user_id']}")
    for w in result.get("warnings", []):
        typer.echo(f"warning: {w}", err=True)
    typer.echo(
        "Stored and queued for the pipeline." if result["stored"] else "Nothing stored (run again with --add to add yourself)."
    )


def register(app: typer.Typer) -> None:
    app.command("connect")(connect_cmd)
