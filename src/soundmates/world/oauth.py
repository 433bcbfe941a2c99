"""OAuth on the local Spotify server: ``/authorize``, ``/api/token`` and the state behind them (:class:`OAuthState`).

What a Spotify app meets for "Connect with Spotify", reproduced so the whole flow runs against a
generated world:

- ``GET /authorize?client_id&response_type=code&redirect_uri&code_challenge_method=S256&code_challenge
  &state&scope`` shows a tiny login/consent page listing the users one may log in as (or takes
  ``login_as=<user id>`` for automation), then redirects to ``redirect_uri?code=…&state=…``.
  A bad redirect URI (``localhost`` included: Spotify accepts only loopback literals or https) answers
  ``INVALID_CLIENT: Invalid redirect URI``.
- ``POST /api/token`` grants ``authorization_code`` (PKCE S256 verified: ``invalid_grant`` /
  ``code_verifier was incorrect``; codes single-use and short-lived) and ``refresh_token`` (rotating:
  each refresh token is single-use, the old one is rejected afterwards).
- ``/v1/me…`` (``world/me.py``) serves the user a token belongs to; the scopes of the grant are enforced.
- Development mode: only the allow-listed users (at most 5) may log in, the others get Spotify's
  "User not registered in the Developer Dashboard" 403, and a user token reads the items of a playlist
  only if the user owns or collaborates on it (else 403).

The user's data is derived from the world: top tracks and artists are the ones their playlists hold
most often, they follow every other one of their top artists, collaborate on the first playlist of the
next user and follow (without collaborating) the first playlist of the user after that.

The state lives in :class:`OAuthState` (its own lock; the server only holds one); the pages and
redirects ``/authorize`` answers with, and the redirect-URI rules, are rendered by ``oauth_pages``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import threading
import time
from base64 import b64decode
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from soundmates.world.directory import World
from soundmates.world.oauth_pages import html_page, login_page, redirect, valid_redirect, with_query
from soundmates.world.params import SHOWCASE
from soundmates.world.request import Request, Response, json_response

SCOPES_KNOWN = frozenset(
    "ugc-image-upload user-read-playback-state user-modify-playback-state user-read-currently-playing "
    "app-remote-control streaming playlist-read-private playlist-read-collaborative playlist-modify-private "
    "playlist-modify-public user-follow-modify user-follow-read user-read-playback-position user-top-read "
    "user-read-recently-played user-library-modify user-library-read user-read-email user-read-private".split()
)
DEV_MODE_MAX_USERS = 5  # Spotify's limit for development-mode apps (Feb 2026)
CODE_TTL_S = 120.0  # authorization codes are short-lived (Spotify: minutes)
ACCESS_TTL_S = 3600
TOP_LIMIT = 50  # /me/top/* serve at most this many items in all
FOLLOWED_MAX = 30

# Spotify's own texts.
INVALID_REDIRECT = "INVALID_CLIENT: Invalid redirect URI"
INVALID_CLIENT = "INVALID_CLIENT: Invalid client"
NOT_REGISTERED = "User not registered in the Developer Dashboard"


@dataclass
class _Code:
    user: int
    client_id: str
    redirect_uri: str
    challenge: str | None
    scopes: frozenset[str]
    expires_at: float


@dataclass
class Grant:
    """What a refresh token or an access token stands for."""

    user: int
    client_id: str
    scopes: frozenset[str]
    expires_at: float = 0.0


class OAuthState:
    """One server's OAuth side: codes, tokens and the development-mode allowlist (in memory, like a session).

    It owns its lock; ``issue_token`` signs access tokens the way the API's auth check accepts them.
    """

    def __init__(self, world: World, mode: str, issue_token: Callable[[], str]):
        self.world = world
        self.mode = mode
        self._issue_token = issue_token
        self.allowlist_ids: list[str] | None = None  # None = the default five (see default_allowlist)
        self.code_ttl_s = CODE_TTL_S
        self.access_ttl_s = ACCESS_TTL_S
        self.redirect_uris: list[str] | None = None  # None = any loopback literal or https URI
        self.codes: dict[str, _Code] = {}
        self.refresh: dict[str, Grant] = {}
        self.access: dict[str, Grant] = {}
        self.lock = threading.Lock()

    # --- configuration -------------------------------------------------------------------------
    def configure(
        self,
        *,
        allowlist: list[str] | None = None,
        access_ttl_s: int | None = None,
        code_ttl_s: float | None = None,
        redirect_uris: list[str] | None = None,
    ) -> OAuthState:
        """Set the development-mode allowlist (≤ 5 user ids of the world), token/code lifetimes, redirect URIs."""
        if allowlist is not None:
            allowlist = list(allowlist)
            if len(allowlist) > DEV_MODE_MAX_USERS:
                raise ValueError(f"development mode allows at most {DEV_MODE_MAX_USERS} users, got {len(allowlist)}")
            unknown = [u for u in allowlist if self.world.user_index(u) is None]
            if unknown:
                raise ValueError(f"allowlist names users this world does not have: {unknown}")
            self.allowlist_ids = allowlist
        if access_ttl_s is not None:
            self.access_ttl_s = int(access_ttl_s)
        if code_ttl_s is not None:
            self.code_ttl_s = float(code_ttl_s)
        if redirect_uris is not None:
            self.redirect_uris = list(redirect_uris)
        return self

    def default_allowlist(self) -> list[str]:
        """The first five users that are no showcase edge case (users 0–8 hold the odd id forms)."""
        special = set(SHOWCASE.values())
        ids = self.world.user_ids
        return [ids[i] for i in range(len(ids)) if i not in special][:DEV_MODE_MAX_USERS]

    def allowlist(self) -> list[str]:
        return list(self.allowlist_ids) if self.allowlist_ids is not None else self.default_allowlist()

    def may_log_in(self, user_id: str) -> bool:
        return self.mode != "development" or user_id in self.allowlist()

    # --- what a token stands for ---------------------------------------------------------------
    def user_grant(self, access_token: str) -> Grant | None:
        """The user grant of an access token; None for an app (client-credentials) token.

        Raises :class:`~soundmates.world.errors.ApiError` 401 when the user token expired."""
        from soundmates.world.errors import ApiError

        g = self.access.get(access_token)
        if g is not None and g.expires_at < time.time():
            raise ApiError(401, "The access token expired")
        return g

    def collaborations(self, user: int) -> list:
        return collaborations(self.world, user)

    def followed_playlists(self, user: int) -> list:
        return followed_playlists(self.world, user)

    def check_playlist_access(self, access_token: str, endpoint: str, playlist_id: str | None) -> None:
        """Development mode, user token: a playlist's items only for its owner or a collaborator (else 403)."""
        from soundmates.world.errors import ApiError

        if self.mode != "development" or endpoint != "playlist_items" or playlist_id is None:
            return
        g = self.user_grant(access_token)
        if g is None:
            return  # app tokens keep the server's existing behaviour
        pl = self.world.playlist(playlist_id)
        if pl is not None and pl.owner != g.user and pl.id not in {p.id for p in self.collaborations(g.user)}:
            raise ApiError(403, "Forbidden")

    # --- /authorize ----------------------------------------------------------------------------
    def authorize(self, req: Request) -> Response:
        """``GET /authorize``: the login/consent page, or the redirect back to the app."""
        q = {k: v[-1] for k, v in parse_qs(req.raw_query, keep_blank_values=True).items()}
        client_id = q.get("client_id", "")
        redirect_uri = q.get("redirect_uri", "")
        if not client_id:
            return html_page(400, "Error", f"<p class='error'>{INVALID_CLIENT}</p>")
        if not valid_redirect(redirect_uri, self.redirect_uris):
            return html_page(400, "Error", f"<p class='error'>{INVALID_REDIRECT}</p>")
        state = q.get("state")

        def back(**params: str) -> Response:
            if state is not None:
                params["state"] = state
            return redirect(with_query(redirect_uri, params))

        # From here on errors go back to the app, as Spotify does once the redirect URI is known good.
        if q.get("response_type") != "code":
            return back(error="unsupported_response_type")
        scopes = frozenset(q.get("scope", "").replace(",", " ").split())
        if scopes - SCOPES_KNOWN:
            return back(error="invalid_scope")
        challenge = q.get("code_challenge") or None
        if challenge is not None and q.get("code_challenge_method") != "S256":
            return back(error="invalid_request", error_description="code_challenge_method must be S256")
        if q.get("deny"):
            return back(error="access_denied")
        login_as = q.get("login_as")
        if login_as is None:
            return login_page(q, self.allowlist() if self.mode == "development" else self.world.user_ids[:20], self.world)
        user = self.world.user_index(login_as)
        if user is None:
            return html_page(404, "Log in", f"<p class='error'>No such user: {html.escape(login_as)}</p>")
        if not self.may_log_in(login_as):
            return html_page(
                403,
                "Not registered",
                f"<p class='error' id='not-registered'>{NOT_REGISTERED}</p>"
                "<p>This app is in development mode: only the users its owner added to the app's "
                "allowlist may log in.</p>",
            )
        code = "AQ" + secrets.token_urlsafe(48)
        with self.lock:
            self._expire()
            self.codes[code] = _Code(user, client_id, redirect_uri, challenge, scopes, time.time() + self.code_ttl_s)
        return back(code=code)

    # --- /api/token ----------------------------------------------------------------------------
    def token(self, req: Request) -> Response:
        """``POST /api/token``: client credentials (app tokens), authorization code and refresh grants."""
        status, payload = self._token(req)
        return json_response(status, payload)

    def _token(self, req: Request) -> tuple[int, dict]:
        if req.method != "POST":
            return 405, {"error": "invalid_request", "error_description": "Only POST is supported"}
        form = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
        client_id = (form.get("client_id") or [""])[-1]
        client_secret = (form.get("client_secret") or [""])[-1]
        auth = req.header("Authorization")
        if auth.lower().startswith("basic "):
            try:
                client_id, _, client_secret = b64decode(auth[6:].strip(), validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return 400, {"error": "invalid_client", "error_description": "Invalid client"}
        grant = (form.get("grant_type") or [""])[-1]
        if not grant:
            return 400, {"error": "unsupported_grant_type", "error_description": "grant_type parameter is missing"}
        if grant in ("authorization_code", "refresh_token"):
            return self._user_grant(grant, form, client_id, client_secret)
        if grant != "client_credentials":
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "grant_type must be client_credentials, authorization_code or refresh_token",
            }
        if not client_id or not client_secret:
            return 400, {"error": "invalid_client", "error_description": "Invalid client"}
        return 200, {"access_token": self._issue_token(), "token_type": "Bearer", "expires_in": 3600}

    def _user_grant(self, grant: str, form: dict[str, list[str]], client_id: str, client_secret: str) -> tuple[int, dict]:
        """The ``authorization_code`` and ``refresh_token`` grants."""

        def field_(name: str) -> str:
            return (form.get(name) or [""])[-1]

        if not client_id:
            return 400, {"error": "invalid_client", "error_description": "Invalid client"}
        with self.lock:
            self._expire()
            if grant == "authorization_code":
                return self._code_grant(field_, client_id, client_secret)
            # refresh_token: rotating, so a refresh token works once.
            old = field_("refresh_token")
            if not old:
                return 400, {"error": "invalid_request", "error_description": "refresh_token must be supplied"}
            g = self.refresh.get(old)
            if g is None:
                return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
            if g.client_id != client_id:
                return 400, {"error": "invalid_client", "error_description": "Invalid client"}
            del self.refresh[old]
            return 200, self._issue(g.user, client_id, g.scopes)

    def _code_grant(self, field_: Callable[[str], str], client_id: str, client_secret: str) -> tuple[int, dict]:
        """``authorization_code`` (the caller holds the lock)."""
        code_value = field_("code")
        if not code_value:
            return 400, {"error": "invalid_request", "error_description": "code must be supplied"}
        code = self.codes.pop(code_value, None)  # single use: gone whatever happens next
        if code is None:
            return 400, {"error": "invalid_grant", "error_description": "Invalid authorization code"}
        if code.client_id != client_id:
            return 400, {"error": "invalid_client", "error_description": "Invalid client"}
        if field_("redirect_uri") != code.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "Invalid redirect URI"}
        if code.challenge is not None:
            verifier = field_("code_verifier")
            if not verifier:
                return 400, {"error": "invalid_request", "error_description": "code_verifier required"}
            if not hmac.compare_digest(_s256(verifier), code.challenge):
                return 400, {"error": "invalid_grant", "error_description": "code_verifier was incorrect"}
        elif not client_secret:
            # Without PKCE the code is only worth something together with the app's secret.
            return 400, {"error": "invalid_client", "error_description": "Invalid client secret"}
        return 200, self._issue(code.user, client_id, code.scopes)

    def _expire(self) -> None:
        now = time.time()
        for code in [c for c, v in self.codes.items() if v.expires_at < now]:
            del self.codes[code]
        for tok in [t for t, v in self.access.items() if v.expires_at < now - 3600]:
            del self.access[tok]

    def _issue(self, user: int, client_id: str, scopes: frozenset[str]) -> dict:
        access = self._issue_token()  # signed like the client-credentials tokens, so the API's auth check accepts it
        refresh = "AQ" + secrets.token_urlsafe(64)
        self.access[access] = Grant(user, client_id, scopes, time.time() + self.access_ttl_s)
        self.refresh[refresh] = Grant(user, client_id, scopes)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl_s,
            "refresh_token": refresh,
            "scope": " ".join(sorted(scopes)),
        }


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii", "replace")).digest()).decode().rstrip("=")


# --- what a user shares with others (module functions: tests replace them to vary the world) --------
def collaborations(world: Any, user: int) -> list:
    """Playlists of others this user collaborates on: the first playlist of the next user.

    ``world``: a :class:`World` or a server holding one."""
    world = getattr(world, "world", world)
    n = world.n_users
    return world.playlists((user + 1) % n)[:1] if n >= 2 else []


def followed_playlists(world: Any, user: int) -> list:
    """Playlists of others this user follows without collaborating: the first of the user after next."""
    world = getattr(world, "world", world)
    n = world.n_users
    return world.playlists((user + 2) % n)[:1] if n >= 3 else []


# --- the server's OAuth side, by server (what tests and the Connect flow call) ---------------------
def state_of(server: Any) -> OAuthState:
    """The OAuth state of a :class:`~soundmates.world.server.SpotifyServer`."""
    return server.oauth


def configure(server: Any, **settings: Any) -> OAuthState:
    """:meth:`OAuthState.configure` of a server (allowlist, access_ttl_s, code_ttl_s, redirect_uris)."""
    return server.oauth.configure(**settings)


def default_allowlist(server: Any) -> list[str]:
    return server.oauth.default_allowlist()


def allowlist(server: Any) -> list[str]:
    return server.oauth.allowlist()


__all__ = [
    "OAuthState",
    "Grant",
    "configure",
    "state_of",
    "allowlist",
    "default_allowlist",
    "DEV_MODE_MAX_USERS",
    "TOP_LIMIT",
    "NOT_REGISTERED",
    "INVALID_REDIRECT",
    "INVALID_CLIENT",
]
