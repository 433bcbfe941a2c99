"""OAuth for one's own account on the local Spotify server: Authorization Code with PKCE and ``/v1/me…``.

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
- ``/v1/me``, ``/v1/me/playlists`` (owned, collaborative and followed playlists), ``/v1/me/top/artists``,
  ``/v1/me/top/tracks``, ``/v1/me/tracks`` and ``/v1/me/following?type=artist`` for the user a token
  belongs to; the scopes of the grant are enforced.
- Development mode: only the allow-listed users (at most 5) may log in, the others get Spotify's
  "User not registered in the Developer Dashboard" 403, and a user token reads the items of a playlist
  only if the user owns or collaborates on it (else 403).

The user's data is derived from the world: top tracks and artists are the ones their playlists hold
most often, they follow every other one of their top artists, collaborate on the first playlist of the
next user and follow (without collaborating) the first playlist of the user after that.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlencode, urlsplit

if TYPE_CHECKING:  # the server imports this module; no import cycle at run time
    from soundmates.world.server import SpotifyServer

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
class _Grant:
    """What a refresh token or an access token stands for."""

    user: int
    client_id: str
    scopes: frozenset[str]
    expires_at: float = 0.0


@dataclass
class OAuthState:
    """Per-server OAuth state: codes, tokens, the development-mode allowlist (in memory, like a session)."""

    allowlist: list[str] | None = None  # None = the default five (see default_allowlist)
    code_ttl_s: float = CODE_TTL_S
    access_ttl_s: int = ACCESS_TTL_S
    redirect_uris: list[str] | None = None  # None = any loopback literal or https URI (the app's registered ones)
    codes: dict[str, _Code] = field(default_factory=dict)
    refresh: dict[str, _Grant] = field(default_factory=dict)
    access: dict[str, _Grant] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def state_of(app: SpotifyServer) -> OAuthState:
    st = getattr(app, "_oauth_state", None)
    if st is None:
        with app._lock:
            st = getattr(app, "_oauth_state", None)
            if st is None:
                st = OAuthState()
                app._oauth_state = st
    return st


def configure(app: SpotifyServer, *, allowlist: list[str] | None = None, access_ttl_s: int | None = None,
              code_ttl_s: float | None = None, redirect_uris: list[str] | None = None) -> OAuthState:
    """Set the development-mode allowlist (≤ 5 user ids of the world), token/code lifetimes, registered redirect URIs."""
    st = state_of(app)
    if allowlist is not None:
        allowlist = list(allowlist)
        if len(allowlist) > DEV_MODE_MAX_USERS:
            raise ValueError(f"development mode allows at most {DEV_MODE_MAX_USERS} users, got {len(allowlist)}")
        unknown = [u for u in allowlist if app.world.user_index(u) is None]
        if unknown:
            raise ValueError(f"allowlist names users this world does not have: {unknown}")
        st.allowlist = allowlist
    if access_ttl_s is not None:
        st.access_ttl_s = int(access_ttl_s)
    if code_ttl_s is not None:
        st.code_ttl_s = float(code_ttl_s)
    if redirect_uris is not None:
        st.redirect_uris = list(redirect_uris)
    return st


def default_allowlist(app: SpotifyServer) -> list[str]:
    """The first five users that are no showcase edge case (users 0–8 hold the odd id forms)."""
    from soundmates.world.generator import SHOWCASE

    special = set(SHOWCASE.values())
    ids = app.world.user_ids
    return [ids[i] for i in range(len(ids)) if i not in special][:DEV_MODE_MAX_USERS]


def allowlist(app: SpotifyServer) -> list[str]:
    st = state_of(app)
    return list(st.allowlist) if st.allowlist is not None else default_allowlist(app)


def may_log_in(app: SpotifyServer, user_id: str) -> bool:
    return app.mode != "development" or user_id in allowlist(app)


# --- /authorize ----------------------------------------------------------------------------------
def _valid_redirect(uri: str, registered: list[str] | None) -> bool:
    if registered is not None:
        return uri in registered
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        _ = parts.port  # a malformed port raises
    except ValueError:
        return False
    if parts.fragment or not host:
        return False
    if parts.scheme == "https":
        return host != "localhost"
    # Since April 2025 Spotify accepts plain http only for loopback literals, never "localhost".
    return parts.scheme == "http" and host in ("127.0.0.1", "::1")


def _with_query(uri: str, params: dict[str, str]) -> str:
    sep = "&" if urlsplit(uri).query else "?"
    return uri + sep + urlencode(params)


def handle_authorize(handler, raw_query: str) -> None:
    """``GET /authorize``: the login/consent page, or the redirect back to the app."""
    app = handler.server.app
    st = state_of(app)
    q = {k: v[-1] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
    client_id = q.get("client_id", "")
    redirect_uri = q.get("redirect_uri", "")
    if not client_id:
        return _page(handler, app, 400, "Error", f"<p class='error'>{INVALID_CLIENT}</p>")
    if not _valid_redirect(redirect_uri, st.redirect_uris):
        return _page(handler, app, 400, "Error", f"<p class='error'>{INVALID_REDIRECT}</p>")
    state = q.get("state")

    def back(**params: str) -> None:
        if state is not None:
            params["state"] = state
        _redirect(handler, app, _with_query(redirect_uri, params))

    # From here on errors go back to the app, as Spotify does once the redirect URI is known good.
    if q.get("response_type") != "code":
        return back(error="unsupported_response_type")
    scopes = frozenset(q.get("scope", "").replace(",", " ").split())
    if scopes - SCOPES_KNOWN:
        return back(error="invalid_scope")
    challenge = q.get("code_challenge") or None
    method = q.get("code_challenge_method")
    if challenge is not None and method != "S256":
        return back(error="invalid_request", error_description="code_challenge_method must be S256")
    if q.get("deny"):
        return back(error="access_denied")

    login_as = q.get("login_as")
    if login_as is None:
        return _login_page(handler, app, q)
    user = app.world.user_index(login_as)
    if user is None:
        return _page(handler, app, 404, "Log in", f"<p class='error'>No such user: {html.escape(login_as)}</p>")
    if not may_log_in(app, login_as):
        return _page(handler, app, 403, "Not registered",
                     f"<p class='error' id='not-registered'>{NOT_REGISTERED}</p>"
                     "<p>This app is in development mode: only the users its owner added to the app's "
                     "allowlist may log in.</p>")
    code = "AQ" + secrets.token_urlsafe(48)
    with st.lock:
        _expire(st)
        st.codes[code] = _Code(user, client_id, redirect_uri, challenge, scopes, time.time() + st.code_ttl_s)
    back(code=code)


def _login_page(handler, app: SpotifyServer, q: dict[str, str]) -> None:
    ids = app.world.user_ids
    shown = allowlist(app) if app.mode == "development" else ids[:20]
    base = {k: v for k, v in q.items() if k not in ("login_as", "deny")}
    rows = []
    for uid in shown:
        spec = app.world.user(app.world.user_index(uid))
        name = html.escape(spec.display_name or uid)
        href = html.escape("/authorize?" + urlencode({**base, "login_as": uid}))
        rows.append(f"<li><a class='login' data-user-id='{html.escape(uid)}' href='{href}'>{name}</a> "
                    f"<small>{html.escape(uid)}</small></li>")
    hidden = "".join(f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>" for k, v in base.items())
    deny = html.escape("/authorize?" + urlencode({**base, "deny": "1"}))
    scopes = "".join(f"<li>{html.escape(s)}</li>" for s in sorted(set(q.get("scope", "").replace(",", " ").split())))
    body = (
        f"<p>An app (client id <code>{html.escape(q.get('client_id', ''))}</code>) asks to read:</p><ul>{scopes}</ul>"
        f"<p>Log in as:</p><ul id='users'>{''.join(rows)}</ul>"
        f"<form method='get' action='/authorize'>{hidden}<input name='login_as' id='login-as' placeholder='user id'>"
        f"<button type='submit' id='login-submit'>Log in</button></form>"
        f"<p><a id='deny' href='{deny}'>Cancel</a></p>"
    )
    _page(handler, app, 200, "Log in to the local Spotify", body)


def _page(handler, app: SpotifyServer, status: int, title: str, body: str) -> None:
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
           f"<body><h1>{html.escape(title)}</h1>{body}</body></html>").encode("utf-8")
    app._count("authorize", status)
    handler.send_response(status)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    handler.send_header("Content-Length", str(len(doc)))
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(doc)


def _redirect(handler, app: SpotifyServer, location: str) -> None:
    app._count("authorize", 302)
    handler.send_response(302)
    handler.send_header("Location", location)
    handler.send_header("Content-Length", "0")
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()


# --- /api/token ----------------------------------------------------------------------------------
def _expire(st: OAuthState) -> None:
    now = time.time()
    for code in [c for c, v in st.codes.items() if v.expires_at < now]:
        del st.codes[code]
    for tok in [t for t, v in st.access.items() if v.expires_at < now - 3600]:
        del st.access[tok]


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii", "replace")).digest()).decode().rstrip("=")


def _issue(app: SpotifyServer, st: OAuthState, user: int, client_id: str, scopes: frozenset[str]) -> dict:
    access = app.issue_token()  # signed like the client-credentials tokens, so the API's auth check accepts it
    refresh = "AQ" + secrets.token_urlsafe(64)
    st.access[access] = _Grant(user, client_id, scopes, time.time() + st.access_ttl_s)
    st.refresh[refresh] = _Grant(user, client_id, scopes)
    return {"access_token": access, "token_type": "Bearer", "expires_in": st.access_ttl_s,
            "refresh_token": refresh, "scope": " ".join(sorted(scopes))}


def token_grant(handler, grant: str, form: dict[str, list[str]], client_id: str, client_secret: str) -> tuple[int, dict]:
    """The ``authorization_code`` and ``refresh_token`` grants of ``POST /api/token``."""
    app = handler.server.app
    st = state_of(app)

    def field_(name: str) -> str:
        return (form.get(name) or [""])[-1]

    if not client_id:
        return 400, {"error": "invalid_client", "error_description": "Invalid client"}
    with st.lock:
        _expire(st)
        if grant == "authorization_code":
            code_value = field_("code")
            if not code_value:
                return 400, {"error": "invalid_request", "error_description": "code must be supplied"}
            code = st.codes.pop(code_value, None)  # single use: gone whatever happens next
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
            return 200, _issue(app, st, code.user, client_id, code.scopes)
        # refresh_token: rotating, so a refresh token works once.
        old = field_("refresh_token")
        if not old:
            return 400, {"error": "invalid_request", "error_description": "refresh_token must be supplied"}
        g = st.refresh.get(old)
        if g is None:
            return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
        if g.client_id != client_id:
            return 400, {"error": "invalid_client", "error_description": "Invalid client"}
        del st.refresh[old]
        return 200, _issue(app, st, g.user, client_id, g.scopes)


# --- /v1/me… --------------------------------------------------------------------------------------
def route_me(seg: list[str]):
    """``(endpoint, handler, args)`` for ``/v1/me…`` paths, as the server's router returns them."""
    n = len(seg)
    if n == 1:
        return "me", _get_me, ()
    if n == 2 and seg[1] == "playlists":
        return "me_playlists", _get_me_playlists, ()
    if n == 2 and seg[1] == "tracks":
        return "me_tracks", _get_me_tracks, ()
    if n == 2 and seg[1] == "following":
        return "me_following", _get_me_following, ()
    if n == 3 and seg[1] == "top" and seg[2] in ("artists", "tracks"):
        return f"me_top_{seg[2]}", _get_me_top, (seg[2],)
    return None, None, ()


def _bearer(handler) -> str:
    return handler.headers.get("Authorization", "").partition(" ")[2].strip()


def user_grant(handler) -> _Grant | None:
    """The user grant of this request's token; None for an app (client-credentials) token."""
    from soundmates.world.server import ApiError

    st = state_of(handler.server.app)
    g = st.access.get(_bearer(handler))
    if g is not None and g.expires_at < time.time():
        raise ApiError(401, "The access token expired")
    return g


def _me(handler, scope: str | None = None) -> int:
    from soundmates.world.server import ApiError

    g = user_grant(handler)
    if g is None:
        raise ApiError(401, "Valid user authentication required")
    if scope is not None and scope not in g.scopes:
        raise ApiError(403, "Insufficient client scope")
    app = handler.server.app
    if not may_log_in(app, app.world.user_ids[g.user]):  # removed from the allowlist after logging in
        raise ApiError(403, NOT_REGISTERED)
    return g.user


def check_playlist_access(handler, endpoint: str, args: tuple) -> None:
    """Development mode, user token: a playlist's items only for its owner or a collaborator (else 403)."""
    from soundmates.world.server import ApiError

    app = handler.server.app
    if app.mode != "development" or endpoint != "playlist_items":
        return
    g = user_grant(handler)
    if g is None:
        return  # app tokens keep the server's existing behaviour
    pl = app.world.playlist(args[0])
    if pl is not None and pl.owner != g.user and pl.id not in {p.id for p in collaborations(app, g.user)}:
        raise ApiError(403, "Forbidden")


def collaborations(app: SpotifyServer, user: int) -> list:
    """Playlists of others this user collaborates on: the first playlist of the next user."""
    n = app.world.n_users
    if n < 2:
        return []
    other = app.world.playlists((user + 1) % n)
    return other[:1]


def followed_playlists(app: SpotifyServer, user: int) -> list:
    """Playlists of others this user follows without collaborating: the first of the user after next."""
    n = app.world.n_users
    if n < 3:
        return []
    return app.world.playlists((user + 2) % n)[:1]


def _get_me(handler, *, query) -> dict:
    app = handler.server.app
    i = _me(handler)
    out = app.renderer.user(i)
    out["country"] = "SE"
    out["product"] = "premium"
    return out


def _get_me_playlists(handler, *, query) -> dict:
    from soundmates.world.server import _int_param, page

    app = handler.server.app
    i = _me(handler)
    limit = _int_param(query, "limit", 20, 1, 50)
    offset = _int_param(query, "offset", 0, 0, 100_000)
    collab = collaborations(app, i)
    pls = [(p, False) for p in app.world.playlists(i)] + [(p, True) for p in collab] + \
          [(p, False) for p in followed_playlists(app, i)]
    r = app.renderer

    def render(a: int, b: int) -> list[dict]:
        out = []
        for p, is_collab in pls[a:b]:
            obj = r.playlist_simple(p)
            obj["collaborative"] = is_collab
            obj["public"] = not is_collab
            out.append(obj)
        return out

    return page(app.api_url, "me/playlists", len(pls), offset, limit, render)


def _ranked(app: SpotifyServer, user: int) -> tuple[list[int], list[int]]:
    """(track numbers, artist indices) of the user's playlists, most frequent first (ties: first seen)."""
    from soundmates.world.generator import ROW_EPISODE, ROW_LOCAL, ROW_NULL, track_by_n

    tracks: Counter[int] = Counter()
    for pl in app.world.playlists(user):
        for kind, value in zip(pl.kinds.tolist(), pl.values.tolist()):
            if kind not in (ROW_EPISODE, ROW_LOCAL, ROW_NULL):
                tracks[value] += 1
    order = sorted(tracks, key=lambda t: -tracks[t])  # sorted is stable: ties keep first-seen order
    artists: Counter[int] = Counter()
    for t in order:
        spec = track_by_n(t)
        if spec is not None:
            artists[spec.artist] += tracks[t]
    return order, sorted(artists, key=lambda a: -artists[a])


def _get_me_top(handler, kind: str, *, query) -> dict:
    from soundmates.world.server import ApiError, _int_param, page
    from soundmates.world.generator import track_by_n

    app = handler.server.app
    i = _me(handler, "user-top-read")
    time_range = (query.get("time_range") or ["medium_term"])[-1]
    if time_range not in ("short_term", "medium_term", "long_term"):
        raise ApiError(400, "Invalid time range")
    limit = _int_param(query, "limit", 20, 1, 50)
    offset = _int_param(query, "offset", 0, 0, TOP_LIMIT)
    tracks, artists = _ranked(app, i)
    r = app.renderer
    path = f"me/top/{kind}"
    if kind == "tracks":
        chosen = tracks[:TOP_LIMIT]
        return page(app.api_url, path, len(chosen), offset, limit,
                    lambda a, b: [r.track(track_by_n(t)) for t in chosen[a:b]])
    chosen = artists[:TOP_LIMIT]
    return page(app.api_url, path, len(chosen), offset, limit, lambda a, b: [r.artist(x) for x in chosen[a:b]])


def _get_me_tracks(handler, *, query) -> dict:
    """Saved tracks ("Liked songs"): the tracks of the user's first playlist, newest save first."""
    from soundmates.world.server import _int_param, _iso, page
    from soundmates.world.generator import ROW_EPISODE, ROW_LOCAL, ROW_NULL, track_by_n

    app = handler.server.app
    i = _me(handler, "user-library-read")
    limit = _int_param(query, "limit", 20, 1, 50)
    offset = _int_param(query, "offset", 0, 0, 100_000)
    saved: list[tuple[int, int]] = []
    seen: set[int] = set()
    pls = app.world.playlists(i)
    if pls:
        pl = pls[0]
        for kind, value, ts in zip(pl.kinds.tolist(), pl.values.tolist(), pl.added_at.tolist()):
            if kind not in (ROW_EPISODE, ROW_LOCAL, ROW_NULL) and value not in seen:
                seen.add(value)
                saved.append((value, ts))
    saved.sort(key=lambda x: -x[1])
    r = app.renderer
    return page(app.api_url, "me/tracks", len(saved), offset, limit,
                lambda a, b: [{"added_at": _iso(ts), "track": r.track(track_by_n(t))} for t, ts in saved[a:b]])


def _get_me_following(handler, *, query) -> dict:
    """Followed artists, cursor-paged by the last artist id (``after``), as Spotify does."""
    from soundmates.world.generator import artist_id
    from soundmates.world.server import ApiError, _int_param

    app = handler.server.app
    i = _me(handler, "user-follow-read")
    if (query.get("type") or [""])[-1] != "artist":
        raise ApiError(400, "Bad request: type must be artist")
    limit = _int_param(query, "limit", 20, 1, 50)
    after = (query.get("after") or [None])[-1]
    followed = _ranked(app, i)[1][::2][:FOLLOWED_MAX]
    ids = [artist_id(a) for a in followed]
    if after is not None and after not in ids:
        raise ApiError(400, "Invalid after cursor")
    start = ids.index(after) + 1 if after is not None else 0
    chunk = followed[start:start + limit]
    more = start + limit < len(followed)
    last = artist_id(chunk[-1]) if chunk else None
    base = f"{app.api_url}me/following?type=artist&limit={limit}"
    r = app.renderer
    return {"artists": {
        "href": base + (f"&after={quote(after)}" if after else ""),
        "limit": limit,
        "next": f"{base}&after={quote(last)}" if more and last else None,
        "cursors": {"after": last if more else None},
        "total": len(followed),
        "items": [r.artist(a) for a in chunk],
    }}


__all__ = ["configure", "handle_authorize", "token_grant", "route_me", "check_playlist_access",
                      "allowlist", "default_allowlist", "NOT_REGISTERED", "INVALID_REDIRECT"]
