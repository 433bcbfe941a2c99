"""Connect with Spotify: Authorization Code with PKCE for one's own account (spotipy's SpotifyPKCE as shipped).

Since February 2026 the Web API refuses other people's profiles to ordinary apps, but an app in
development mode may still read the account of a person who logs in (``/me``, ``/me/playlists``,
the items of playlists they own or collaborate on, ``/me/top/*``, ``/me/following``, ``/me/tracks``).

1. :meth:`SpotifyConnect.start` makes a ``state`` and a PKCE code verifier (spotipy's
   ``get_pkce_handshake_parameters``), keeps the verifier server-side in the
   :class:`~soundmates.spotify.connect_store.PendingStore` (the redirect opens a new dashboard
   session, so nothing can be kept in the browser session; 10 min, single use) and returns
   spotipy's ``get_authorize_url``.
2. The person logs in; Spotify redirects to the loopback URI (``http://127.0.0.1:PORT/``: Spotify
   rejects ``localhost``) with ``?code=…&state=…``.
3. :meth:`SpotifyConnect.finish` takes the pending entry of that state (unknown, used or expired
   state → :class:`StateMismatch` / :class:`StateExpired`), exchanges the code with the verifier
   (``get_access_token(code, check_cache=False)``), reads ``/me`` and stores the tokens in the
   :class:`~soundmates.spotify.connect_store.TokenStore` (mode 0600). PKCE refresh tokens are
   single-use: every refresh (``refresh_access_token``) writes the new one atomically, under a file lock.
4. :func:`~soundmates.spotify.connect_profile.fetch_profile` builds the profile; it stores nothing.

No private method of spotipy is overridden: the manager never reaches its interactive prompt
because it is only ever asked for a token with a code, or to refresh; the status of a refused
token request comes from the client's response hook (spotipy's error drops it). Tokens are never
logged; the authorize/token URLs come from settings (``SOUNDMATES_SPOTIFY_TOKEN_URL``,
``SOUNDMATES_SPOTIFY_AUTH_URL``), so the local server is configuration only.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from urllib.parse import parse_qs, urlsplit

import requests
from pydantic import BaseModel
from spotipy.oauth2 import SpotifyOauthError, SpotifyPKCE

from soundmates.config import Settings, SpotifyCredentials, get_settings

from .client import TOKEN_ENDPOINT, SpotifyClient
from .connect_errors import (
    AuthorizationDenied,
    ConnectError,
    NotConnected,
    ReconnectNeeded,
    StateExpired,
    StateMismatch,
    TokenExchangeFailed,
    authorize_url_of,
    check_redirect_uri,
    loopback_redirect_uri,
)
from .connect_profile import (
    SAVED_TRACKS_PLAYLIST_ID,
    TOP_TRACK_MAX_WEIGHT,
    TOP_TRACKS_PLAYLIST_ID,
    ConnectSummary,
    fetch_profile,
)
from .connect_store import PENDING_TTL_S, AccountCache, PendingStore, TokenStore, forget_account, oauth_dir

__all__ = [
    "PENDING_TTL_S",
    "SAVED_TRACKS_PLAYLIST_ID",
    "SCOPES",
    "TOP_TRACKS_PLAYLIST_ID",
    "TOP_TRACK_MAX_WEIGHT",
    "AuthorizationDenied",
    "ConnectError",
    "ConnectSummary",
    "ConnectedAccount",
    "ConnectedClient",
    "NotConnected",
    "PendingStore",
    "ReconnectNeeded",
    "SpotifyConnect",
    "StateExpired",
    "StateMismatch",
    "TokenExchangeFailed",
    "TokenStore",
    "authorize_url_of",
    "check_redirect_uri",
    "fetch_profile",
    "forget_account",
    "loopback_redirect_uri",
]

log = logging.getLogger(__name__)

# Exactly what Soundmates reads, and the one write it offers (a blend saved as a private playlist).
SCOPES = (
    "user-top-read user-library-read user-follow-read playlist-read-private playlist-read-collaborative "
    "playlist-modify-private"  # only to save a blend into the account, when its owner asks
)


def code_challenge_of(verifier: str) -> str:
    """RFC 7636 S256: base64url(sha256(verifier)) without padding (what spotipy sent in the authorize URL)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def pkce_manager(settings: Settings, client_id: str, redirect_uri: str, cache: AccountCache, session, timeout) -> SpotifyPKCE:
    """spotipy's PKCE manager as shipped, with this app's scopes and the configured URLs (per instance)."""
    auth = SpotifyPKCE(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope=SCOPES,
        open_browser=False,
        cache_handler=cache,
        requests_session=session,
        requests_timeout=timeout,
    )
    auth.OAUTH_TOKEN_URL = settings.spotify_token_url  # public class attributes, shadowed per instance
    auth.OAUTH_AUTHORIZE_URL = authorize_url_of(settings)
    return auth


class ConnectedClient(SpotifyClient):
    """:class:`SpotifyClient` (bounded retries, typed errors, call counts) with one account's PKCE tokens."""

    def __init__(self, settings: Settings, *, client_id: str, redirect_uri: str, cache: AccountCache):
        self.cache = cache
        self.pkce: SpotifyPKCE

        def user_auth(session: requests.Session, timeout: tuple[float, float]) -> SpotifyPKCE:
            self.pkce = pkce_manager(settings, client_id, redirect_uri, cache, session, timeout)
            return self.pkce

        super().__init__(settings, SpotifyCredentials(client_id=client_id), user_auth=user_auth)

    def exchange_code(self, code: str, code_verifier: str) -> dict:
        """The tokens for an authorization code (kept in the cache); TokenExchangeFailed saying why otherwise."""
        self.pkce.code_verifier = code_verifier
        self.pkce.code_challenge = code_challenge_of(code_verifier)
        self._last_token_answer = None
        try:
            self.pkce.get_access_token(code=code, check_cache=False)
        except SpotifyOauthError as exc:
            status = self._last_token_answer[0] if self._last_token_answer else 0
            if status == 429 or status >= 500:
                raise TokenExchangeFailed(f"the token endpoint failed ({status}); try again") from None
            raise TokenExchangeFailed(
                f"Spotify refused the authorization code ({exc.error}: {exc.error_description}); start again"
            ) from None
        except requests.RequestException as exc:
            raise TokenExchangeFailed(f"the token endpoint is unreachable ({type(exc).__name__})") from None
        if self.cache.token_info is None:  # spotipy hands every token it got to the cache: none means none came back
            raise TokenExchangeFailed("the token endpoint answered no token; try again")
        return self.cache.token_info

    def _access_token(self) -> str:
        """The stored access token, refreshed under the account's lock when it ran out (refresh tokens are single-use)."""
        info = self.cache.get_cached_token()
        if not info:
            raise NotConnected("not connected: no stored tokens for this account")
        if not self.pkce.is_token_expired(info):
            return info["access_token"]
        if self.cache.user_id is None:
            return self._refresh(info)
        with self.cache.store.lock(self.cache.user_id):
            # Another process may have refreshed meanwhile: its new refresh token is on disk, ours is spent.
            info = self.cache.get_cached_token() or info
            if not self.pkce.is_token_expired(info):
                return info["access_token"]
            return self._refresh(info)

    def _refresh(self, info: dict) -> str:
        try:
            return self.pkce.refresh_access_token(info["refresh_token"])["access_token"]
        except SpotifyOauthError as exc:
            status = self._last_token_answer[0] if self._last_token_answer else 0
            if status == 429 or status >= 500:
                self._token_refused(exc)  # transient: the client's bounded retry policy handles these
            raise ReconnectNeeded(
                f"Spotify refused the stored refresh token ({exc.error_description or exc.error}): connect again"
            ) from None
        except requests.RequestException as exc:
            self._transport_error(TOKEN_ENDPOINT, exc)


class ConnectedAccount(BaseModel):
    user_id: str
    display_name: str | None = None
    scope: str = ""


class SpotifyConnect:
    """Authorization Code with PKCE for one redirect URI; see the module docstring."""

    def __init__(self, settings: Settings | None = None, *, redirect_uri: str, client_id: str | None = None):
        self.settings = settings or get_settings()
        self.client_id = client_id or SpotifyCredentials().client_id
        if not self.client_id:
            raise ConnectError(
                "no Spotify client id: set SPOTIPY_CLIENT_ID to your app's Client ID (Spotify Developer Dashboard); "
                "PKCE needs no client secret"
            )
        self.redirect_uri = check_redirect_uri(redirect_uri)
        self.pending = PendingStore(oauth_dir(self.settings) / "pending")
        self.tokens = TokenStore(oauth_dir(self.settings) / "tokens")

    def _client(self, cache: AccountCache) -> ConnectedClient:
        return ConnectedClient(self.settings, client_id=self.client_id, redirect_uri=self.redirect_uri, cache=cache)

    def start(self) -> tuple[str, str]:
        """``(authorize URL, state)``; the verifier stays on disk under the state."""
        with requests.Session() as session:  # building the URL sends nothing
            auth = pkce_manager(self.settings, self.client_id, self.redirect_uri, AccountCache(self.tokens), session, None)
            auth.get_pkce_handshake_parameters()
            pending = self.pending.create(self.redirect_uri, auth.code_verifier)
            return auth.get_authorize_url(state=pending.state), pending.state

    def finish(self, *, code: str | None, state: str | None, error: str | None = None) -> ConnectedAccount:
        """Check the state, exchange the code, read ``/me``, store the tokens under the account."""
        pending = self.pending.take(state)  # first: a forged redirect must not even get an error echoed back
        if error:
            why = "you cancelled the login" if error == "access_denied" else f"Spotify answered {error!r}"
            raise AuthorizationDenied(f"not connected: {why}")
        if not code:
            raise TokenExchangeFailed("the redirect carries no code: start again")
        if pending.redirect_uri != self.redirect_uri:
            raise StateMismatch("this state was issued for another redirect URI; start again")
        cache = AccountCache(self.tokens)
        client = self._client(cache)
        token_info = client.exchange_code(code, pending.code_verifier)
        me = client.get("me", "me")
        user_id = me.get("id")
        if not isinstance(user_id, str) or not user_id:
            raise ConnectError("Spotify's /me answer has no user id")
        cache.user_id = user_id
        self.tokens.save(user_id, cache.token_info or token_info)
        log.info("connected Spotify account %s", user_id)
        return ConnectedAccount(user_id=user_id, display_name=me.get("display_name"), scope=str(token_info.get("scope") or ""))

    def finish_from_url(self, url: str) -> ConnectedAccount:
        """:meth:`finish` from the full URL the browser was redirected to."""
        q = parse_qs(urlsplit(url).query)

        def one(key: str) -> str | None:
            values = q.get(key)
            return values[-1] if values else None

        return self.finish(code=one("code"), state=one("state"), error=one("error"))

    def client(self, user_id: str) -> ConnectedClient:
        """An API client for a connected account (refreshes and persists tokens as needed)."""
        if self.tokens.load(user_id) is None:
            raise NotConnected(f"not connected: no stored tokens for {user_id!r}; connect with Spotify first")
        return self._client(AccountCache(self.tokens, user_id))

    def disconnect(self, user_id: str) -> bool:
        return self.tokens.delete(user_id)
