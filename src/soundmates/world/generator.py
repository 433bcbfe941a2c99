"""The local Spotify world: users with a hidden taste, their public playlists, a shared catalog.

Everything is a pure function of ``(seed, user index)`` (users) or of the catalog seed (artists,
albums, tracks), so a world of 1,000,000 users needs no more than ``users.txt`` and the ground
truth on disk: the server derives each user's playlists on demand. ``generate_world`` streams
``users.txt`` and the ground truth in chunks.

Files of a world directory:
- ``world.json``: seed, number of users, generation parameters (the server reads it).
- ``users.txt``: one user id per line (odd legacy ids included).
- ``truth/``: the hidden taste per user (ground truth for evaluation; the server never serves it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from soundmates.atomic import atomic_write_text, commit_file
from soundmates.world import catalog
from soundmates.world.ids import base36, make_id, parse_id

WORLD_FORMAT = 1
CATALOG_SEED = 20201122
MAX_USERS = 1_000_000
MAX_ALBUMS = 8  # per artist
MAX_TRACKS = 32  # per album (track index slots in a track id)
MAX_PLAYLISTS = 256  # per user (playlist index slots in a playlist id)
EPISODES_PER_SHOW = 1000
ERA_BINS = np.arange(1950, 2030, 10, dtype=np.float64)  # decade centres for the taste vector
TRUTH_DIR = "truth"
_EXPLICIT_GENRE_WORDS = ("rap", "hip hop", "trap", "drill", "metal", "punk", "grime", "reggaeton", "dancehall")
_T0 = 1_230_768_000  # 2009-01-01, first added_at

# Mess at realistic rates (fractions); stored in world.json so a reader knows what to expect.
DEFAULT_PARAMS: dict[str, float] = {
    "p_no_public_playlists": 0.07,
    "p_many_playlists": 0.02,  # 60-130 playlists: more than one page of /users/{id}/playlists
    "p_empty_playlist": 0.04,
    "p_huge_playlist_user": 0.004,  # one playlist of 2,000-6,000 items
    "p_podcast_user": 0.10,
    "p_local_user": 0.05,
    "p_null_playlist": 0.05,  # a playlist with a few null rows (tracks no longer available)
    "p_display_name_null": 0.05,
    "noise_other_community": 0.05,
}

# Users at these indices always show one kind of mess, so even a 50-user world exercises it
# (the rates above then add more at random).
SHOWCASE = {
    "many_playlists": 2,
    "huge_playlist": 3,
    "no_public_playlists": 5,
    "episodes_local_null": 6,
    "empty_playlist": 9,
}
# The id kinds forced on the first users, in order, so every world has each odd form.
_FORCED_ID_KINDS = ("alnum25", "numeric", "legacy.", "legacy_", "legacy#", "legacy+", "nonascii", "nonascii")

_LEGACY_WORDS = ("anna", "djmike", "rockfan", "thomas", "musiclover", "kate", "c", "jo", "vinyl", "bassline", "sk8r", "lou")
_NONASCII_WORDS = ("jürgen", "zoë", "søren", "łukasz", "josé", "françois", "ólafur", "björk", "ミカ", "ольга", "李娜", "müller")
_FIRST = (
    "Anna",
    "Ben",
    "Chloé",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Iris",
    "Jonas",
    "Kai",
    "Lena",
    "Mateo",
    "Nina",
    "Oscar",
    "Pia",
    "Quentin",
    "Rosa",
    "Sam",
    "Tara",
    "Ugo",
    "Vera",
    "Wen",
    "Xavier",
    "Yuki",
    "Zoë",
    "Łukasz",
    "Søren",
    "José",
    "Ólafur",
    "Ольга",
    "李娜",
    "ミカ",
    "Ayşe",
    "Nguyễn",
    "Björn",
)
_LAST = ("Smith", "García", "Müller", "Rossi", "Kowalski", "Nakamura", "Jensen", "Silva", "Novák", "Öztürk", "O'Brien")
_WORDS = (
    "Midnight",
    "River",
    "Golden",
    "Echo",
    "Summer",
    "Neon",
    "Velvet",
    "Paper",
    "Wild",
    "Blue",
    "Silent",
    "Electric",
    "Lonely",
    "Heart",
    "City",
    "Fire",
    "Ocean",
    "Dream",
    "Shadow",
    "Sugar",
    "Night",
    "Road",
    "Glass",
    "Honey",
    "Thunder",
    "Rain",
    "Ghost",
    "Star",
    "Tide",
    "Dust",
    "Mañana",
    "Corazón",
    "Été",
    "Sommer",
    "夜",
    "Любовь",
    "Saudade",
    "Mirror",
    "Gravity",
    "Machine",
)
_PLAYLIST_TEMPLATES = (
    "{label}",
    "my {label}",
    "{label} mix",
    "best of {label}",
    "{word} vibes",
    "chill ✨",
    "Música para correr",
    "Été {year}",
    "夏の歌",
    "road trip {year}",
    "gym",
    "{word} {word2}",
    "favourites",
    "late night {label}",
    "{year} throwbacks",
    "Liked from radio",
    "",
)


# ---------------------------------------------------------------------------------------------
# Catalog: albums and tracks of the real artists (independent of any world's seed)
# ---------------------------------------------------------------------------------------------
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
    return " ".join(_WORDS[b % len(_WORDS)] for b in h[1 : 2 + h[0] % 3])


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
        label=f"{_WORDS[an % len(_WORDS)]} Records",
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


# ---------------------------------------------------------------------------------------------
# Users: id, display name, hidden taste
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Taste:
    communities: np.ndarray  # (k,) int community indices
    weights: np.ndarray  # (k,) mixture weights, sum 1
    era: float  # centre year of the music they like
    era_width: float  # years
    mainstream: float  # 0 = obscure, 1 = charts
    explicit_tolerance: float  # probability an explicit track is kept


@dataclass(frozen=True)
class UserSpec:
    index: int
    id: str
    display_name: str | None
    taste: Taste


def _user_rng(seed: int, i: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, i])


USER_BLOCK = 1024  # users are drawn in blocks: vectorised bulk generation, lazy lookup of one user
_ALNUM = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
_KIND_NAMES = ("alnum25", "numeric", "legacy.", "legacy_", "legacy#", "legacy+", "nonascii")
MAX_TASTE_COMMUNITIES = 4


@dataclass(frozen=True)
class _UserBlock:
    ids: list[str]
    display_names: list[str | None]
    n_comm: np.ndarray  # (B,) 1..4
    communities: np.ndarray  # (B, 4) community indices, first n_comm valid
    weights: np.ndarray  # (B, 4) mixture weights (sorted descending), zero past n_comm
    era: np.ndarray
    era_width: np.ndarray
    mainstream: np.ndarray
    explicit_tolerance: np.ndarray


@lru_cache(maxsize=1)
def _community_prior() -> np.ndarray:
    sizes = np.array([len(m) for m in catalog.communities().members], dtype=np.float64)
    p = np.sqrt(sizes)
    return p / p.sum()


@lru_cache(maxsize=64)
def _user_block(seed: int, block: int, p_name_null: float) -> _UserBlock:
    """Users ``block*USER_BLOCK ..`` of a world, all drawn from one generator (deterministic)."""
    rng = np.random.default_rng([seed, 10, block])
    first = block * USER_BLOCK
    idx = np.arange(first, first + USER_BLOCK)
    b = USER_BLOCK
    # --- ids: every odd form carries base36(i) after a separator, so ids are unique by construction
    u = rng.random(b)
    kind = np.where(u < 0.62, 0, np.where(u < 0.74, 1, np.where(u < 0.94, 2 + rng.integers(0, 4, size=b), 6)))
    forced = idx < len(_FORCED_ID_KINDS)
    kind[forced] = [_KIND_NAMES.index(k) for k in _FORCED_ID_KINDS[: int(forced.sum())]]
    alnum = _ALNUM[rng.integers(0, 36, size=(b, 25))].tobytes().decode("ascii")
    digit = rng.integers(1, 10, size=b)
    legacy_word = rng.integers(0, len(_LEGACY_WORDS), size=b)
    nonascii_word = rng.integers(0, len(_NONASCII_WORDS), size=b)
    nonascii_sep = rng.integers(0, 2, size=b)
    ids = []
    for j in range(b):
        k, i = int(kind[j]), first + j
        if k == 0:
            ids.append(alnum[25 * j : 25 * j + 25])
        elif k == 1:
            ids.append(f"{digit[j]}{i:09d}")
        elif k < 6:
            ids.append(f"{_LEGACY_WORDS[legacy_word[j]]}{_KIND_NAMES[k][-1]}{base36(i)}")
        else:
            ids.append(f"{_NONASCII_WORDS[nonascii_word[j]]}{'._'[nonascii_sep[j]]}{base36(i)}")
    # --- hidden taste: 1-4 communities (Gumbel top-k = sampling without replacement by the prior)
    prior = _community_prior()
    n_comm = 1 + rng.binomial(3, 0.4, size=b)
    keys = np.log(prior)[None, :] + rng.gumbel(size=(b, len(prior)))
    communities = np.argsort(-keys, axis=1)[:, :MAX_TASTE_COMMUNITIES]
    g = rng.gamma(1.5, size=(b, MAX_TASTE_COMMUNITIES))
    g[np.arange(MAX_TASTE_COMMUNITIES)[None, :] >= n_comm[:, None]] = 0.0
    weights = -np.sort(-(g / g.sum(1, keepdims=True)), axis=1)
    era = np.clip(2024 - rng.gamma(2.0, 9.0, size=b), 1955, 2024)
    era_width = rng.uniform(5, 18, size=b)
    mainstream = rng.beta(2, 2, size=b)
    explicit_tolerance = rng.beta(2, 1.5, size=b)
    # --- display names: mostly a name (non-ASCII ones included), some the id itself, some null
    u = rng.random(b)
    fn = rng.integers(0, len(_FIRST), size=b)
    ln = rng.integers(0, len(_LAST), size=b)
    has_last = rng.random(b) < 0.6
    names: list[str | None] = []
    for j in range(b):
        if u[j] < p_name_null:
            names.append(None)
        elif u[j] < p_name_null + 0.10:
            names.append(ids[j])
        else:
            names.append(_FIRST[fn[j]] + (" " + _LAST[ln[j]] if has_last[j] else ""))
    return _UserBlock(
        ids=ids,
        display_names=names,
        n_comm=n_comm,
        communities=communities,
        weights=weights,
        era=era,
        era_width=era_width,
        mainstream=mainstream,
        explicit_tolerance=explicit_tolerance,
    )


def _block_of(seed: int, i: int, params: dict[str, float] | None) -> tuple[_UserBlock, int]:
    p_null = float((params or DEFAULT_PARAMS)["p_display_name_null"])
    block, j = divmod(i, USER_BLOCK)
    return _user_block(seed, block, p_null), j


def user_id_for(seed: int, i: int, params: dict[str, float] | None = None) -> str:
    blk, j = _block_of(seed, i, params)
    return blk.ids[j]


def user_spec(seed: int, i: int, params: dict[str, float] | None = None) -> UserSpec:
    blk, j = _block_of(seed, i, params)
    k = int(blk.n_comm[j])
    taste = Taste(
        communities=blk.communities[j, :k].astype(np.int64),
        weights=blk.weights[j, :k].copy(),
        era=float(blk.era[j]),
        era_width=float(blk.era_width[j]),
        mainstream=float(blk.mainstream[j]),
        explicit_tolerance=float(blk.explicit_tolerance[j]),
    )
    return UserSpec(index=i, id=blk.ids[j], display_name=blk.display_names[j], taste=taste)


def taste_matrix(blk: _UserBlock, n_communities: int = catalog.N_COMMUNITIES) -> np.ndarray:
    """:func:`taste_vector` for a whole block at once."""
    b = len(blk.ids)
    v = np.zeros((b, n_communities + len(ERA_BINS) + 2), dtype=np.float64)
    rows = np.repeat(np.arange(b), MAX_TASTE_COMMUNITIES)
    np.add.at(v, (rows, blk.communities.ravel()), blk.weights.ravel())
    width = np.maximum(blk.era_width, 5.0)[:, None]
    era = np.exp(-0.5 * ((ERA_BINS[None, :] - blk.era[:, None]) / width) ** 2)
    v[:, n_communities : n_communities + len(ERA_BINS)] = 0.5 * era / era.sum(1, keepdims=True)
    v[:, -2] = 0.5 * (blk.mainstream - 0.5)
    v[:, -1] = 0.5 * (blk.explicit_tolerance - 0.5)
    return v.astype(np.float32)


def taste_vector(t: Taste, n_communities: int = catalog.N_COMMUNITIES) -> np.ndarray:
    """The hidden taste as one vector (cosine between two of them = how alike two users are).

    Community mixture (weight 1), decade profile around the era (weight 0.5), mainstreamness and
    explicit tolerance centred on 0.5 (weight 0.5 each): genre mix dominates, as in the playlists.
    """
    v = np.zeros(n_communities + len(ERA_BINS) + 2, dtype=np.float64)
    v[t.communities] = t.weights
    era = np.exp(-0.5 * ((ERA_BINS - t.era) / max(t.era_width, 5.0)) ** 2)
    v[n_communities : n_communities + len(ERA_BINS)] = 0.5 * era / era.sum()
    v[-2] = 0.5 * (t.mainstream - 0.5)
    v[-1] = 0.5 * (t.explicit_tolerance - 0.5)
    return v.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Playlists, drawn from the hidden taste with noise
# ---------------------------------------------------------------------------------------------
ROW_TRACK, ROW_EPISODE, ROW_LOCAL, ROW_NULL = 0, 1, 2, 3


@dataclass(frozen=True)
class PlaylistSpec:
    n: int
    id: str
    owner: int
    name: str
    description: str
    kinds: np.ndarray  # (rows,) int8 ROW_*
    values: np.ndarray  # (rows,) int64: track n | episode n | local file number | 0
    added_at: np.ndarray  # (rows,) int64 unix seconds
    snapshot_id: str = field(default="")

    @property
    def total(self) -> int:
        return len(self.kinds)


def playlist_n(i: int, p: int) -> int:
    return i * MAX_PLAYLISTS + p


def _community_sampler(c: int, taste: Taste) -> tuple[np.ndarray, np.ndarray]:
    members = catalog.communities().members[c]
    arr = catalog_arrays()
    pop = catalog.artists().popularity[members].astype(np.float64)
    era = arr.artist_era[members]
    # mainstream 1 -> strongly prefers popular artists; 0 -> prefers the obscure ones.
    w = ((pop + 1.0) / 101.0) ** (3.0 * taste.mainstream - 0.5)
    w *= np.exp(-0.5 * ((era - taste.era) / taste.era_width) ** 2) + 0.02
    return members, np.cumsum(w / w.sum())


def _draw_tracks(rng: np.random.Generator, members: np.ndarray, cdf: np.ndarray, n: int, taste: Taste) -> np.ndarray:
    arr = catalog_arrays()
    artists_ = members[np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(members) - 1)]

    def pick(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_alb = arr.album_start[a + 1] - arr.album_start[a]
        slot = (rng.random(len(a)) * n_alb).astype(np.int64)
        g = arr.album_start[a] + slot
        n_tr = arr.track_start[g + 1] - arr.track_start[g]
        t = (rng.random(len(a)) * n_tr).astype(np.int64)
        return (a * MAX_ALBUMS + slot) * MAX_TRACKS + t, arr.track_start[g] + t

    tn, gt = pick(artists_)
    # Explicit tracks survive with the user's tolerance; the rest are redrawn once from the same artist.
    redo = np.flatnonzero(arr.track_explicit[gt] & (rng.random(n) >= taste.explicit_tolerance))
    if len(redo):
        tn[redo], _ = pick(artists_[redo])
    return tn


def user_playlists(seed: int, user: UserSpec, params: dict[str, float] | None = None) -> list[PlaylistSpec]:
    params = params or DEFAULT_PARAMS
    i = user.index
    rng = _user_rng(seed, i, 13)
    taste = user.taste
    if i == SHOWCASE["no_public_playlists"] or (i not in SHOWCASE.values() and rng.random() < params["p_no_public_playlists"]):
        return []
    if i == SHOWCASE["many_playlists"] or rng.random() < params["p_many_playlists"]:
        n_pl = int(rng.integers(60, 131))
    else:
        n_pl = min(int(rng.geometric(0.2)), 40)
    n_pl = min(n_pl, MAX_PLAYLISTS)
    huge_at = int(rng.integers(n_pl)) if (i == SHOWCASE["huge_playlist"] or rng.random() < params["p_huge_playlist_user"]) else -1
    podcast = i == SHOWCASE["episodes_local_null"] or rng.random() < params["p_podcast_user"]
    local = i == SHOWCASE["episodes_local_null"] or rng.random() < params["p_local_user"]
    samplers: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    n_comm = catalog.N_COMMUNITIES
    out = []
    created = _T0 + int(rng.integers(0, 400_000_000))
    for p in range(n_pl):
        if p == huge_at:
            size = int(rng.integers(2000, 6001))
        elif (i == SHOWCASE["empty_playlist"] and p == 0) or rng.random() < params["p_empty_playlist"]:
            size = 0
        else:
            size = int(np.clip(rng.lognormal(np.log(25), 0.9), 1, 500))
        focus = int(taste.communities[rng.choice(len(taste.weights), p=taste.weights)])
        kinds = np.zeros(size, dtype=np.int8)
        values = np.zeros(size, dtype=np.int64)
        if size:
            # Most rows from the playlist's focus community, some from the user's others, a little noise.
            which = rng.random(size)
            noise = params["noise_other_community"]
            sources = np.where(which < noise, -1, np.where(which < noise + 0.10, -2, focus))
            for src in np.unique(sources):
                idx = np.flatnonzero(sources == src)
                if src == -1:
                    c = int(rng.integers(n_comm))
                elif src == -2:
                    c = int(taste.communities[rng.choice(len(taste.weights), p=taste.weights)])
                else:
                    c = int(src)
                if c not in samplers:
                    samplers[c] = _community_sampler(c, taste)
                values[idx] = _draw_tracks(rng, *samplers[c], len(idx), taste)
            if podcast and (rng.random() < 0.3 or i == SHOWCASE["episodes_local_null"]):
                ep = rng.random(size) < rng.uniform(0.1, 0.5)
                kinds[ep] = ROW_EPISODE
                values[ep] = rng.integers(0, 500 * EPISODES_PER_SHOW, size=int(ep.sum()))
            if local and (rng.random() < 0.5 or i == SHOWCASE["episodes_local_null"]):
                lo = (rng.random(size) < rng.uniform(0.02, 0.10)) & (kinds == ROW_TRACK)
                if i == SHOWCASE["episodes_local_null"] and not lo.any():
                    lo[0] = True
                kinds[lo] = ROW_LOCAL
                values[lo] = np.arange(int(lo.sum()))
            if rng.random() < params["p_null_playlist"] or (i == SHOWCASE["episodes_local_null"] and p == 0):
                nulls = rng.choice(size, size=min(size, int(rng.integers(1, 4))), replace=False)
                kinds[nulls] = ROW_NULL
                values[nulls] = 0
        added = created + np.cumsum(rng.integers(60, 30 * 86400, size=size)).astype(np.int64)
        created = created + int(rng.integers(86400, 60 * 86400))
        label = catalog.communities().labels[focus]
        template = _PLAYLIST_TEMPLATES[int(rng.integers(len(_PLAYLIST_TEMPLATES)))]
        name = template.format(
            label=label,
            word=_WORDS[int(rng.integers(len(_WORDS)))],
            word2=_WORDS[int(rng.integers(len(_WORDS)))],
            year=int(rng.integers(2009, 2026)),
        )
        pn = playlist_n(i, p)
        pid = make_id(f"playlist:{seed}", pn)
        out.append(
            PlaylistSpec(
                n=pn,
                id=pid,
                owner=i,
                name=name,
                description="" if rng.random() < 0.7 else f"{label} and more",
                kinds=kinds,
                values=values,
                added_at=added,
                snapshot_id=make_id(f"snapshot:{seed}", pn) + "AAAAAA",
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# A world on disk
# ---------------------------------------------------------------------------------------------
class WorldError(ValueError):
    """A world directory is missing or malformed."""


class World:
    """A generated world, read lazily: user ids from ``users.txt``, everything else derived."""

    def __init__(self, world_dir: str | Path):
        self.dir = Path(world_dir)
        meta_path = self.dir / "world.json"
        if not meta_path.is_file():
            raise WorldError(f"{self.dir} is not a world: world.json is missing (run `soundmates world generate`)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            self.seed = int(meta["seed"])
            self.n_users = int(meta["users"])
            self.params = {**DEFAULT_PARAMS, **meta.get("params", {}).get("rates", {})}
        except (ValueError, KeyError, TypeError) as exc:
            raise WorldError(f"{meta_path} is malformed: {exc}") from exc
        self.meta = meta
        self._ids: list[str] | None = None
        self._index: dict[str, int] | None = None
        self.user = lru_cache(maxsize=65536)(self._user)
        self.playlists = lru_cache(maxsize=4096)(self._playlists)

    # users.txt is read on first use (a 1M-user world: ~30 MB of ids, ~0.1 GB of dict).
    @property
    def user_ids(self) -> list[str]:
        if self._ids is None:
            with open(self.dir / "users.txt", encoding="utf-8") as f:
                self._ids = [line.rstrip("\n") for line in f]
            if len(self._ids) != self.n_users:
                raise WorldError(f"{self.dir}/users.txt has {len(self._ids)} ids, world.json says {self.n_users}")
        return self._ids

    def user_index(self, user_id: str) -> int | None:
        if self._index is None:
            self._index = {u: i for i, u in enumerate(self.user_ids)}
        return self._index.get(user_id)

    def _user(self, i: int) -> UserSpec:
        return user_spec(self.seed, i, self.params)

    def _playlists(self, i: int) -> list[PlaylistSpec]:
        return user_playlists(self.seed, self.user(i), self.params)

    def playlist(self, playlist_id: str) -> PlaylistSpec | None:
        pn = parse_id(f"playlist:{self.seed}", playlist_id)
        if pn is None:
            return None
        i, p = divmod(pn, MAX_PLAYLISTS)
        if i >= self.n_users:
            return None
        pls = self.playlists(i)
        return pls[p] if p < len(pls) else None


def describe_user(world_dir: str | Path | World, user_id: str) -> dict:
    """What the API will serve for ``user_id``: counts an ingest test can assert exactly.

    ``tracks`` counts track rows (duplicates included), ``distinct_tracks`` / ``distinct_artists``
    what a profile should end up holding (featured artists included).
    """
    world = world_dir if isinstance(world_dir, World) else World(world_dir)
    i = world.user_index(user_id)
    if i is None:
        raise KeyError(f"no user {user_id!r} in {world.dir}")
    user = world.user(i)
    pls = world.playlists(i)
    per: list[dict[str, Any]] = []
    track_set: set[int] = set()
    artist_set: set[int] = set()
    for pl in pls:
        counts = np.bincount(pl.kinds, minlength=4)
        tracks = pl.values[pl.kinds == ROW_TRACK]
        track_set.update(int(t) for t in tracks)
        per.append(
            {
                "id": pl.id,
                "name": pl.name,
                "items": pl.total,
                "tracks": int(counts[ROW_TRACK]),
                "episodes": int(counts[ROW_EPISODE]),
                "local": int(counts[ROW_LOCAL]),
                "null": int(counts[ROW_NULL]),
            }
        )
    if track_set:
        arr = catalog_arrays()
        tn = np.fromiter(track_set, dtype=np.int64)
        a, rest = np.divmod(tn, MAX_ALBUMS * MAX_TRACKS)
        slot, t = np.divmod(rest, MAX_TRACKS)
        feat = arr.track_featured[arr.track_start[arr.album_start[a] + slot] + t]
        artist_set = set(a.tolist()) | set(feat[feat >= 0].tolist())
    return {
        "user_id": user.id,
        "index": i,
        "display_name": user.display_name,
        "playlists": len(pls),
        "empty_playlists": sum(1 for p in per if p["items"] == 0),
        "items": sum(p["items"] for p in per),
        "tracks": sum(p["tracks"] for p in per),
        "episodes": sum(p["episodes"] for p in per),
        "local": sum(p["local"] for p in per),
        "null": sum(p["null"] for p in per),
        "max_playlist_items": max((p["items"] for p in per), default=0),
        "distinct_tracks": len(track_set),
        "distinct_artists": len(artist_set),
        "playlist_detail": per,
    }


def find_users(world_dir: str | Path | World, predicate: Callable[[dict], bool], limit: int | None = None) -> list[str]:
    """User ids whose :func:`describe_user` dict satisfies ``predicate`` (in users.txt order)."""
    world = world_dir if isinstance(world_dir, World) else World(world_dir)
    out = []
    for uid in world.user_ids:
        if predicate(describe_user(world, uid)):
            out.append(uid)
            if limit is not None and len(out) >= limit:
                break
    return out


def iter_user_ids(seed: int, n_users: int) -> Iterator[str]:
    for i in range(n_users):
        yield user_id_for(seed, i)


def generate_world(out_dir: str | Path, n_users: int, seed: int, *, progress: Callable[[int], None] | None = None) -> dict:
    """Write ``users.txt``, ``world.json`` and the ground truth; returns world.json's content.

    Streams in blocks of ``USER_BLOCK`` users (memory stays flat for 1M users). Files are written
    to temporary names and renamed at the end, so an interrupted run never leaves a world
    that looks complete; the same seed always gives byte-identical files.
    """
    if not isinstance(n_users, int) or not 1 <= n_users <= MAX_USERS:
        raise ValueError(f"users must be an integer between 1 and {MAX_USERS:,}, got {n_users!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out_dir)
    truth = out / TRUTH_DIR
    truth.mkdir(parents=True, exist_ok=True)
    dim = catalog.N_COMMUNITIES + len(ERA_BINS) + 2
    tmp_users = out / "users.txt.tmp"
    tmp_taste = truth / "taste.tmp.npy"
    tmp_scalars = truth / "scalars.tmp.npy"
    taste = np.lib.format.open_memmap(tmp_taste, mode="w+", dtype=np.float32, shape=(n_users, dim))
    scalars = np.lib.format.open_memmap(tmp_scalars, mode="w+", dtype=np.float32, shape=(n_users, 4))
    seen: set[str] = set()
    p_null = float(DEFAULT_PARAMS["p_display_name_null"])
    with open(tmp_users, "w", encoding="utf-8", newline="\n") as f:
        for block in range(0, (n_users + USER_BLOCK - 1) // USER_BLOCK):
            start = block * USER_BLOCK
            stop = min(n_users, start + USER_BLOCK)
            blk = _user_block(seed, block, p_null)
            ids = blk.ids[: stop - start]
            # Only the 25-char random ids could ever collide; this guard costs ~60 MB at 1M users.
            for j, uid in enumerate(ids):
                if uid in seen:
                    raise RuntimeError(f"duplicate user id {uid!r} at index {start + j} (seed {seed})")
                seen.add(uid)
            f.write("\n".join(ids) + "\n")
            taste[start:stop] = taste_matrix(blk)[: stop - start]
            scalars[start:stop] = np.stack([blk.era, blk.era_width, blk.mainstream, blk.explicit_tolerance], 1)[: stop - start]
            if progress:
                progress(stop - start)
    taste.flush()
    scalars.flush()
    del taste, scalars
    meta = {
        "format": WORLD_FORMAT,
        "seed": seed,
        "users": n_users,
        "params": {
            "rates": DEFAULT_PARAMS,
            "showcase_user_indices": SHOWCASE,
            "communities": catalog.N_COMMUNITIES,
            "community_labels": catalog.communities().labels,
            "catalog_seed": CATALOG_SEED,
            "catalog_artists": len(catalog.artists().names),
        },
        "truth": {
            "taste": f"{TRUTH_DIR}/taste.npy",
            "taste_columns": [f"community:{c}" for c in range(catalog.N_COMMUNITIES)]
            + [f"decade:{int(y)}" for y in ERA_BINS]
            + ["mainstream", "explicit_tolerance"],
            "scalars": f"{TRUTH_DIR}/scalars.npy",
            "scalar_columns": ["era", "era_width", "mainstream", "explicit_tolerance"],
            "note": "hidden taste: for evaluation only, never served by the API",
        },
    }
    commit_file(tmp_taste, truth / "taste.npy")
    commit_file(tmp_scalars, truth / "scalars.npy")
    commit_file(tmp_users, out / "users.txt")
    # world.json last: its presence marks a complete world.
    atomic_write_text(out / "world.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta
