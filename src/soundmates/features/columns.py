"""A batch of profiles laid out as flat numpy columns, and the item lists of every user's bags (full, a, b).

:func:`soundmates.features.bags.taste_bags` walks one profile in Python; here the batch is walked once
with list comprehensions into columns (playlists, items, tracks, track credits, artists, genres), so
:mod:`soundmates.features.counts` can count every bag of every user with a few numpy calls. The
half views are the item lists :func:`soundmates.features.views.split_views` would give, chosen by the
same rules and the same seeded ranks, in the order the half profile lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import blake2b

import numpy as np

from soundmates.features.bags import MIN_YEAR
from soundmates.features.views import MIN_HALF_SHARE, _rank
from soundmates.profiles import AnyProfile, Artist, ArtistRecord, Track, TrackRecord

N_SLOTS = 3  # bag b of user u is 3u + slot; slot 0 = the full profile, 1 = view a, 2 = view b


@dataclass
class Columns:
    """Flat columns of a batch (rows of one user are contiguous, in the profile's own order)."""

    profiles: Sequence[AnyProfile]
    pl_user: np.ndarray  # playlist -> user
    pl_first_item: np.ndarray  # playlist p owns items pl_first_item[p] : pl_first_item[p + 1]
    it_track: np.ndarray  # item -> track row, -1 when the track is not in the profile
    it_weight: np.ndarray  # float64
    trk_year: np.ndarray  # float64, NaN when unknown or out of range
    trk_popularity: np.ndarray  # float64, NaN when unknown
    trk_explicit: np.ndarray  # float64 0/1, NaN when unknown
    trk_id_row: np.ndarray  # track row -> first track row of the user with the same ``track.id``
    trk_ids: list[str]  # ``track.id`` per track row
    trk_user: np.ndarray  # track row -> user
    cred_ptr: np.ndarray  # track t credits artist rows cred_artist[cred_ptr[t] : cred_ptr[t + 1]]
    cred_artist: np.ndarray
    art_user: np.ndarray  # artist row -> user (credited ids missing from ``profile.artists`` get a row too)
    art_keys: list[str]  # artist id per artist row
    art_names: list[str | None]  # None when the id is not in ``profile.artists``
    art_named: np.ndarray  # bool: in ``profile.artists`` with a non-empty name
    gen_ptr: np.ndarray  # artist a lists genres gen_code[gen_ptr[a] : gen_ptr[a + 1]] (none when unknown)
    gen_code: np.ndarray
    genres: list[str]  # genre code -> text


class _Builder:
    """Collects the columns user by user: one list comprehension per field, not one Python loop per item."""

    def __init__(self) -> None:
        self.pl_user: list[int] = []
        self.pl_items: list[int] = []
        self.it_track: list[int | None] = []  # None: the track is not in the profile
        self.it_weight: list[float] = []
        self.trk_fields: list[tuple] = []  # (release_year, popularity, explicit) with None for unknown
        self.trk_id_row: list[int] = []
        self.trk_ids: list[str] = []
        self.trk_user: list[int] = []
        self.n_credits: list[int] = []
        self.cred_artist: list[int] = []
        self.art_user: list[int] = []
        self.art_keys: list[str] = []
        self.art_names: list[str | None] = []
        self.n_genres: list[int] = []
        self.genre_texts: list[str] = []

    def add(self, u: int, prof: AnyProfile) -> None:
        tracks: list[Track | TrackRecord] = list(prof.tracks.values())
        keys = list(prof.tracks)
        t0, a0 = len(self.trk_ids), len(self.art_keys)
        ids = [t.id for t in tracks]
        self.trk_ids += ids
        self.trk_user += [u] * len(ids)
        if ids == keys:  # the usual case: each track filed under its own id, so every id row is its own
            self.trk_id_row += range(t0, t0 + len(ids))
        else:
            first: dict[str, int] = {}
            self.trk_id_row += [first.setdefault(i, t0 + j) for j, i in enumerate(ids)]
        self.trk_fields += [(t.release_year, t.popularity, t.explicit) for t in tracks]
        self.n_credits += [len(t.artist_ids) for t in tracks]
        self._add_artists(u, prof, tracks, a0)
        tmap = dict(zip(keys, range(t0, t0 + len(keys))))
        for pl in prof.playlists:
            self.pl_user.append(u)
            self.pl_items.append(len(pl.items))
        self.it_track += map(tmap.get, [it.track_id for pl in prof.playlists for it in pl.items])
        self.it_weight += [it.weight for pl in prof.playlists for it in pl.items]

    def _add_artists(self, u: int, prof: AnyProfile, tracks: list, a0: int) -> None:
        artists: list[Artist | ArtistRecord] = list(prof.artists.values())
        amap = dict(zip(prof.artists, range(a0, a0 + len(artists))))
        self.art_keys += prof.artists
        self.art_names += [a.name for a in artists]
        self.n_genres += [len(a.genres) if a.genres is not None else 0 for a in artists]
        self.genre_texts += [g for a in artists if a.genres for g in a.genres]
        credited = [a for t in tracks for a in t.artist_ids]
        rows = list(map(amap.get, credited))
        if None in rows:  # credited but not in profile.artists: counted under its id, no name, no genres
            for i, r in enumerate(rows):
                if r is None:
                    aid = credited[i]
                    if aid not in amap:
                        amap[aid] = len(self.art_keys)
                        self.art_keys.append(aid)
                        self.art_names.append(None)
                        self.n_genres.append(0)
                    rows[i] = amap[aid]
        self.cred_artist += rows  # type: ignore[arg-type]  # no None left
        self.art_user += [u] * (len(self.art_keys) - len(self.art_user))

    def columns(self, profiles: Sequence[AnyProfile]) -> Columns:
        max_year = datetime.now(UTC).year + 1
        fields = _track_fields(self.trk_fields)
        years = fields[:, 0].copy()
        years[~((years >= MIN_YEAR) & (years <= max_year))] = np.nan  # data errors (0, 9999) are unknown
        it_track = np.array(self.it_track, dtype=np.float64)  # None -> NaN -> -1
        vocab = {g: i for i, g in enumerate(dict.fromkeys(self.genre_texts))}
        return Columns(
            profiles=profiles,
            pl_user=np.array(self.pl_user, dtype=np.int64),
            pl_first_item=_ptr(self.pl_items),
            it_track=np.where(np.isnan(it_track), -1, it_track).astype(np.int64),
            it_weight=np.array(self.it_weight, dtype=np.float64),
            trk_year=years,
            trk_popularity=fields[:, 1].copy(),
            trk_explicit=fields[:, 2].copy(),
            trk_id_row=np.array(self.trk_id_row, dtype=np.int64),
            trk_ids=self.trk_ids,
            trk_user=np.array(self.trk_user, dtype=np.int64),
            cred_ptr=_ptr(self.n_credits),
            cred_artist=np.array(self.cred_artist, dtype=np.int64),
            art_user=np.array(self.art_user, dtype=np.int64),
            art_keys=self.art_keys,
            art_names=self.art_names,
            art_named=np.array([bool(n) for n in self.art_names], dtype=bool),
            gen_ptr=_ptr(self.n_genres),
            gen_code=np.array([vocab[g] for g in self.genre_texts], dtype=np.int64),
            genres=list(vocab),
        )


def _track_fields(rows: list[tuple]) -> np.ndarray:
    """(year, popularity, explicit) as float64, None -> NaN; a year too large for a float is unknown too."""
    try:
        return np.array(rows, dtype=np.float64).reshape(-1, 3)
    except OverflowError:  # a popularity that large fails as float(popularity) fails in taste_bags
        rows = [(y if y is None or abs(y) < 10**6 else None, p, e) for y, p, e in rows]
        return np.array(rows, dtype=np.float64).reshape(-1, 3)


def _ptr(counts: list[int]) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def flatten(profiles: Sequence[AnyProfile]) -> Columns:
    """The batch as :class:`Columns` (a profile that cannot be walked raises; the caller isolates it)."""
    b = _Builder()
    for u, prof in enumerate(profiles):
        b.add(u, prof)
    return b.columns(profiles)


# --- views -------------------------------------------------------------------------------


def _halves(cols: Columns, u: int, p0: int, p1: int, known: np.ndarray, seed: int) -> tuple[list, list] | None:
    """Item rows of view a and view b of user ``u`` (playlists p0:p1), as ``split_views`` deals them."""
    first = cols.pl_first_item
    sizes = [int(known[first[p] : first[p + 1]].sum()) for p in range(p0, p1)]
    total = sum(sizes)
    if total < 2:
        return None
    uid = cols.profiles[u].user_id
    pls = cols.profiles[u].playlists
    if sum(1 for n in sizes if n) >= 2:
        order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], _rank(seed, uid, pls[i].id, i)))
        a: list[int] = []
        b: list[int] = []
        na = nb = 0
        for i in order:
            if na <= nb:
                a.append(i)
                na += sizes[i]
            else:
                b.append(i)
                nb += sizes[i]
        if min(na, nb) >= MIN_HALF_SHARE * total:
            return [r for i in a for r in range(first[p0 + i], first[p0 + i + 1])], [
                r for i in b for r in range(first[p0 + i], first[p0 + i + 1])
            ]
    return _split_tracks(cols, uid, p0, p1, known, seed)


def _split_tracks(cols: Columns, uid: str, p0: int, p1: int, known: np.ndarray, seed: int) -> tuple[list, list]:
    first, pls = cols.pl_first_item, cols.profiles[int(cols.pl_user[p0])].playlists
    a: list[int] = []
    b: list[int] = []
    turn = 0
    for p_index in range(p1 - p0):
        start, n = int(first[p0 + p_index]), int(first[p0 + p_index + 1] - first[p0 + p_index])
        # _rank(seed, uid, pl_id, p_index, j), spelled out: same text, and digest bytes sort as their hex does
        prefix = f"{seed}:{uid}:{pls[p_index].id}:{p_index}:"
        to_a: list[int] = []
        to_b: list[int] = []
        for j in sorted(range(n), key=lambda j: blake2b(f"{prefix}{j}".encode(), digest_size=8).digest()):
            if not known[start + j]:
                to_a.append(j)  # unusable rows change no feature; split_views keeps them in half a
                continue
            (to_a if turn % 2 == 0 else to_b).append(j)
            turn += 1
        a += [start + j for j in sorted(to_a)]
        b += [start + j for j in sorted(to_b)]
    return a, b


def bag_items(cols: Columns, views: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item rows, their bag, has_views per user): every bag's items in the order its profile lists them."""
    n_users = len(cols.profiles)
    known = cols.it_track >= 0
    pl_bounds = np.searchsorted(cols.pl_user, np.arange(n_users + 1))
    items: list[np.ndarray] = []
    bags: list[np.ndarray] = []
    has_views = np.zeros(n_users, dtype=bool)
    for u in range(n_users):
        p0, p1 = int(pl_bounds[u]), int(pl_bounds[u + 1])
        i0, i1 = int(cols.pl_first_item[p0]), int(cols.pl_first_item[p1])
        parts = [np.arange(i0, i1, dtype=np.int64)]
        halves = _halves(cols, u, p0, p1, known, seed) if views else None
        if halves is not None:
            has_views[u] = True
            parts += [np.array(h, dtype=np.int64) for h in halves]
        for slot, part in enumerate(parts):
            items.append(part)
            bags.append(np.full(len(part), N_SLOTS * u + slot, dtype=np.int64))
    if not items:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), has_views
    return np.concatenate(items), np.concatenate(bags), has_views
