"""What every bag of a batch counts (:class:`BagCounts`), from :mod:`soundmates.features.columns`, in numpy.

The same counts as :func:`soundmates.features.bags.taste_bags`, summed in the same order: weights are
added item after item (``np.bincount`` adds in input order), genres first per playlist and then
across the bag's playlists, in the order its profile lists them, as the Counters do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soundmates.features.columns import N_SLOTS, Columns


@dataclass
class Entries:
    """Sparse ``(row, key) -> value`` (distinct pairs; genre entries sorted by row then key)."""

    row: np.ndarray
    key: np.ndarray
    value: np.ndarray


@dataclass
class Weighted:
    """``(bag, value, weight)`` per usable item that knows the value, in item order."""

    bag: np.ndarray
    value: np.ndarray
    weight: np.ndarray


@dataclass
class BagCounts:
    """Counts of bags ``0..n_bags-1`` (bag ``3u + slot``, see ``columns.N_SLOTS``)."""

    n_bags: int
    n_tracks: np.ndarray
    n_playlists: np.ndarray
    genres: Entries  # bag -> genre code -> track-artist occurrences x item weight
    playlist_genres: Entries  # bag playlist -> genre code -> count (only bag playlists with genres)
    bp_bag: np.ndarray  # bag playlist -> bag
    bp_usable: np.ndarray  # bag playlist -> usable items
    artists: Entries  # bag -> artist row -> count
    tracks: Entries  # full bags only: bag -> track id row -> summed item weight
    years: Weighted
    popularity: Weighted
    explicit: Weighted


def _sum_by(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys ascending, sum of weights per key), each sum taken in input order."""
    uniq, inverse = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inverse.ravel(), weights=weights, minlength=len(uniq))


def _dense_sum(keys: np.ndarray, weights: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys that occur, ascending; sum of weights per key, in input order) for keys below ``n_keys``."""
    sums = np.bincount(keys, weights=weights, minlength=n_keys)
    seen = np.flatnonzero(np.bincount(keys, minlength=n_keys))
    return seen, sums[seen]


def _expand(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``rows`` (in order), the positions ``ptr[r]:ptr[r+1]``: (index into rows, position)."""
    starts = ptr[rows]
    counts = ptr[rows + 1] - starts
    owner = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
    offsets = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, starts[owner] + offsets


def _weighted(bag: np.ndarray, values: np.ndarray, weight: np.ndarray) -> Weighted:
    known = ~np.isnan(values)
    return Weighted(bag[known], values[known], weight[known])


def _bag_playlists(cols: Columns, items: np.ndarray, bags: np.ndarray) -> np.ndarray:
    """Bag playlist of each bag item: a new one wherever the bag or the playlist changes."""
    item_pl = np.searchsorted(cols.pl_first_item, items, side="right") - 1
    change = np.ones(len(items), dtype=bool)
    change[1:] = (bags[1:] != bags[:-1]) | (item_pl[1:] != item_pl[:-1])
    return np.cumsum(change) - 1


def count_bags(cols: Columns, items: np.ndarray, bags: np.ndarray, n_bags: int) -> BagCounts:
    """Count every bag; ``items``/``bags`` from :func:`soundmates.features.columns.bag_items`."""
    track = cols.it_track[items]
    weight = cols.it_weight[items]
    usable = (track >= 0) & np.isfinite(weight) & (weight > 0)
    bp = _bag_playlists(cols, items, bags)
    n_bp = int(bp[-1]) + 1 if len(bp) else 0
    bp_bag = np.zeros(n_bp, dtype=np.int64)
    bp_bag[bp] = bags
    bp_usable = np.bincount(bp[usable], minlength=n_bp)
    vb, vbp, vt, vw = bags[usable], bp[usable], track[usable], weight[usable]
    genres, playlist_genres, artists = _credit_counts(cols, vb, vbp, vt, vw, bp_bag)
    full = vb % N_SLOTS == 0
    # A track row belongs to one user, so within full bags the id row alone is the key (no sort).
    tk, tv = _dense_sum(cols.trk_id_row[vt[full]], vw[full], len(cols.trk_ids))
    return BagCounts(
        n_bags=n_bags,
        n_tracks=np.bincount(vb, minlength=n_bags),
        n_playlists=np.bincount(bp_bag[bp_usable > 0], minlength=n_bags),
        genres=genres,
        playlist_genres=playlist_genres,
        bp_bag=bp_bag,
        bp_usable=bp_usable,
        artists=artists,
        tracks=Entries(N_SLOTS * cols.trk_user[tk], tk, tv),
        years=_weighted(vb, cols.trk_year[vt], vw),
        popularity=_weighted(vb, cols.trk_popularity[vt], vw),
        explicit=_weighted(vb, cols.trk_explicit[vt], vw),
    )


def _credit_counts(cols: Columns, vb, vbp, vt, vw, bp_bag) -> tuple[Entries, Entries, Entries]:
    """Genre counts (per bag and per bag playlist) and artist counts, over the usable items' credits."""
    owner, pos = _expand(cols.cred_ptr, vt)
    artist = cols.cred_artist[pos]
    cw, cb, cbp = vw[owner], vb[owner], vbp[owner]
    # An artist row belongs to one user, so (slot, artist row) is the bag's key: a dense sum, no sort.
    n_art = len(cols.art_keys)
    ak, av = _dense_sum((cb % N_SLOTS) * n_art + artist, cw, N_SLOTS * n_art)
    art = ak % max(n_art, 1)
    artists = Entries(N_SLOTS * cols.art_user[art] + ak // max(n_art, 1), art, av)
    g_owner, g_pos = _expand(cols.gen_ptr, artist)
    code = cols.gen_code[g_pos]
    n_gen = max(len(cols.genres), 1)
    # Per playlist first (pl_genres[g] += w, item by item), then across the bag's playlists in order.
    pk, pv = _sum_by(cbp[g_owner] * n_gen + code, cw[g_owner])
    playlist_genres = Entries(pk // n_gen, pk % n_gen, pv)
    gk, gv = _sum_by(bp_bag[playlist_genres.row] * n_gen + playlist_genres.key, pv)
    return Entries(gk // n_gen, gk % n_gen, gv), playlist_genres, artists
