"""The errors of Connect with Spotify and the redirect-URI rules they enforce (one-line reasons, what to do)."""

from __future__ import annotations

from urllib.parse import urlsplit

from soundmates.config import Settings

_LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


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
    """``uri`` itself when Spotify would accept it as a redirect URI, else ConnectError saying what to use."""
    parts = urlsplit(uri)
    if parts.hostname == "localhost":
        raise ConnectError("Spotify rejects 'localhost' in redirect URIs: use http://127.0.0.1:PORT/")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.netloc.rsplit(":", 1)[0] in _LOOPBACK_HOSTS and parts.port:
        return uri
    raise ConnectError(f"redirect URI {uri!r}: Spotify accepts https, or http only on 127.0.0.1/[::1] with a port")
