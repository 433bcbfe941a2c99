"""Spotify profiles in, canonical :class:`~soundmates.profiles.Profile` out.

Per user: ``/users/{id}``, every page of ``/users/{id}/playlists`` (limit 50),
every page of ``/playlists/{id}/items`` (limit 50) of each non-empty playlist,
then the artists not seen before, 50 per ``/artists?ids=`` call. That is the
lower bound ``1 + playlist pages + sum(ceil(items/50)) + ceil(new artists/50)``
of API calls; tracks come embedded in the items, so no ``/tracks`` calls.

State under ``settings.raw_dir`` (see docs/ARCHITECTURE.md):

- ``users/<safe id>/user.json.gz``, ``users/<safe id>/playlists/<offset>.json.gz``,
  ``users/<safe id>/items/<safe playlist id>/<offset>.json.gz``: every raw page (gzip), written
  atomically once fetched, so a rerun after a crash resumes without refetching;
- ``artists.jsonl``: the artist cache shared by all users and runs (one JSON line per
  artist, appended under a file lock; ``null`` = the API does not know that id).

Profiles go to :class:`~soundmates.profiles.ProfileRepository` (one file per user,
atomic), written only when the user is complete.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import re
import shutil
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, Field

from soundmates.atomic import atomic_write_bytes
from soundmates.config import Settings, get_settings
from soundmates.keys import storage_key, storage_names
from soundmates.profiles import (
    Artist,
    Playlist,
    PlaylistItem,
    Profile,
    ProfileRepository,
    Track,
)

from .errors import (
    DEVELOPMENT_MODE_EXPLANATION,
    ApiRefused,
    AuthenticationFailed,
    MalformedResponse,
    MissingCredentials,
    NotFound,
    RateLimitExhausted,
    SpotifyError,
    SpotifyUnavailable,
    UserNotFound,
)
from .refs import InvalidProfileRef, parse_profile_ref, quote_user_id

log = logging.getLogger(__name__)

PAGE_LIMIT = 50  # the most /users/{id}/playlists and /playlists/{id}/items allow
ARTIST_BATCH = 50  # the most /artists?ids= allows
# The API refuses offsets above 100,000 on playlist listings; a paging loop must end somewhere.
MAX_OFFSET = 100_000
# After this many users in a row failed because the API is unreachable, the rest are not tried:
# a dead server would otherwise cost every user the full retry budget.
MAX_CONSECUTIVE_UNAVAILABLE = 3
# Rounds of waiting for artists another worker is fetching before a worker fetches them itself.
MAX_ARTIST_ROUNDS = 4

_YEAR = re.compile(r"^(\d{4})")
_SKIP_FIELD = {"episode": "skipped_episodes", "local": "skipped_local", "null": "skipped_null"}


class NoPublicPlaylists(SpotifyError):
    """The user exists but shows no public playlist (or none holding a music track)."""


class FailedRef(BaseModel):
    ref: str
    reason: str


class DeferredRef(BaseModel):
    """A user not done because the API rate-limited the run: try again after ``retry_after_s`` (from the run's end)."""

    ref: str
    retry_after_s: float


class IngestSummary(BaseModel):
    ingested: int = 0
    skipped: int = 0
    failed: list[FailedRef] = Field(default_factory=list)
    # Rate-limited, not failed: a Retry-After above the cap (or 429s past the retries) stopped fetching.
    deferred: list[DeferredRef] = Field(default_factory=list)
    api_calls: int = 0  # HTTP requests to the Web API, retries included (token requests excluded)
    calls_by_endpoint: dict[str, int] = Field(default_factory=dict)
    retries: dict[str, int] = Field(default_factory=dict)  # retried failures by kind: 429, 5xx, connection, ...
    token_requests: int = 0
    items_skipped: dict[str, int] = Field(default_factory=dict)  # episode, local, null
    playlists_skipped: dict[str, int] = Field(default_factory=dict)  # refused (403), not_found (404)
    raw_pages_reused: int = 0  # pages read from raw/ instead of the API (resumed runs)
    artists_fetched: int = 0
    ingested_user_ids: list[str] = Field(default_factory=list)
    elapsed_s: float = 0.0
    users_per_s: float = 0.0


# --- raw storage ---------------------------------------------------------------
def _load_json(path: Path) -> Any | None:
    try:
        data = path.read_bytes()
        return json.loads(gzip.decompress(data) if path.suffix == ".gz" else data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("ignoring unreadable raw file %s", path)
        return None


def _save_raw(path: Path, body: bytes) -> None:
    """Write aside and rename: a crash never leaves half a page under the final name.

    No fsync (unlike profiles): a raw page is a cache; losing the last pages to a power cut
    only costs refetching them, while an fsync per page would dominate the ingest.
    """
    if path.suffix == ".gz":
        # Item pages repeat whole track objects: gzip (fastest level) keeps raw/ ~8x smaller.
        body = gzip.compress(body, compresslevel=1)
    atomic_write_bytes(path, body, durable=False)


class ArtistCache:
    """Raw artist objects by id, shared by every user and persisted in one append-only JSONL file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._artists: dict[str, dict | None] = {}
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            try:
                rec = json.loads(line)
                self._artists[str(rec["id"])] = rec.get("artist")
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash mid-append: that artist is fetched again

    def __contains__(self, artist_id: str) -> bool:
        return artist_id in self._artists

    def __len__(self) -> int:
        return len(self._artists)

    def get(self, artist_id: str) -> dict | None:
        return self._artists.get(artist_id)

    def add(self, found: Mapping[str, dict | None]) -> None:
        """Remember raw artists (None = unknown to the API), in memory and on disk."""
        if not found:
            return
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps({"id": aid, "artist": obj}, ensure_ascii=False) + "\n" for aid, obj in found.items())
        with FileLock(str(self.path) + ".lock"):
            with open(self.path, "a+b") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        lines = "\n" + lines  # close a torn line so the new records stay readable
                f.write(lines.encode("utf-8"))  # no fsync: a lost line only costs refetching that artist
        self._artists.update(found)


# --- parsing -----------------------------------------------------------------------
def _release_year(album: dict | None) -> int | None:
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


def _classify_row(row: Any) -> tuple[str, dict | None]:
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


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _track_from(obj: dict) -> tuple[Track, list[tuple[str, str]]]:
    artists = [a for a in obj.get("artists") or [] if isinstance(a, dict) and isinstance(a.get("id"), str) and a["id"]]
    album = obj.get("album") if isinstance(obj.get("album"), dict) else None
    album_name = (album or {}).get("name")
    explicit = obj.get("explicit")
    track = Track(
        id=obj["id"],
        name=str(obj.get("name") or ""),
        artist_ids=[a["id"] for a in artists],
        album_name=album_name if isinstance(album_name, str) else None,
        release_year=_release_year(album),
        explicit=explicit if isinstance(explicit, bool) else None,
        popularity=_int_or_none(obj.get("popularity")),
        duration_ms=_int_or_none(obj.get("duration_ms")),
    )
    return track, [(a["id"], str(a.get("name") or "")) for a in artists]


def _artist_from(artist_id: str, raw: dict | None, fallback_name: str) -> Artist:
    if not isinstance(raw, dict):
        return Artist(id=artist_id, name=fallback_name)  # details unknown: name from the track
    genres = raw.get("genres")
    return Artist(
        id=artist_id,
        name=str(raw.get("name") or fallback_name),
        genres=[str(g) for g in genres] if isinstance(genres, list) else None,
        popularity=_int_or_none(raw.get("popularity")),
    )


def _next_offset(page: dict, offset: int, endpoint: str) -> int | None:
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


def _check_page(page: Any, endpoint: str, offset: int) -> dict:
    if not isinstance(page, dict) or not isinstance(page.get("items"), list):
        raise MalformedResponse(f"malformed data: the {endpoint} page at offset {offset} has no 'items' list", endpoint=endpoint)
    return page


def _check_user(user: dict) -> dict:
    if not isinstance(user.get("id", ""), str):
        raise MalformedResponse("malformed data: the user object has no string id", endpoint="user")
    return user


def _failure_reason(uid: str, exc: SpotifyError) -> str:
    if isinstance(exc, UserNotFound):
        return f"unknown user: Spotify has no user {uid!r} (404)"
    if isinstance(exc, NoPublicPlaylists):
        return exc.reason
    if isinstance(exc, ApiRefused):
        return f"refused by the API in development mode: {exc.reason}"
    return exc.reason


# --- per-user storage: the layout is this stage's own ----------------------------------------
def _users_raw_dir(settings: Settings, user_data_dir: Path | None) -> Path:
    return (Path(user_data_dir) / "raw" if user_data_dir is not None else Path(settings.raw_dir)) / "users"


def _profiles_dir(settings: Settings, user_data_dir: Path | None) -> Path:
    return Path(user_data_dir) / "profiles" if user_data_dir is not None else Path(settings.profiles_dir)


def delete_user_data(user_id: str, settings: Settings | None = None, *, user_data_dir: Path | None = None) -> dict[str, bool]:
    """Delete what ingest keeps about one user (raw pages, profile): ``{"raw": bool, "profile": bool}`` (True = deleted)."""
    settings = settings or get_settings()
    raw = False
    for name in storage_names(user_id):  # the key, and the legacy name older files may have
        udir = _users_raw_dir(settings, user_data_dir) / name
        if udir.exists():
            shutil.rmtree(udir)
            raw = True
    return {"raw": raw, "profile": ProfileRepository(_profiles_dir(settings, user_data_dir)).delete(user_id)}


class _Tally:
    """The outcomes of one ``ingest_many`` run, recorded in the order of its references."""

    def __init__(self, bar: Any, calls: Any):
        self.summary = IngestSummary()
        self.deferred: list[str] = []
        self.stop = threading.Event()  # set once the API failed for MAX_CONSECUTIVE_UNAVAILABLE users in a row
        self.outcomes: dict[str, tuple[str, Any]] = {}  # uid -> outcome, for a user listed again
        self._streak, self._last_unavailable = 0, ""
        self._bar, self._calls = bar, calls

    def drain(self, window: deque, keep: int) -> None:
        """Record the oldest entries of ``window`` (waiting for their workers) until at most ``keep`` are left."""
        while len(window) > keep:
            ref_text, uid, result, first = window.popleft()
            outcome = result.result() if isinstance(result, Future) else result
            if outcome[0] == "repeat":  # a user listed again: what its first listing came to
                outcome = self.outcomes.get(uid, ("skipped", None))
            elif uid and first:
                self.outcomes[uid] = outcome
            self.record(ref_text, uid, outcome, first)

    def record(self, ref_text: str, uid: str, outcome: tuple[str, Any], first: bool) -> None:
        kind, detail = outcome
        summary = self.summary
        if kind == "skipped" or (kind == "ingested" and not first):
            summary.skipped += 1
        elif kind == "ingested":
            self._streak = 0
            summary.ingested += 1
            summary.ingested_user_ids.append(uid)
        elif kind == "deferred":
            self.deferred.append(ref_text)
        elif kind == "not attempted":
            reason = f"not attempted: the Spotify API failed for {self._streak} users in a row ({self._last_unavailable})"
            summary.failed.append(FailedRef(ref=ref_text, reason=reason))
        else:
            reason = _failure_reason(uid, detail) if isinstance(detail, SpotifyError) else str(detail)
            summary.failed.append(FailedRef(ref=ref_text, reason=reason))
            if first and isinstance(detail, SpotifyUnavailable):
                self._streak += 1
                self._last_unavailable = detail.reason
            elif first:
                self._streak = 0
            if self._streak >= MAX_CONSECUTIVE_UNAVAILABLE:
                self.stop.set()
        self._bar.update(1)
        self._bar.set_postfix(ok=summary.ingested, failed=len(summary.failed), deferred=len(self.deferred), calls=self._calls())


# --- the ingestor ----------------------------------------------------------------------
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
        self._user_data_dir = user_data_dir
        self.repo = ProfileRepository(_profiles_dir(self.settings, user_data_dir))
        self._users_raw_dir = _users_raw_dir(self.settings, user_data_dir)
        self.artist_cache = ArtistCache(self.raw_dir / "artists.jsonl")
        self.items_skipped: Counter[str] = Counter()
        self.playlists_skipped: Counter[str] = Counter()
        self.raw_pages_reused = 0
        self.artists_fetched = 0
        # Workers of ingest_many share the counters and the artist cache: both change under this lock.
        self._lock = threading.Lock()
        self._artists_pending: dict[str, threading.Event] = {}  # artist id -> set once its fetching worker is done
        # Development mode refuses /artists?ids= (and maybe /artists/{id}): learn it once per run.
        self._batch_artists_refused = False
        self._single_artists_refused = False

    # --- raw pages ---------------------------------------------------------------
    def _user_dir(self, user_id: str) -> Path:
        return self._users_raw_dir / storage_key(user_id)

    def delete_user_data(self, user_id: str) -> dict[str, bool]:
        """Delete what this ingestor keeps about one user: see :func:`delete_user_data`."""
        return delete_user_data(user_id, self.settings, user_data_dir=self._user_data_dir)

    def _fetch(self, endpoint: str, path: str, params: dict | None, raw_path: Path, reuse: bool) -> dict:
        if reuse:
            stored = _load_json(raw_path)
            # A stored page that is not a page (edited, or from an older layout) is fetched again.
            if isinstance(stored, dict) and (endpoint == "user" or isinstance(stored.get("items"), list)):
                self._count("raw_pages_reused")
                return stored
        obj = self.client.get(endpoint, path, params)
        # Checked before it is kept: a stored answer of the wrong shape would fail every rerun.
        if endpoint == "user":
            _check_user(obj)
        else:
            _check_page(obj, endpoint, (params or {}).get("offset", 0))
        body = getattr(self.client, "last_body", None)
        _save_raw(raw_path, body if body is not None else json.dumps(obj, ensure_ascii=False).encode("utf-8"))
        return obj

    def _pages(self, endpoint: str, path: str, raw_dir: Path, reuse: bool) -> Iterator[dict]:
        offset: int | None = 0
        while offset is not None:
            page = self._fetch(endpoint, path, {"limit": PAGE_LIMIT, "offset": offset}, raw_dir / f"{offset}.json.gz", reuse)
            page = _check_page(page, endpoint, offset)
            yield page
            offset = _next_offset(page, offset, endpoint)

    # --- one user ------------------------------------------------------------------
    def ingest_user(self, user_id: str, *, refresh: bool = False) -> Profile:
        """Fetch (or resume) one user, save and return the profile; raises a typed SpotifyError."""
        reuse = not refresh
        udir = self._user_dir(user_id)
        qid = quote_user_id(user_id)

        try:
            user = self._fetch("user", f"users/{qid}", None, udir / "user.json.gz", reuse)
        except ApiRefused:
            user = None  # development mode removed /users/{id}; the playlists may still answer
        if user is not None:
            _check_user(user)

        playlists: list[Playlist] = []
        tracks: dict[str, Track] = {}
        artist_names: dict[str, str] = {}
        refused = listed = 0
        for page in self._pages("user_playlists", f"users/{qid}/playlists", udir / "playlists", reuse):
            for pl in page["items"]:
                if not isinstance(pl, dict) or not isinstance(pl.get("id"), str):
                    continue  # null rows in playlist listings are real; nothing to read
                listed += 1
                owner = pl.get("owner")
                if not isinstance(owner, dict):
                    owner = {}
                playlist = Playlist(
                    id=pl["id"],
                    name=str(pl.get("name") or ""),
                    owner_id=owner.get("id") if isinstance(owner.get("id"), str) else None,
                )
                # Feb 2026 renamed the playlist's `tracks` ({href, total}) to `items`; parse both.
                ref = pl.get("items") if isinstance(pl.get("items"), dict) else pl.get("tracks")
                total = ref.get("total") if isinstance(ref, dict) else None
                if total != 0:  # an empty playlist costs no call
                    # Read into fresh maps, merged only once the whole playlist was read: a playlist
                    # refused half-way leaves nothing of itself in the profile.
                    pl_tracks: dict[str, Track] = {}
                    pl_artists: dict[str, str] = {}
                    try:
                        self._read_items(playlist, udir, reuse, pl_tracks, pl_artists, known=tracks)
                    except ApiRefused:
                        refused += 1
                        self._count("playlists_skipped", "refused")
                        continue
                    except NotFound:
                        self._count("playlists_skipped", "not_found")
                        continue
                    tracks.update(pl_tracks)
                    for aid, name in pl_artists.items():
                        artist_names.setdefault(aid, name)
                playlists.append(playlist)

        if listed == 0:
            raise NoPublicPlaylists("no public playlists")
        if not tracks:
            if refused:
                raise ApiRefused(
                    f"the items of {refused} of {listed} public playlists were refused (403). {DEVELOPMENT_MODE_EXPLANATION}",
                    status=403,
                    endpoint="playlist_items",
                )
            raise NoPublicPlaylists(
                f"no public playlists with music tracks ({listed} public playlists, all empty or without tracks)"
            )

        artists = self._artists(artist_names)
        profile = Profile(
            user_id=user_id,
            display_name=_str_or_none((user or {}).get("display_name")),
            source="spotify",
            playlists=playlists,
            tracks=tracks,
            artists=artists,
        )
        self.repo.save(profile)
        return profile

    def _read_items(self, playlist: Playlist, udir: Path, reuse: bool, tracks: dict, artist_names: dict, known: dict) -> None:
        """Rows of one playlist into ``playlist.items``; new tracks (not in ``known``) into ``tracks``."""
        path = f"playlists/{quote_user_id(playlist.id)}/items"
        for page in self._pages("playlist_items", path, udir / "items" / storage_key(playlist.id), reuse):
            for row in page["items"]:
                kind, obj = _classify_row(row)
                if kind != "track" or obj is None:  # obj is None exactly when the row is no track
                    self._count("items_skipped", kind)
                    field = _SKIP_FIELD[kind]
                    setattr(playlist, field, getattr(playlist, field) + 1)
                    continue
                track_id = obj["id"]
                if track_id not in tracks and track_id not in known:
                    track, refs = _track_from(obj)
                    tracks[track_id] = track
                    for aid, name in refs:
                        artist_names.setdefault(aid, name)
                added_at = row.get("added_at")
                playlist.items.append(PlaylistItem(track_id=track_id, added_at=added_at if isinstance(added_at, str) else None))

    # --- artists -----------------------------------------------------------------------
    def _count(self, name: str, key: str | None = None, n: int = 1) -> None:
        """Add ``n`` to the counter attribute ``name`` (a Counter when ``key`` is given); workers share them."""
        with self._lock:
            if key is None:
                setattr(self, name, getattr(self, name) + n)
            else:
                getattr(self, name)[key] += n

    def _remember_artists(self, found: Mapping[str, dict | None]) -> None:
        with self._lock:
            self.artist_cache.add(found)
            self.artists_fetched += len(found)

    def _artists(self, artist_names: dict[str, str]) -> dict[str, Artist]:
        """The artists of one user; those not cached are fetched once, whichever worker needs them first."""
        for round_ in range(MAX_ARTIST_ROUNDS + 1):
            mine, theirs = self._claim_artists(list(artist_names), force=round_ == MAX_ARTIST_ROUNDS)
            try:
                self._fetch_artists(mine)
            finally:
                self._release_artists(mine)
            if not theirs:
                break
            for done in theirs:  # a fetch is one bounded call per 50 ids: so is this wait
                done.wait(self.settings.spotify_deadline_s * (self.settings.spotify_max_retries + 1))
        return {aid: _artist_from(aid, self.artist_cache.get(aid), name) for aid, name in artist_names.items()}

    def _claim_artists(self, ids: list[str], *, force: bool) -> tuple[list[str], set[threading.Event]]:
        """(uncached ids this worker fetches, the events of those another worker is fetching)."""
        mine, theirs = [], set()
        with self._lock:
            for aid in ids:
                if aid in self.artist_cache:
                    continue
                pending = self._artists_pending.get(aid)
                if pending is not None and not force:
                    theirs.add(pending)
                    continue
                mine.append(aid)
            done = threading.Event()
            for aid in mine:
                self._artists_pending.setdefault(aid, done)
        return mine, theirs

    def _release_artists(self, ids: list[str]) -> None:
        with self._lock:
            for aid in ids:
                done = self._artists_pending.pop(aid, None)
                if done is not None:
                    done.set()

    def _fetch_artists(self, missing: list[str]) -> None:
        for start in range(0, len(missing), ARTIST_BATCH):
            batch = missing[start : start + ARTIST_BATCH]
            if not self._batch_artists_refused:
                try:
                    answer = self.client.get("artists", "artists", {"ids": ",".join(batch)})
                except ApiRefused:
                    self._batch_artists_refused = True
                    log.info("/artists?ids= refused (development mode): falling back to /artists/{id}")
                else:
                    found = answer.get("artists")
                    if not isinstance(found, list) or len(found) != len(batch):
                        raise MalformedResponse("malformed data: /artists did not answer one entry per id", endpoint="artists")
                    self._remember_artists({aid: (obj if isinstance(obj, dict) else None) for aid, obj in zip(batch, found)})
                    continue
            self._artists_one_by_one(batch)

    def _artists_one_by_one(self, ids: list[str]) -> None:
        for aid in ids:
            if self._single_artists_refused:
                return  # details stay unknown; names come from the tracks
            try:
                obj = self.client.get("artist", f"artists/{quote_user_id(aid)}")
            except ApiRefused:
                self._single_artists_refused = True
                return
            except NotFound:
                obj = None
            self._remember_artists({aid: obj})

    # --- many users --------------------------------------------------------------------
    def _retry_after_s(self) -> float:
        """Seconds from now until the API may be called again (rounded up to 0.1 s; at least 0.1)."""
        blocked = getattr(self.client, "blocked_for_s", None)
        left = blocked() if callable(blocked) else float(self.settings.spotify_retry_after_cap_s)
        return max(0.1, math.ceil(left * 10) / 10)

    def _attempt(self, uid: str, refresh: bool, stop: threading.Event) -> tuple[str, Any]:
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

    def _workers(self) -> int:
        return max(1, int(getattr(self.settings, "ingest_workers", 1)))

    def ingest_many(self, refs: Iterable[str], *, refresh: bool = False, progress: bool = True) -> IngestSummary:
        """Ingest every reference; bad references and failing users are reported, never raised.

        Users are fetched by ``settings.ingest_workers`` threads (one until the API has answered a
        first user, so a dead or rate-limiting API costs one call, not one per worker); results are
        recorded in the order of ``refs``. A user listed twice is fetched once. Users not done because
        the API rate-limited the run are ``deferred`` (never ``failed``); a rerun after ``retry_after_s``
        resumes them from the kept raw pages. Only errors that stop every user (missing or refused
        credentials) propagate.
        """
        from tqdm import tqdm

        refs = list(refs)
        t0 = time.perf_counter()
        calls0 = self.client.calls.copy()
        retries0 = self.client.retries.copy()
        tokens0 = self.client.token_requests
        skipped0, pl_skipped0 = self.items_skipped.copy(), self.playlists_skipped.copy()
        reused0, fetched0 = self.raw_pages_reused, self.artists_fetched

        bar = tqdm(total=len(refs), desc="ingest", unit="user", file=sys.stderr, disable=not progress, dynamic_ncols=True)
        tally = _Tally(bar, lambda: self.client.api_calls - sum(calls0.values()))
        summary, stop = tally.summary, tally.stop
        workers = self._workers()
        window: deque[tuple[str, str, Future | tuple[str, Any], bool]] = deque()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") if workers > 1 else None
        try:
            for ref in refs:
                ref_text = ref if isinstance(ref, str) else repr(ref)
                try:
                    uid = parse_profile_ref(ref)
                except InvalidProfileRef as exc:
                    window.append((ref_text, "", ("failed", f"invalid reference: {exc}"), False))
                    continue
                if uid in tally.outcomes or any(w[1] == uid for w in window):
                    window.append((ref_text, uid, ("repeat", None), False))
                    continue
                if not refresh and self.repo.exists(uid):
                    window.append((ref_text, uid, ("skipped", None), True))
                    continue
                # One worker until a user was ingested with the API's answers: the token is fetched once,
                # and a dead or rate-limiting API is found by one call, not by one per worker.
                if pool is not None and summary.ingested > 0 and self.client.api_calls > sum(calls0.values()):
                    window.append((ref_text, uid, pool.submit(self._attempt, uid, refresh, stop), True))
                else:
                    tally.drain(window, 0)
                    window.append((ref_text, uid, self._attempt(uid, refresh, stop), True))
                tally.drain(window, 2 * workers)
            tally.drain(window, 0)
        finally:
            if pool is not None:
                stop.set()  # after an error that stops every user: the queued users are not started
                pool.shutdown(wait=True)
            bar.close()

        if tally.deferred:
            retry_after_s = self._retry_after_s()
            summary.deferred = [DeferredRef(ref=ref, retry_after_s=retry_after_s) for ref in tally.deferred]
        return self._summarize(summary, t0, (calls0, retries0, tokens0, skipped0, pl_skipped0, reused0, fetched0))

    def _summarize(self, summary: IngestSummary, t0: float, before: tuple) -> IngestSummary:
        """Fill the run's counts (what changed since ``before``) and speed into ``summary``."""
        calls0, retries0, tokens0, skipped0, pl_skipped0, reused0, fetched0 = before
        calls = self.client.calls - calls0
        summary.api_calls = sum(calls.values())
        summary.calls_by_endpoint = dict(sorted(calls.items()))
        summary.retries = dict(sorted((self.client.retries - retries0).items()))
        summary.token_requests = self.client.token_requests - tokens0
        summary.items_skipped = {k: (self.items_skipped - skipped0).get(k, 0) for k in ("episode", "local", "null")}
        summary.playlists_skipped = {k: (self.playlists_skipped - pl_skipped0).get(k, 0) for k in ("refused", "not_found")}
        summary.raw_pages_reused = self.raw_pages_reused - reused0
        summary.artists_fetched = self.artists_fetched - fetched0
        summary.elapsed_s = round(time.perf_counter() - t0, 3)
        summary.users_per_s = round(summary.ingested / summary.elapsed_s, 2) if summary.elapsed_s > 0 else 0.0
        return summary


def ingest_many(
    refs: Iterable[str], settings: Settings | None = None, *, refresh: bool = False, progress: bool = True
) -> IngestSummary:
    """Convenience: a fresh :class:`Ingestor` for ``settings`` over ``refs``."""
    return Ingestor(settings).ingest_many(refs, refresh=refresh, progress=progress)
