"""Plain-HTTP steps of the local server's OAuth flow (authorize, code, token exchange, login) for tests."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

REDIRECT = "http://127.0.0.1:9/cb"
SCOPES = "user-top-read user-library-read user-follow-read playlist-read-private playlist-read-collaborative"


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _authorize(
    srv, *, login_as: str | None, verifier: str | None = "v" * 50, redirect=REDIRECT, scope=SCOPES, state="s" * 20, **extra
) -> requests.Response:
    params = {"client_id": "cid", "response_type": "code", "redirect_uri": redirect, "state": state, "scope": scope}
    if verifier is not None:
        params |= {"code_challenge_method": "S256", "code_challenge": _challenge(verifier)}
    if login_as is not None:
        params["login_as"] = login_as
    params |= extra
    return requests.get(f"{srv.base_url}/authorize?{urlencode(params)}", allow_redirects=False, timeout=10)


def _code(resp: requests.Response) -> str:
    assert resp.status_code == 302, resp.text
    q = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert q["state"] == ["s" * 20]
    return q["code"][0]


def _token(srv, **form) -> requests.Response:
    return requests.post(srv.token_url, data=form, timeout=10)


def _exchange(srv, code: str, verifier: str = "v" * 50, redirect: str = REDIRECT) -> requests.Response:
    return _token(srv, grant_type="authorization_code", code=code, redirect_uri=redirect, client_id="cid", code_verifier=verifier)


def _login(srv, user_id: str, scope: str = SCOPES) -> dict:
    resp = _exchange(srv, _code(_authorize(srv, login_as=user_id, scope=scope)))
    assert resp.status_code == 200, resp.text
    return resp.json()


def connect_account(user_id: str) -> None:
    """Connect with Spotify as ``user_id`` (PKCE against the configured local server); tokens stored under the data dir."""
    from soundmates.config import get_settings
    from soundmates.spotify.connect import SpotifyConnect

    flow = SpotifyConnect(get_settings(), redirect_uri=REDIRECT)
    url, _ = flow.start()
    resp = requests.get(url, params={"login_as": user_id}, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    flow.finish_from_url(resp.headers["Location"])


def playlists_of(user_id: str, prefix: str = "Soundmates blend") -> list[dict]:
    """The connected ``user_id``'s playlists named ``prefix…`` on the server, each with its item ids in order (``"ids"``)."""
    from soundmates.config import get_settings
    from soundmates.spotify.connect import SpotifyConnect

    token = SpotifyConnect(get_settings(), redirect_uri=REDIRECT).tokens.load(user_id)["access_token"]
    api, auth = get_settings().spotify_api_url, {"Authorization": f"Bearer {token}"}
    mine = requests.get(api + "me/playlists?limit=50", headers=auth, timeout=10).json()["items"]
    mine = [p for p in mine if p["name"].startswith(prefix)]
    for playlist in mine:
        ids, url = [], f"{api}playlists/{playlist['id']}/items?limit=50"
        while url:
            page = requests.get(url, headers=auth, timeout=10).json()
            ids += [row["item"]["id"] for row in page["items"]]
            url = page["next"]
        playlist["ids"] = ids
    return mine
