"""Bounded GET calls to the Spotify Web API (real or local server), with a bounded retry policy.

Tokens come from spotipy's client-credentials manager; API GETs go through
:func:`~soundmates.spotify.transport.api_get` (urllib3's pool, or the requests session when a
proxy is configured), writes through the session's :class:`~soundmates.spotify.transport.BoundedAdapter`;
either way every call has one deadline (``settings.spotify_deadline_s``: connect + headers + whole body) and a
size cap (``settings.spotify_max_response_bytes``). Redirects are followed by hand (at
most ``MAX_REDIRECTS``) inside that same deadline. No retrying adapter: urllib3's Retry
would sleep for any ``Retry-After`` (an hour, if Spotify says so). Here, tenacity retries
429 (honouring ``Retry-After`` up to ``settings.spotify_retry_after_cap_s``), 5xx, timeouts,
unreadable bodies and dropped connections at most ``settings.spotify_max_retries`` times,
then raises a typed :mod:`soundmates.spotify.errors` error whose message is the reason to
report. A ``Retry-After`` above the cap (or 429s past the retries) stops every later call of
the client until that time: :class:`RateLimitExhausted` carries the seconds to wait (that
state, shared by the client's threads, is :class:`~soundmates.spotify.rate_limit.RateLimit`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

import requests
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyAuthBase, SpotifyClientCredentials, SpotifyOauthError
from tenacity import Retrying, retry_if_exception, retry_if_exception_type, stop_after_attempt

from soundmates import json_read
from soundmates.config import Settings, SpotifyCredentials, get_settings

from .errors import (
    DEVELOPMENT_MODE_EXPLANATION,
    ApiRefused,
    AuthenticationFailed,
    BadRequest,
    MalformedResponse,
    MissingCredentials,
    NotFound,
    UserNotFound,
)
from .failures import Transient, error_message, short, transport_failure, unavailable_after_retries
from .rate_limit import RateLimit
from .transport import api_get, bounded_session, resolve_proxies_once

# spotipy logs request headers (the bearer token) at DEBUG and every HTTP error at ERROR,
# including the 429s and 5xx this module retries: keep the token out of any log, and let
# the application decide where the rest goes (no "last resort" stderr spam).
for _name in ("spotipy", "spotipy.client", "spotipy.oauth2"):
    logging.getLogger(_name).setLevel(logging.INFO)
logging.getLogger("spotipy").addHandler(logging.NullHandler())

log = logging.getLogger(__name__)

TOKEN_ENDPOINT = "token"
MAX_REDIRECTS = 5  # the Web API does not redirect GETs; a few hops are tolerated, a loop is an error


class _PerThread:
    """An attribute with one value per thread: what one call left behind is read by that call's thread only."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(obj._local, self.name, None)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj._local, self.name, value)


class SpotifyClient:
    """GET calls to the Web API with bounded retries, typed errors and per-endpoint call counts.

    ``calls`` counts every HTTP request sent per endpoint label (retries included),
    ``retries`` counts the retried failures by kind, ``token_requests`` the token fetches.
    ``user_auth`` builds another spotipy auth manager on the client's session (connect's PKCE
    manager for one account); without it, the app's client credentials are required.
    Safe to share between threads (ingest fetches users concurrently): the counters and the
    rate-limit state are shared, what one call answered (``last_body``) is per thread, and a
    429 seen by one thread pauses the calls of every thread for its ``Retry-After``.
    """

    # Per thread (None until set): the bytes of the last successful answer, so raw pages are stored
    # as received; the status of the last token answer.
    last_body = _PerThread()
    _last_token_answer = _PerThread()

    def __init__(
        self,
        settings: Settings | None = None,
        credentials: SpotifyCredentials | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        user_auth: Callable[[requests.Session, tuple[float, float]], SpotifyAuthBase] | None = None,
    ):
        self.settings = settings or get_settings()
        creds = credentials or SpotifyCredentials()
        secret = creds.client_secret.get_secret_value()
        if user_auth is None and (not creds.client_id or not secret):
            raise MissingCredentials(
                "no Spotify credentials: set SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET "
                "(the local Spotify-compatible server accepts any non-empty pair)"
            )
        self._local = threading.local()
        self._lock = threading.Lock()  # the counters, shared by every thread
        self.calls: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        self.token_requests = 0
        self.max_retries = max(0, int(self.settings.spotify_max_retries))
        self.retry_after_cap_s = float(self.settings.spotify_retry_after_cap_s)
        self._sleep = sleep
        self.rate_limit = RateLimit(self.retry_after_cap_s, float(self.settings.spotify_backoff_s))

        self.deadline_s = float(self.settings.spotify_deadline_s)
        self.max_bytes = int(self.settings.spotify_max_response_bytes)
        # (connect, whole answer): the bounded adapter reads the second as the deadline of the answer.
        self._timeout = (min(float(self.settings.spotify_timeout_s), self.deadline_s), self.deadline_s)
        self._session = bounded_session(max_bytes=self.max_bytes, default_timeout_s=self.deadline_s, max_redirects=MAX_REDIRECTS)
        resolve_proxies_once(self._session, self.settings.spotify_api_url, self.settings.spotify_token_url)
        # API GETs (nearly every call) skip requests' per-call machinery; the token and writes use the session.
        self._http_get = api_get(
            self._session,
            self.settings.spotify_api_url,
            max_bytes=self.max_bytes,
            pool_size=max(10, int(self.settings.ingest_workers)),
        )
        # spotipy's client-credentials manager as shipped; the token URL is per instance (other
        # clients keep theirs), and a response hook on the session counts its requests and keeps
        # the status of the last answer (spotipy's SpotifyOauthError drops it).
        self._token_url = self.settings.spotify_token_url
        self._session.hooks["response"].append(self._note_token_answer)
        if user_auth is not None:
            self._auth = user_auth(self._session, self._timeout)
        else:
            self._auth = SpotifyClientCredentials(
                client_id=creds.client_id,
                client_secret=secret,
                requests_session=self._session,
                requests_timeout=self._timeout,
                cache_handler=MemoryCacheHandler(),
            )
            self._auth.OAUTH_TOKEN_URL = self._token_url

    # --- bookkeeping ---------------------------------------------------------
    def _note_token_answer(self, response: requests.Response, *args, **kwargs) -> None:
        if response.request.method == "POST" and response.url == self._token_url:
            self._count_token_request()
            self._last_token_answer = (response.status_code, response.headers)

    def _count_token_request(self) -> None:
        with self._lock:
            self.token_requests += 1

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())

    def blocked_for_s(self) -> float:
        """Seconds until the API may be called again after a rate limit (0 = not blocked)."""
        return self.rate_limit.blocked_for_s()

    def stats(self) -> dict[str, Any]:
        return {
            "api_calls": self.api_calls,
            "calls_by_endpoint": dict(sorted(self.calls.items())),
            "retries": dict(sorted(self.retries.items())),
            "token_requests": self.token_requests,
        }

    # --- calls ---------------------------------------------------------------
    def get(self, endpoint: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET ``path`` (relative to the API prefix, or an absolute URL) and return the JSON object.

        ``endpoint`` is the label the call is counted under (``user``, ``playlists``, ...).
        """
        self.rate_limit.check(endpoint)
        return self._with_retries(endpoint, retry_if_exception_type(Transient), lambda: self._once(endpoint, path, params))

    def post(self, endpoint: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON ``body`` to ``path`` and return the JSON answer (201 or 200).

        A write is retried only when the API surely did not apply it (429, an expired token), never after
        a 5xx, a timeout or a dropped connection: a second try could add the same tracks twice.
        """
        not_applied = retry_if_exception(lambda e: isinstance(e, Transient) and e.kind in ("429", "401"))
        return self._with_retries(endpoint, not_applied, lambda: self._post_once(endpoint, path, body))

    def _with_retries(self, endpoint: str, retry, call) -> dict[str, Any]:
        """``call()`` under the client's retry policy (``retry`` says which failures are retried)."""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self.rate_limit.wait,
            retry=retry,
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda rs: self._note_retry(endpoint, rs.outcome.exception() if rs.outcome else None),
        )
        try:
            for attempt in retrying:
                with attempt:
                    result = call()
        except Transient as exc:
            raise self._final_error(endpoint, exc) from None
        return result

    def _post_once(self, endpoint: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        token = self._access_token()  # connect's account client answers its own (refreshed) token
        self.rate_limit.wait_for_pause()
        with self._lock:
            self.calls[endpoint] += 1
        url = self.settings.spotify_api_url + path
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            response = self._session.post(url, json=body, headers=headers, allow_redirects=False, timeout=self._timeout)
        except requests.exceptions.RequestException as exc:
            self._transport_error(endpoint, exc)
        status = response.status_code
        if status == 403:  # a write refused: the API's own words (e.g. "Insufficient client scope")
            raise ApiRefused(
                f"Spotify refused {endpoint} (403: {short(error_message(response.content))})", status=403, endpoint=endpoint
            )
        if status >= 400:
            self._classify(endpoint, status, response.headers, error_message(response.content))
        try:
            result = json.loads(response.content)
        except ValueError:
            raise MalformedResponse(
                f"malformed data: {endpoint} answered HTTP {status} without JSON", endpoint=endpoint
            ) from None
        if not 200 <= status < 300 or not isinstance(result, dict):
            raise MalformedResponse(f"malformed data: {endpoint} answered HTTP {status}", endpoint=endpoint)
        return result

    def search_artists(self, name: str, limit: int = 5) -> list[dict[str, Any]]:
        """Artist objects ``GET /v1/search?type=artist`` finds for ``name`` (the API's ranking; at most ``limit``)."""
        page = self.get("search", "search", {"q": name, "type": "artist", "limit": limit}).get("artists")
        items = page.get("items") if isinstance(page, dict) else None
        return [a for a in items if isinstance(a, dict)] if isinstance(items, list) else []

    def _note_retry(self, endpoint: str, exc: BaseException | None) -> None:
        if isinstance(exc, Transient):
            with self._lock:
                self.retries[exc.kind] += 1
            log.info("retrying %s after %s", endpoint, exc.detail)
            if exc.kind == "401":
                self._auth.cache_handler.save_token_to_cache(None)  # the token expired or the server forgot it

    def _access_token(self) -> str:
        """The app's access token (spotipy fetches one, or answers the one it holds); typed errors."""
        try:
            return self._auth.get_access_token(as_dict=False)
        except SpotifyOauthError as exc:
            self._token_refused(exc)
        except requests.exceptions.RequestException as exc:
            self._transport_error(TOKEN_ENDPOINT, exc)

    def _token_refused(self, exc: SpotifyOauthError) -> NoReturn:
        """Raise the typed error of a refused token request (spotipy's error drops the status: the hook kept it)."""
        if self._last_token_answer is None:
            raise exc  # not an answer of our token endpoint
        status, headers = self._last_token_answer
        self._classify(TOKEN_ENDPOINT, status, headers, exc.error_description or exc.error)

    def _once(self, endpoint: str, path: str, params: dict[str, Any] | None) -> dict[str, Any]:
        self._last_token_answer = None
        # Fetched (or taken from memory) before the call, so that a failing token request is
        # reported as such and not counted as a call of ``endpoint``.
        token = self._access_token()
        self.rate_limit.wait_for_pause()
        with self._lock:
            self.calls[endpoint] += 1
        url = path if path.startswith(("http://", "https://")) else self.settings.spotify_api_url + path
        try:
            response = self._get_following_redirects(url, params, token)
        except requests.exceptions.RequestException as exc:
            self._transport_error(endpoint, exc)
        status = response.status_code
        if status >= 400:
            self._classify(endpoint, status, response.headers, error_message(response.content))
        if not 200 <= status < 300:
            raise MalformedResponse(f"malformed data: {endpoint} answered HTTP {status}", endpoint=endpoint)
        body = response.content
        try:
            result = json_read.loads(body)
        except ValueError:
            # A truncated answer or a proxy's HTML page: worth another try.
            raise Transient("unreadable", f"an answer of {endpoint} that is not JSON") from None
        except RecursionError:
            raise MalformedResponse(
                f"malformed data: {endpoint} answered JSON nested too deeply to read", endpoint=endpoint
            ) from None
        if not isinstance(result, dict):
            raise MalformedResponse(
                f"malformed data: {endpoint} answered a JSON {type(result).__name__}, not an object", endpoint=endpoint
            )
        self.last_body = body  # kept so the caller can store the raw answer byte for byte
        return result

    def _get_following_redirects(self, url: str, params: dict[str, Any] | None, token: str):
        """GET with every hop inside one deadline; the bearer token never leaves the API's origin."""
        deadline = time.monotonic() + self.deadline_s
        origin = urlsplit(url)[:2]
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        for _hop in range(MAX_REDIRECTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise requests.exceptions.ReadTimeout(f"no complete answer within {self.deadline_s:g} s")
            response = self._http_get(url, params, headers, (min(self._timeout[0], left), left))
            if not response.is_redirect:
                return response
            url = urljoin(response.url, response.headers["Location"])
            params = None  # the Location carries its own query
            if urlsplit(url)[:2] != origin:
                headers.pop("Authorization", None)
        raise requests.exceptions.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")

    def _transport_error(self, endpoint: str, exc: requests.exceptions.RequestException) -> NoReturn:
        raise transport_failure(
            endpoint, exc, deadline_s=self.deadline_s, max_bytes=self.max_bytes, max_redirects=MAX_REDIRECTS
        ) from None

    def _classify(self, endpoint: str, status: int, headers: Mapping[str, str] | None, msg: object) -> NoReturn:
        if status == 429:
            self.rate_limit.on_429(endpoint, headers)
        if status >= 500:
            raise Transient("5xx", f"{status} on {endpoint}")
        if endpoint == TOKEN_ENDPOINT and status in (400, 401, 403):
            raise AuthenticationFailed(
                f"the token endpoint refused the credentials ({status}): check SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET",
                status=status,
                endpoint=endpoint,
            )
        if status == 401:
            raise Transient("401", f"401 on {endpoint} (token rejected)")
        if status == 403:
            raise ApiRefused(
                f"the Spotify API answered 403 on {endpoint}. {DEVELOPMENT_MODE_EXPLANATION}",
                status=403,
                endpoint=endpoint,
            )
        if status == 404:
            cls = UserNotFound if endpoint == "user" else NotFound
            raise cls(f"not found (404 on {endpoint})", status=404, endpoint=endpoint)
        raise BadRequest(
            f"the Spotify API refused the request ({status} on {endpoint}): {short(msg)}", status=status, endpoint=endpoint
        )

    def _final_error(self, endpoint: str, exc: Transient) -> Exception:
        n = self.max_retries
        if exc.kind == "429":
            return self.rate_limit.exhausted(endpoint, n)
        if exc.kind == "401":
            return AuthenticationFailed(
                f"the Spotify API kept rejecting the access token (401 on {endpoint})", status=401, endpoint=endpoint
            )
        return unavailable_after_retries(endpoint, exc, n)
