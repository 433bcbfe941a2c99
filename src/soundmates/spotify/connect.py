"""Connect with Spotify: Authorization Code with PKCE for one's own account, and the profile it reads.

Since February 2026 the Web API refuses other people's profiles to ordinary apps, but an app in
development mode may still read the account of a person who logs in (``/me``, ``/me/playlists``,
the items of playlists they own or collaborate on, ``/me/top/*``, ``/me/following``, ``/me/tracks``).

The flow (spotipy's :class:`~spotipy.oauth2.SpotifyPKCE`, ``open_browser=False``):

1. :meth:`SpotifyConnect.start` makes a ``state`` and a PKCE code verifier, keeps the verifier
   server-side under ``settings.data_dir/oauth/pending/<state>.json`` (the redirect opens a new
   dashboard session, so nothing can be kept in the browser session; 10 min, single use) and returns
   the authorize URL.
2. The person logs in; Spotify redirects to the loopback URI (``http://127.0.0.1:PORT/``: Spotify
   rejects ``localhost``) with ``?code=…&state=…``.
3. :meth:`SpotifyConnect.finish` takes the pending entry of that state (unknown, used or expired
   state → :class:`StateMismatch` / :class:`StateExpired`), exchanges the code with the verifier,
   reads ``/me`` and stores the tokens under ``oauth/tokens/<safe user id>.json`` (mode 0600).
   PKCE refresh tokens are single-use: every refresh writes the new one atomically, under a file lock.
4. :func:`fetch_profile` builds the canonical :class:`~soundmates.profiles.Profile` (``source="oauth"``)
   with the ingest's own parsing; it stores nothing (the consent rule): :func:`store_connected`
   does, when the person clicks add.

Tokens are never logged; the authorize/token URLs come from settings, so the local server is
configuration only (``SOUNDMATES_SPOTIFY_TOKEN_URL``, ``SOUNDMATES_SPOTIFY_AUTH_URL``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from pydantic import BaseModel, Field
from spotipy.cache_handler import CacheHandler
from spotipy.oauth2 import SpotifyOauthError, SpotifyPKCE

from soundmates.config import Settings, SpotifyCredentials, get_settings
from soundmates.keys import storage_key
from soundmates.profiles import Playlist, PlaylistItem, Profile

from .client import SpotifyClient, _TokenHttpError
from .errors import ApiRefused, NotFound

log = logging.getLogger(__name__)

# Exactly what Soundmates reads, and the one write it offers (a blend saved as a private playlist).
SCOPES = (
    "user-top-read user-library-read user-follow-read playlist-read-private playlist-read-collaborative "
    "playlist-modify-private"  # only to save a blend into the account, when its owner asks
)
PENDING_TTL_S = 600.0  # an authorization not finished within 10 minutes is dropped
PAGE_LIMIT = 50
TOP_TIME_RANGE = "medium_term"  # ~6 months: steadier than short_term, fresher than long_term
TOP_TRACKS_PLAYLIST_ID = "soundmates:top-tracks"
SAVED_TRACKS_PLAYLIST_ID = "soundmates:saved-tracks"
# The top track weighs this many playlist rows, the last one 1: an affinity rank says more than a row.
TOP_TRACK_MAX_WEIGHT = 3.0
_STATE_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


# --- errors ----------------------------------------------------------------------------------------
class ConnectError(Exception):
    """Connecting failed; the message says why and what to do."""


class StateMismatch(ConnectError):
    """The redirect's ``state`` is not one this app handed out (or it was used already): a forged or replayed redirect."""


class StateExpired(ConnectError):
    """The authorization took longer than ``PENDING_TTL_S``."""


class AuthorizationDenied(ConnectError):
    """The person cancelled, or Spotify refused the authorization (``?error=`` in the redirect)."""


class TokenExchangeFailed(ConnectError):
    """The token endpoint refused the code (wrong verifier, used or expired code, wrong redirect URI)."""


class NotConnected(ConnectError):
    """No stored tokens for that account."""


class ReconnectNeeded(ConnectError):
    """The stored refresh token was refused (revoked, or used by another process): connect again."""


# --- settings helpers ---------------------------------------------------------------------------------
def authorize_url_of(settings: Settings) -> str:
    """``SOUNDMATES_SPOTIFY_AUTH_URL``, else the token URL's origin + ``/authorize``."""
    if settings.spotify_auth_url:
        return settings.spotify_auth_url
    parts = urlsplit(settings.spotify_token_url)
    return f"{parts.scheme}://{parts.netloc}/authorize"


def loopback_redirect_uri(port: int, host: str = "127.0.0.1") -> str:
    """``http://127.0.0.1:PORT/``; Spotify refuses ``localhost`` and plain http anywhere but loopback literals."""
    if host == "localhost":
        raise ConnectError("Spotify rejects 'localhost' in redirect URIs: use the loopback literal 127.0.0.1")
    if host not in ("127.0.0.1", "::1", "[::1]"):
        raise ConnectError(f"the redirect host must be a loopback literal (127.0.0.1 or [::1]), got {host!r}")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConnectError(f"the redirect port must be 1-65535, got {port!r}")
    if host == "::1":
        host = "[::1]"
    return f"http://{host}:{port}/"


def check_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.hostname == "localhost":
        raise ConnectError("Spotify rejects 'localhost' in redirect URIs: use http://127.0.0.1:PORT/")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.netloc.rsplit(":", 1)[0] in _LOOPBACK_HOSTS and parts.port:
        return uri
    raise ConnectError(f"redirect URI {uri!r}: Spotify accepts https, or http only on 127.0.0.1/[::1] with a port")


# --- files ----------------------------------------------------------------------------------------
def _write_private(path: Path, obj: Any) -> None:
    """Atomic JSON write with mode 0600 from the first byte (tokens and verifiers are secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _oauth_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "oauth"


def forget_account(settings: Settings, user_id: str) -> bool:
    """Delete a connected account's stored tokens ("remove me" must leave no credentials behind)."""
    return TokenStore(_oauth_dir(settings) / "tokens").delete(user_id)


@dataclass(frozen=True)
class PendingAuthorization:
    state: str
    code_verifier: str
    redirect_uri: str
    created_at: float


class PendingStore:
    """``state → (code verifier, redirect URI, created_at)`` on disk: survives a new dashboard session."""

    def __init__(self, root: Path, ttl_s: float = PENDING_TTL_S, clock=time.time):
        self.root = Path(root)
        self.ttl_s = ttl_s
        self._clock = clock

    def _path(self, state: str) -> Path:
        return self.root / f"{state}.json"

    def create(self, redirect_uri: str, code_verifier: str) -> PendingAuthorization:
        self.purge_expired()
        pending = PendingAuthorization(secrets.token_urlsafe(32), code_verifier, redirect_uri, self._clock())
        _write_private(self._path(pending.state), pending.__dict__)
        return pending

    def take(self, state: str | None) -> PendingAuthorization:
        """The pending authorization of ``state``, removed (single use); StateMismatch / StateExpired otherwise."""
        if not state or not _STATE_RE.match(state):
            raise StateMismatch("the redirect carries no valid state: it did not come from this app's authorization; start again")
        path = self._path(state)
        claimed = path.with_name(f".taken-{state}-{secrets.token_hex(4)}.json")
        try:
            os.rename(path, claimed)  # atomic: of two redirects with the same state, one wins
        except FileNotFoundError:
            raise StateMismatch(
                "state mismatch: this authorization was not started here, or was already used; start again"
            ) from None
        try:
            data = json.loads(claimed.read_text(encoding="utf-8"))
            pending = PendingAuthorization(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise StateMismatch(f"the pending authorization for this state is unreadable ({exc}); start again") from None
        finally:
            claimed.unlink(missing_ok=True)
        if self._clock() - pending.created_at > self.ttl_s:
            raise StateExpired(f"the authorization took longer than {self.ttl_s / 60:g} minutes; start again")
        return pending

    def purge_expired(self) -> int:
        if not self.root.exists():
            return 0
        n = 0
        now = self._clock()
        for p in self.root.glob("*.json"):
            try:
                created = json.loads(p.read_text(encoding="utf-8"))["created_at"]
            except (OSError, ValueError, KeyError, TypeError):
                created = 0.0 if not p.name.startswith(".tmp-") else now
            if now - float(created) > self.ttl_s:
                p.unlink(missing_ok=True)
                n += 1
        return n


class TokenStore:
    """Tokens per account: ``oauth/tokens/<safe user id>.json``, mode 0600, atomic writes."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, user_id: str) -> Path:
        return self.root / f"{storage_key(user_id)}.json"

    def lock(self, user_id: str):
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return FileLock(str(self.path(user_id)) + ".lock")

    def load(self, user_id: str) -> dict | None:
        try:
            data = json.loads(self.path(user_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            log.warning("the stored tokens of one account are unreadable: that account must connect again")
            return None
        return data if isinstance(data, dict) and data.get("refresh_token") else None

    def save(self, user_id: str, token_info: dict) -> None:
        keep = {
            k: token_info[k]
            for k in ("access_token", "refresh_token", "expires_at", "expires_in", "scope", "token_type")
            if k in token_info
        }
        _write_private(self.path(user_id), keep | {"user_id": user_id})

    def delete(self, user_id: str) -> bool:
        try:
            self.path(user_id).unlink()
            return True
        except FileNotFoundError:
            return False

    def accounts(self) -> list[str]:
        if not self.root.exists():
            return []
        from soundmates.keys import user_id_from_key

        ids = []
        for p in self.root.glob("*.json"):
            if p.name.startswith(".tmp-"):
                continue
            uid = user_id_from_key(p.stem)
            if uid is None:  # a hashed key (a long id): the file says whose it is
                try:
                    uid = json.loads(p.read_text(encoding="utf-8")).get("user_id")
                except (OSError, ValueError, AttributeError):
                    uid = None
            if isinstance(uid, str):
                ids.append(uid)
        return sorted(ids)


class _AccountCache(CacheHandler):
    """spotipy's token cache for one account: memory until the account is known, then the TokenStore.

    ``save_token_to_cache(None)`` (the client's answer to a 401) forgets the access token only:
    dropping the refresh token would lose the account.
    """

    def __init__(self, store: TokenStore, user_id: str | None = None, token_info: dict | None = None):
        self.store = store
        self.user_id = user_id
        self.token_info = token_info

    def get_cached_token(self):
        if self.user_id is not None:
            stored = self.store.load(self.user_id)
            if stored is not None:
                self.token_info = stored
        return self.token_info

    def save_token_to_cache(self, token_info):
        if token_info is None:
            current = self.get_cached_token()
            if current is not None:
                token_info = {**current, "expires_at": 0}  # the next call refreshes
            else:
                return
        self.token_info = dict(token_info)
        if self.user_id is not None:
            self.store.save(self.user_id, self.token_info)


class _PKCE(SpotifyPKCE):
    """SpotifyPKCE with per-instance URLs, no interactive prompt, a locked single-use refresh, typed errors."""

    def __init__(
        self,
        *,
        settings: Settings,
        client_id: str,
        redirect_uri: str,
        cache: _AccountCache,
        session: requests.Session,
        on_request=None,
    ):
        super().__init__(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=SCOPES,
            open_browser=False,
            cache_handler=cache,
            requests_session=session,
            requests_timeout=settings.spotify_timeout_s,
        )
        self.OAUTH_TOKEN_URL = settings.spotify_token_url  # instance attributes: other clients keep theirs
        self.OAUTH_AUTHORIZE_URL = authorize_url_of(settings)
        self._on_request = on_request or (lambda: None)

    def _get_auth_response(self, open_browser=None):  # never block on input()
        raise NotConnected("not connected: start the authorization again")

    def get_access_token(self, code: str | None = None, check_cache: bool = True, as_dict: bool = False) -> str:
        if code is not None:
            self._on_request()
            return super().get_access_token(code=code, check_cache=False)
        cache: _AccountCache = self.cache_handler
        info = cache.get_cached_token()
        if not info:
            raise NotConnected("not connected: no stored tokens for this account")
        if not self.is_token_expired(info):
            return info["access_token"]
        if cache.user_id is None:
            return self._refresh(info)["access_token"]
        with cache.store.lock(cache.user_id):
            # Another process may have refreshed meanwhile: its new refresh token is on disk, ours is spent.
            info = cache.get_cached_token() or info
            if not self.is_token_expired(info):
                return info["access_token"]
            return self._refresh(info)["access_token"]

    def _refresh(self, info: dict) -> dict:
        self._on_request()
        return self.refresh_access_token(info["refresh_token"])

    def _handle_oauth_error(self, http_error):
        response = http_error.response
        status = response.status_code
        try:
            payload = response.json()
            err, desc = payload.get("error"), payload.get("error_description")
        except ValueError:
            err, desc = (response.text or "")[:200] or None, None
        if status == 429 or status >= 500:
            # Transient: the client's bounded retry policy handles these.
            raise _TokenHttpError(status, -1, f"token endpoint: {desc or err}", headers=response.headers)
        raise SpotifyOauthError(f"error: {err}, error_description: {desc}", error=err, error_description=desc)


# --- the API client of one connected account -------------------------------------------------------------
class ConnectedClient(SpotifyClient):
    """:class:`SpotifyClient` (bounded retries, typed errors, call counts) with a user token instead of the app's."""

    def __init__(self, settings: Settings, auth: _PKCE, *, sleep=time.sleep):
        from pydantic import SecretStr

        # The parent wants app credentials for its client-credentials manager; that manager is replaced
        # below before any request, so a placeholder secret never leaves this process.
        super().__init__(settings, SpotifyCredentials(client_id=auth.client_id, client_secret=SecretStr("pkce")), sleep=sleep)
        auth._on_request = self._count_token_request
        self._auth = auth

    def get(self, endpoint: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            return super().get(endpoint, path, params)
        except SpotifyOauthError as exc:
            raise ReconnectNeeded(
                f"Spotify refused the stored refresh token ({exc.error_description or exc.error}): connect again"
            ) from None


# --- the flow --------------------------------------------------------------------------------------------
class ConnectedAccount(BaseModel):
    user_id: str
    display_name: str | None = None
    scope: str = ""


class SpotifyConnect:
    """Authorization Code with PKCE for one redirect URI; see the module docstring."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        redirect_uri: str,
        client_id: str | None = None,
        session: requests.Session | None = None,
    ):
        self.settings = settings or get_settings()
        self.client_id = client_id or SpotifyCredentials().client_id
        if not self.client_id:
            raise ConnectError(
                "no Spotify client id: set SPOTIPY_CLIENT_ID to your app's Client ID (Spotify Developer Dashboard); "
                "PKCE needs no client secret"
            )
        self.redirect_uri = check_redirect_uri(redirect_uri)
        self.session = session or requests.Session()
        self.pending = PendingStore(_oauth_dir(self.settings) / "pending")
        self.tokens = TokenStore(_oauth_dir(self.settings) / "tokens")

    def _auth(self, cache: _AccountCache) -> _PKCE:
        return _PKCE(
            settings=self.settings, client_id=self.client_id, redirect_uri=self.redirect_uri, cache=cache, session=self.session
        )

    def start(self) -> tuple[str, str]:
        """``(authorize URL, state)``; the verifier stays on disk under the state."""
        auth = self._auth(_AccountCache(self.tokens))
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
        cache = _AccountCache(self.tokens)
        auth = self._auth(cache)
        auth.code_verifier = pending.code_verifier
        auth.code_challenge = auth._get_code_challenge()
        try:
            auth.get_access_token(code=code)
        except SpotifyOauthError as exc:
            raise TokenExchangeFailed(
                f"Spotify refused the authorization code ({exc.error}: {exc.error_description}); start again"
            ) from None
        except _TokenHttpError as exc:
            raise TokenExchangeFailed(f"the token endpoint failed ({exc.http_status}); try again") from None
        except requests.RequestException as exc:
            raise TokenExchangeFailed(f"the token endpoint is unreachable ({type(exc).__name__})") from None
        client = ConnectedClient(self.settings, auth)
        me = client.get("me", "me")
        user_id = me.get("id")
        if not isinstance(user_id, str) or not user_id:
            raise ConnectError("Spotify's /me answer has no user id")
        token_info = cache.token_info
        if token_info is None:  # spotipy hands every token it got to the cache: none means none came back
            raise TokenExchangeFailed("the token endpoint answered no token; try again")
        cache.user_id = user_id
        self.tokens.save(user_id, token_info)
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
        return ConnectedClient(self.settings, self._auth(_AccountCache(self.tokens, user_id)))

    def disconnect(self, user_id: str) -> bool:
        return self.tokens.delete(user_id)


# --- the profile -------------------------------------------------------------------------------------------
class ConnectSummary(BaseModel):
    user_id: str
    display_name: str | None = None
    playlists_listed: int = 0
    playlists_read: int = 0
    playlists_not_readable: int = Field(
        default=0, description="followed playlists of others: development mode refuses their items"
    )
    playlists_refused: int = 0
    top_tracks: int = 0
    top_artists: int = 0
    followed_artists: int = 0
    saved_tracks: int = 0
    tracks: int = 0
    artists: int = 0
    items_skipped: dict[str, int] = Field(default_factory=dict)
    api_calls: int = 0
    calls_by_endpoint: dict[str, int] = Field(default_factory=dict)
    token_requests: int = 0
    elapsed_s: float = 0.0
    stored: bool = False


def _pages(client, endpoint: str, path: str, params: dict | None = None, max_items: int = 100_000):
    from .ingest import _check_page, _next_offset

    offset: int | None = 0
    seen = 0
    while offset is not None and seen < max_items:
        page = _check_page(
            client.get(endpoint, path, {**(params or {}), "limit": PAGE_LIMIT, "offset": offset}), endpoint, offset
        )
        seen += len(page["items"])
        yield page
        offset = _next_offset(page, offset, endpoint)


def _followed_artists(client) -> list[dict]:
    out: list[dict] = []
    after: str | None = None
    for _ in range(200):  # cursor paging; bounded so a looping cursor cannot spin forever
        params = {"type": "artist", "limit": PAGE_LIMIT} | ({"after": after} if after else {})
        page = (client.get("me_following", "me/following", params) or {}).get("artists") or {}
        items = [a for a in page.get("items") or [] if isinstance(a, dict) and isinstance(a.get("id"), str)]
        out += items
        nxt = (page.get("cursors") or {}).get("after")
        if not page.get("next") or not nxt or nxt == after or not items:
            break
        after = nxt
    return out


def fetch_profile(
    client: ConnectedClient, settings: Settings | None = None, *, me: dict | None = None
) -> tuple[Profile, ConnectSummary]:
    """The connected account's canonical profile (``source="oauth"``); stores nothing personal.

    Playlists: the owned and collaborative ones from ``/me/playlists`` (development mode refuses the
    items of playlists merely followed), their rows parsed by the ingest's own row/track parsers; the top tracks as a weighted
    "Top tracks" playlist, saved tracks as "Liked songs"; top and followed artists seed the artist
    details (genres), the rest is batched/cached exactly as the ingest does.
    """
    from .ingest import Ingestor, _classify_row, _track_from
    from .refs import quote_user_id

    settings = settings or client.settings
    t0 = time.perf_counter()
    calls0, tokens0 = client.calls.copy(), client.token_requests
    me = me or client.get("me", "me")
    user_id = me.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise ConnectError("Spotify's /me answer has no user id")
    summary = ConnectSummary(user_id=user_id, display_name=me.get("display_name"))

    # The ingest's artist policy (batched, cached, development-mode fallback) is reused as is. Nothing
    # personal is written: pages are parsed in memory; only the shared artist cache (public catalogue
    # data) grows, as for live searches.
    ing = Ingestor(settings, client=client)
    skipped: Counter[str] = Counter()
    playlists: list[Playlist] = []
    tracks: dict = {}
    artist_names: dict[str, str] = {}

    def read_items(playlist: Playlist) -> None:
        """All rows of one playlist; merged only once it was read whole (a refusal half-way leaves nothing)."""
        pl_tracks: dict = {}
        pl_artists: dict[str, str] = {}
        path = f"playlists/{quote_user_id(playlist.id)}/items"
        for page in _pages(client, "playlist_items", path):
            for row in page["items"]:
                kind, obj = _classify_row(row)
                if kind != "track" or obj is None:  # obj is None exactly when the row is no track
                    field = {"episode": "skipped_episodes", "local": "skipped_local", "null": "skipped_null"}[kind]
                    setattr(playlist, field, getattr(playlist, field) + 1)
                    continue
                if obj["id"] not in tracks and obj["id"] not in pl_tracks:
                    track, refs = _track_from(obj)
                    pl_tracks[track.id] = track
                    for aid, aname in refs:
                        pl_artists.setdefault(aid, aname)
                added_at = row.get("added_at") if isinstance(row, dict) else None
                playlist.items.append(PlaylistItem(track_id=obj["id"], added_at=added_at if isinstance(added_at, str) else None))
        tracks.update(pl_tracks)
        for aid, aname in pl_artists.items():
            artist_names.setdefault(aid, aname)

    for page in _pages(client, "me_playlists", "me/playlists"):
        for pl in page["items"]:
            if not isinstance(pl, dict) or not isinstance(pl.get("id"), str):
                continue
            summary.playlists_listed += 1
            owner_obj = pl.get("owner")
            if not isinstance(owner_obj, dict):
                owner_obj = {}
            owner = owner_obj.get("id") if isinstance(owner_obj.get("id"), str) else None
            if owner != user_id and not pl.get("collaborative"):
                summary.playlists_not_readable += 1
                continue
            playlist = Playlist(id=pl["id"], name=str(pl.get("name") or ""), owner_id=owner)
            ref = pl.get("items") if isinstance(pl.get("items"), dict) else pl.get("tracks")
            if not (isinstance(ref, dict) and ref.get("total") == 0):
                try:
                    read_items(playlist)
                except ApiRefused:
                    summary.playlists_refused += 1
                    continue
                except NotFound:
                    continue
            summary.playlists_read += 1
            playlists.append(playlist)

    def add_tracks(objs: list[Any], name: str, pid: str, weights: list[float] | None = None, added: list | None = None) -> int:
        playlist = Playlist(id=pid, name=name, owner_id=user_id)
        for k, obj in enumerate(objs):
            kind, content = _classify_row({"item": obj})
            if kind != "track" or content is None:  # content is None exactly when the row is no track
                skipped[kind] += 1
                continue
            track, refs = _track_from(content)
            tracks.setdefault(track.id, track)
            for aid, aname in refs:
                artist_names.setdefault(aid, aname)
            playlist.items.append(
                PlaylistItem(track_id=track.id, weight=weights[k] if weights else 1.0, added_at=added[k] if added else None)
            )
        if playlist.items:
            playlists.append(playlist)
        return len(playlist.items)

    try:
        top = [
            t
            for page in _pages(client, "me_top_tracks", "me/top/tracks", {"time_range": TOP_TIME_RANGE}, 50)
            for t in page["items"]
        ]
        n = len(top)
        weights = [1.0 + (TOP_TRACK_MAX_WEIGHT - 1.0) * (n - 1 - r) / max(1, n - 1) for r in range(n)]
        summary.top_tracks = add_tracks(top, "Top tracks", TOP_TRACKS_PLAYLIST_ID, weights)
    except ApiRefused:
        log.info("/me/top/tracks refused: profile without top tracks")
    try:
        saved_rows = [r for page in _pages(client, "me_tracks", "me/tracks") for r in page["items"] if isinstance(r, dict)]
        summary.saved_tracks = add_tracks(
            [r.get("track") for r in saved_rows],
            "Liked songs",
            SAVED_TRACKS_PLAYLIST_ID,
            added=[r.get("added_at") if isinstance(r.get("added_at"), str) else None for r in saved_rows],
        )
    except ApiRefused:
        log.info("/me/tracks refused: profile without saved tracks")

    # Full artist objects the account answers anyway: they spare /artists calls (refused in development mode).
    known: dict[str, dict] = {}
    try:
        top_artists = [
            a
            for page in _pages(client, "me_top_artists", "me/top/artists", {"time_range": TOP_TIME_RANGE}, 50)
            for a in page["items"]
            if isinstance(a, dict) and isinstance(a.get("id"), str)
        ]
        summary.top_artists = len(top_artists)
        known.update({a["id"]: a for a in top_artists})
    except ApiRefused:
        log.info("/me/top/artists refused")
    try:
        followed = _followed_artists(client)
        summary.followed_artists = len(followed)
        known.update({a["id"]: a for a in followed})
    except ApiRefused:
        log.info("/me/following refused")
    fresh = {aid: obj for aid, obj in known.items() if aid in artist_names and aid not in ing.artist_cache}
    ing.artist_cache.add(fresh)
    artists = ing._artists(artist_names)

    for pl in playlists:
        for kind in ("episode", "local", "null"):
            skipped[kind] += getattr(pl, f"skipped_{'episodes' if kind == 'episode' else kind}")
    if not tracks:
        raise ConnectError(
            f"nothing to go on: {summary.playlists_listed} playlists listed, none of yours holds music tracks, "
            "and Spotify returned no top or saved tracks"
        )
    profile = Profile(
        user_id=user_id, display_name=me.get("display_name"), source="oauth", playlists=playlists, tracks=tracks, artists=artists
    )
    calls = client.calls - calls0
    summary.tracks, summary.artists = len(tracks), len(artists)
    summary.items_skipped = {k: skipped.get(k, 0) for k in ("episode", "local", "null")}
    summary.api_calls = sum(calls.values())
    summary.calls_by_endpoint = dict(sorted(calls.items()))
    summary.token_requests = client.token_requests - tokens0
    summary.elapsed_s = round(time.perf_counter() - t0, 3)
    return profile, summary
