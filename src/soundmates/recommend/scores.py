"""Served scores: the query·candidate cosine recommend ranks by, and its percentile among random pairs.

The percentile ("closer than X% of pairs") is calibrated on the score recommend serves: the query side
of a sample of indexed users against the candidate side of other indexed users, from the current
index and the served embedder. Calibrating on candidate·candidate pairs (what the index keeps from
its build) would be a different distribution whenever the two sides differ, and every top match would
read ~100%. The sample is built once per (index version, model) and kept.
"""

from __future__ import annotations

import logging

import numpy as np

from soundmates.recommend.context import RecommendContext, query_is_candidate

log = logging.getLogger("soundmates.recommend")

CALIBRATION_USERS = 400  # queries (and candidates) sampled: up to 400 x 399 pairs
MIN_PAIRS = 20


def served_score(query_vec: np.ndarray, candidate_vec: np.ndarray) -> float:
    """Cosine of a query-side and a candidate-side vector, rounded as every page shows it."""
    q = np.asarray(query_vec, dtype=np.float64).reshape(-1)
    c = np.asarray(candidate_vec, dtype=np.float64).reshape(-1)
    nq, nc = float(np.linalg.norm(q)), float(np.linalg.norm(c))
    if q.shape != c.shape or nq == 0 or nc == 0:
        raise ValueError("vectors of different dimension or without direction")
    return round(float(np.clip(q @ c / (nq * nc), -1.0, 1.0)), 4)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def _query_side(ctx: RecommendContext, emb, ids: list[str], candidates: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Positions in ``ids`` and their query-side vectors (the candidates themselves when the sides are one)."""
    if query_is_candidate(emb):
        return list(range(len(ids))), candidates
    frame = ctx.store.read("user_features", keys=list(ids))
    if "view" in frame.columns:
        frame = frame[frame["view"] == "full"]
    frame = frame.drop_duplicates("user_id", keep="last").reset_index(drop=True)
    if not len(frame):
        return [], np.zeros((0, candidates.shape[1]), dtype=np.float32)
    pos = {u: i for i, u in enumerate(ids)}
    rows = [pos[str(u)] for u in frame["user_id"]]
    embed = getattr(emb, "embed_query", None) or emb.embed
    return rows, _unit_rows(np.asarray(embed(frame), dtype=np.float64))


def pair_scores(ctx: RecommendContext, emb, index_version: str | None) -> np.ndarray:
    """Sorted served scores of random (query, candidate) pairs of distinct users of the current index."""
    key = (index_version, getattr(emb, "version", None), len(ctx.index.fresh) // 50)
    with ctx.lock:
        hit = ctx.calibration.get(key)
    if hit is not None:
        return hit
    ids, cand = ctx.index.all_vectors(limit=CALIBRATION_USERS)
    cand = _unit_rows(np.asarray(cand, dtype=np.float64))
    rows, queries = _query_side(ctx, emb, list(ids), cand)
    if not rows or queries.shape[1] != cand.shape[1]:
        sims = np.zeros(0)
    else:
        table = queries @ cand.T  # (queries, candidates)
        own = np.zeros_like(table, dtype=bool)
        own[np.arange(len(rows)), rows] = True  # a user against themselves is not a pair
        sims = np.sort(np.clip(table[~own], -1.0, 1.0))
    with ctx.lock:
        ctx.calibration = {key: sims}  # one distribution at a time: the current index and model
    return sims


def percentile(ctx: RecommendContext, emb, index_version: str | None, score: float) -> float | None:
    """% of random served pairs scoring below ``score``; None when there are too few users to say."""
    try:
        sims = pair_scores(ctx, emb, index_version)
    except Exception as e:  # noqa: BLE001 - no percentile is better than a wrong one; the score still shows
        log.warning("served-score calibration unavailable: %s", e)
        return None
    if sims.size < MIN_PAIRS:
        return None
    return round(100.0 * float(np.searchsorted(sims, score, side="left")) / sims.size, 1)
