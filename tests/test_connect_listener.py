"""`soundmates connect`'s loopback listener honours --timeout whatever clients do (idle or trickling connections)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from soundmates.cli.connect import RedirectListener


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _idle_connections(port: int, n: int = 3) -> list[socket.socket]:
    """Connections that are opened and then say nothing (or only half a request line)."""
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:
            s.sendall(b"GET /?co")  # a trickle that stops half-way
        socks.append(s)
    return socks


def _wait_in_thread(listener: RedirectListener, timeout_s: float) -> dict:
    result: dict = {}

    def run():
        t0 = time.monotonic()
        try:
            result["got"] = listener.wait(timeout_s)
        except TimeoutError as exc:
            result["error"] = str(exc)
        result["elapsed"] = time.monotonic() - t0

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    result["thread"] = thread
    return result


def test_idle_connections_do_not_hold_the_wait_past_its_timeout():
    listener = RedirectListener(0)
    socks = _idle_connections(listener.httpd.server_address[1])
    try:
        result = _wait_in_thread(listener, 1.5)
        result["thread"].join(10)
        assert not result["thread"].is_alive(), "wait() blocked on an idle connection"
        assert result["error"] == "no redirect from Spotify within 1.5 s"
        assert 1.4 < result["elapsed"] < 2.5
    finally:
        for s in socks:
            s.close()


def test_the_redirect_gets_through_while_idle_connections_are_open():
    listener = RedirectListener(0)
    socks = _idle_connections(listener.httpd.server_address[1])
    try:
        result = _wait_in_thread(listener, 20)
        with urllib.request.urlopen(
            f"http://127.0.0.1:{listener.httpd.server_address[1]}/?code=abc&state=xyz", timeout=5
        ) as resp:
            page = resp.read()
        result["thread"].join(10)
        assert result["got"] == {"code": "abc", "state": "xyz", "error": None}
        assert result["elapsed"] < 5
        assert b"connect-done" in page
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("timeout_s", [3])
def test_cli_connect_timeout_means_that_many_seconds_with_an_idle_client(tmp_path, timeout_s):
    port = _free_port()
    env = dict(
        os.environ,
        SOUNDMATES_DATA_DIR=str(tmp_path),
        SPOTIPY_CLIENT_ID="test-id",
        SOUNDMATES_SPOTIFY_TOKEN_URL="http://127.0.0.1:9/api/token",
    )
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "soundmates.cli.main", "connect", "--port", str(port), "--timeout", str(timeout_s)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    socks = []
    try:
        for line in proc.stdout:  # the listener is bound once the URL is printed
            if line.startswith("Waiting for the redirect"):
                break
        started = time.monotonic()
        socks = _idle_connections(port)
        out, err = proc.communicate(timeout=timeout_s + 30)
        waited = time.monotonic() - started
    finally:
        for s in socks:
            s.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert f"no redirect from Spotify within {timeout_s} s" in err
    assert "Traceback" not in err
    assert waited < timeout_s + 1.5, f"--timeout {timeout_s} took {waited:.1f} s after the idle clients connected"
    assert time.monotonic() - t0 < timeout_s + 15
