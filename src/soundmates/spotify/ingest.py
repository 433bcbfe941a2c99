"""Spotify profiles in, canonical :class:`~soundmates.profiles.Profile` out: one user's ingest, and the stage's entry points.

Per user: ``/users/{id}``, every page of ``/users/{id}/playlists`` (limit 50),
every page of ``/playlists/{id}/items`` (limit 50) of each non-empty playlist,
then the artists not seen before, 50 per ``/artists?ids=`` call. That is the
lower bound ``1 + playlist pages + sum(ceil(items/50)) + ceil(new artists/50)``
of API calls; tracks come embedded in the items, so no ``/tracks`` calls.

Every raw page is kept (appended to the user's page log once fetched: :mod:`.raw_store` owns the layout under
``settings.raw_dir``), so a rerun after a crash resumes without refetching; artists come through
the shared cache (:mod:`.artist_fetch`). Profiles go to :class:`~soundmates.profiles.ProfileRepository`
(one file per user, atomic), written only when the user is complete. Many users: :mod:`.ingest_batch`;
what a run reports: :mod:`.ingest_summary`.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soundmates.config import Settings, get_settings
from soundmates.profiles import Playlist, PlaylistItem, Profile, ProfileRepository, Track

from .artist_fetch import ArtistFetcher
from .errors import (
    DEVELOPMENT_MODE_EXPLANATION,
    ApiRefused,
    AuthenticationFailed,
    MissingCredentials,
    NoPublicPlaylists,
    NotFound,
    RateLimitExhausted,
    SpotifyError,
)
from .ingest_batch import BatchRun
from .ingest_summary import DeferredRef, FailedRef, IngestSummary
from .parsing import (
    ITEM_FIELDS,
    LEGACY_ITEM_FIELDS,
    PAGE_LIMIT,
    SKIP_FIELD,
    check_page,
    check_user,
    classify_row,
    listed_total,
    next_offset,
    playlist_from,
    rows_without_item,
    str_or_none,
    track_from,
)
from .raw_store import ArtistCache, IngestLayout, UserPages, profiles_dir, users_raw_dir
from .refs import quote_user_id

__all__ = [
    "ArtistCache",
    "DeferredRef",
    "FailedRef",
    "IngestSummary",
    "Ingestor",
    "NoPublicPlaylists",
    "delete_user_data",
    "ingest_many",
]

log = logging.getLogger(__name__)

# The fake ingestor of tests/test_recommend.py still reads the layout through these two names.
_users_raw_dir = users_raw_dir
_profiles_dir = profiles_dir


def delete_user_data(user_id: str, settings: Settings | None = None, *, user_data_dir: Path | None = None) -> dict[str, bool]:
    """Delete what ingest keeps about one user (raw pages, profile): ``{"raw": bool, "profile": bool}`` (True = deleted)."""
    return IngestLayout(settings or get_settings(), user_data_dir).delete_user(user_id)


@dataclass
class _UserRead:
    """What one user's playlist listing gave so far (playlists merged whole, one at a time)."""

    playlists: list[Playlist] = field(default_factory=list)
    tracks: dict[str, Track] = field(default_factory=dict)
    artist_names: dict[str, str] = field(default_factory=dict)
    listed: int = 0
    refused: int = 0

    def check_found(self) -> None:
        """Raise the reason the user gives nothing to profile, if so."""
        if self.listed == 0:
            raise NoPublicPlaylists("no public playlists")
        if self.tracks:
            return
        if self.refused:
            raise ApiRefused(
                f"the items of {self.refused} of {self.listed} public playlists were refused (403). "
                f"{DEVELOPMENT_MODE_EXPLANATION}",
                status=403,
                endpoint="playlist_items",
            )
        raise NoPublicPlaylists(
            f"no public playlists with music tracks ({self.listed} public playlists, all empty or without tracks)"
        )


class Ingestor:
    """Fetches users into canonical profiles; one instance can ingest many users (shared artist cache)."""

    def __init__(self, settings: Settings | None = None, client=None, *, user_data_dir: Path | None = None):
        """``user_data_dir``: keep profiles and per-user raw pages there instead of the data directory
        (a private scratch place for users who did not consent); the artist cache stays shared."""
        self.settings = settings or get_settings()
        if client is None:
            from .client import SpotifyClient

            client = SpotifyClient(self.settings)
        self.client = client
        self.raw_dir = Path(self.settings.raw_dir)
        self.layout = IngestLayout(self.settings, user_data_dir)
        self.repo = ProfileRepository(self.layout.profiles_dir)
        self.artists = ArtistFetcher(client, ArtistCache(self.layout.artists_path), self.settings)
        self.artist_cache = self.artists.cache
        self.items_skipped: Counter[str] = Counter()
        self.playlists_skipped: Counter[str] = Counter()
        self.raw_pages_reused = 0
        self.item_fields = ITEM_FIELDS  # LEGACY_ITEM_FIELDS once the API showed it predates the rename
        # Workers of ingest_many share the counters: they change under this lock.
        self._lock = threading.Lock()

    @property
    def artists_fetched(self) -> int:
        return self.artists.fetched

    def delete_user_data(self, user_id: str) -> dict[str, bool]:
        """Delete what this ingestor keeps about one user: see :func:`delete_user_data`."""
        return self.layout.delete_user(user_id)

    def _count(self, name: str, key: str | None = None, n: int = 1) -> None:
        """Add ``n`` to the counter attribute ``name`` (a Counter when ``key`` is given); workers share them."""
        with self._lock:
            if key is None:
                setattr(self, name, getattr(self, name) + n)
            else:
                getattr(self, name)[key] += n

    # --- raw pages ---------------------------------------------------------------
    def _fetch(self, endpoint: str, path: str, params: dict | None, pages: UserPages, name: str, reuse: bool) -> dict:
        if reuse:
            stored = pages.get(name)
            # A stored page that is not a page (edited, or from an older layout) is fetched again.
            if isinstance(stored, dict) and (endpoint == "user" or isinstance(stored.get("items"), list)):
                self._count("raw_pages_reused")
                return stored
        obj = self.client.get(endpoint, path, params)
        if endpoint == "playlist_items" and params and params.get("fields") == ITEM_FIELDS and rows_without_item(obj):
            # An API from before Feb 2026 does not know ``item``: ask for both names from now on.
            log.info("playlist rows come without 'item' (an API before the Feb 2026 rename): asking for 'track' too")
            self.item_fields = LEGACY_ITEM_FIELDS
            obj = self.client.get(endpoint, path, {**params, "fields": LEGACY_ITEM_FIELDS})
        # Checked before it is kept: a stored answer of the wrong shape would fail every rerun.
        if endpoint == "user":
            check_user(obj)
        else:
            check_page(obj, endpoint, (params or {}).get("offset", 0))
        body = getattr(self.client, "last_body", None)
        pages.put(name, body if body is not None else json.dumps(obj, ensure_ascii=False).encode("utf-8"))
        return obj

    def _pages(
        self, endpoint: str, path: str, pages: UserPages, name: Callable[[int], str], reuse: bool, fields: str | None = None
    ) -> Iterator[dict]:
        offset: int | None = 0
        while offset is not None:
            params: dict[str, Any] = {"limit": PAGE_LIMIT, "offset": offset}
            if fields is not None:
                params["fields"] = fields
            page = self._fetch(endpoint, path, params, pages, name(offset), reuse)
            page = check_page(page, endpoint, offset)
            yield page
            offset = next_offset(page, offset, endpoint)

    # --- one user ------------------------------------------------------------------
    def ingest_user(self, user_id: str, *, refresh: bool = False) -> Profile:
        """Fetch (or resume) one user, save and return the profile; raises a typed SpotifyError."""
        with self.layout.user_pages(user_id, fresh=refresh) as pages:
            return self._ingest_user(user_id, pages, reuse=not refresh)

    def _ingest_user(self, user_id: str, pages: UserPages, *, reuse: bool) -> Profile:
        qid = quote_user_id(user_id)
        try:
            user = self._fetch("user", f"users/{qid}", None, pages, pages.user, reuse)
        except ApiRefused:
            user = None  # development mode removed /users/{id}; the playlists may still answer
        if user is not None:
            check_user(user)

        read = _UserRead()
        for page in self._pages("user_playlists", f"users/{qid}/playlists", pages, pages.playlists, reuse):
            for listed in page["items"]:
                if isinstance(listed, dict) and isinstance(listed.get("id"), str):
                    self._read_playlist(listed, pages, reuse, read)
                # else: null rows in playlist listings are real; nothing to read
        read.check_found()
        profile = Profile(
            user_id=user_id,
            display_name=str_or_none((user or {}).get("display_name")),
            source="spotify",
            playlists=read.playlists,
            tracks=read.tracks,
            artists=self.artists.details(read.artist_names),
        )
        self.repo.save(profile)
        return profile

    def _read_playlist(self, listed: dict, pages: UserPages, reuse: bool, read: _UserRead) -> None:
        """One entry of the user's playlist listing into ``read`` (a refused or vanished playlist is counted, not kept)."""
        read.listed += 1
        playlist = playlist_from(listed)
        if listed_total(listed) != 0:  # an empty playlist costs no call
            # Read into fresh maps, merged only once the whole playlist was read: a playlist
            # refused half-way leaves nothing of itself in the profile.
            pl_tracks: dict[str, Track] = {}
            pl_artists: dict[str, str] = {}
            try:
                self._read_items(playlist, pages, reuse, pl_tracks, pl_artists, known=read.tracks)
            except ApiRefused:
                read.refused += 1
                self._count("playlists_skipped", "refused")
                return
            except NotFound:
                self._count("playlists_skipped", "not_found")
                return
            read.tracks.update(pl_tracks)
            for aid, name in pl_artists.items():
                read.artist_names.setdefault(aid, name)
        read.playlists.append(playlist)

    def _read_items(
        self, playlist: Playlist, pages: UserPages, reuse: bool, tracks: dict, artist_names: dict, known: dict
    ) -> None:
        """Rows of one playlist into ``playlist.items``; new tracks (not in ``known``) into ``tracks``."""
        path = f"playlists/{quote_user_id(playlist.id)}/items"
        page_name = functools.partial(pages.items, playlist.id)
        for page in self._pages("playlist_items", path, pages, page_name, reuse, self.item_fields):
            for row in page["items"]:
                kind, obj = classify_row(row)
                if kind != "track" or obj is None:  # obj is None exactly when the row is no track
                    self._count("items_skipped", kind)
                    field_name = SKIP_FIELD[kind]
                    setattr(playlist, field_name, getattr(playlist, field_name) + 1)
                    continue
                track_id = obj["id"]
                if track_id not in tracks and track_id not in known:
                    track, refs = track_from(obj)
                    tracks[track_id] = track
                    for aid, name in refs:
                        artist_names.setdefault(aid, name)
                added_at = row.get("added_at")
                playlist.items.append(PlaylistItem(track_id=track_id, added_at=added_at if isinstance(added_at, str) else None))

    # --- many users --------------------------------------------------------------------
    def attempt(self, uid: str, refresh: bool, stop: threading.Event) -> tuple[str, Any]:
        """Ingest one user: ("ingested", None), ("deferred", None), ("failed", SpotifyError or reason), or
        ("not attempted", None) once ``stop`` is set. Only errors that stop every user are raised."""
        if stop.is_set():
            return "not attempted", None
        try:
            self.ingest_user(uid, refresh=refresh)
        except (MissingCredentials, AuthenticationFailed):
            raise
        except RateLimitExhausted:
            # A pause, not a failure: the client now refuses every call until the API's time, so
            # the rest of the run only completes users whose raw pages are all kept; the others wait.
            return "deferred", None
        except SpotifyError as exc:
            return "failed", exc
        except Exception as exc:  # a bug or an odd answer must not cost the other users
            log.exception("ingest of %r failed", uid)  # one line unless --debug (soundmates.logs)
            detail = " ".join(str(exc).split())[:200]  # one line, whatever the exception says
            return "failed", f"malformed data or internal error: {type(exc).__name__}: {detail}"
        return "ingested", None

    def ingest_many(self, refs: Iterable[str], *, refresh: bool = False, progress: bool = True) -> IngestSummary:
        """Ingest every reference; bad references and failing users are reported, never raised.

        Users are fetched by ``settings.ingest_workers`` threads (one until the API has answered a
        first user, so a dead or rate-limiting API costs one call, not one per worker); results are
        recorded in the order of ``refs``. A user listed twice is fetched once. Users not done because
        the API rate-limited the run are ``deferred`` (never ``failed``); a rerun after ``retry_after_s``
        resumes them from the kept raw pages. Only errors that stop every user (missing or refused
        credentials) propagate.
        """
        return BatchRun(self, refresh=refresh, progress=progress).run(refs)


def ingest_many(
    refs: Iterable[str], settings: Settings | None = None, *, refresh: bool = False, progress: bool = True
) -> IngestSummary:
    """Convenience: a fresh :class:`Ingestor` for ``settings`` over ``refs``."""
    return Ingestor(settings).ingest_many(refs, refresh=refresh, progress=progress)
