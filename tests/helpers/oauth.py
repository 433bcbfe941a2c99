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
