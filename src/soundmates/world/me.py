"""The ``/v1/me…`` endpoints of the local server: the account an OAuth user token belongs to.

Top tracks and artists are the ones the user's playlists hold most often; they follow every other
one of their top artists; saved tracks are those of their first playlist, newest save first.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

from soundmates.world.discography import artist_id, catalog_track, track_by_n
from soundmates.world.errors import ApiError, int_param
from soundmates.world.oauth import FOLLOWED_MAX, NOT_REGISTERED, TOP_LIMIT
from soundmates.world.playlists import ROW_EPISODE, ROW_LOCAL, ROW_NULL
from soundmates.world.render import iso, page
from soundmates.world.request import Request

_NOT_MUSIC = (ROW_EPISODE, ROW_LOCAL, ROW_NULL)


def _me(req: Request, scope: str | None = None) -> int:
    """The user index of the request's user token (401 for an app token, 403 without ``scope``)."""
    oauth = req.app.oauth
    g = oauth.user_grant(req.bearer)
    if g is None:
        raise ApiError(401, "Valid user authentication required")
    if scope is not None and scope not in g.scopes:
        raise ApiError(403, "Insufficient client scope")
    if not oauth.may_log_in(req.app.world.user_ids[g.user]):  # removed from the allowlist after logging in
        raise ApiError(403, NOT_REGISTERED)
    return g.user


def get_me(req: Request) -> dict:
    out = req.app.renderer.user(_me(req))
    out["country"] = "SE"
    out["product"] = "premium"
    return out


def get_me_playlists(req: Request) -> dict:
    app = req.app
    i = _me(req)
    limit = int_param(req.query, "limit", 20, 1, 50)
    offset = int_param(req.query, "offset", 0, 0, 100_000)
    pls = (
        [(p, False) for p in app.created_playlists.owned(i)]  # created through the API, newest first
        + [(p, False) for p in app.world.playlists(i)]
        + [(p, True) for p in app.oauth.collaborations(i)]
        + [(p, False) for p in app.oauth.followed_playlists(i)]
    )
    r = app.renderer

    def render(a: int, b: int) -> list[dict]:
        out = []
        for p, is_collab in pls[a:b]:
            obj = dict(r.playlist_simple(p))
            obj["collaborative"] = is_collab or obj["collaborative"]
            obj["public"] = obj["public"] and not is_collab
            out.append(obj)
        return out

    return page(app.api_url, "me/playlists", len(pls), offset, limit, render)


def _ranked(world, user: int) -> tuple[list[int], list[int]]:
    """(track numbers, artist indices) of the user's playlists, most frequent first (ties: first seen)."""
    tracks: Counter[int] = Counter()
    for pl in world.playlists(user):
        for kind, value in zip(pl.kinds.tolist(), pl.values.tolist()):
            if kind not in _NOT_MUSIC:
                tracks[value] += 1
    order = sorted(tracks, key=lambda t: -tracks[t])  # sorted is stable: ties keep first-seen order
    artists: Counter[int] = Counter()
    for t in order:
        spec = track_by_n(t)
        if spec is not None:
            artists[spec.artist] += tracks[t]
    return order, sorted(artists, key=lambda a: -artists[a])


def get_me_top(req: Request, kind: str) -> dict:
    app = req.app
    i = _me(req, "user-top-read")
    time_range = (req.query.get("time_range") or ["medium_term"])[-1]
    if time_range not in ("short_term", "medium_term", "long_term"):
        raise ApiError(400, "Invalid time range")
    limit = int_param(req.query, "limit", 20, 1, 50)
    offset = int_param(req.query, "offset", 0, 0, TOP_LIMIT)
    tracks, artists = _ranked(app.world, i)
    r = app.renderer
    path = f"me/top/{kind}"
    if kind == "tracks":
        chosen = tracks[:TOP_LIMIT]
        return page(app.api_url, path, len(chosen), offset, limit, lambda a, b: [r.track(catalog_track(t)) for t in chosen[a:b]])
    chosen = artists[:TOP_LIMIT]
    return page(app.api_url, path, len(chosen), offset, limit, lambda a, b: [r.artist(x) for x in chosen[a:b]])


def get_me_tracks(req: Request) -> dict:
    """Saved tracks ("Liked songs"): the tracks of the user's first playlist, newest save first."""
    app = req.app
    i = _me(req, "user-library-read")
    limit = int_param(req.query, "limit", 20, 1, 50)
    offset = int_param(req.query, "offset", 0, 0, 100_000)
    saved: list[tuple[int, int]] = []
    seen: set[int] = set()
    pls = app.world.playlists(i)
    if pls:
        pl = pls[0]
        for kind, value, ts in zip(pl.kinds.tolist(), pl.values.tolist(), pl.added_at.tolist()):
            if kind not in _NOT_MUSIC and value not in seen:
                seen.add(value)
                saved.append((value, ts))
    saved.sort(key=lambda x: -x[1])
    r = app.renderer
    return page(
        app.api_url,
        "me/tracks",
        len(saved),
        offset,
        limit,
        lambda a, b: [{"added_at": iso(ts), "track": r.track(catalog_track(t))} for t, ts in saved[a:b]],
    )


def get_me_following(req: Request) -> dict:
    """Followed artists, cursor-paged by the last artist id (``after``), as Spotify does."""
    app = req.app
    i = _me(req, "user-follow-read")
    if (req.query.get("type") or [""])[-1] != "artist":
        raise ApiError(400, "Bad request: type must be artist")
    limit = int_param(req.query, "limit", 20, 1, 50)
    after_given = req.query.get("after")
    after = after_given[-1] if after_given else None
    followed = _ranked(app.world, i)[1][::2][:FOLLOWED_MAX]
    ids = [artist_id(a) for a in followed]
    if after is not None and after not in ids:
        raise ApiError(400, "Invalid after cursor")
    start = ids.index(after) + 1 if after is not None else 0
    chunk = followed[start : start + limit]
    more = start + limit < len(followed)
    last = artist_id(chunk[-1]) if chunk else None
    base = f"{app.api_url}me/following?type=artist&limit={limit}"
    r = app.renderer
    return {
        "artists": {
            "href": base + (f"&after={quote(after)}" if after else ""),
            "limit": limit,
            "next": f"{base}&after={quote(last)}" if more and last else None,
            "cursors": {"after": last if more else None},
            "total": len(followed),
            "items": [r.artist(a) for a in chunk],
        }
    }
