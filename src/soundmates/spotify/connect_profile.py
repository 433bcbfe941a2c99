"""The profile of a connected account: its own playlists, top and saved tracks, top and followed artists.

:func:`fetch_profile` builds the canonical :class:`~soundmates.profiles.Profile` (``source="oauth"``)
with the ingest's own row/track parsers and artist policy; it stores nothing personal (the consent
rule: ``recommend.connected.store_connected`` does, when the person clicks add).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from soundmates.config import Settings
from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, Track

from .client import SpotifyClient
from .connect_errors import ConnectError
from .errors import ApiRefused, NotFound
from .parsing import PAGE_LIMIT, SKIP_FIELD, check_page, classify_row, next_offset, track_from

log = logging.getLogger(__name__)

TOP_TIME_RANGE = "medium_term"  # ~6 months: steadier than short_term, fresher than long_term
TOP_TRACKS_PLAYLIST_ID = "soundmates:top-tracks"
SAVED_TRACKS_PLAYLIST_ID = "soundmates:saved-tracks"
# The top track weighs this many playlist rows, the last one 1: an affinity rank says more than a row.
TOP_TRACK_MAX_WEIGHT = 3.0


class ConnectSummary(BaseModel):
    user_id: str
    display_name: str | None = None
    playlists_listed: int = 0
    playlists_read: int = 0
    playlists_not_readable: int = Field(
        default=0, description="followed playlists of others: development mode refuses their items"
    )
    playlists_refused: int = 0
    top_tracks: int = 0
    top_artists: int = 0
    followed_artists: int = 0
    saved_tracks: int = 0
    tracks: int = 0
    artists: int = 0
    items_skipped: dict[str, int] = Field(default_factory=dict)
    api_calls: int = 0
    calls_by_endpoint: dict[str, int] = Field(default_factory=dict)
    token_requests: int = 0
    elapsed_s: float = 0.0
    stored: bool = False


def _pages(client, endpoint: str, path: str, params: dict | None = None, max_items: int = 100_000) -> Iterator[dict]:
    offset: int | None = 0
    seen = 0
    while offset is not None and seen < max_items:
        page = check_page(client.get(endpoint, path, {**(params or {}), "limit": PAGE_LIMIT, "offset": offset}), endpoint, offset)
        seen += len(page["items"])
        yield page
        offset = next_offset(page, offset, endpoint)


def _followed_artists(client) -> list[dict]:
    out: list[dict] = []
    after: str | None = None
    for _ in range(200):  # cursor paging; bounded so a looping cursor cannot spin forever
        params = {"type": "artist", "limit": PAGE_LIMIT} | ({"after": after} if after else {})
        page = (client.get("me_following", "me/following", params) or {}).get("artists") or {}
        items = [a for a in page.get("items") or [] if isinstance(a, dict) and isinstance(a.get("id"), str)]
        out += items
        nxt = (page.get("cursors") or {}).get("after")
        if not page.get("next") or not nxt or nxt == after or not items:
            break
        after = nxt
    return out


class _ProfileBuilder:
    """What one fetch gathers: playlists, tracks by id, artist names by id, skipped rows by kind."""

    def __init__(self, client: SpotifyClient, user_id: str, summary: ConnectSummary):
        self.client = client
        self.user_id = user_id
        self.summary = summary
        self.playlists: list[Playlist] = []
        self.tracks: dict[str, Track] = {}
        self.artist_names: dict[str, str] = {}
        self.skipped: Counter[str] = Counter()

    def read_items(self, playlist: Playlist) -> None:
        """All rows of one playlist; merged only once it was read whole (a refusal half-way leaves nothing)."""
        from .refs import quote_user_id

        pl_tracks: dict[str, Track] = {}
        pl_artists: dict[str, str] = {}
        for page in _pages(self.client, "playlist_items", f"playlists/{quote_user_id(playlist.id)}/items"):
            for row in page["items"]:
                kind, obj = classify_row(row)
                if kind != "track" or obj is None:  # obj is None exactly when the row is no track
                    field = SKIP_FIELD[kind]
                    setattr(playlist, field, getattr(playlist, field) + 1)
                    continue
                if obj["id"] not in self.tracks and obj["id"] not in pl_tracks:
                    track, refs = track_from(obj)
                    pl_tracks[track.id] = track
                    for aid, aname in refs:
                        pl_artists.setdefault(aid, aname)
                added_at = row.get("added_at") if isinstance(row, dict) else None
                playlist.items.append(PlaylistItem(track_id=obj["id"], added_at=added_at if isinstance(added_at, str) else None))
        self.tracks.update(pl_tracks)
        for aid, aname in pl_artists.items():
            self.artist_names.setdefault(aid, aname)

    def read_playlists(self) -> None:
        """The account's own and collaborative playlists (development mode refuses the items of followed ones)."""
        for page in _pages(self.client, "me_playlists", "me/playlists"):
            for pl in page["items"]:
                if not isinstance(pl, dict) or not isinstance(pl.get("id"), str):
                    continue
                self.summary.playlists_listed += 1
                owner_obj = pl.get("owner")
                owner_id = owner_obj.get("id") if isinstance(owner_obj, dict) else None
                owner = owner_id if isinstance(owner_id, str) else None
                if owner != self.user_id and not pl.get("collaborative"):
                    self.summary.playlists_not_readable += 1
                    continue
                playlist = Playlist(id=pl["id"], name=str(pl.get("name") or ""), owner_id=owner)
                ref = pl.get("items") if isinstance(pl.get("items"), dict) else pl.get("tracks")
                if not (isinstance(ref, dict) and ref.get("total") == 0):
                    try:
                        self.read_items(playlist)
                    except ApiRefused:
                        self.summary.playlists_refused += 1
                        continue
                    except NotFound:
                        continue
                self.summary.playlists_read += 1
                self.playlists.append(playlist)

    def add_tracks(
        self, objs: list[Any], name: str, pid: str, weights: list[float] | None = None, added: list | None = None
    ) -> int:
        """A playlist of our own (top or saved tracks) from track objects; the number of tracks it holds."""
        playlist = Playlist(id=pid, name=name, owner_id=self.user_id)
        for k, obj in enumerate(objs):
            kind, content = classify_row({"item": obj})
            if kind != "track" or content is None:  # content is None exactly when the row is no track
                self.skipped[kind] += 1
                continue
            track, refs = track_from(content)
            self.tracks.setdefault(track.id, track)
            for aid, aname in refs:
                self.artist_names.setdefault(aid, aname)
            playlist.items.append(
                PlaylistItem(track_id=track.id, weight=weights[k] if weights else 1.0, added_at=added[k] if added else None)
            )
        if playlist.items:
            self.playlists.append(playlist)
        return len(playlist.items)

    def read_top_and_saved(self) -> None:
        """Top tracks as a weighted "Top tracks" playlist, saved tracks as "Liked songs"; a refusal skips one."""
        try:
            params = {"time_range": TOP_TIME_RANGE}
            top = [t for page in _pages(self.client, "me_top_tracks", "me/top/tracks", params, 50) for t in page["items"]]
            n = len(top)
            weights = [1.0 + (TOP_TRACK_MAX_WEIGHT - 1.0) * (n - 1 - r) / max(1, n - 1) for r in range(n)]
            self.summary.top_tracks = self.add_tracks(top, "Top tracks", TOP_TRACKS_PLAYLIST_ID, weights)
        except ApiRefused:
            log.info("/me/top/tracks refused: profile without top tracks")
        try:
            rows = [r for page in _pages(self.client, "me_tracks", "me/tracks") for r in page["items"] if isinstance(r, dict)]
            self.summary.saved_tracks = self.add_tracks(
                [r.get("track") for r in rows],
                "Liked songs",
                SAVED_TRACKS_PLAYLIST_ID,
                added=[r.get("added_at") if isinstance(r.get("added_at"), str) else None for r in rows],
            )
        except ApiRefused:
            log.info("/me/tracks refused: profile without saved tracks")

    def known_artists(self) -> dict[str, dict]:
        """Full artist objects the account answers anyway: they spare /artists calls (refused in development mode)."""
        known: dict[str, dict] = {}
        try:
            params = {"time_range": TOP_TIME_RANGE}
            top_artists = [
                a
                for page in _pages(self.client, "me_top_artists", "me/top/artists", params, 50)
                for a in page["items"]
                if isinstance(a, dict) and isinstance(a.get("id"), str)
            ]
            self.summary.top_artists = len(top_artists)
            known.update({a["id"]: a for a in top_artists})
        except ApiRefused:
            log.info("/me/top/artists refused")
        try:
            followed = _followed_artists(self.client)
            self.summary.followed_artists = len(followed)
            known.update({a["id"]: a for a in followed})
        except ApiRefused:
            log.info("/me/following refused")
        return known

    def artists(self, settings: Settings) -> dict[str, Artist]:
        """Artist details by the ingest's policy (batched, cached, development-mode fallback), seeded with the known ones.

        Nothing personal is written: only the shared artist cache (public catalogue data) grows, as for live searches.
        """
        from .ingest import Ingestor

        ing = Ingestor(settings, client=self.client)
        known = self.known_artists()
        ing.artist_cache.add({aid: obj for aid, obj in known.items() if aid in self.artist_names and aid not in ing.artist_cache})
        return ing.artists.details(self.artist_names)

    def count_skipped(self) -> dict[str, int]:
        for pl in self.playlists:
            for kind, field in SKIP_FIELD.items():
                self.skipped[kind] += getattr(pl, field)
        return {k: self.skipped.get(k, 0) for k in SKIP_FIELD}


def fetch_profile(
    client: SpotifyClient, settings: Settings | None = None, *, me: dict | None = None
) -> tuple[Profile, ConnectSummary]:
    """The connected account's canonical profile (``source="oauth"``) and what reading it took; stores nothing personal."""
    settings = settings or client.settings
    t0 = time.perf_counter()
    calls0, tokens0 = client.calls.copy(), client.token_requests
    me = me or client.get("me", "me")
    user_id = me.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise ConnectError("Spotify's /me answer has no user id")
    summary = ConnectSummary(user_id=user_id, display_name=me.get("display_name"))
    build = _ProfileBuilder(client, user_id, summary)
    build.read_playlists()
    build.read_top_and_saved()
    artists = build.artists(settings)
    summary.items_skipped = build.count_skipped()
    if not build.tracks:
        raise ConnectError(
            f"nothing to go on: {summary.playlists_listed} playlists listed, none of yours holds music tracks, "
            "and Spotify returned no top or saved tracks"
        )
    profile = Profile(
        user_id=user_id,
        display_name=me.get("display_name"),
        source="oauth",
        playlists=build.playlists,
        tracks=build.tracks,
        artists=artists,
    )
    calls = client.calls - calls0
    summary.tracks, summary.artists = len(build.tracks), len(artists)
    summary.api_calls = sum(calls.values())
    summary.calls_by_endpoint = dict(sorted(calls.items()))
    summary.token_requests = client.token_requests - tokens0
    summary.elapsed_s = round(time.perf_counter() - t0, 3)
    return profile, summary
