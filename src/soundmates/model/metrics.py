"""Retrieval metrics for "find my other half" evaluation, on torchmetrics.

Every query ``i`` has exactly one relevant candidate: its own other view, at column
``positives[i]`` of a ``(queries, candidates)`` score matrix. Recall@k is then the hit rate.
``precision_at_k`` measures a second, softer signal (true taste neighbours on a generated
world, friends on HetRec) over the top-k *other* users.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RECALL_KS = (1, 10, 50)
METRIC_KEYS = ("recall@1", "recall@10", "recall@50", "mrr", "ndcg@10")


def retrieval_metrics(scores: np.ndarray, positives: Sequence[int] | np.ndarray | None = None) -> dict[str, float]:
    """recall@1/10/50, MRR and NDCG@10 of a score matrix (higher = closer).

    ``positives[i]`` is the column of query ``i``'s relevant candidate (default: the diagonal).
    """
    import torch
    from torchmetrics.retrieval import RetrievalMRR, RetrievalNormalizedDCG, RetrievalRecall

    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (queries, candidates) matrix, got shape {scores.shape}")
    n_q, n_c = scores.shape
    pos = np.arange(n_q) if positives is None else np.asarray(positives, dtype=np.int64)
    if pos.shape != (n_q,) or pos.min() < 0 or pos.max() >= n_c:
        raise ValueError(f"positives must hold one candidate column in [0, {n_c}) per query ({n_q}), got shape {pos.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    preds = torch.from_numpy(_positive_untied(scores)).reshape(-1)
    target = torch.zeros(n_q, n_c, dtype=torch.bool)
    target[torch.arange(n_q), torch.from_numpy(pos)] = True
    target = target.reshape(-1)
    indexes = torch.arange(n_q).repeat_interleave(n_c)
    out = {}
    for k in RECALL_KS:
        out[f"recall@{k}"] = float(RetrievalRecall(top_k=k)(preds, target, indexes=indexes))
    out["mrr"] = float(RetrievalMRR()(preds, target, indexes=indexes))
    out["ndcg@10"] = float(RetrievalNormalizedDCG(top_k=10)(preds, target, indexes=indexes))
    return out


def _positive_untied(scores: np.ndarray, seed: int = 0) -> np.ndarray:
    """Same order per row, strictly positive, ties broken at random (seeded).

    torchmetrics' retrieval metrics count a candidate with a score <= 0 as not retrieved
    (cosines can be negative), and leave the order of equal scores to ``argsort`` (which
    would favour whichever column comes first, e.g. the diagonal). Shift each row above
    zero, and add jitter below half the smallest gap between distinct scores.
    """
    s = scores.astype(np.float64)
    s = s - s.min(axis=1, keepdims=True) + 1.0
    distinct = np.unique(s)
    gap = np.diff(distinct).min() if len(distinct) > 1 else 1.0
    return s + np.random.default_rng(seed).random(s.shape) * gap * 0.5


def top_k_others(scores: np.ndarray, query_ids: Sequence[str], candidate_ids: Sequence[str], k: int) -> list[list[str]]:
    """Top-k candidate ids per query, never the query's own user (ties broken by column order)."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    col = {c: j for j, c in enumerate(candidate_ids)}
    for i, q in enumerate(query_ids):
        j = col.get(q)
        if j is not None:
            scores[i, j] = -np.inf
    kk = min(k, scores.shape[1])
    # stable sort on -score: equal scores keep column order, so results are reproducible
    order = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
    cand = np.asarray(candidate_ids, dtype=object)
    return [list(cand[row]) for row in order]


def precision_at_k(
    scores: np.ndarray,
    query_ids: Sequence[str],
    candidate_ids: Sequence[str],
    relevant: dict[str, set[str]],
    k: int = 10,
) -> float:
    """Mean share of each query's top-k other users that are in ``relevant[query]``.

    Queries with no relevant user among the candidates are skipped (they cannot score);
    returns NaN when no query can score.
    """
    cand_set = set(candidate_ids)
    tops = top_k_others(scores, query_ids, candidate_ids, k)
    vals = []
    for q, top in zip(query_ids, tops):
        rel = relevant.get(q, set()) & cand_set
        rel.discard(q)
        if not rel:
            continue
        vals.append(sum(1 for c in top if c in rel) / k)
    return float(np.mean(vals)) if vals else float("nan")


# --------------------------------------------------------------------------- population metrics
# Per-query arrays (NaN = the query cannot score), so every figure gets a bootstrap interval
# and a slice (e.g. thin profiles) is a mask. Candidates are the whole population.


def graded_ndcg(ranked_gains: np.ndarray, ideal_gains: np.ndarray) -> np.ndarray:
    """NDCG@k per query: DCG of the gains in ranked order over the DCG of the ideal order.

    ``ranked_gains[i, r]`` = relevance of query i's r-th ranked candidate; ``ideal_gains[i]``
    = the k largest relevances over the whole population, in decreasing order. Gains below
    zero count as zero (a dissimilar neighbour earns nothing, it does not cost).
    """
    ranked = np.maximum(np.asarray(ranked_gains, dtype=np.float64), 0.0)
    ideal = np.maximum(np.asarray(ideal_gains, dtype=np.float64), 0.0)
    if ranked.shape != ideal.shape or ranked.ndim != 2:
        raise ValueError(f"ranked and ideal gains must be (queries, k) of one shape, got {ranked.shape} and {ideal.shape}")
    disc = 1.0 / np.log2(np.arange(2, ranked.shape[1] + 2))
    dcg, idcg = ranked @ disc, ideal @ disc
    return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)


def overlap_at_k(ranked: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Share of each query's ranked top k found in its true top k (both (queries, k) arrays of ids)."""
    ranked, truth = np.asarray(ranked), np.asarray(truth)
    if ranked.shape != truth.shape or ranked.ndim != 2:
        raise ValueError(f"ranked and true neighbours must be (queries, k) of one shape, got {ranked.shape} and {truth.shape}")
    return np.array([len(set(r.tolist()) & set(t.tolist())) / ranked.shape[1] for r, t in zip(ranked, truth)], dtype=np.float64)


def share_relevant(ranked: Sequence[Sequence], relevant: Sequence[set]) -> np.ndarray:
    """Share of each query's ranked list in its relevant set; NaN for a query with nothing relevant."""
    out = np.full(len(ranked), np.nan)
    for i, (r, rel) in enumerate(zip(ranked, relevant)):
        if rel and len(r):
            out[i] = sum(1 for c in r if c in rel) / len(r)
    return out


def item_recall(predicted: Sequence[Sequence], held_out: Sequence[set], k: int) -> np.ndarray:
    """Hits of the top-k predicted items in the held-out items over min(k, held-out), per query (NaN: none held out)."""
    out = np.full(len(predicted), np.nan)
    for i, (p, h) in enumerate(zip(predicted, held_out)):
        if h:
            out[i] = sum(1 for x in list(p)[:k] if x in h) / min(k, len(h))
    return out


def bootstrap_ci(values: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of the mean over queries (NaNs dropped); [nan, nan] when empty."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]
