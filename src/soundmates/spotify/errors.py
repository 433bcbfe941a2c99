"""Typed errors of the Spotify client; each message is a reason a person can act on."""

from __future__ import annotations

DEVELOPMENT_MODE_EXPLANATION = (
    "Since February 2026 the Spotify Web API refuses other users' profiles and playlists to apps in "
    "development mode (without extended quota, which Spotify grants only to large registered businesses). "
    "To use your own taste, import your Spotify data export (Account > Privacy > Download your data; "
    "`soundmates import-export FILE`) or connect your own Spotify account instead."
)


class SpotifyError(Exception):
    """Base class; ``reason`` is the short text stored in an ingest summary."""

    def __init__(self, reason: str, *, status: int | None = None, endpoint: str | None = None):
        self.reason = reason
        self.status = status
        self.endpoint = endpoint
        super().__init__(reason)


class MissingCredentials(SpotifyError):
    """No client id/secret: nothing can run."""


class AuthenticationFailed(SpotifyError):
    """The token endpoint or the API refused the credentials (401): nothing can run."""


class NotFound(SpotifyError):
    """404 on a resource (a playlist, an artist)."""


class UserNotFound(NotFound):
    """404 on ``/users/{id}``: no such Spotify user."""


class ApiRefused(SpotifyError):
    """403: the endpoint is refused to this app (development-mode restrictions since Feb 2026)."""


class RateLimitExhausted(SpotifyError):
    """429 beyond what the retry policy allows (Retry-After above the cap, or too many 429s)."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None, **kw):
        self.retry_after_s = retry_after_s
        super().__init__(reason, **kw)


class SpotifyUnavailable(SpotifyError):
    """5xx answers or dropped connections, still failing after the bounded retries."""


class MalformedResponse(SpotifyError):
    """The answer is not what the Web API documents (not JSON, missing fields, a paging loop)."""


class BadRequest(SpotifyError):
    """400 and other client errors the API blames on the request."""


class NoPublicPlaylists(SpotifyError):
    """The user exists but shows no public playlist (or none holding a music track)."""
