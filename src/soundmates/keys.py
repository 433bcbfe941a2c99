"""User ids -> storage keys: the one place that names a user's files and folders.

A key is the reversible percent-encoding of the id (:func:`legacy_filename`, the name every
stored file had before) while that stays short; a longer one becomes a readable prefix plus a
hash of the whole id, so a key is always well under the 255-byte file-name limit, with room for
``.json``, ``.lock`` and similar suffixes. Ids that were stored before keep their file names.
"""

from __future__ import annotations

import hashlib
import unicodedata
from urllib.parse import quote, unquote

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_USER_ID_LENGTH",
    "legacy_filename",
    "storage_key",
    "storage_names",
    "user_id_from_key",
    "user_id_problem",
]

# Keys up to this many bytes are the legacy encoding itself (so existing files are found as they are);
# 240 + ".json.lock" still fits a 255-byte file name.
MAX_KEY_BYTES = 240
# The longest name a stored file or folder could have had under the legacy scheme.
_MAX_LEGACY_BYTES = 250
_PREFIX_BYTES = 64
_HASH_CHARS = 32
# Never produced by the legacy encoding (quote() writes '@' as %40): a key holding it is hashed.
_HASH_MARK = "@"

# Spotify usernames were capped at 30 characters, new ids are 25-28; leave room, refuse junk.
MAX_USER_ID_LENGTH = 64
# Legacy usernames hold these besides letters and digits (non-ASCII letters included).
ID_PUNCTUATION = frozenset("._#+-")


def legacy_filename(user_id: str) -> str:
    """The reversible, filesystem-safe encoding of an id (legacy ids hold . _ # + and non-ASCII)."""
    name = quote(user_id, safe="-_")
    # '.' and '..' would be special; quote() keeps dots, so encode them too.
    return name.replace(".", "%2E")


def storage_key(user_id: str, max_bytes: int = MAX_KEY_BYTES) -> str:
    """The file or folder name for ``user_id``: at most ``max_bytes`` bytes (at least 100), distinct per id.

    A smaller ``max_bytes`` keeps the key short where it is part of a longer name (ingest's raw page records)."""
    legacy = legacy_filename(user_id)
    if len(legacy) <= max_bytes:  # ASCII only, so characters = bytes
        return legacy
    prefix = legacy[:_PREFIX_BYTES]
    cut = prefix.rfind("%", len(prefix) - 2)
    if cut != -1:  # do not split a %XX escape
        prefix = prefix[:cut]
    digest = hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{prefix}{_HASH_MARK}{digest}"


def storage_names(user_id: str) -> list[str]:
    """Every name ``user_id``'s files may have on disk: the key first, then a legacy name that differs."""
    key, legacy = storage_key(user_id), legacy_filename(user_id)
    return [key] if legacy == key or len(legacy) > _MAX_LEGACY_BYTES else [key, legacy]


def user_id_from_key(key: str) -> str | None:
    """The id a key encodes, or None for a hashed key (its file must say whose it is)."""
    if _HASH_MARK in key:
        return None
    return unquote(key)


def user_id_problem(user_id: object) -> str | None:
    """Why ``user_id`` cannot be a Spotify user id (for messages), or None when it can."""
    if not isinstance(user_id, str):
        return f"expected text, got {type(user_id).__name__}"
    if not user_id:
        return "the user id is empty"
    if len(user_id) > MAX_USER_ID_LENGTH:
        return f"the user id is {len(user_id)} characters long, at most {MAX_USER_ID_LENGTH} are possible"
    for ch in user_id:
        if ch.isalnum() or ch in ID_PUNCTUATION:
            continue
        if ch.isspace():
            return "the user id contains whitespace"
        if unicodedata.category(ch).startswith("C"):
            return f"the user id contains the control character U+{ord(ch):04X}"
        return f"the user id contains {ch!r}, which no Spotify user id holds"
    if set(user_id) == {"."}:
        # "." and ".." would be read as path segments by servers, proxies and file systems.
        return "the user id is only dots"
    return None
