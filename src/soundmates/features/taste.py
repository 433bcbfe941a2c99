"""Taste features of one user, from a canonical :class:`~soundmates.profiles.Profile`.

Two steps, the reference one user at a time:

1. :func:`taste_bags` walks the profile once, in pure Python, and counts what
   matters (genre and artist occurrences, per-playlist genre counts, years,
   popularity, explicit flags). No model involved.
2. :func:`features_from_bags` turns the counts into vectors with numpy.

:func:`featurize_profiles` computes the same rows for a whole batch at once, with one encoder
look-up for every distinct genre and artist name: the profiles as flat columns
(``features/columns.py``), every bag counted (``counts.py``), vectorised (``batch.py``) and
turned into rows (``rows.py``). tests/test_features_golden.py holds the two paths equal.

Weights: every playlist item carries a weight (1.0 for a playlist row, minutes
or play counts for other sources); an artist occurs once per track it is
credited on, so genre and artist counts are "track-artist occurrences x item weight".
Missing data is a value: it becomes a zero vector or NaN and its name goes to
``missing``; only a user with nothing usable is rejected, with a reason.

The bags and their walk live in :mod:`soundmates.features.bags` (``taste_bags`` re-exported here).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from soundmates.features import schema as S
from soundmates.features.bags import TasteBags, taste_bags, texts_needed, top_artist_ids  # noqa: F401 - re-exported
from soundmates.profiles import AnyProfile

TOP_GENRES_KEPT = 20
TOP_ARTISTS_KEPT = 20
TOP_TRACKS_KEPT = 20


class Rejected(ValueError):
    """A user whose profile holds nothing usable; ``reason`` says why."""

    def __init__(self, user_id: str, reason: str):
        super().__init__(f"{user_id}: {reason}")
        self.user_id = user_id
        self.reason = reason


def _weighted_mean_std(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    if not pairs:
        return math.nan, math.nan
    v = np.array(pairs, dtype=np.float64)
    w = v[:, 1] / v[:, 1].sum()
    mean = float((v[:, 0] * w).sum())
    std = float(math.sqrt(max(((v[:, 0] - mean) ** 2 * w).sum(), 0.0)))
    return mean, std


def year_histogram(pairs: list[tuple[float, float]]) -> np.ndarray:
    """Weighted fractions per ``YEAR_BINS`` decade (all zeros when no year is known)."""
    hist = np.zeros(len(S.YEAR_BINS), dtype=np.float64)
    if pairs:
        v = np.array(pairs, dtype=np.float64)
        idx = np.searchsorted(np.array(S.YEAR_BIN_EDGES), v[:, 0], side="right")
        np.add.at(hist, idx, v[:, 1])
        hist /= hist.sum()
    return hist.astype(np.float32)


def _weighted_embedding(counts: Mapping[str, float], vectors: Callable[[list[str]], np.ndarray], dim: int) -> np.ndarray:
    """Weighted mean of the unit vectors of ``counts``' keys; zeros when empty.

    Not re-normalised: the norm (<= 1) says how coherent the taste is.
    """
    if not counts:
        return np.zeros(dim, dtype=np.float32)
    keys = list(counts)
    w = np.fromiter((counts[k] for k in keys), dtype=np.float64, count=len(keys))
    return ((w / w.sum()) @ vectors(keys).astype(np.float64)).astype(np.float32)


def _sorted_bag(counts: Mapping[str, float]) -> tuple[list[str], list[float]]:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [k for k, _ in items], [float(v) for _, v in items]


def rejection_reason(bags: TasteBags) -> str | None:
    """Why a bag without a single usable track says nothing (None when it has one)."""
    if bags.n_tracks:
        return None
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(bags.skipped.items()) if v) or "none"
    if bags.n_playlists_total == 0:
        return "no playlists: the profile has no public playlists to learn a taste from"
    return (
        f"no music tracks in {bags.n_playlists_total} playlist(s): every item was skipped "
        f"({skipped}); podcasts-only, local-file or empty playlists say nothing about music taste"
    )


def _embeddings(bags: TasteBags, profile: AnyProfile, vectors, dim: int, top_n: int) -> tuple[dict, list[str]]:
    """genre_emb, artist_emb, playlist_emb of the bags, and the names of those missing."""
    missing: list[str] = []
    genre_emb = _weighted_embedding(bags.genre_counts, vectors, dim)
    if not bags.genre_counts:
        missing.append(S.MISSING_GENRES)
    top_ids = top_artist_ids(bags, profile, top_n)
    if top_ids:
        names = [profile.artists[a].name for a in top_ids]
        artist_emb = vectors(names).astype(np.float64).mean(axis=0).astype(np.float32)
    else:
        artist_emb = np.zeros(dim, dtype=np.float32)
        missing.append(S.MISSING_ARTISTS)
    if not bags.genre_counts and not top_ids:
        raise Rejected(
            bags.user_id,
            f"{bags.n_tracks} track(s) but neither genres nor any named artist: nothing to compare tastes by",
        )
    # Playlist embedding: each playlist's own genre mean, weighted by the playlist's size (usable items).
    pl_embs, pl_sizes = [], []
    for size, counts in bags.playlist_genres:
        if counts:
            pl_embs.append(_weighted_embedding(counts, vectors, dim))
            pl_sizes.append(size)
    if pl_embs:
        sizes = np.array(pl_sizes, dtype=np.float64)
        playlist_emb = ((sizes / sizes.sum()) @ np.stack(pl_embs).astype(np.float64)).astype(np.float32)
    else:
        playlist_emb = np.zeros(dim, dtype=np.float32)
    return {"genre_emb": genre_emb, "artist_emb": artist_emb, "playlist_emb": playlist_emb}, missing


def _scalars(bags: TasteBags, missing: list[str]) -> dict:
    """Years, popularity and explicit share of the bags; appends the missing ones' names to ``missing``."""
    year_mean, year_std = _weighted_mean_std(bags.years)
    mean_popularity, _ = _weighted_mean_std(bags.popularity)
    explicit_ratio, _ = _weighted_mean_std(bags.explicit)
    for values, name in (
        (bags.years, S.MISSING_YEARS),
        (bags.popularity, S.MISSING_POPULARITY),
        (bags.explicit, S.MISSING_EXPLICIT),
    ):
        if not values:
            missing.append(name)
    return {
        "year_mean": year_mean,
        "year_std": year_std,
        "year_hist": year_histogram(bags.years),
        "n_tracks": int(bags.n_tracks),
        "n_playlists": int(bags.n_playlists),
        "mean_popularity": mean_popularity,
        "explicit_ratio": explicit_ratio,
    }


def features_from_bags(
    bags: TasteBags,
    profile: AnyProfile,
    vectors: Callable[[list[str]], np.ndarray],
    dim: int,
    top_n: int,
    profile_hash: str | None = None,
) -> dict:
    """One ``user_features`` row (without ``user_id``, ``view``; ``combined`` unscaled).

    ``vectors(texts)`` returns the (len(texts), dim) unit vectors of the texts.
    Raises :class:`Rejected` when nothing is usable. The batch path (``features/rows.py``)
    computes the same rows for many users at once.
    """
    reason = rejection_reason(bags)
    if reason is not None:
        raise Rejected(bags.user_id, reason)
    embs, missing = _embeddings(bags, profile, vectors, dim, top_n)
    genre_names, genre_weights = _sorted_bag(bags.genre_counts)
    artist_ids, artist_weights = _sorted_bag(bags.artist_counts)
    row = {
        **embs,
        **_scalars(bags, missing),
        "genre_names": genre_names,
        "genre_weights": np.array(genre_weights, dtype=np.float32),
        "artist_ids": artist_ids,
        "artist_weights": np.array(artist_weights, dtype=np.float32),
        "missing": missing,
        "profile_hash": profile_hash if profile_hash is not None else profile.content_hash(),
    }
    row["combined"] = raw_combined(row)
    return row


def raw_combined(row: Mapping) -> np.ndarray:
    """The unscaled combined vector, laid out as :func:`schema.combined_layout`; NaN where missing.

    A missing embedding becomes NaN here (not zeros), so the scaler fills it
    with the fitted mean like any other missing value.
    """
    miss = set(row["missing"])
    genre = np.asarray(row["genre_emb"], dtype=np.float64)
    artist = np.asarray(row["artist_emb"], dtype=np.float64)
    playlist = np.asarray(row["playlist_emb"], dtype=np.float64)
    if S.MISSING_GENRES in miss:
        genre = np.full_like(genre, np.nan)
        playlist = np.full_like(playlist, np.nan)
    if S.MISSING_ARTISTS in miss:
        artist = np.full_like(artist, np.nan)
    hist = np.asarray(row["year_hist"], dtype=np.float64)
    if S.MISSING_YEARS in miss:
        hist = np.full_like(hist, np.nan)
    scalars = np.array(
        [
            row["year_mean"],
            row["year_std"],
            math.log1p(row["n_tracks"]),
            math.log1p(row["n_playlists"]),
            row["mean_popularity"],
            row["explicit_ratio"],
        ],
        dtype=np.float64,
    )
    return np.concatenate([genre, artist, playlist, hist, scalars]).astype(np.float32)


def explanation_row(
    bags: TasteBags, profile: AnyProfile, year_hist: np.ndarray | None = None, profile_hash: str | None = None
) -> dict:
    """One ``user_profiles`` row: what explanations show (top genres, artists, tracks, eras)."""
    genres = sorted(bags.genre_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_GENRES_KEPT]
    artists = sorted(bags.artist_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_ARTISTS_KEPT]
    tracks = sorted(bags.track_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_TRACKS_KEPT]
    named = [(a, profile.artists[a].name if a in profile.artists else None, c) for a, c in artists]
    return explanation_from_tops(
        profile,
        n_playlists=int(bags.n_playlists),
        n_tracks=int(bags.n_tracks),
        tops=(genres, named, tracks),
        total_genre=sum(bags.genre_counts.values()) or 1.0,
        year_hist=year_histogram(bags.years) if year_hist is None else year_hist,
        profile_hash=profile_hash if profile_hash is not None else profile.content_hash(),
    )


def explanation_from_tops(
    profile: AnyProfile, *, n_playlists: int, n_tracks: int, tops: tuple, total_genre: float, year_hist, profile_hash: str
) -> dict:
    """The ``user_profiles`` row from the top (genre, count), (artist id, name, count), (track id, count)."""
    genres, artists, tracks = tops
    top_genres = [{"genre": g, "weight": round(c / total_genre, 6)} for g, c in genres]
    top_artists = [{"id": a, "name": name, "count": round(c, 6)} for a, name, c in artists]
    top_tracks = []
    for tid, c in tracks:
        t = profile.tracks[tid]
        top_tracks.append(
            {
                "id": tid,
                "name": t.name,
                "artists": [profile.artists[a].name if a in profile.artists else a for a in t.artist_ids],
                "count": round(c, 6),
            }
        )
    return {
        "user_id": profile.user_id,
        "display_name": profile.display_name,
        "source": profile.source,
        "n_playlists": n_playlists,
        "n_tracks": n_tracks,
        "top_genres_json": json.dumps(top_genres, ensure_ascii=False),
        "top_artists_json": json.dumps(top_artists, ensure_ascii=False),
        "top_tracks_json": json.dumps(top_tracks, ensure_ascii=False),
        "year_hist_json": json.dumps({"bins": list(S.YEAR_BINS), "values": [round(float(x), 6) for x in year_hist]}),
        "profile_hash": profile_hash,
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# --- batches ---------------------------------------------------------------------


@dataclass
class FeatureBatch:
    """Rows for many users: ``user_features`` rows (combined still unscaled), ``user_profiles`` rows, rejections."""

    feature_rows: list[dict] = field(default_factory=list)
    profile_rows: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # {"user_id", "reason"}
    no_views: list[str] = field(default_factory=list)  # users with a full row but too little to split in two


def featurize_profiles(
    profiles: Iterable[AnyProfile],
    encoder,
    *,
    top_n: int = 10,
    views: bool = True,
    seed: int = 0,
    hashes: Mapping[str, str] | None = None,
) -> FeatureBatch:
    """Features for many profiles: rows view ``full`` (and ``a``/``b`` when ``views``), one encoder call.

    All users are computed together (``features/rows.py``). One bad user never fails the batch: when
    the batch raises, each user is computed alone and the one that raises is listed in ``rejected``.
    ``hashes``: ``content_hash()`` of profiles by user id, when the caller already computed them.
    """
    from soundmates.features import rows

    profiles = list(profiles)
    batch = FeatureBatch()
    if not profiles:
        return batch
    try:
        rows.batch_rows(profiles, encoder, batch=batch, top_n=top_n, views=views, seed=seed, hashes=hashes)
        return batch
    except Exception:  # noqa: BLE001 - odd data somewhere: find whose, user by user
        batch = FeatureBatch()
    for prof in profiles:
        try:
            rows.flatten([prof])
        except Exception as exc:  # noqa: BLE001 - a malformed profile must not stop the others
            batch.rejected.append({"user_id": prof.user_id, "reason": f"could not read the profile: {exc}"})
            continue
        one = FeatureBatch()
        try:
            rows.batch_rows([prof], encoder, batch=one, top_n=top_n, views=views, seed=seed, hashes=hashes)
        except Exception as exc:  # noqa: BLE001 - a bug or odd data in one profile must not cost the others their features
            batch.rejected.append({"user_id": prof.user_id, "reason": f"feature computation failed: {type(exc).__name__}: {exc}"})
            continue
        for name in ("feature_rows", "profile_rows", "rejected", "no_views"):
            getattr(batch, name).extend(getattr(one, name))
    return batch
