"""Connect with Spotify, client side (soundmates.spotify.connect, `soundmates connect`), against the local server.

The login itself is driven over plain HTTP here (``login_as``); tests/test_connect_browser.py does it
in a real browser.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from soundmates.recommend.connected import store_connected
from soundmates.spotify import connect as C
from soundmates.world import oauth

REPO_ROOT = Path(__file__).resolve().parents[1]
REDIRECT = "http://127.0.0.1:9/"


# --- pieces --------------------------------------------------------------------------------------------
def test_pending_state_is_single_use_private_and_expires(tmp_path):
    now = [1000.0]
    store = C.PendingStore(tmp_path / "pending", ttl_s=600, clock=lambda: now[0])
    p = store.create(REDIRECT, "verifier-1")
    path = tmp_path / "pending" / f"{p.state}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(p.state) >= 32
    got = store.take(p.state)
    assert got == p
    with pytest.raises(C.StateMismatch, match="already used|not started"):
        store.take(p.state)  # single use
    with pytest.raises(C.StateMismatch):
        store.take("x" * 43)  # never issued
    with pytest.raises(C.StateMismatch):
        store.take("../../etc/passwd")  # not even looked up
    with pytest.raises(C.StateMismatch):
        store.take(None)

    old = store.create(REDIRECT, "verifier-2")
    now[0] += 601
    with pytest.raises(C.StateExpired, match="10 minutes"):
        store.take(old.state)
    assert not list((tmp_path / "pending").glob("*.json"))  # an expired entry is gone too

    stale = store.create(REDIRECT, "v3")
    now[0] += 601
    fresh = store.create(REDIRECT, "v4")  # creating purges what expired
    assert not (tmp_path / "pending" / f"{stale.state}.json").exists()
    assert store.take(fresh.state).code_verifier == "v4"


def test_token_store_is_private_atomic_and_handles_odd_ids(tmp_path):
    store = C.TokenStore(tmp_path / "tokens")
    for uid in ("c#4", "françois_7", "a.b", "1000000001"):
        store.save(uid, {"access_token": "A", "refresh_token": f"R-{uid}", "expires_at": 1, "scope": "x", "junk": "dropped"})
        assert stat.S_IMODE(store.path(uid).stat().st_mode) == 0o600
        assert store.load(uid)["refresh_token"] == f"R-{uid}"
        assert "junk" not in store.load(uid)
    assert sorted(store.accounts()) == sorted(["c#4", "françois_7", "a.b", "1000000001"])
    store.path("a.b").write_text("{torn", encoding="utf-8")
    assert store.load("a.b") is None  # unreadable = not connected, never a crash
    assert store.delete("c#4") and store.load("c#4") is None and not store.delete("c#4")


def test_redirect_uris_and_urls_from_settings(settings):
    assert C.loopback_redirect_uri(8888) == "http://127.0.0.1:8888/"
    assert C.loopback_redirect_uri(8888, "::1") == "http://[::1]:8888/"
    with pytest.raises(C.ConnectError, match="localhost"):
        C.loopback_redirect_uri(8888, "localhost")
    with pytest.raises(C.ConnectError, match="port"):
        C.loopback_redirect_uri(0)
    with pytest.raises(C.ConnectError, match="localhost"):
        C.check_redirect_uri("http://localhost:8501/")
    with pytest.raises(C.ConnectError):
        C.check_redirect_uri("http://example.com:8501/")
    assert C.check_redirect_uri("https://soundmates.example/cb") == "https://soundmates.example/cb"
    assert C.authorize_url_of(settings) == "https://accounts.spotify.com/authorize"
    assert (
        C.authorize_url_of(settings.model_copy(update={"spotify_token_url": "http://127.0.0.1:5/api/token"}))
        == "http://127.0.0.1:5/authorize"
    )
    assert C.authorize_url_of(settings.model_copy(update={"spotify_auth_url": "http://x/auth"})) == "http://x/auth"
    assert set(C.SCOPES.split()) == {
        "user-top-read",
        "user-library-read",
        "user-follow-read",
        "playlist-read-private",
        "playlist-read-collaborative",
        "playlist-modify-private",  # saving a blend (tests/test_blend_cli.py)
    }


def test_missing_client_id_is_a_clear_error(settings, monkeypatch):
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    with pytest.raises(C.ConnectError, match="SPOTIPY_CLIENT_ID"):
        C.SpotifyConnect(settings, redirect_uri=REDIRECT, client_id="")


# --- the flow against the local server ----------------------------------------------------------------------
@pytest.fixture
def dev(spotify_server, monkeypatch):
    srv = spotify_server(mode="development")
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET")  # PKCE: a client id and no secret
    return srv


def _flow():
    from soundmates.config import get_settings

    return C.SpotifyConnect(get_settings(), redirect_uri=REDIRECT)


def _login(url: str, user_id: str) -> str:
    """What the person does in the browser: log in; returns the URL Spotify redirects to."""
    resp = requests.get(url, params={"login_as": user_id}, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    return resp.headers["Location"]


def test_connect_end_to_end_stores_only_the_tokens(dev, settings, caplog):
    caplog.set_level(logging.DEBUG)
    user = oauth.allowlist(dev)[0]
    flow = _flow()
    url, state = flow.start()
    assert url.startswith(f"{dev.base_url}/authorize?") and f"state={state}" in url and "code_challenge_method=S256" in url
    account = flow.finish_from_url(_login(url, user))
    assert account.user_id == user and set(account.scope.split()) == set(C.SCOPES.split())
    stored = flow.tokens.load(user)
    assert stored["refresh_token"] and stat.S_IMODE(flow.tokens.path(user).stat().st_mode) == 0o600
    assert stored["access_token"] not in caplog.text and stored["refresh_token"] not in caplog.text

    profile, summary = C.fetch_profile(flow.client(user), settings)
    assert profile.source == "oauth" and profile.user_id == user
    # Development mode: the owned and the collaborative playlists are read, the merely followed one is not.
    assert summary.playlists_not_readable == 1 and summary.playlists_refused == 0
    assert summary.playlists_read == summary.playlists_listed - 1
    top = next(p for p in profile.playlists if p.id == C.TOP_TRACKS_PLAYLIST_ID)
    weights = [it.weight for it in top.items]
    assert weights[0] == pytest.approx(C.TOP_TRACK_MAX_WEIGHT) and weights[-1] == pytest.approx(1.0)
    assert weights == sorted(weights, reverse=True) and len(weights) == summary.top_tracks
    assert any(p.id == C.SAVED_TRACKS_PLAYLIST_ID for p in profile.playlists)
    assert all(t.artist_ids for t in profile.tracks.values())
    assert set(profile.artists) == {a for t in profile.tracks.values() for a in t.artist_ids}
    assert summary.calls_by_endpoint["me_top_tracks"] == 1 and summary.calls_by_endpoint["playlist_items"] >= 1
    # Consent rule: nothing personal on disk (no profile, no raw pages of this user).
    assert not settings.profiles_dir.exists() or not any(settings.profiles_dir.iterdir())
    assert not (settings.raw_dir / "users").exists()
    assert stored["access_token"] not in caplog.text


def test_state_mismatch_and_denial_are_rejected_and_store_nothing(dev):
    user = oauth.allowlist(dev)[0]
    flow = _flow()
    url, state = flow.start()
    redirect = _login(url, user)
    forged = redirect.replace(f"state={state}", "state=" + "A" * 43)
    with pytest.raises(C.StateMismatch, match="state mismatch"):
        flow.finish_from_url(forged)
    assert flow.tokens.accounts() == []
    # The genuine redirect still works once, then never again (a replay).
    assert flow.finish_from_url(redirect).user_id == user
    with pytest.raises(C.StateMismatch):
        flow.finish_from_url(redirect)

    url2, state2 = flow.start()
    with pytest.raises(C.AuthorizationDenied, match="cancelled"):
        flow.finish(code=None, state=state2, error="access_denied")
    with pytest.raises(C.StateMismatch):  # a denial used the state up as well
        flow.finish(code="x", state=state2)


def test_a_tampered_verifier_fails_at_the_token_endpoint(dev):
    flow = _flow()
    url, state = flow.start()
    path = flow.pending.root / f"{state}.json"
    data = json.loads(path.read_text())
    data["code_verifier"] = "z" * 60
    path.write_text(json.dumps(data))
    with pytest.raises(C.TokenExchangeFailed, match="code_verifier was incorrect"):
        flow.finish_from_url(_login(url, oauth.allowlist(dev)[0]))
    assert flow.tokens.accounts() == []


def test_refresh_persists_the_new_single_use_token(dev):
    user = oauth.allowlist(dev)[0]
    flow = _flow()
    url, _ = flow.start()
    flow.finish_from_url(_login(url, user))
    before = flow.tokens.load(user)
    # The access token ran out: the next call refreshes.
    flow.tokens.save(user, before | {"expires_at": 0})
    client = flow.client(user)
    assert client.get("me", "me")["id"] == user
    assert client.token_requests == 1
    after = flow.tokens.load(user)
    assert after["refresh_token"] != before["refresh_token"] and after["access_token"] != before["access_token"]
    assert after["expires_at"] > time.time() + 600
    # The server rejects the old refresh token now; the stored new one still works.
    old = requests.post(
        dev.token_url,
        data={"grant_type": "refresh_token", "refresh_token": before["refresh_token"], "client_id": "test-id"},
        timeout=10,
    )
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"
    flow.tokens.save(user, flow.tokens.load(user) | {"expires_at": 0})
    assert flow.client(user).get("me", "me")["id"] == user

    # A spent refresh token on disk (e.g. restored from a backup): connect again, said plainly.
    flow.tokens.save(user, before | {"expires_at": 0})
    with pytest.raises(C.ReconnectNeeded, match="connect again"):
        flow.client(user).get("me", "me")


def test_a_rejected_access_token_is_refreshed_not_the_account_lost(dev):
    user = oauth.allowlist(dev)[0]
    flow = _flow()
    url, _ = flow.start()
    flow.finish_from_url(_login(url, user))
    oauth.state_of(dev).access.clear()  # the server forgot the access token (401), the refresh token stays good
    client = flow.client(user)
    assert client.get("me", "me")["id"] == user
    assert client.retries.get("401") == 1 and client.token_requests == 1
    assert flow.tokens.load(user)["refresh_token"]


def test_not_connected_account_is_a_clear_error(dev):
    with pytest.raises(C.NotConnected, match="connect with Spotify first"):
        _flow().client("nobody")


def test_consent_stores_the_profile_and_queues_it(dev, settings):
    from soundmates.profiles import ProfileRepository
    from soundmates.store import get_store, inbox

    user = oauth.allowlist(dev)[1]
    flow = _flow()
    url, _ = flow.start()
    flow.finish_from_url(_login(url, user))
    profile, _ = C.fetch_profile(flow.client(user), settings)
    assert ProfileRepository(settings.profiles_dir).load(user) is None
    entry = store_connected(profile, settings)
    assert entry.user_id == user and entry.status == "pending"
    assert ProfileRepository(settings.profiles_dir).load(user).source == "oauth"
    assert inbox.get(get_store(settings), user).status == "pending"
    with pytest.raises(ValueError, match="source"):
        store_connected(profile.model_copy(update={"source": "spotify"}), settings)


# --- the CLI -----------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_cli(port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "soundmates.cli.main", "connect", "--port", str(port), "--timeout", "60", *extra],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _authorize_url(proc: subprocess.Popen, stream: str = "stderr") -> str:
    """The URL the CLI prints (on stderr with --json, where stdout is kept for the one JSON object)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = getattr(proc, stream).readline()
        if not line:
            break
        if "/authorize?" in line:
            return line.strip()
    proc.kill()
    pytest.fail(f"the CLI printed no authorize URL: {proc.communicate()}")


def test_cli_connect_json(dev):
    port = _free_port()
    proc = _start_cli(port, "--json")
    try:
        url = _authorize_url(proc)
        assert f"redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2F" in url
        done = requests.get(url, params={"login_as": oauth.allowlist(dev)[0]}, timeout=30)  # follows the redirect
        assert done.status_code == 200 and "Soundmates received" in done.text
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    result = json.loads(out)  # exactly one JSON object on stdout
    assert result["account"]["user_id"] == oauth.allowlist(dev)[0]
    assert result["profile"]["tracks"] > 0 and result["stored"] is False


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_connect_refused_login_fails_clearly(dev, small_world, as_json):
    from tests.fixtures.spotify import world_user_ids

    port = _free_port()
    proc = _start_cli(port, *(["--json"] if as_json else []))
    try:
        url = _authorize_url(proc, "stderr" if as_json else "stdout")
        forged = requests.get(f"http://127.0.0.1:{port}/", params={"code": "x", "state": "B" * 43}, timeout=10)
        assert forged.status_code == 200
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 2 and "state mismatch" in err
    if as_json:
        assert "state mismatch" in json.loads(out)["error"]
    outsider = next(u for u in world_user_ids(small_world) if u not in oauth.allowlist(dev))
    refused = requests.get(url, params={"login_as": outsider}, allow_redirects=False, timeout=10)
    assert refused.status_code == 403 and oauth.NOT_REGISTERED in refused.text


def test_cli_help():
    out = subprocess.run(
        [sys.executable, "-m", "soundmates.cli.main", "connect", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "--port" in out.stdout and "--json" in out.stdout


def test_fetch_survives_api_faults_with_bounded_retries(spotify_server, monkeypatch, settings):
    from soundmates.config import get_settings, reset_settings
    from soundmates.world.server import FaultConfig

    srv = spotify_server(mode="development", faults=FaultConfig(rate_429=0.15, rate_5xx=0.15, retry_after=0, seed=11))
    monkeypatch.setenv("SOUNDMATES_SPOTIFY_BACKOFF_S", "0.001")
    reset_settings()
    user = oauth.allowlist(srv)[2]
    flow = _flow()
    url, _ = flow.start()
    flow.finish_from_url(_login(url, user))
    client = flow.client(user)
    profile, summary = C.fetch_profile(client, get_settings())
    assert profile.tracks and sum(client.retries.values()) > 0
    assert srv.stats()["faults"]  # the faults really happened


def test_an_account_without_music_is_a_clear_error(dev, small_world, monkeypatch):
    from soundmates.world.generator import SHOWCASE
    from tests.fixtures.spotify import world_user_ids

    empty = world_user_ids(small_world)[SHOWCASE["no_public_playlists"]]
    oauth.configure(dev, allowlist=[empty])
    flow = _flow()
    url, _ = flow.start()
    flow.finish_from_url(_login(url, empty))
    # No playlist of their own: what they have is the one they collaborate on; no top or saved tracks.
    profile, summary = C.fetch_profile(flow.client(empty))
    assert [p.owner_id != empty for p in profile.playlists] == [True]
    assert summary.top_tracks == summary.saved_tracks == 0 and profile.tracks

    def nothing(app, user):
        return []

    monkeypatch.setattr(oauth, "collaborations", nothing)  # not even that one
    with pytest.raises(C.ConnectError, match="nothing to go on"):
        C.fetch_profile(flow.client(empty))
