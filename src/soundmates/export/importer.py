"""Turn a Spotify data export into the same canonical Profile the API ingest produces."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel, Field

from soundmates.config import Settings, get_settings
from soundmates.keys import user_id_problem
from soundmates.logs import one_line
from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, Track

from .archive import ExportError, ExportSource
from .formats import ParsedExport, TrackRef, parse_export
from .genres import GenreResolver, normalize_artist_name
from .identity import ArtistIdResolver, name_key

# A "full listen": ~3.5 minutes. Listening weight = ms played / this, so a track
# played ten times through weighs like ten playlist rows.
FULL_LISTEN_MS = 210_000


class ImportSummary(BaseModel):
    user_id: str
    files: dict[str, list[str]]
    playlists: int
    tracks: int
    artists: int
    plays_counted: int
    skipped: dict[str, int]
    genre_coverage: float = Field(description="share of plays (or rows) whose artist got genres")
    genre_sources: dict[str, int]
    artist_id_sources: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "how artists named only by name got their id: cache, search (the API found it), "
            "not_found / name_key (a name key: the API found nothing, or was not configured or refused)"
        ),
    )
    spotify_search_unavailable: str | None = Field(
        default=None, description="why the API was not asked for the rest of the import"
    )
    elapsed_s: float


def _stable_id(prefix: str, *parts: str) -> str:
    h = hashlib.sha1("\x1f".join(parts).encode()).hexdigest()
    return f"{prefix}{h[:21]}"


def _checked_id(user_id: str, where: str) -> str:
    problem = user_id_problem(user_id)
    if problem is not None:
        raise ExportError(
            f"{where} {one_line(repr(user_id), 80)} cannot be a user id: {problem}; "
            "store the export under another id with --user-id ID (letters, digits, . _ # + -)"
        )
    return user_id


def export_user_id(parsed: ParsedExport, explicit: str | None) -> str:
    """The id given, else the export's username, else one derived from its content (stable across re-imports).

    An id given or found is validated like a Spotify user id (length, characters, no path parts).
    """
    if explicit is not None:
        return _checked_id(explicit, "--user-id")
    if parsed.username:
        return _checked_id(parsed.username, "the username in Userdata.json,")
    refs = [t for pl in parsed.playlists for t in pl.tracks] + parsed.saved_tracks + [p.track for p in parsed.plays]
    return _stable_id("export-", *sorted({f"{t.artist}|{t.name}" for t in refs}))[:19]


class _Builder:
    def __init__(self, parsed: ParsedExport, resolver: GenreResolver | None, ids: ArtistIdResolver | None):
        self.parsed = parsed
        self.resolver = resolver
        self.ids = ids
        self.tracks: dict[str, Track] = {}
        self.artists: dict[str, Artist] = {}
        self.genre_sources: dict[str, int] = defaultdict(int)
        self._followed = {normalize_artist_name(n): aid for n, aid in parsed.followed_artists.items()}

    def artist_id(self, name: str) -> str:
        key = normalize_artist_name(name)
        # A real Spotify id when the export gives one (YourLibrary.json), else the API's (search, cached), else a name key.
        aid = self._followed.get(key) or (self.ids.resolve(name) if self.ids is not None else name_key(key))
        if aid not in self.artists:
            genres = None
            if self.resolver is not None:
                res = self.resolver.resolve(name)
                genres = res.genres
                self.genre_sources[res.source] += 1
            self.artists[aid] = Artist(id=aid, name=name, genres=genres)
        return aid

    def track_id(self, ref: TrackRef) -> str:
        tid = ref.track_id or _stable_id("x", normalize_artist_name(ref.artist), ref.name.casefold())
        if tid not in self.tracks:
            self.tracks[tid] = Track(id=tid, name=ref.name, artist_ids=[self.artist_id(ref.artist)], album_name=ref.album)
        return tid


def build_profile(
    parsed: ParsedExport, user_id: str, resolver: GenreResolver | None, ids: ArtistIdResolver | None = None
) -> tuple[Profile, dict[str, int]]:
    b = _Builder(parsed, resolver, ids)
    playlists: list[Playlist] = []
    for i, pl in enumerate(parsed.playlists):
        items = [PlaylistItem(track_id=b.track_id(t)) for t in pl.tracks]
        playlists.append(
            Playlist(id=_stable_id("e", user_id, "playlist", str(i), pl.name), name=pl.name, owner_id=user_id, items=items)
        )
    if parsed.saved_tracks:
        items = [PlaylistItem(track_id=b.track_id(t)) for t in parsed.saved_tracks]
        playlists.append(Playlist(id=_stable_id("e", user_id, "liked"), name="Liked Songs", owner_id=user_id, items=items))
    if parsed.plays:
        minutes: dict[str, float] = defaultdict(float)
        for play in parsed.plays:
            minutes[b.track_id(play.track)] += play.ms_played
        items = [
            PlaylistItem(track_id=tid, weight=round(ms / FULL_LISTEN_MS, 4))
            for tid, ms in sorted(minutes.items(), key=lambda kv: -kv[1])
        ]
        playlists.append(
            Playlist(id=_stable_id("e", user_id, "history"), name="Listening history", owner_id=user_id, items=items)
        )
    profile = Profile(
        user_id=user_id, display_name=user_id, source="export", playlists=playlists, tracks=b.tracks, artists=b.artists
    )
    return profile, dict(b.genre_sources)


def genre_coverage(profile: Profile) -> float:
    """Share of listening weight (plays, or playlist rows) whose artist has at least one genre."""
    total = covered = 0.0
    for pl in profile.playlists:
        for it in pl.items:
            total += it.weight
            tr = profile.tracks[it.track_id]
            if any(profile.artists[a].genres for a in tr.artist_ids):
                covered += it.weight
    return covered / total if total else 0.0


def make_resolver(settings: Settings) -> GenreResolver:
    from .genres import lastfm_lookup, musicbrainz_lookup

    online = []
    if settings.musicbrainz_url:
        online.append(("musicbrainz", musicbrainz_lookup(settings.musicbrainz_url)))
    if settings.lastfm_api_key is not None and settings.lastfm_api_key.get_secret_value():
        online.append(("lastfm", lastfm_lookup(settings.lastfm_api_key.get_secret_value())))
    return GenreResolver(settings.cache_dir / "artist_genres.sqlite", online=online)


def make_id_resolver(settings: Settings) -> ArtistIdResolver:
    """Artist ids through the configured Spotify API's search; name keys only when no credentials are set."""
    from soundmates.spotify.client import SpotifyClient
    from soundmates.spotify.errors import MissingCredentials

    try:
        client = SpotifyClient(settings)
    except MissingCredentials:
        return ArtistIdResolver(settings.cache_dir / "artist_ids.sqlite", search=None)
    return ArtistIdResolver(settings.cache_dir / "artist_ids.sqlite", search=client.search_artists, api=settings.spotify_api_url)


def import_export(
    path: str | Path,
    *,
    user_id: str | None = None,
    settings: Settings | None = None,
    resolver: GenreResolver | None = None,
    ids: ArtistIdResolver | None = None,
    check_slot: bool = False,
) -> tuple[Profile, ImportSummary]:
    """Read and validate an export; return its profile and summary. Stores nothing.

    ``check_slot``: refuse at once (before any lookup writes the genre cache) when the id is taken
    by a profile the export may not replace (see :func:`store_export`).
    """
    settings = settings or get_settings()
    t0 = time.perf_counter()
    with ExportSource(path) as src:
        parsed = parse_export(src)
    uid = export_user_id(parsed, user_id)
    if not (parsed.plays or parsed.saved_tracks or any(pl.tracks for pl in parsed.playlists)):
        raise ExportError(f"{Path(path).name}: the export has no music tracks to build a taste from (skipped: {parsed.skipped})")
    if check_slot:
        check_export_slot(uid, settings)
    own_resolver, own_ids = resolver is None, ids is None
    resolver = resolver or make_resolver(settings)
    ids = ids or make_id_resolver(settings)
    lookups_before = dict(ids.lookups)
    try:
        profile, sources = build_profile(parsed, uid, resolver, ids)
    finally:
        if own_resolver:
            resolver.close()
        if own_ids:
            ids.close()
    if not profile.tracks:
        raise ExportError(f"{Path(path).name}: the export has no music tracks to build a taste from (skipped: {parsed.skipped})")
    summary = ImportSummary(
        user_id=uid,
        files=parsed.files,
        playlists=len(profile.playlists),
        tracks=len(profile.tracks),
        artists=len(profile.artists),
        plays_counted=len(parsed.plays),
        skipped=parsed.skipped,
        genre_coverage=round(genre_coverage(profile), 4),
        genre_sources=sources,
        artist_id_sources={k: v - lookups_before.get(k, 0) for k, v in ids.lookups.items() if v - lookups_before.get(k, 0)},
        spotify_search_unavailable=ids.unavailable,
        elapsed_s=round(time.perf_counter() - t0, 3),
    )
    return profile, summary


def _owner_proven(user_id: str, settings: Settings) -> bool:
    """The account ``user_id`` was connected here with Connect with Spotify (OAuth), so its owner consented."""
    import json

    from soundmates.keys import storage_names

    tokens = settings.data_dir / "oauth" / "tokens"  # spotify/connect's TokenStore layout
    for name in storage_names(user_id):
        try:
            stored = json.loads((tokens / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(stored, dict) and stored.get("user_id") == user_id and stored.get("refresh_token"):
            return True
    return False


def store_export(profile: Profile, settings: Settings | None = None, *, dry_run: bool = False) -> bool:
    """Store an imported profile in the profile repository, in the export namespace.

    An export never replaces a profile that came from elsewhere (an ingested Spotify user, an
    OAuth account, another person's export: an export proves no identity), unless the owner of
    that Spotify account connected it here (Connect with Spotify). Refused: :class:`ExportError`,
    and nothing is written. Returns whether the profile was stored (False on a dry run).
    """
    from soundmates.profiles import ProfileRepository

    settings = settings or get_settings()
    check_export_slot(profile.user_id, settings)  # again: another import may have stored it meanwhile
    if dry_run:
        return False
    ProfileRepository(settings.profiles_dir).save(profile)
    return True


def check_export_slot(user_id: str, settings: Settings) -> None:
    """ExportError when a stored profile holds ``user_id`` and its owner has not connected it here."""
    from soundmates.profiles import ProfileRepository

    existing = ProfileRepository(settings.profiles_dir).load(user_id)
    if existing is not None and not _owner_proven(user_id, settings):
        raise ExportError(
            f"a profile for {user_id!r} (source: {existing.source}) is already stored and an export cannot "
            "prove it is the same person; import under another id with --user-id ID, or prove the account "
            "is yours first with `soundmates connect`"
        )
