"""Feature vectors of every bag of a batch at once, from :class:`~soundmates.features.counts.BagCounts`.

The vectorised twin of :func:`soundmates.features.taste.features_from_bags`: the same formulas over
all bags in a few numpy and sparse-matrix products (float64, rounded to float32 where the row is).
Ordering is the same too: bags sorted by weight descending then text, top-N named artists likewise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from soundmates.features import schema as S
from soundmates.features.counts import BagCounts, Entries, Weighted


@dataclass
class Ranked:
    """Entries of each bag sorted by weight descending then text; bag b owns ``start[b]:start[b+1]``."""

    key: np.ndarray
    value: np.ndarray
    start: np.ndarray


def text_ranks(texts: list[str]) -> np.ndarray:
    ranks = np.empty(len(texts), dtype=np.int64)
    ranks[sorted(range(len(texts)), key=texts.__getitem__)] = np.arange(len(texts))
    return ranks


def rank_entries(e: Entries, ranks: np.ndarray, n_rows: int) -> Ranked:
    order = np.lexsort((ranks[e.key], -e.value, e.row))
    return Ranked(e.key[order], e.value[order], np.searchsorted(e.row[order], np.arange(n_rows + 1)))


def top_named(artists: Ranked, named: np.ndarray, top_n: int) -> Ranked:
    """The ``top_n`` most frequent named artists of each bag (ties by id), as ``top_artist_ids``."""
    keep = named[artists.key]
    n_rows = len(artists.start) - 1
    bag_of = np.repeat(np.arange(n_rows), np.diff(artists.start))
    seen_before = np.cumsum(keep) - keep  # named entries before this one, over the whole array
    first_in_bag = np.concatenate([[0], np.cumsum(keep)])[artists.start[:-1]]
    keep &= (seen_before - first_in_bag[bag_of]) < max(top_n, 0)
    rows = bag_of[keep]
    return Ranked(artists.key[keep], artists.value[keep], np.searchsorted(rows, np.arange(n_rows + 1)))


def _csr(rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int]):
    from scipy.sparse import csr_matrix

    return csr_matrix((data, (rows, cols)), shape=shape)


def _normalised(e: Entries, n_rows: int) -> np.ndarray:
    total = np.bincount(e.row, weights=e.value, minlength=n_rows)
    return e.value / total[e.row]


def embeddings(c: BagCounts, top: Ranked, genre_vecs: np.ndarray, name_rows: np.ndarray, name_vecs: np.ndarray) -> dict:
    """genre_emb, artist_emb, playlist_emb (float32, zeros when missing) of every bag.

    ``genre_vecs``: float64 vector per genre code; ``name_rows``: name-vector row per top artist entry.
    """
    n, dim = c.n_bags, genre_vecs.shape[1]
    g = c.genres
    genre = _csr(g.row, g.key, _normalised(g, n), (n, len(genre_vecs))) @ genre_vecs
    pg = c.playlist_genres
    n_bp = len(c.bp_bag)
    per_pl = (_csr(pg.row, pg.key, _normalised(pg, n_bp), (n_bp, len(genre_vecs))) @ genre_vecs).astype(np.float32)
    with_genres = np.unique(pg.row)
    size = Entries(c.bp_bag[with_genres], with_genres, c.bp_usable[with_genres].astype(np.float64))
    playlist = _csr(size.row, size.key, _normalised(size, n), (n, n_bp)) @ per_pl.astype(np.float64)
    k = np.diff(top.start)
    top_rows = np.repeat(np.arange(n), k)
    if len(top_rows):
        artist = _csr(top_rows, name_rows, 1.0 / k[top_rows], (n, len(name_vecs))) @ name_vecs
    else:
        artist = np.zeros((n, dim))
    return {
        "genre_emb": np.asarray(genre, dtype=np.float64).astype(np.float32),
        "artist_emb": np.asarray(artist, dtype=np.float64).astype(np.float32),
        "playlist_emb": np.asarray(playlist, dtype=np.float64).astype(np.float32),
    }


def _mean_std(w: Weighted, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation per bag (NaN where the bag knows no value)."""
    total = np.bincount(w.bag, weights=w.weight, minlength=n)
    share = w.weight / total[w.bag] if len(w.bag) else w.weight
    with np.errstate(invalid="ignore"):
        mean = np.where(total > 0, np.bincount(w.bag, weights=w.value * share, minlength=n), np.nan)
        var = np.bincount(w.bag, weights=(w.value - mean[w.bag]) ** 2 * share, minlength=n)
    return mean, np.where(total > 0, np.sqrt(np.maximum(var, 0.0)), np.nan)


def scalars(c: BagCounts) -> dict:
    """year_mean/std, year_hist, mean_popularity, explicit_ratio of every bag."""
    n = c.n_bags
    year_mean, year_std = _mean_std(c.years, n)
    nb = len(S.YEAR_BINS)
    idx = np.searchsorted(np.array(S.YEAR_BIN_EDGES), c.years.value, side="right")
    hist = np.bincount(c.years.bag * nb + idx, weights=c.years.weight, minlength=n * nb).reshape(n, nb)
    total = hist.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        hist = np.where(total > 0, hist / total, 0.0)
    return {
        "year_mean": year_mean,
        "year_std": year_std,
        "year_hist": hist.astype(np.float32),
        "mean_popularity": _mean_std(c.popularity, n)[0],
        "explicit_ratio": _mean_std(c.explicit, n)[0],
        "has_years": np.bincount(c.years.bag, minlength=n) > 0,
        "has_popularity": np.bincount(c.popularity.bag, minlength=n) > 0,
        "has_explicit": np.bincount(c.explicit.bag, minlength=n) > 0,
    }


def missing_lists(has_genres, has_artists, sc: dict) -> list[list[str]]:
    flags = zip(
        has_genres.tolist(), has_artists.tolist(), *(sc[k].tolist() for k in ("has_years", "has_popularity", "has_explicit"))
    )
    names = S.MISSING_GENRES, S.MISSING_ARTISTS, S.MISSING_YEARS, S.MISSING_POPULARITY, S.MISSING_EXPLICIT
    return [[m for m, present in zip(names, f) if not present] for f in flags]


def combined(emb: dict, sc: dict, n_tracks, n_playlists, has_genres, has_artists) -> np.ndarray:
    """Unscaled combined vectors, laid out as ``schema.combined_layout``; NaN where missing (as ``raw_combined``)."""
    nan_g = np.where(has_genres, 0.0, np.nan)[:, None]
    nan_a = np.where(has_artists, 0.0, np.nan)[:, None]
    nan_y = np.where(sc["has_years"], 0.0, np.nan)[:, None]
    logs = np.array([[math.log1p(t), math.log1p(p)] for t, p in zip(n_tracks.tolist(), n_playlists.tolist())])
    parts = [
        emb["genre_emb"].astype(np.float64) + nan_g,
        emb["artist_emb"].astype(np.float64) + nan_a,
        emb["playlist_emb"].astype(np.float64) + nan_g,
        sc["year_hist"].astype(np.float64) + nan_y,
        np.column_stack([sc["year_mean"], sc["year_std"], logs.reshape(-1, 2), sc["mean_popularity"], sc["explicit_ratio"]]),
    ]
    return np.concatenate(parts, axis=1).astype(np.float32)


def segments(r: Ranked, texts: list, b: int, n: int | None = None) -> tuple[list, np.ndarray]:
    """(texts, float32 weights) of bag ``b`` in ranked order, the first ``n`` when given."""
    s, e = int(r.start[b]), int(r.start[b + 1])
    if n is not None:
        e = min(e, s + n)
    keys = r.key[s:e].tolist()
    return [texts[k] for k in keys], r.value[s:e]
