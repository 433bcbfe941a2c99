"""``user_features`` and ``user_profiles`` rows of a batch of profiles, computed for all users at once.

:func:`batch_rows` is the fast path behind :func:`soundmates.features.taste.featurize_profiles`:
columns (``columns.py``) -> counts (``counts.py``) -> vectors (``batch.py``) -> one dict per row,
exactly the rows ``features_from_bags`` and ``explanation_row`` give user by user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from soundmates.features import schema as S
from soundmates.features.batch import Ranked, combined, embeddings, missing_lists, rank_entries, scalars, segments, text_ranks
from soundmates.features.batch import top_named as _top_named
from soundmates.features.columns import N_SLOTS, Columns, bag_items, flatten
from soundmates.features.counts import BagCounts, count_bags
from soundmates.profiles import AnyProfile


@dataclass
class _Batch:
    """Everything computed for a batch, per bag (``3u + slot``)."""

    cols: Columns
    counts: BagCounts
    has_views: np.ndarray
    genres: Ranked
    artists: Ranked
    top: Ranked
    emb: dict
    sc: dict
    combined: np.ndarray
    missing: list[list[str]]
    ok: np.ndarray  # bag has tracks and genres or a named artist


def _vectors(encoder, cols: Columns, c: BagCounts, top: Ranked) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(genre vectors by code, name vector rows of the top entries, name vectors): one encoder look-up."""
    used = np.unique(c.genres.key)
    names = [cols.art_names[a] for a in top.key.tolist()]
    name_index: dict[str, int] = {}
    name_rows = np.array([name_index.setdefault(n, len(name_index)) for n in names], dtype=np.int64)
    genre_texts = [cols.genres[g] for g in used.tolist()]
    dim = encoder.dim
    table = encoder.lookup(sorted(set(genre_texts) | set(name_index)))
    genre_vecs = np.zeros((len(cols.genres), dim), dtype=np.float64)
    if genre_texts:
        genre_vecs[used] = np.stack([table[t] for t in genre_texts]).astype(np.float32).astype(np.float64)
    name_vecs = np.zeros((len(name_index), dim), dtype=np.float64)
    if name_index:
        name_vecs[:] = np.stack([table[t] for t in name_index]).astype(np.float32).astype(np.float64)
    return genre_vecs, name_rows, name_vecs


def compute(profiles: Sequence[AnyProfile], encoder, top_n: int, views: bool, seed: int) -> _Batch:
    """Walk, count and vectorise every bag of ``profiles`` (raises on odd data; the caller isolates users)."""
    cols = flatten(profiles)
    items, bags, has_views = bag_items(cols, views, seed)
    n = N_SLOTS * len(profiles)
    c = count_bags(cols, items, bags, n)
    genres = rank_entries(c.genres, text_ranks(cols.genres), n)
    artists = rank_entries(c.artists, text_ranks(cols.art_keys), n)
    top = _top_named(artists, cols.art_named, top_n)
    genre_vecs, name_rows, name_vecs = _vectors(encoder, cols, c, top)
    emb = embeddings(c, top, genre_vecs, name_rows, name_vecs)
    sc = scalars(c)
    has_genres, has_artists = np.diff(genres.start) > 0, np.diff(top.start) > 0
    return _Batch(
        cols=cols,
        counts=c,
        has_views=has_views,
        genres=genres,
        artists=artists,
        top=top,
        emb=emb,
        sc=sc,
        combined=combined(emb, sc, c.n_tracks, c.n_playlists, has_genres, has_artists),
        missing=missing_lists(has_genres, has_artists, sc),
        ok=(c.n_tracks > 0) & (has_genres | has_artists),
    )


def feature_row(bt: _Batch, b: int, profile_hash: str) -> dict:
    """One ``user_features`` row of bag ``b`` (without ``user_id``/``view``), as ``features_from_bags``."""
    genre_names, genre_weights = segments(bt.genres, bt.cols.genres, b)
    artist_ids, artist_weights = segments(bt.artists, bt.cols.art_keys, b)
    sc, emb = bt.sc, bt.emb
    return {
        "genre_emb": emb["genre_emb"][b],
        "artist_emb": emb["artist_emb"][b],
        "playlist_emb": emb["playlist_emb"][b],
        "year_mean": float(sc["year_mean"][b]),
        "year_std": float(sc["year_std"][b]),
        "year_hist": sc["year_hist"][b],
        "n_tracks": int(bt.counts.n_tracks[b]),
        "n_playlists": int(bt.counts.n_playlists[b]),
        "mean_popularity": float(sc["mean_popularity"][b]),
        "explicit_ratio": float(sc["explicit_ratio"][b]),
        "genre_names": genre_names,
        "genre_weights": genre_weights.astype(np.float32),
        "artist_ids": artist_ids,
        "artist_weights": artist_weights.astype(np.float32),
        "missing": bt.missing[b],
        "profile_hash": profile_hash,
        "combined": bt.combined[b],
    }


def explanation_tops(bt: _Batch, tracks: Ranked, b: int) -> tuple[list, list, list]:
    """(genre, count), (artist id, name, count), (track id, count) of bag ``b``: the first ones kept of each."""
    from soundmates.features.taste import TOP_ARTISTS_KEPT, TOP_GENRES_KEPT, TOP_TRACKS_KEPT

    g_names, g_counts = segments(bt.genres, bt.cols.genres, b, TOP_GENRES_KEPT)
    a_ids, a_counts = segments(bt.artists, bt.cols.art_keys, b, TOP_ARTISTS_KEPT)
    s = int(bt.artists.start[b])
    a_names = [bt.cols.art_names[k] for k in bt.artists.key[s : s + len(a_ids)].tolist()]
    t_ids, t_counts = segments(tracks, bt.cols.trk_ids, b, TOP_TRACKS_KEPT)
    return (
        list(zip(g_names, g_counts.tolist())),
        list(zip(a_ids, a_names, a_counts.tolist())),
        list(zip(t_ids, t_counts.tolist())),
    )


def batch_rows(
    profiles: Sequence[AnyProfile], encoder, *, top_n: int, views: bool, seed: int, hashes: Mapping[str, str] | None, batch
) -> None:
    """Append every user's rows, rejection or missing views to ``batch`` (a ``taste.FeatureBatch``)."""
    from soundmates.features.taste import explanation_from_tops, rejection_reason, taste_bags

    bt = compute(profiles, encoder, top_n, views, seed)
    c = bt.counts
    tracks = rank_entries(c.tracks, text_ranks(bt.cols.trk_ids), c.n_bags)
    genre_totals = np.bincount(c.genres.row, weights=c.genres.value, minlength=c.n_bags)
    for u, prof in enumerate(profiles):
        b = N_SLOTS * u
        if not bt.ok[b]:
            reason = rejection_reason(taste_bags(prof)) if c.n_tracks[b] == 0 else None
            reason = (
                reason or f"{int(c.n_tracks[b])} track(s) but neither genres nor any named artist: nothing to compare tastes by"
            )
            batch.rejected.append({"user_id": prof.user_id, "reason": reason})
            continue
        known = hashes.get(prof.user_id) if hashes else None
        phash = known if known is not None else prof.content_hash()
        batch.feature_rows.append({"user_id": prof.user_id, "view": S.VIEW_FULL, **feature_row(bt, b, phash)})
        if bt.has_views[u] and bt.ok[b + 1] and bt.ok[b + 2]:
            for slot, view in ((1, S.VIEW_A), (2, S.VIEW_B)):
                batch.feature_rows.append({"user_id": prof.user_id, "view": view, **feature_row(bt, b + slot, phash)})
        else:
            batch.no_views.append(prof.user_id)  # both halves or neither: a lone half is no training pair
        tops = explanation_tops(bt, tracks, b)
        batch.profile_rows.append(
            explanation_from_tops(
                prof,
                n_playlists=int(c.n_playlists[b]),
                n_tracks=int(c.n_tracks[b]),
                tops=tops,
                total_genre=float(genre_totals[b]) or 1.0,
                year_hist=bt.sc["year_hist"][b],
                profile_hash=phash,
            )
        )
