"""The API GET transport: urllib3's pool with requests' query encoding and errors, and requests' session behind a proxy."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from soundmates.config import Settings, SpotifyCredentials
from soundmates.spotify.client import SpotifyClient
from soundmates.spotify.errors import SpotifyUnavailable
from soundmates.spotify.transport import BoundedGet, api_get, bounded_session

USER = {"id": "someone", "display_name": "Someone"}


class Recorder(BaseHTTPRequestHandler):
    """Answers every GET with USER and remembers the request target (absolute when it came through as a proxy)."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_GET(self) -> None:
        Recorder.seen.append(self.path)
        body = json.dumps(USER).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # the token endpoint
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"access_token": "t", "token_type": "Bearer", "expires_in": 3600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def recorder():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    Recorder.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_query_is_encoded_as_requests_encodes_it(recorder):
    params = {"fields": "items(track(id,name)),next", "ids": "a,b", "limit": 50, "market": None, "q": "é & ü"}
    url = f"{recorder}/v1/users/x%20y"
    answer = BoundedGet(max_bytes=1_000_000, pool_size=2).get(url, params, {}, (5.0, 5.0))
    assert answer.status_code == 200 and json.loads(answer.content) == USER
    assert answer.url == requests.Request("GET", url, params=params).prepare().url
    assert Recorder.seen[-1] == answer.url.removeprefix(recorder)


def test_a_refused_connection_is_requests_connection_error_and_the_user_is_told_unreachable():
    with pytest.raises(requests.exceptions.ConnectionError):
        BoundedGet(max_bytes=1000, pool_size=1).get("http://127.0.0.1:9/v1/users/x", None, {}, (2.0, 2.0))


def test_the_client_reports_an_unreachable_api_in_one_line(recorder):
    settings = Settings(
        spotify_api_url="http://127.0.0.1:9/v1/", spotify_token_url=f"{recorder}/api/token", spotify_max_retries=1
    )
    client = SpotifyClient(settings, SpotifyCredentials(client_id="a", client_secret="b"), sleep=lambda s: None)
    with pytest.raises(SpotifyUnavailable, match=r"^Spotify API unreachable: ConnectionError on user, still failing"):
        client.get("user", "users/x")


def test_behind_a_proxy_api_calls_go_through_it(recorder, monkeypatch):
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy"):  # urllib reads the lower-case one first when both are set
        monkeypatch.setenv(name, recorder)
    settings = Settings(spotify_api_url="http://api.spotify.invalid/v1/", spotify_token_url=f"{recorder}/api/token")
    client = SpotifyClient(settings, SpotifyCredentials(client_id="a", client_secret="b"))
    assert client.get("user", "users/someone") == USER
    assert "http://api.spotify.invalid/v1/users/someone" in Recorder.seen  # the proxy was asked for the API's URL


def test_without_a_proxy_the_pool_is_used_and_with_one_the_session():
    session = bounded_session(max_bytes=1000, default_timeout_s=1.0)
    session.trust_env = False
    assert isinstance(api_get(session, "http://127.0.0.1/v1/", max_bytes=1000, pool_size=1).__self__, BoundedGet)
    session.proxies = {"http": "http://127.0.0.1:3128"}
    assert not hasattr(api_get(session, "http://127.0.0.1/v1/", max_bytes=1000, pool_size=1), "__self__")
