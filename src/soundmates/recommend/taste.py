"""Your taste: top genres, artists and eras, how mainstream and how varied against everyone, who is near."""

from __future__ import annotations

import math

import numpy as np

from soundmates.recommend.context import RecommendContext
from soundmates.recommend.models import RecommendError
from soundmates.recommend.query import index_manifest
from soundmates.recommend.subject import subject_for
from soundmates.recommend.taste_models import Percentile, Ranked, TasteProfile

TOP = 10


def _percentile(value: float | None, population) -> Percentile:
    """Where ``value`` falls among the population's values (NaN left out)."""
    pop = np.asarray([v for v in population if v is not None and math.isfinite(float(v))], dtype=np.float64)
    if value is None or not math.isfinite(value):
        return Percentile(users_compared=int(pop.size))
    if pop.size == 0:
        return Percentile(value=round(value, 3))
    pop.sort()
    below = float(np.searchsorted(pop, value, side="left"))
    return Percentile(
        value=round(value, 3),
        population_median=round(float(np.median(pop)), 3),
        percentile=round(100.0 * below / pop.size, 1),
        users_compared=int(pop.size),
    )


def _ranked(counts: dict, names: dict | None = None) -> list[Ranked]:
    total = sum(counts.values()) or 1.0
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    return [
        Ranked(name=(names or {}).get(k) or str(k), share=round(float(c) / total, 4), id=k if names else None) for k, c in top
    ]


def _population(ctx: RecommendContext, warnings: list[str]):
    """(popularity, entropy) of every user on the map, from the stored layout; empty lists without one."""
    from soundmates.index.layout import LayoutNotBuilt, read_layout

    try:
        frame, _ = read_layout(ctx.settings, (index_manifest(ctx) or {}).get("version"))
    except LayoutNotBuilt as e:
        warnings.append(f"no population to compare with: {e}")
        return [], []
    return frame["popularity"].tolist(), frame["entropy"].tolist()


def _people_within(ctx: RecommendContext, user_id: str, vector: np.ndarray, within: float) -> tuple[int | None, int | None]:
    ids, vecs = ctx.index.all_vectors()
    if not ids:
        return None, None
    keep = np.array([u != user_id for u in ids])
    scores = vecs[keep] @ np.asarray(vector, dtype=np.float32)
    return int((scores >= within).sum()), int(keep.sum())


def taste_profile(ctx: RecommendContext, ref: str, *, within: float = 0.5) -> TasteProfile:
    """What ``ref`` listens to and where that sits among everyone (a live profile is not stored)."""
    from soundmates.features.families import dominant_family, genre_entropy
    from soundmates.features.schema import YEAR_BINS
    from soundmates.features.taste import taste_bags, year_histogram

    if not -1.0 <= within <= 1.0:
        raise RecommendError(f"--within must be a match score between -1 and 1, got {within}")
    user_id = ctx.resolve(ref)
    index_model = (index_manifest(ctx) or {}).get("model_version")
    subject = subject_for(ctx, user_id, consent=False, progress=None, index_model=index_model)
    profile = subject.profile or ctx.profiles.load(user_id)
    if profile is None:
        raise RecommendError(f"no profile of {user_id} to describe: add it first ('soundmates add {user_id}')")
    bags = taste_bags(profile)
    warnings: list[str] = []
    pops, ents = _population(ctx, warnings)
    weights = [(p, w) for p, w in bags.popularity]
    pop = sum(p * w for p, w in weights) / sum(w for _, w in weights) if weights else None
    genres = dict(bags.genre_counts)
    hist = year_histogram(bags.years)
    near, compared = _people_within(ctx, user_id, subject.vector, within)
    return TasteProfile(
        user_id=user_id,
        display_name=profile.display_name,
        top_genres=_ranked(genres),
        top_artists=_ranked(dict(bags.artist_counts), {a: x.name for a, x in profile.artists.items()}),
        eras=[Ranked(name=b, share=round(float(v), 4)) for b, v in zip(YEAR_BINS, hist)],
        mainstream=_percentile(pop, pops),
        variety=_percentile(genre_entropy(genres.values()) if genres else None, ents),
        within=within,
        people_within=near,
        people_compared=compared,
        family=dominant_family(list(genres), list(genres.values())) if genres else None,
        embedder=subject.model_version,
        warnings=warnings,
    )
