"""Save a list of tracks as a private playlist in a connected Spotify account (``POST /me/playlists``, then
``POST /playlists/{id}/items`` with at most 100 URIs per request, in order)."""

from __future__ import annotations

import logging

from pydantic import BaseModel
from spotipy.oauth2 import SpotifyOauthError

from .connect import NotConnected, ReconnectNeeded, SpotifyConnect
from .errors import SpotifyError

log = logging.getLogger(__name__)

WRITE_SCOPE = "playlist-modify-private"
ITEMS_PER_REQUEST = 100


class ScopeMissing(SpotifyError):
    """The account was connected without the permission to create playlists."""


class SavedPlaylist(BaseModel):
    id: str
    url: str | None = None
    snapshot_id: str | None = None
    tracks: int = 0
    account: str


def granted_scopes(flow: SpotifyConnect, account: str) -> set[str]:
    """The scopes the account's stored tokens carry; NotConnected when there are none."""
    info = flow.tokens.load(account)
    if info is None:
        raise NotConnected(f"not connected: {account!r} has not connected with Spotify here; connect first (soundmates connect)")
    return set(str(info.get("scope") or "").split())


def save_playlist(flow: SpotifyConnect, account: str, name: str, description: str, track_ids: list[str]) -> SavedPlaylist:
    """Create a private playlist in ``account`` holding ``track_ids`` in order; typed errors with one-line reasons."""
    if WRITE_SCOPE not in granted_scopes(flow, account):
        raise ScopeMissing(
            f"{account!r} connected without the {WRITE_SCOPE} permission, so Soundmates cannot create playlists there: "
            "connect with Spotify again and allow it"
        )
    client = flow.client(account)
    try:
        made = client.post("create_playlist", "me/playlists", {"name": name, "public": False, "description": description})
        pid = made.get("id")
        if not isinstance(pid, str) or not pid:
            raise SpotifyError("Spotify's answer to creating the playlist has no id")
        snapshot = made.get("snapshot_id")
        for start in range(0, len(track_ids), ITEMS_PER_REQUEST):
            chunk = [f"spotify:track:{t}" for t in track_ids[start : start + ITEMS_PER_REQUEST]]
            snapshot = client.post("add_playlist_items", f"playlists/{pid}/items", {"uris": chunk}).get("snapshot_id")
    except SpotifyOauthError as exc:
        raise ReconnectNeeded(
            f"Spotify refused the stored refresh token ({exc.error_description or exc.error}): connect again"
        ) from None
    log.info("saved a playlist of %d tracks to %s", len(track_ids), account)
    url = (made.get("external_urls") or {}).get("spotify")
    return SavedPlaylist(id=pid, url=url, snapshot_id=snapshot, tracks=len(track_ids), account=account)
