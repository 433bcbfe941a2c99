"""Playlist writes on the local server: ``POST /v1/me/playlists`` (create) and ``POST /v1/playlists/{id}/items`` (add).

As the Web API documents them (openapi.yml, 2026): creating needs ``playlist-modify-private`` for a
private playlist (``public: false``) and ``playlist-modify-public`` for a public one, adding the scope of
the playlist's visibility, else 403 ``Insufficient client scope``; at most 100 URIs per request (400);
each change answers 201 with a new ``snapshot_id``. Created playlists are kept in memory for the life of
the server (the world itself is generated, never edited) and then show in ``GET /v1/me/playlists`` and
``GET /v1/playlists/{id}`` / ``…/items`` like any other.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from soundmates.world.discography import track_by_id
from soundmates.world.errors import ApiError
from soundmates.world.ids import is_base62_id
from soundmates.world.playlists import ROW_TRACK, PlaylistSpec
from soundmates.world.render import page
from soundmates.world.request import Request

MAX_ITEMS_PER_REQUEST = 100
MAX_PLAYLIST_ITEMS = 10_000
# Numbers of created playlists start far above any generated one (PlaylistSpec.n names images, followers).
_FIRST_N = 1 << 50


@dataclass(frozen=True)
class CreatedPlaylist(PlaylistSpec):
    public: bool = False
    collaborative: bool = False


class CreatedPlaylists:
    """The playlists created through the API on one server (in memory), by id and by owner (newest first)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_id: dict[str, CreatedPlaylist] = {}
        self.by_owner: dict[int, list[str]] = {}

    def get(self, playlist_id: str) -> CreatedPlaylist | None:
        with self.lock:
            return self.by_id.get(playlist_id)

    def owned(self, user: int) -> list[CreatedPlaylist]:
        with self.lock:
            return [self.by_id[p] for p in self.by_owner.get(user, [])]


def _snapshot() -> str:
    return secrets.token_urlsafe(24)


def _json_body(req: Request) -> dict:
    if not req.body.strip():
        return {}
    try:
        body = json.loads(req.body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Error parsing JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Error parsing JSON.")
    return body


def _grant(req: Request):
    from soundmates.world import me

    user = me._me(req)  # 401 for an app token, 403 for a user dropped from the allowlist
    return user, req.app.oauth.user_grant(req.bearer)


def _need(grant, public: bool) -> None:
    scope = "playlist-modify-public" if public else "playlist-modify-private"
    if scope not in grant.scopes:
        raise ApiError(403, "Insufficient client scope")


def create_playlist(req: Request) -> dict:
    """``POST /v1/me/playlists``: a new empty playlist of the token's user; 201 with the playlist object."""
    user, grant = _grant(req)
    body = _json_body(req)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "Missing required field: name")
    public, collaborative = body.get("public", True), body.get("collaborative", False)
    if not isinstance(public, bool) or not isinstance(collaborative, bool):
        raise ApiError(400, "Invalid request body")
    description = body.get("description", "")
    if not isinstance(description, str):
        raise ApiError(400, "Invalid request body")
    if collaborative and public:
        raise ApiError(400, "Collaborative playlists can only be private.")
    _need(grant, public)
    if collaborative:
        _need(grant, True)
    store: CreatedPlaylists = req.app.created_playlists
    with store.lock:
        n = _FIRST_N + len(store.by_id)
        pid = _new_id(req, store)
        empty = np.zeros(0, dtype=np.int64)
        pl = CreatedPlaylist(
            n, pid, user, name, description, empty.astype(np.int8), empty, empty, _snapshot(), public, collaborative
        )
        store.by_id[pid] = pl
        store.by_owner.setdefault(user, []).insert(0, pid)
    return render(req, pl)


def _new_id(req: Request, store: CreatedPlaylists) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    while True:
        pid = "".join(secrets.choice(alphabet) for _ in range(22))
        if pid not in store.by_id and req.app.world.playlist(pid) is None:
            return pid


def render(req: Request, pl: CreatedPlaylist) -> dict:
    out = req.app.renderer.playlist_simple(pl)
    out["public"], out["collaborative"] = pl.public, pl.collaborative
    out["followers"] = {"href": None, "total": 0}
    out["items"] = page(req.app.api_url, f"playlists/{pl.id}/items", pl.total, 0, 100, lambda a, b: [])
    out.pop("tracks", None)  # the full object carries the 2026 ``items`` page only
    return out


def _uris(req: Request, body: dict) -> list[str]:
    given = req.query.get("uris")
    uris: list[str]
    if given:  # the query string wins over the body, as the spec says
        uris = [u.strip() for u in given[-1].split(",") if u.strip()]
    else:
        listed = body.get("uris")
        if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
            raise ApiError(400, "No uris provided")
        uris = listed
    if not uris:
        raise ApiError(400, "No uris provided")
    if len(uris) > MAX_ITEMS_PER_REQUEST:
        raise ApiError(400, "You can add a maximum of 100 tracks per request.")
    return uris


def _track_numbers(uris: list[str]) -> list[int]:
    out = []
    for uri in uris:
        kind, _, tid = uri.partition("spotify:track:")
        if kind or not is_base62_id(tid):
            raise ApiError(400, f"Invalid track uri: {uri}")
        spec = track_by_id(tid)
        if spec is None:
            raise ApiError(400, "Payload contains a non-existing ID")
        out.append(spec.n)
    return out


def _position(req: Request, body: dict, total: int) -> int:
    given = req.query.get("position")
    value = given[-1] if given else body.get("position")
    if value is None:
        return total
    try:
        pos = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "Invalid position") from None
    if not 0 <= pos <= total:
        raise ApiError(400, "Index out of bounds")
    return pos


def add_items(req: Request, playlist_id: str) -> dict:
    """``POST /v1/playlists/{id}/items``: insert up to 100 tracks (append by default); 201 with the new snapshot id."""
    user, grant = _grant(req)
    store: CreatedPlaylists = req.app.created_playlists
    pl = store.get(playlist_id)
    if pl is None:
        if req.app.world.playlist(playlist_id) is not None:
            raise ApiError(403, "You cannot add tracks to a playlist you don't own.")
        raise ApiError(
            404 if is_base62_id(playlist_id) else 400, "Resource not found" if is_base62_id(playlist_id) else "Invalid base62 id"
        )
    if pl.owner != user and not pl.collaborative:
        raise ApiError(403, "You cannot add tracks to a playlist you don't own.")
    _need(grant, pl.public)
    body = _json_body(req)
    numbers = _track_numbers(_uris(req, body))
    with store.lock:
        pl = store.by_id[playlist_id]  # the latest version: another request may have added meanwhile
        if pl.total + len(numbers) > MAX_PLAYLIST_ITEMS:
            raise ApiError(400, "Playlist size limit reached")
        pos = _position(req, body, pl.total)
        new = np.asarray(numbers, dtype=np.int64)
        now = np.full(len(numbers), int(time.time()), dtype=np.int64)
        pl = replace(
            pl,
            kinds=np.insert(pl.kinds, pos, np.full(len(numbers), ROW_TRACK, dtype=np.int8)),
            values=np.insert(pl.values, pos, new),
            added_at=np.insert(pl.added_at, pos, now),
            snapshot_id=_snapshot(),
        )
        store.by_id[playlist_id] = pl
    return {"snapshot_id": pl.snapshot_id}


def readable(req: Request, playlist_id: str) -> CreatedPlaylist | None:
    """A created playlist for ``GET /v1/playlists/{id}[/items]``; in development mode its items only for the owner."""
    pl = req.app.created_playlists.get(playlist_id)
    if pl is not None and req.app.mode == "development" and not pl.collaborative:
        grant = req.app.oauth.user_grant(req.bearer)
        if grant is not None and grant.user != pl.owner:
            raise ApiError(403, "Forbidden")
    return pl
