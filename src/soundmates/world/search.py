"""``GET /v1/search`` of the local Spotify world: query parameters in, the search response dict out.

Only ``type=artist`` is served (over the shipped catalog). Matching is by normalised name: an
exact match first, then names containing every word of the query, most popular first, as
Spotify ranks. Parameter checks follow the OpenAPI spec (limit 1..10, default 5; offset 0..1000)
with the error messages the real API sends.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlencode

import numpy as np

from soundmates.catalog_data import artists, normalise_artist_name

SEARCH_TYPES = ("album", "artist", "playlist", "track", "show", "episode", "audiobook")
SERVED_TYPES = ("artist",)
DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET = 5, 10, 1000
# Field filters the query may carry (artist:"Name"); only the text is matched.
_FILTER = re.compile(r"\b(?:artist|genre|year|tag):", re.IGNORECASE)


class BadSearch(ValueError):
    """A request the API answers with 400; the message is the API's."""


def _last(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _bounded_int(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    raw = _last(query, name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadSearch(f"Invalid {name}") from None
    if not low <= value <= high:
        raise BadSearch(f"Invalid {name}")
    return value


@dataclass(frozen=True)
class _NameIndex:
    keys: list[str]  # normalised catalog names
    text: str  # the keys joined by newlines: one C-speed str.find scans them all
    starts: list[int]  # offset of each key in ``text``
    rank: np.ndarray  # popularity rank of each artist (0 = most popular)


@lru_cache(maxsize=1)
def _name_index() -> _NameIndex:
    table = artists()
    keys = [normalise_artist_name(n).replace("\n", " ") for n in table.names]
    starts, pos = [], 0
    for k in keys:
        starts.append(pos)
        pos += len(k) + 1
    order = np.argsort(-table.popularity.astype(np.int32), kind="stable")
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys))
    return _NameIndex(keys, "\n".join(keys), starts, rank)


def _holding(index: _NameIndex, word: str) -> set[int]:
    """Indices of the names that contain ``word``."""
    found: set[int] = set()
    at = index.text.find(word)
    while at != -1:
        i = bisect_right(index.starts, at) - 1
        found.add(i)
        at = index.text.find(word, index.starts[i] + len(index.keys[i]) + 1)  # the next name on
    return found


def matching_artists(text: str) -> list[int]:
    """Catalog indices of artists matching ``text``: exact names first, then names holding every word,
    each group most popular first."""
    wanted = normalise_artist_name(_FILTER.sub(" ", text).replace('"', " "))
    if not wanted:
        return []
    index = _name_index()
    words = sorted(set(wanted.split()), key=len, reverse=True)
    hits = [i for i in _holding(index, words[0]) if all(w in index.keys[i] for w in words[1:])]
    return sorted(hits, key=lambda i: (index.keys[i] != wanted, int(index.rank[i])))


def search_response(query: dict[str, list[str]], api_url: str, render_artist: Callable[[int], dict]) -> dict:
    """The body of ``GET /v1/search`` for parsed query parameters; :class:`BadSearch` when the API says 400."""
    # Spotify's own next/previous links spell the query ``query=``; both are accepted, as there.
    q = _last(query, "q") or _last(query, "query")
    if q is None or not q.strip():
        raise BadSearch("No search query")
    raw_type = _last(query, "type")
    if raw_type is None or not raw_type.strip():
        raise BadSearch("Missing parameter type")
    types = [t.strip() for t in raw_type.split(",")]
    if any(t not in SEARCH_TYPES for t in types):
        raise BadSearch("Bad search type field")
    if any(t not in SERVED_TYPES for t in types):
        raise BadSearch("this local server searches artists only: use type=artist")
    limit = _bounded_int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _bounded_int(query, "offset", 0, 0, MAX_OFFSET)
    found = matching_artists(q)

    def url(o: int) -> str:
        return f"{api_url}search?{urlencode({'offset': o, 'limit': limit, 'query': q, 'type': raw_type})}"

    total = len(found)
    return {
        "artists": {
            "href": url(offset),
            "items": [render_artist(a) for a in found[offset : offset + limit]],
            "limit": limit,
            "next": url(offset + limit) if offset + limit < total and offset + limit <= MAX_OFFSET else None,
            "offset": offset,
            "previous": url(max(0, offset - limit)) if offset > 0 else None,
            "total": total,
        }
    }
