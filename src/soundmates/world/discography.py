"""Albums and tracks of the catalog's artists, by number: flat arrays built once from the catalog seed.

Independent of any world's seed (every world shares Spotify's catalog). A track number encodes
its place: ``(artist * MAX_ALBUMS + album slot) * MAX_TRACKS + track``, so a lookup needs no table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from soundmates.world import catalog
from soundmates.world.ids import make_id, parse_id
from soundmates.world.vocab import WORDS

CATALOG_SEED = 20201122
MAX_ALBUMS = 8  # per artist
MAX_TRACKS = 32  # per album (track index slots in a track id)
_EXPLICIT_GENRE_WORDS = ("rap", "hip hop", "trap", "drill", "metal", "punk", "grime", "reggaeton", "dancehall")


@dataclass(frozen=True)
class TrackSpec:
    n: int
    id: str
    name: str
    artist: int
    featured: int | None
    album: int  # album slot of the artist
    track_number: int
    explicit: bool
    popularity: int
    duration_ms: int


@dataclass(frozen=True)
class AlbumSpec:
    n: int
    id: str
    artist: int
    name: str
    album_type: str
    release_date: str
    release_date_precision: str
    year: int
    total_tracks: int
    label: str


def artist_id(a: int) -> str:
    return make_id("artist", a)


def album_n(a: int, slot: int) -> int:
    return a * MAX_ALBUMS + slot


def track_n(a: int, slot: int, t: int) -> int:
    return album_n(a, slot) * MAX_TRACKS + t


@dataclass(frozen=True)
class CatalogArrays:
    """Albums and tracks of every artist as flat arrays (built once, vectorised: ~1 s)."""

    artist_era: np.ndarray  # (A,) centre year
    explicit_rate: np.ndarray  # (A,)
    album_start: np.ndarray  # (A+1,) first global album of each artist
    album_type: np.ndarray  # (M,) 0 album, 1 single, 2 compilation
    album_year: np.ndarray
    album_month: np.ndarray
    album_day: np.ndarray
    album_precision: np.ndarray  # 0 year, 1 month, 2 day
    track_start: np.ndarray  # (M+1,) first global track of each album
    track_explicit: np.ndarray  # (T,) bool
    track_popularity: np.ndarray
    track_duration: np.ndarray
    track_featured: np.ndarray  # (T,) artist index or -1

    def n_albums(self, a: int) -> int:
        return int(self.album_start[a + 1] - self.album_start[a])


_ALBUM_TYPES = ("album", "single", "compilation")
_PRECISIONS = ("year", "month", "day")


@lru_cache(maxsize=1)
def catalog_arrays() -> CatalogArrays:
    comm = catalog.communities()
    table = catalog.artists()
    n_artists = len(table.names)
    rng = np.random.default_rng([CATALOG_SEED, 1])
    community_era = rng.uniform(1962, 2018, size=len(comm.members))
    era = np.clip(community_era[comm.artist_community] + rng.normal(0, 9, size=n_artists), 1925, 2025)
    explicit_rate = np.array(
        [0.5 if any(w in g for g in gs for w in _EXPLICIT_GENRE_WORDS) else (0.06 if gs else 0.1) for gs in table.genres]
    )
    pop = table.popularity.astype(np.float64)
    n_albums = 1 + np.minimum(MAX_ALBUMS - 1, rng.poisson(pop / 20))
    album_start = np.concatenate([[0], np.cumsum(n_albums)])
    n_alb = int(album_start[-1])
    album_artist = np.repeat(np.arange(n_artists), n_albums)
    album_type = rng.choice(3, size=n_alb, p=[0.6, 0.3, 0.1])
    low = np.array([7, 1, 10])[album_type]
    high = np.array([17, 4, 21])[album_type]
    n_tracks = rng.integers(low, high)
    year = np.clip(np.round(era[album_artist] + rng.normal(0, 5, size=n_alb)), 1920, 2026).astype(np.int64)
    # Old releases often only know their year; a few know just the month.
    u = rng.random(n_alb)
    p_year = np.where(year < 1970, 0.5, 0.12)
    precision = np.where(u < p_year, 0, np.where(u < p_year + 0.06, 1, 2))
    track_start = np.concatenate([[0], np.cumsum(n_tracks)])
    n_tr = int(track_start[-1])
    track_artist = np.repeat(album_artist, n_tracks)
    featured = np.full(n_tr, -1, dtype=np.int64)
    feat = rng.random(n_tr) < 0.08
    for c, members in enumerate(comm.members):
        sel = np.flatnonzero(feat & (comm.artist_community[track_artist] == c))
        if len(members) > 1 and len(sel):
            featured[sel] = members[rng.integers(0, len(members), size=len(sel))]
    featured[featured == track_artist] = -1
    return CatalogArrays(
        artist_era=era,
        explicit_rate=explicit_rate,
        album_start=album_start,
        album_type=album_type,
        album_year=year,
        album_month=rng.integers(1, 13, size=n_alb),
        album_day=rng.integers(1, 29, size=n_alb),
        album_precision=precision,
        track_start=track_start,
        track_explicit=rng.random(n_tr) < explicit_rate[track_artist],
        track_popularity=np.clip(np.round(pop[track_artist] + rng.normal(0, 10, size=n_tr)), 0, 100).astype(np.int64),
        track_duration=rng.integers(95_000, 420_000, size=n_tr),
        track_featured=featured,
    )


def _title(kind: str, n: int) -> str:
    # A hash, not a seeded Generator: names are rendered for every row served, so this must be cheap.
    h = hashlib.blake2b(f"{kind}:{n}".encode(), digest_size=8).digest()
    return " ".join(WORDS[b % len(WORDS)] for b in h[1 : 2 + h[0] % 3])


@lru_cache(maxsize=65536)
def album_by_n(an: int) -> AlbumSpec | None:
    an = int(an)
    arr = catalog_arrays()
    a, slot = divmod(an, MAX_ALBUMS)
    if not 0 <= a < len(arr.artist_era) or slot >= arr.n_albums(a):
        return None
    g = int(arr.album_start[a]) + slot
    y, m, d = int(arr.album_year[g]), int(arr.album_month[g]), int(arr.album_day[g])
    prec = int(arr.album_precision[g])
    date = (f"{y:04d}", f"{y:04d}-{m:02d}", f"{y:04d}-{m:02d}-{d:02d}")[prec]
    return AlbumSpec(
        n=an,
        id=make_id("album", an),
        artist=a,
        name=_title("album", an),
        album_type=_ALBUM_TYPES[int(arr.album_type[g])],
        release_date=date,
        release_date_precision=_PRECISIONS[prec],
        year=y,
        total_tracks=int(arr.track_start[g + 1] - arr.track_start[g]),
        label=f"{WORDS[an % len(WORDS)]} Records",
    )


def _global_track(n: int) -> tuple[int, int, int, int] | None:
    """(artist, album slot, global album, global track) of track ``n``, or None."""
    arr = catalog_arrays()
    a, rest = divmod(n, MAX_ALBUMS * MAX_TRACKS)
    slot, t = divmod(rest, MAX_TRACKS)
    if not 0 <= a < len(arr.artist_era) or slot >= arr.n_albums(a):
        return None
    g = int(arr.album_start[a]) + slot
    if t >= arr.track_start[g + 1] - arr.track_start[g]:
        return None
    return a, slot, g, int(arr.track_start[g]) + t


@lru_cache(maxsize=262144)
def track_by_n(n: int) -> TrackSpec | None:
    n = int(n)
    loc = _global_track(n)
    if loc is None:
        return None
    a, slot, _g, gt = loc
    arr = catalog_arrays()
    feat = int(arr.track_featured[gt])
    return TrackSpec(
        n=n,
        id=make_id("track", n),
        name=_title("track", n),
        artist=a,
        featured=None if feat < 0 else feat,
        album=slot,
        track_number=n % MAX_TRACKS + 1,
        explicit=bool(arr.track_explicit[gt]),
        popularity=int(arr.track_popularity[gt]),
        duration_ms=int(arr.track_duration[gt]),
    )


def catalog_track(n: int) -> TrackSpec:
    """:func:`track_by_n` of a track the world's rows hold (always in the catalogue); KeyError otherwise."""
    spec = track_by_n(n)
    if spec is None:
        raise KeyError(f"no track {n} in the catalogue")
    return spec


def track_by_id(track_id: str) -> TrackSpec | None:
    n = parse_id("track", track_id)
    return None if n is None else track_by_n(n)


def artist_by_id(aid: str) -> int | None:
    a = parse_id("artist", aid)
    return a if a is not None and a < len(catalog.artists().names) else None
