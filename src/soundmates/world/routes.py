"""The local server's route table and request pipeline: which handler answers a path, in Spotify's order of checks.

Order (each step can end the request): ``/_stats``, ``/authorize``, ``/api/token``; then for ``/v1``
paths the route lookup, the injected fault (latency, 429, 5xx or a dropped connection), 404 for an
unknown path, 405 for a verb other than GET, the token check (401), development-mode refusals (403),
the playlist-access rule of user tokens, and the handler.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from soundmates.world import me, playlists_write, search
from soundmates.world.discography import artist_by_id, track_by_id
from soundmates.world.errors import ApiError, ids_param, int_param
from soundmates.world.fields import FieldsError, FieldSpec, parse_fields, project
from soundmates.world.ids import is_base62_id
from soundmates.world.playlists import PlaylistSpec
from soundmates.world.render import RawJSON, page, page_json
from soundmates.world.render_fields import rows_page_json
from soundmates.world.request import DROP, Request, Response, json_response

MAX_OFFSET = 100_000
# Endpoint names (for stats) of the routes development mode refuses since Feb 2026.
DEV_REMOVED = frozenset({"user", "user_playlists", "artists", "tracks", "playlist_tracks"})
_ANY = None  # a path segment that is an argument of the handler


@dataclass(frozen=True)
class Route:
    """``METHOD /v1/<segments>`` → ``handler(request, *the segments at _ANY)``, counted under ``endpoint``,
    answered with ``status`` (201 for what creates)."""

    endpoint: str
    segments: tuple[str | None, ...]
    handler: Callable[..., Any]
    method: str = "GET"
    status: int = 200

    def match(self, seg: list[str]) -> tuple | None:
        if len(seg) != len(self.segments):
            return None
        args = []
        for want, got in zip(self.segments, seg):
            if want is _ANY:
                args.append(got)
            elif want != got:
                return None
        return tuple(args)


# --- catalogue endpoints -------------------------------------------------------------------------
def _user_index(req: Request, user_id: str) -> int:
    i = req.app.world.user_index(user_id)
    if i is None:
        raise ApiError(404, "No such user")
    return i


def get_user(req: Request, user_id: str) -> dict:
    return req.app.renderer.user(_user_index(req, user_id))


def get_user_playlists(req: Request, user_id: str) -> dict:
    app = req.app
    i = _user_index(req, user_id)
    limit = int_param(req.query, "limit", 20, 1, 50)
    offset = int_param(req.query, "offset", 0, 0, MAX_OFFSET)
    pls = app.world.playlists(i)
    r = app.renderer
    return page(
        app.api_url,
        f"users/{quote(user_id, safe='')}/playlists",
        len(pls),
        offset,
        limit,
        lambda a, b: [r.playlist_simple(p) for p in pls[a:b]],
    )


def _playlist(req: Request, playlist_id: str) -> PlaylistSpec:
    pl = req.app.world.playlist(playlist_id) or playlists_write.readable(req, playlist_id)
    if pl is None:
        if not is_base62_id(playlist_id):
            raise ApiError(400, "Invalid base62 id")
        raise ApiError(404, "Resource not found")
    return pl


def _fields(req: Request) -> FieldSpec | None:
    """The call's ``fields`` filter (None = every field); 400 if it does not parse."""
    text = (req.query.get("fields") or [""])[0]
    if not text.strip():
        return None
    try:
        return parse_fields(text)
    except FieldsError:
        raise ApiError(400, "Invalid fields parameter") from None


def _rows_page(req: Request, pl: PlaylistSpec, which: str, offset: int, limit: int, spec: FieldSpec | None = None) -> RawJSON:
    r = req.app.renderer
    if spec is not None:
        return rows_page_json(r, f"playlists/{pl.id}/{which}", pl, offset, limit, spec)
    return page_json(req.app.api_url, f"playlists/{pl.id}/{which}", pl.total, offset, limit, lambda a, b: r.rows_json(pl, a, b))


def get_playlist(req: Request, playlist_id: str) -> dict:
    app = req.app
    pl = _playlist(req, playlist_id)
    # Rarely called by an ingest: the embedded pages are built as plain dicts.
    items = json.loads(_rows_page(req, pl, "items", 0, 50 if app.mode == "development" else 100))
    tracks = json.loads(_rows_page(req, pl, "tracks", 0, 100)) if app.mode == "full" else None
    return project(app.renderer.playlist_full(pl, items, tracks), _fields(req))


def _playlist_rows(which: str) -> Callable[[Request, str], RawJSON]:
    def get_rows(req: Request, playlist_id: str) -> RawJSON:
        pl = _playlist(req, playlist_id)
        max_limit = 100 if which == "tracks" else 50
        limit = int_param(req.query, "limit", 20 if which == "items" else 100, 1, max_limit)
        offset = int_param(req.query, "offset", 0, 0, 10**9)
        return _rows_page(req, pl, which, offset, limit, _fields(req))

    return get_rows


def get_artists(req: Request) -> dict:
    r = req.app.renderer
    return {"artists": [None if (a := artist_by_id(aid)) is None else r.artist(a) for aid in ids_param(req.query)]}


def get_artist(req: Request, aid: str) -> dict:
    if not is_base62_id(aid):
        raise ApiError(400, "invalid id")
    a = artist_by_id(aid)
    if a is None:
        raise ApiError(404, "Resource not found")
    return req.app.renderer.artist(a)


def get_tracks(req: Request) -> dict:
    r = req.app.renderer
    return {"tracks": [None if (t := track_by_id(tid)) is None else r.track(t) for tid in ids_param(req.query)]}


def get_track(req: Request, tid: str) -> dict:
    if not is_base62_id(tid):
        raise ApiError(400, "invalid id")
    spec = track_by_id(tid)
    if spec is None:
        raise ApiError(404, "Resource not found")
    return req.app.renderer.track(spec)


def get_search(req: Request) -> dict:
    try:
        return search.search_response(req.query, req.app.api_url, req.app.renderer.artist)
    except search.BadSearch as err:
        raise ApiError(400, str(err)) from None


def get_audio_features(req: Request, *_ids: str) -> dict:
    # Refused to new apps since Nov 2024, with this exact (message-less) body.
    raise ApiError(403, None)


ROUTES: tuple[Route, ...] = (
    Route("me", ("me",), me.get_me),
    Route("me_playlists", ("me", "playlists"), me.get_me_playlists),
    Route("me_tracks", ("me", "tracks"), me.get_me_tracks),
    Route("me_following", ("me", "following"), me.get_me_following),
    Route("me_top_artists", ("me", "top", "artists"), lambda req: me.get_me_top(req, "artists")),
    Route("me_top_tracks", ("me", "top", "tracks"), lambda req: me.get_me_top(req, "tracks")),
    Route("user", ("users", _ANY), get_user),
    Route("user_playlists", ("users", _ANY, "playlists"), get_user_playlists),
    Route("playlist", ("playlists", _ANY), get_playlist),
    Route("playlist_items", ("playlists", _ANY, "items"), _playlist_rows("items")),
    Route("playlist_tracks", ("playlists", _ANY, "tracks"), _playlist_rows("tracks")),
    Route("artists", ("artists",), get_artists),
    Route("artist", ("artists", _ANY), get_artist),
    Route("tracks", ("tracks",), get_tracks),
    Route("track", ("tracks", _ANY), get_track),
    Route("search", ("search",), get_search),
    Route("audio_features", ("audio-features",), get_audio_features),
    Route("audio_features", ("audio-features", _ANY), get_audio_features),
    Route("create_playlist", ("me", "playlists"), playlists_write.create_playlist, "POST", 201),
    Route("add_playlist_items", ("playlists", _ANY, "items"), playlists_write.add_items, "POST", 201),
)
_BY_HEAD: dict[str | None, list[Route]] = {}
for _route in ROUTES:
    _BY_HEAD.setdefault(_route.segments[0], []).append(_route)


def find_route(path: str, method: str = "GET") -> tuple[Route, tuple] | None:
    """The route of a ``/v1/…`` path and its arguments (the one of ``method`` when the path has several), or None."""
    if not path.startswith("/v1/"):
        return None
    # Split the raw path first, then percent-decode each segment: an id may hold an encoded '/'.
    seg = [unquote(s) for s in path[len("/v1/") :].split("/")]
    if seg and seg[-1] == "" and len(seg) > 1:
        seg = seg[:-1]
    found = [(route, args) for route in _BY_HEAD.get(seg[0], ()) if (args := route.match(seg)) is not None]
    return next((f for f in found if f[0].method == method), found[0] if found else None)


# --- the pipeline ----------------------------------------------------------------------------------
def respond(req: Request) -> Response:
    """The answer to one request (``DROP``: close the connection without one)."""
    app = req.app
    if req.path == "/_stats":
        if req.method == "DELETE":
            app.reset_stats()
            return json_response(200, {"reset": True})
        return json_response(200, app.stats())
    if req.path == "/authorize":  # OAuth login/consent for one's own account
        resp = app.oauth.authorize(req)
        app.count("authorize", resp.status)
        return resp
    if req.path == "/api/token":
        resp = app.oauth.token(req)
        app.count("token", resp.status)
        return resp
    found = find_route(req.path, req.method)
    if found is not None:
        fault = app.fault_injector.before(f"{req.method} {req.target}")
        if fault is not None:
            kind, err = fault
            if err is None:
                app.count(found[0].endpoint, 0, kind)
                return DROP
            app.count(found[0].endpoint, err.status, kind)
            return json_response(err.status, err.body(), err.headers)
    endpoint = found[0].endpoint if found is not None else "unknown"
    try:
        body = _answer(req, found)
    except ApiError as err:
        app.count(endpoint, err.status)
        return json_response(err.status, err.body(), err.headers)
    except Exception as exc:  # noqa: BLE001 - a bug must answer 500, not kill the connection silently
        app.count(endpoint, 500)
        sys.stderr.write(f"spotify-server: error on {req.target}: {exc!r}\n")
        return json_response(500, {"error": {"status": 500, "message": "Server error."}})
    status = found[0].status if found is not None else 200
    app.count(endpoint, status)
    return json_response(status, body)


def _answer(req: Request, found: tuple[Route, tuple] | None) -> Any:
    """The checks every ``/v1`` call passes, then the handler's body (or an :class:`ApiError`)."""
    if found is None:
        raise ApiError(404, "Service not found")
    route, args = found
    if req.method != route.method:
        raise ApiError(405, "Method not allowed")
    _check_auth(req)
    app = req.app
    if app.mode == "development" and route.endpoint in DEV_REMOVED:
        raise ApiError(403, "Forbidden")
    app.oauth.check_playlist_access(req.bearer, route.endpoint, args[0] if args else None)
    return route.handler(req, *args)


def _check_auth(req: Request) -> None:
    header = req.header("Authorization")
    if not header.strip():
        raise ApiError(401, "No token provided")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not req.app.token_valid(token.strip()):
        raise ApiError(401, "Invalid access token")
