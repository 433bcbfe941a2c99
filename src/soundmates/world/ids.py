"""Deterministic Spotify-style ids (22 base62 characters) that carry their own index.

An id is 14 characters of a keyed hash followed by the index in 8 base62 digits, so the
server resolves any id without a lookup table (1M-user worlds stay lazy) and rejects ids it
never issued (the hash part must match).
"""

from __future__ import annotations

import base64
import hashlib

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGIT = {c: i for i, c in enumerate(BASE62)}
ID_LENGTH = 22
_INDEX_DIGITS = 8
_MAX_INDEX = 62**_INDEX_DIGITS
# The index is scrambled by an affine bijection mod 62**8 so ids look random (no runs of zeros).
_MIX_K = 0x5DEECE66D  # odd and not a multiple of 31: invertible mod 62**8
_MIX_C = 0x2545F4914F6CDD1D % _MAX_INDEX
_MIX_K_INV = pow(_MIX_K, -1, _MAX_INDEX)
# base64 of the hash with its two non-alphanumeric symbols mapped onto letters: C-speed, base62 output.
_TO_BASE62 = bytes.maketrans(b"-_", b"xQ")
_PAIRS = [a + b for a in BASE62 for b in BASE62]  # 3,844 two-digit strings: 4 divmods per index


def _index_digits(n: int) -> str:
    n, d3 = divmod(n, 3844)
    n, d2 = divmod(n, 3844)
    d0, d1 = divmod(n, 3844)
    return _PAIRS[d0] + _PAIRS[d1] + _PAIRS[d2] + _PAIRS[d3]


def _prefix(kind: str, n: int) -> str:
    digest = hashlib.blake2b(f"{kind}:{n}".encode(), digest_size=12).digest()
    return base64.urlsafe_b64encode(digest)[: ID_LENGTH - _INDEX_DIGITS].translate(_TO_BASE62).decode("ascii")


def make_id(kind: str, n: int) -> str:
    if not 0 <= n < _MAX_INDEX:
        raise ValueError(f"index {n} out of range for a {kind} id")
    return _prefix(kind, n) + _index_digits((n * _MIX_K + _MIX_C) % _MAX_INDEX)


def is_base62_id(text: str) -> bool:
    return len(text) == ID_LENGTH and all(c in _DIGIT for c in text)


def parse_id(kind: str, text: str) -> int | None:
    """Index encoded in ``text`` if it is a ``kind`` id this world issued, else None."""
    if not is_base62_id(text):
        return None
    m = 0
    for c in text[-_INDEX_DIGITS:]:
        m = m * 62 + _DIGIT[c]
    n = ((m - _MIX_C) * _MIX_K_INV) % _MAX_INDEX
    return n if _prefix(kind, n) == text[:-_INDEX_DIGITS] else None


def base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
