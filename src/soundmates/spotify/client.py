"""spotipy, configured for the real API or the local server, behind a bounded retry policy.

spotipy's own retries are switched off (a plain ``requests.Session``): its urllib3
Retry sleeps for any ``Retry-After`` (an hour, if Spotify says so) and loses the
status. Here, tenacity retries 429 (honouring ``Retry-After`` up to
``settings.spotify_retry_after_cap_s``), 5xx, unreadable bodies and dropped
connections at most ``settings.spotify_max_retries`` times, then raises a typed
:mod:`soundmates.spotify.errors` error whose message is the reason to report.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.exceptions import SpotifyException
from spotipy.oauth2 import SpotifyClientCredentials
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from soundmates.config import Settings, SpotifyCredentials, get_settings

from .errors import (
    DEVELOPMENT_MODE_EXPLANATION,
    ApiRefused,
    AuthenticationFailed,
    BadRequest,
    MalformedResponse,
    MissingCredentials,
    NotFound,
    RateLimitExhausted,
    SpotifyUnavailable,
    UserNotFound,
)

# spotipy logs request headers (the bearer token) at DEBUG and every HTTP error at ERROR,
# including the 429s and 5xx this module retries: keep the token out of any log, and let
# the application decide where the rest goes (no "last resort" stderr spam).
for _name in ("spotipy", "spotipy.client", "spotipy.oauth2"):
    logging.getLogger(_name).setLevel(logging.INFO)
logging.getLogger("spotipy").addHandler(logging.NullHandler())

log = logging.getLogger(__name__)

TOKEN_ENDPOINT = "token"


class _TokenHttpError(SpotifyException):
    """An HTTP error of the token endpoint, with its status kept (spotipy's own error drops it)."""


class _ClientCredentials(SpotifyClientCredentials):
    """Client-credentials flow whose token URL is per instance and whose errors keep their status."""

    def __init__(self, *args, token_url: str, on_request: Callable[[], None], **kwargs):
        super().__init__(*args, **kwargs)
        self.OAUTH_TOKEN_URL = token_url  # instance attribute: other clients keep theirs
        self._on_request = on_request

    def _request_access_token(self):
        self._on_request()
        return super()._request_access_token()

    def _handle_oauth_error(self, http_error):
        response = http_error.response
        try:
            err = response.json().get("error_description") or response.json().get("error")
        except ValueError:
            err = (response.text or "")[:200] or None
        raise _TokenHttpError(response.status_code, -1, f"token endpoint: {err}", headers=response.headers)


class _Spotify(spotipy.Spotify):
    """spotipy.Spotify whose calls skip spotipy's eager DEBUG strings.

    spotipy 2.26 formats every request's headers (the bearer token) and every whole response
    into f-strings for ``logger.debug`` on each call, whatever the log level: on 50-row pages
    that costs more CPU than parsing the JSON, and it puts the token in a log line. The rest is
    spotipy's own behaviour: same URL prefix, headers, timeout, and ``SpotifyException`` with
    ``http_status``, ``msg``, ``reason`` and ``headers`` (for Retry-After) on HTTP errors; a body
    that is not JSON gives None, as in spotipy.
    """

    def _internal_call(self, method, url, payload, params):
        if not url.startswith("http"):
            url = self.prefix + url
        headers = self._auth_headers()
        headers["Content-Type"] = "application/json"
        if self.language is not None:
            headers["Accept-Language"] = self.language
        response = self._session.request(
            method,
            url,
            headers=headers,
            proxies=self.proxies,
            timeout=self.requests_timeout,
            params=params,
            data=json.dumps(payload) if payload else None,
        )
        if response.status_code >= 400:
            msg = reason = None
            try:
                error = response.json().get("error")
                if isinstance(error, dict):
                    msg, reason = error.get("message"), error.get("reason")
                else:
                    msg = error
            except (ValueError, AttributeError):
                msg = response.text or None
            raise SpotifyException(response.status_code, -1, f"{response.url}:\n {msg}", reason=reason, headers=response.headers)
        # Kept so the caller can store the raw answer byte for byte (no re-serialising).
        self.last_body = response.content
        try:
            return json.loads(self.last_body)
        except ValueError:
            return None


class _Transient(Exception):
    """A failure worth another try; ``wait_s`` is what the server asked for (Retry-After), if anything."""

    def __init__(self, kind: str, detail: str, wait_s: float | None = None):
        self.kind = kind  # "429" | "5xx" | "connection" | "unreadable" | "401"
        self.detail = detail
        self.wait_s = wait_s
        super().__init__(detail)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/garbled."""
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class SpotifyClient:
    """GET calls to the Web API with bounded retries, typed errors and per-endpoint call counts.

    ``calls`` counts every HTTP request sent per endpoint label (retries included),
    ``retries`` counts the retried failures by kind, ``token_requests`` the token fetches.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        credentials: SpotifyCredentials | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.settings = settings or get_settings()
        creds = credentials or SpotifyCredentials()
        secret = creds.client_secret.get_secret_value()
        if not creds.client_id or not secret:
            raise MissingCredentials(
                "no Spotify credentials: set SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET "
                "(the local Spotify-compatible server accepts any non-empty pair)"
            )
        self.calls: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        self.token_requests = 0
        self.max_retries = max(0, int(self.settings.spotify_max_retries))
        self.retry_after_cap_s = float(self.settings.spotify_retry_after_cap_s)
        self._sleep = sleep
        # After a Retry-After above the cap, calls before this monotonic time fail at once
        # instead of hammering an API that asked us to stay away.
        self._blocked_until = 0.0
        self._blocked_for_s = 0.0
        # The bytes of the last successful answer, so raw pages are stored as received.
        self.last_body: bytes | None = None
        self._backoff = wait_exponential_jitter(
            initial=max(0.0, self.settings.spotify_backoff_s),
            max=max(1.0, 20 * self.settings.spotify_backoff_s),
            jitter=max(0.0, self.settings.spotify_backoff_s),
        )

        session = requests.Session()  # a plain session: spotipy mounts no retrying adapter on it
        _resolve_proxies_once(session, self.settings.spotify_api_url, self.settings.spotify_token_url)
        self._auth = _ClientCredentials(
            client_id=creds.client_id,
            client_secret=secret,
            requests_session=session,
            requests_timeout=self.settings.spotify_timeout_s,
            cache_handler=MemoryCacheHandler(),
            token_url=self.settings.spotify_token_url,
            on_request=self._count_token_request,
        )
        self.sp = _Spotify(
            auth_manager=self._auth,
            requests_session=session,
            requests_timeout=self.settings.spotify_timeout_s,
            retries=0,
            status_retries=0,
        )
        self.sp.prefix = self.settings.spotify_api_url

    # --- bookkeeping ---------------------------------------------------------
    def _count_token_request(self) -> None:
        self.token_requests += 1

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())

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
        now = time.monotonic()
        if now < self._blocked_until:
            raise RateLimitExhausted(
                f"rate limit: Retry-After {self._blocked_for_s:g} s exceeds the {self.retry_after_cap_s:g} s cap "
                f"(still {self._blocked_until - now:.0f} s to wait)",
                retry_after_s=self._blocked_until - now,
                status=429,
                endpoint=endpoint,
            )
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda rs: self._note_retry(endpoint, rs.outcome.exception()),
        )
        try:
            for attempt in retrying:
                with attempt:
                    result = self._once(endpoint, path, params)
        except _Transient as exc:
            raise self._final_error(endpoint, exc) from None
        return result

    def search_artists(self, name: str, limit: int = 5) -> list[dict[str, Any]]:
        """Artist objects ``GET /v1/search?type=artist`` finds for ``name`` (the API's ranking; at most ``limit``)."""
        page = self.get("search", "search", {"q": name, "type": "artist", "limit": limit}).get("artists")
        items = page.get("items") if isinstance(page, dict) else None
        return [a for a in items if isinstance(a, dict)] if isinstance(items, list) else []

    def _wait(self, retry_state) -> float:
        exc = retry_state.outcome.exception()
        if isinstance(exc, _Transient) and exc.wait_s is not None:
            return exc.wait_s
        return self._backoff(retry_state)

    def _note_retry(self, endpoint: str, exc: BaseException | None) -> None:
        if isinstance(exc, _Transient):
            self.retries[exc.kind] += 1
            log.info("retrying %s after %s", endpoint, exc.detail)
            if exc.kind == "401":
                self._auth.cache_handler.save_token_to_cache(None)  # the token expired or the server forgot it

    def _once(self, endpoint: str, path: str, params: dict[str, Any] | None) -> dict[str, Any]:
        try:
            # Fetched (or taken from memory) before the call, so that a failing token request is
            # reported as such and not counted as a call of ``endpoint``.
            self._auth.get_access_token(as_dict=False)
        except _TokenHttpError as exc:
            self._classify(TOKEN_ENDPOINT, exc)
        except requests.exceptions.RequestException as exc:
            raise _Transient("connection", f"{type(exc).__name__} on {TOKEN_ENDPOINT}") from None
        self.calls[endpoint] += 1
        try:
            result = self.sp._get(path, args=dict(params) if params else None)
        except _TokenHttpError as exc:
            self._classify(TOKEN_ENDPOINT, exc)
        except SpotifyException as exc:
            self._classify(endpoint, exc)
        except requests.exceptions.RequestException as exc:
            raise _Transient("connection", f"{type(exc).__name__} on {endpoint}") from None
        if result is None:
            # spotipy turns a body that is not JSON into None (a truncated answer, a proxy page).
            raise _Transient("unreadable", f"an answer of {endpoint} that is not JSON")
        self.last_body = self.sp.last_body
        if not isinstance(result, dict):
            raise MalformedResponse(f"malformed data: {endpoint} answered a JSON {type(result).__name__}, not an object", endpoint=endpoint)
        return result

    def _classify(self, endpoint: str, exc: SpotifyException) -> None:
        status = int(exc.http_status or 0)
        if status == 429:
            headers = exc.headers or {}
            wait_s = parse_retry_after(headers.get("Retry-After"))
            if wait_s is not None and wait_s > self.retry_after_cap_s:
                self._blocked_until = time.monotonic() + wait_s
                self._blocked_for_s = wait_s
                raise RateLimitExhausted(
                    f"rate limit: Retry-After {wait_s:g} s exceeds the {self.retry_after_cap_s:g} s cap",
                    retry_after_s=wait_s,
                    status=429,
                    endpoint=endpoint,
                )
            raise _Transient("429", f"429 on {endpoint} (Retry-After {headers.get('Retry-After')})", wait_s)
        if status >= 500:
            raise _Transient("5xx", f"{status} on {endpoint}")
        if endpoint == TOKEN_ENDPOINT and status in (400, 401, 403):
            raise AuthenticationFailed(
                f"the token endpoint refused the credentials ({status}): check SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET",
                status=status,
                endpoint=endpoint,
            )
        if status == 401:
            raise _Transient("401", f"401 on {endpoint} (token rejected)")
        if status == 403:
            raise ApiRefused(
                f"the Spotify API answered 403 on {endpoint}. {DEVELOPMENT_MODE_EXPLANATION}",
                status=403,
                endpoint=endpoint,
            )
        if status == 404:
            cls = UserNotFound if endpoint == "user" else NotFound
            raise cls(f"not found (404 on {endpoint})", status=404, endpoint=endpoint)
        raise BadRequest(f"the Spotify API refused the request ({status} on {endpoint}): {_short(exc.msg)}", status=status, endpoint=endpoint)

    def _final_error(self, endpoint: str, exc: _Transient) -> Exception:
        n = self.max_retries
        if exc.kind == "429":
            return RateLimitExhausted(f"rate limit: still answered 429 after {n} retries ({endpoint})", status=429, endpoint=endpoint)
        if exc.kind == "unreadable":
            return MalformedResponse(f"malformed data: {exc.detail}, after {n} retries", endpoint=endpoint)
        if exc.kind == "401":
            return AuthenticationFailed(f"the Spotify API kept rejecting the access token (401 on {endpoint})", status=401, endpoint=endpoint)
        if exc.kind == "5xx":
            return SpotifyUnavailable(f"Spotify API unavailable: {exc.detail}, still failing after {n} retries", endpoint=endpoint)
        return SpotifyUnavailable(f"Spotify API unreachable: {exc.detail}, still failing after {n} retries", endpoint=endpoint)


def _resolve_proxies_once(session: requests.Session, *urls: str) -> None:
    """Read the proxy and CA-bundle environment once instead of on every request.

    With ``trust_env`` on, requests re-reads ``*_PROXY``/``NO_PROXY`` for each request, a
    sizeable share of the client's CPU per call. When every URL we call resolves to the same
    proxies, pin them (and the CA bundle requests would take from the environment) and stop
    re-reading; otherwise keep requests' own per-request logic.
    """
    resolved = [requests.utils.get_environ_proxies(u) for u in urls]
    if all(r == resolved[0] for r in resolved):
        session.proxies.update(resolved[0])
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        session.trust_env = False


def _short(msg: object, n: int = 200) -> str:
    text = str(msg or "").replace("\n", " ").strip()
    return text if len(text) <= n else text[: n - 3] + "..."
