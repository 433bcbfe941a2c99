"""Profile references people paste, turned into a Spotify user id.

Accepted (see ``shared/spotify-web-api/NOTES.md``)::

    https://open.spotify.com/user/ID            (also http://, no scheme, ?si=..., trailing /)
    https://open.spotify.com/intl-pt-br/user/ID (locale part intl-[A-Za-z-]+)
    spotify:user:ID
    ID                                          (bare)

IDs are "unique strings": 25-char lowercase alphanumerics for new accounts,
numeric ids, and legacy usernames holding ``_ . # + -`` and non-ASCII letters.
spotipy's own URL regex handles none of the odd cases, so this module does the
parsing; request paths must re-encode the id with :func:`quote_user_id`.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote, urlsplit

from soundmates.keys import MAX_USER_ID_LENGTH, user_id_problem

__all__ = [
    "ACCEPTED_FORMS",
    "InvalidProfileRef",
    "MAX_USER_ID_LENGTH",
    "parse_profile_ref",
    "profile_url",
    "quote_user_id",
]

# Longer input cannot be a reference at all (no URL form adds more than ~200 chars of ?si=...).
_MAX_REF_LENGTH = 512

ACCEPTED_FORMS = (
    "https://open.spotify.com/user/ID (optionally with ?si=..., http:// or no scheme), "
    "https://open.spotify.com/intl-xx/user/ID, spotify:user:ID, or a bare user ID "
    "(letters and digits, also non-ASCII, and . _ # + -)"
)

_HOST = "open.spotify.com"
_LOCALE = re.compile(r"intl-[A-Za-z-]+\Z")
_OTHER_KINDS = ("playlist", "track", "album", "artist", "episode", "show", "collection", "genre", "search")


class InvalidProfileRef(ValueError):
    """The text is not a Spotify profile reference; the message says what was given and what is accepted."""

    def __init__(self, ref: object, why: str):
        self.ref = ref
        self.why = why
        shown = repr(ref) if not isinstance(ref, str) or len(ref) <= 80 else repr(ref[:77] + "...")
        super().__init__(f"not a Spotify profile reference: {shown} ({why}). Accepted forms: {ACCEPTED_FORMS}.")


def quote_user_id(user_id: str) -> str:
    """The id as one path segment of a request URL (``#``, ``+``, non-ASCII, ... percent-encoded)."""
    return quote(user_id, safe="")


def profile_url(user_id: str) -> str:
    """The public profile page of a user, e.g. for a "see on Spotify" link."""
    return f"https://open.spotify.com/user/{quote_user_id(user_id)}"


def _check_user_id(ref: object, user_id: str) -> str:
    problem = user_id_problem(user_id)
    if problem is not None:
        raise InvalidProfileRef(ref, problem)
    return user_id


def _decode(ref: object, segment: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise InvalidProfileRef(ref, "the user id is percent-encoded, but not as UTF-8") from None


def _from_url(ref: str, text: str) -> str:
    parts = urlsplit(text if "://" in text else "https://" + text)
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidProfileRef(ref, f"the scheme {parts.scheme!r} is not http(s)")
    host = (parts.hostname or "").lower()
    if host != _HOST or parts.port is not None or parts.username is not None:
        raise InvalidProfileRef(ref, f"the host {parts.netloc!r} is not {_HOST}")
    segments = parts.path.split("/")[1:]
    if segments and segments[-1] == "":
        segments = segments[:-1]  # a trailing slash
    if segments and _LOCALE.match(segments[0]):
        segments = segments[1:]
    if not segments:
        raise InvalidProfileRef(ref, "the link has no /user/ID path")
    kind = segments[0].lower()
    if kind != "user":
        if kind in _OTHER_KINDS:
            raise InvalidProfileRef(ref, f"this is a link to a {kind}, not to a user profile")
        raise InvalidProfileRef(ref, f"the path {parts.path!r} is not /user/ID")
    if len(segments) != 2:
        if len(segments) > 2 and segments[2].lower() in _OTHER_KINDS:
            raise InvalidProfileRef(ref, f"this is a link to a user's {segments[2].lower()}, not to the profile")
        raise InvalidProfileRef(ref, f"the path {parts.path!r} is not /user/ID")
    return _check_user_id(ref, _decode(ref, segments[1]))


def _from_uri(ref: str, text: str) -> str:
    parts = text.split(":")
    if len(parts) != 3 or parts[0].lower() != "spotify" or parts[1].lower() != "user":
        if len(parts) >= 2 and parts[1].lower() in _OTHER_KINDS:
            raise InvalidProfileRef(ref, f"this is a Spotify URI of a {parts[1].lower()}, not of a user")
        if len(parts) > 3 and parts[1].lower() == "user":
            raise InvalidProfileRef(ref, f"this is a URI of a user's {parts[3].lower()}, not of the profile")
        raise InvalidProfileRef(ref, "a Spotify URI must be spotify:user:ID")
    return _check_user_id(ref, _decode(ref, parts[2]))


def parse_profile_ref(ref: str) -> str:
    """The Spotify user id a reference points at; :class:`InvalidProfileRef` for anything else."""
    if not isinstance(ref, str):
        raise InvalidProfileRef(ref, f"expected text, got {type(ref).__name__}")
    text = ref.strip()
    if not text:
        raise InvalidProfileRef(ref, "it is empty")
    if len(text) > _MAX_REF_LENGTH:
        raise InvalidProfileRef(ref, f"it is {len(text)} characters long")
    bad = next((ch for ch in text if unicodedata.category(ch).startswith("C")), None)
    if bad is not None:
        raise InvalidProfileRef(ref, f"it contains the control character U+{ord(bad):04X}")
    if any(ch.isspace() for ch in text):
        raise InvalidProfileRef(ref, "it contains whitespace")
    lowered = text.lower()
    if "://" in text or lowered.startswith(_HOST + "/") or lowered == _HOST:
        return _from_url(ref, text)
    if lowered.startswith("spotify:"):
        return _from_uri(ref, text)
    if "/" in text:
        raise InvalidProfileRef(ref, "it contains '/' but is not an open.spotify.com link")
    if ":" in text:
        raise InvalidProfileRef(ref, "it contains ':' but is not a spotify:user:ID URI")
    return _check_user_id(ref, _decode(ref, text))
