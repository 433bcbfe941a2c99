"""Raw Web API objects into canonical profile parts (rows, tracks, artists), and the checks a page passes before it is kept."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from soundmates.profiles import Artist, Playlist, Track

from .errors import MalformedResponse

PAGE_LIMIT = 50  # the most /users/{id}/playlists and /playlists/{id}/items allow
# The API refuses offsets above 100,000 on playlist listings; a paging loop must end somewhere.
MAX_OFFSET = 100_000
_TRACK_FIELDS = "id,name,type,is_local,explicit,popularity,duration_ms,artists(id,name),album(name,release_date)"
#: The ``fields`` filter of playlist-items calls: exactly what :func:`classify_row` and :func:`track_from`
#: read, pages ~13x smaller to send, decode and keep. Rows hold their content as ``item`` since Feb 2026
#: (and the same again as the deprecated ``track``): only ``item`` is asked for.
ITEM_FIELDS = f"next,items(added_at,is_local,item({_TRACK_FIELDS}))"
#: The filter for an API that predates the rename (its rows have no ``item``): both names.
LEGACY_ITEM_FIELDS = f"next,items(added_at,is_local,item({_TRACK_FIELDS}),track({_TRACK_FIELDS}))"
#: The playlist counter each kind of skipped row adds to.
SKIP_FIELD = {"episode": "skipped_episodes", "local": "skipped_local", "null": "skipped_null"}

_YEAR = re.compile(r"^(\d{4})")


def release_year(album: dict | None) -> int | None:
    date = (album or {}).get("release_date")
    if not isinstance(date, str):
        return None
    m = _YEAR.match(date)
    year = int(m.group(1)) if m else 0
    return year if year > 0 else None  # "0000" occurs in real data


def _row_content(row: dict) -> dict | None:
    # Feb 2026 renamed a row's `track` to `item`; parse both.
    content = row.get("item")
    return content if content is not None else row.get("track")


def rows_without_item(page: dict) -> bool:
    """Does this items page come from an API that predates the ``item`` rename (row objects, none with ``item``)?"""
    rows = [r for r in page.get("items") or [] if isinstance(r, dict)]
    return bool(rows) and not any("item" in r for r in rows)


def classify_row(row: Any) -> tuple[str, dict | None]:
    """("track", track object) or the kind of skipped row: "episode", "local", "null"."""
    if not isinstance(row, dict):
        return "null", None
    content = _row_content(row)
    if row.get("is_local") or (isinstance(content, dict) and content.get("is_local")):
        return "local", None
    if not isinstance(content, dict):
        return "null", None
    if content.get("type", "track") != "track":
        return "episode", None  # podcast episodes (and any other non-music kind)
    if not isinstance(content.get("id"), str) or not content["id"]:
        return "null", None
    return "track", content


def str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def track_from(obj: dict) -> tuple[Track, list[tuple[str, str]]]:
    """The canonical track of a track object, and its artists as (id, name)."""
    artists = [a for a in obj.get("artists") or [] if isinstance(a, dict) and isinstance(a.get("id"), str) and a["id"]]
    album = obj.get("album") if isinstance(obj.get("album"), dict) else None
    album_name = (album or {}).get("name")
    explicit = obj.get("explicit")
    track = Track(
        id=obj["id"],
        name=str(obj.get("name") or ""),
        artist_ids=[a["id"] for a in artists],
        album_name=album_name if isinstance(album_name, str) else None,
        release_year=release_year(album),
        explicit=explicit if isinstance(explicit, bool) else None,
        popularity=int_or_none(obj.get("popularity")),
        duration_ms=int_or_none(obj.get("duration_ms")),
    )
    return track, [(a["id"], str(a.get("name") or "")) for a in artists]


def artist_from(artist_id: str, raw: dict | None, fallback_name: str) -> Artist:
    """The canonical artist of a raw artist object (None = details unknown: only the name from a track)."""
    if not isinstance(raw, dict):
        return Artist(id=artist_id, name=fallback_name)  # details unknown: name from the track
    genres = raw.get("genres")
    return Artist(
        id=artist_id,
        name=str(raw.get("name") or fallback_name),
        genres=[str(g) for g in genres] if isinstance(genres, list) else None,
        popularity=int_or_none(raw.get("popularity")),
    )


def playlist_from(listed: dict) -> Playlist:
    """The (still empty) canonical playlist of a playlist listing's entry (a dict with a string ``id``)."""
    owner = listed.get("owner")
    if not isinstance(owner, dict):
        owner = {}
    return Playlist(
        id=listed["id"],
        name=str(listed.get("name") or ""),
        owner_id=owner.get("id") if isinstance(owner.get("id"), str) else None,
    )


def listed_total(listed: dict) -> int | None:
    """How many items a playlist listing's entry says the playlist holds (None = it does not say)."""
    # Feb 2026 renamed the playlist's `tracks` ({href, total}) to `items`; parse both.
    ref = listed.get("items") if isinstance(listed.get("items"), dict) else listed.get("tracks")
    return ref.get("total") if isinstance(ref, dict) else None


def next_offset(page: dict, offset: int, endpoint: str) -> int | None:
    """The offset of the page after ``page`` (None = last page); MalformedResponse if paging does not advance."""
    nxt = page.get("next")
    if not nxt:
        return None
    if not isinstance(nxt, str):
        raise MalformedResponse(f"malformed data: {endpoint} paging has a 'next' that is not a link", endpoint=endpoint)
    # The offset is read from `next` but the request is rebuilt on the current API prefix:
    # a stored page of an earlier run may point at a server (port) that is gone.
    try:
        new = int(parse_qs(urlsplit(str(nxt)).query).get("offset", [""])[0])
    except (TypeError, ValueError):
        new = offset + len(page["items"])
    if new <= offset or new > MAX_OFFSET:
        raise MalformedResponse(
            f"malformed data: {endpoint} paging does not advance (offset {offset} -> {new})", endpoint=endpoint
        )
    return new


def check_page(page: Any, endpoint: str, offset: int) -> dict:
    """``page`` if it is a paging object with an ``items`` list, else MalformedResponse."""
    if not isinstance(page, dict) or not isinstance(page.get("items"), list):
        raise MalformedResponse(f"malformed data: the {endpoint} page at offset {offset} has no 'items' list", endpoint=endpoint)
    return page


def check_user(user: dict) -> dict:
    """``user`` if its id (when present) is a string, else MalformedResponse."""
    if not isinstance(user.get("id", ""), str):
        raise MalformedResponse("malformed data: the user object has no string id", endpoint="user")
    return user
