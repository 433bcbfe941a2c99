"""Choosing Annoy's ``n_trees`` and ``search_k`` by measurement, and exact search to measure against.

Annoy's default ``search_k`` (n_trees * k) gives recall@10 of 0.14 on 100k random 64-d vectors,
so each build measures recall on a sample of its own vectors against exact (numpy) search and
doubles ``search_k`` until the target is met; the result is recorded in the manifest.
"""

from __future__ import annotations

import math
import time

import numpy as np

TARGET_RECALL = 0.95
# Calibration queries are indexed users; newcomers (not in the trees) get lower recall at the same
# search_k: measured at 1M users (32 trees, 300 held-out queries), calibration 0.955 / 0.966 / 0.974 gave
# newcomers 0.953 / 0.962 / 0.970 (search_k 10k / 12k / 14k); ~0.015 lower at 100k. The 200 x 10 sample
# has a standard error of ~0.004. So calibrate to 0.96: newcomers ~0.956 at 1M, 1.5 standard errors over the
# 0.95 goal. Query time grows with search_k: 0.98 (before) bought recall nobody asked for at 1.6x the
# search_k. With 64 trees at 1M (bench_index, 2026-12-03) calibration 0.967 at search_k 7,680 gave newcomers
# 0.962 at 12.4x brute force.
CALIBRATION_MARGIN = 0.01
CALIBRATION_QUERIES = 200


# Build time grows with n x n_trees; past this budget, fewer trees and a larger (calibrated)
# search_k keep a 1M-user build within minutes on 2 cores. Measured at 1M (300 newcomers, raw Annoy
# queries timed beside numpy brute force, 2026-12-03): 32 trees reach recall@10 0.953 at search_k 10,000
# (10x brute force) and 0.965 at 12,800 (7.8x); 64 trees reach 0.967 at 8,000 (11.9x) and 0.945 at
# 6,000 (19x), for 1,257 MB instead of 756 and an 81 s build instead of 61. More trees let a query look
# at fewer, better candidates, so the budget allows 64 trees at 1M (16 trees needed search_k 35,840).
TREE_INSERT_BUDGET = 64_000_000
MAX_TREES = 64


def choose_n_trees(n: int) -> int:
    """About 3.2·log2(n) trees (10..64: 64 at 1M users), capped so that n x n_trees stays within the build budget."""
    if n <= 1:
        return 1
    by_size = int(min(MAX_TREES, max(10, round(3.2 * math.log2(n)))))
    return int(max(8, min(by_size, TREE_INSERT_BUDGET // n)))


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 64) -> np.ndarray:
    """Indices of the k most cosine-similar rows of ``vectors`` (L2-normalised) for each query, best first."""
    k = min(k, vectors.shape[0])
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for s in range(0, queries.shape[0], chunk):
        sims = queries[s : s + chunk] @ vectors.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(sims, part, axis=1).argsort(axis=1)[:, ::-1]
        out[s : s + chunk] = np.take_along_axis(part, order, axis=1)
    return out


def recall_at_k(approx: list[list[int]], exact: np.ndarray) -> float:
    hits = total = 0
    for a, e in zip(approx, exact):
        e_set = {int(x) for x in e}
        hits += len(e_set & set(a[: len(e_set)]))
        total += len(e_set)
    return hits / total if total else 1.0


def calibrate_search_k(
    annoy,
    vectors: np.ndarray,
    n_trees: int,
    *,
    k: int = 10,
    target: float = TARGET_RECALL + CALIBRATION_MARGIN,
    n_queries: int = CALIBRATION_QUERIES,
    seed: int = 0,
) -> dict:
    """A small ``search_k`` (doubling, then bisecting) whose recall@k (self excluded) on sampled items reaches ``target``.

    Queries are items of the index, as in real use (a stored user asks for others); the item itself
    is dropped from both result lists so it cannot inflate recall.
    """
    n = vectors.shape[0]
    if n <= k + 1:
        # Everything is a neighbour: visit every node of every tree.
        return {"search_k": max(1, n * n_trees), "recall_at_k": 1.0, "calibration_queries": 0, "steps": []}
    rng = np.random.default_rng(seed)
    q_idx = rng.choice(n, size=min(n_queries, n), replace=False)
    probe = _RecallProbe(annoy, q_idx, _exact_others(vectors, q_idx, k), k)
    search_k = max(n_trees * k, 100)
    ceiling = n * n_trees  # beyond this Annoy has visited everything

    # Double until the target is met, then bisect between the last miss and the hit (two steps):
    # query time is proportional to search_k, so overshooting by up to 2x would cost up to 2x.
    low = None
    rec = probe.measure(search_k)
    while rec < target and search_k < ceiling:
        low = search_k
        search_k = min(search_k * 2, ceiling)
        rec = probe.measure(search_k)
    best, best_rec = search_k, rec
    if low is not None and rec >= target:
        best, best_rec = _bisect(probe, low, search_k, rec, target)
    return {
        "search_k": int(best),
        "recall_at_k": round(best_rec, 4),
        "target": round(target, 4),
        "calibration_queries": len(q_idx),
        "steps": probe.steps,
    }


def _exact_others(vectors: np.ndarray, q_idx: np.ndarray, k: int) -> np.ndarray:
    """The exact k nearest items of each query item, the item itself left out."""
    exact = exact_top_k(vectors, vectors[q_idx], k + 1)
    return np.array([[int(j) for j in row if j != qi][:k] for qi, row in zip(q_idx, exact)])


class _RecallProbe:
    """Measures Annoy's recall@k (self excluded) at one ``search_k``, recording each step and its latency."""

    def __init__(self, annoy, q_idx: np.ndarray, exact: np.ndarray, k: int):
        self.annoy, self.q_idx, self.exact, self.k = annoy, q_idx, exact, k
        self.steps: list[dict] = []

    def measure(self, sk: int) -> float:
        k = self.k
        t0 = time.perf_counter()
        approx = [[j for j in self.annoy.get_nns_by_item(int(qi), k + 1, search_k=sk) if j != qi][:k] for qi in self.q_idx]
        latency_ms = (time.perf_counter() - t0) / len(self.q_idx) * 1e3
        rec = recall_at_k(approx, self.exact)
        self.steps.append({"search_k": int(sk), "recall": round(rec, 4), "latency_ms": round(latency_ms, 3)})
        return rec


def _bisect(probe: _RecallProbe, low: int, hi: int, hi_rec: float, target: float) -> tuple[int, float]:
    """Two bisection steps between a missing ``low`` and a hitting ``hi``: the smallest hit seen and its recall."""
    best, best_rec = hi, hi_rec
    for _ in range(2):
        mid = (low + hi) // 2
        r = probe.measure(mid)
        if r >= target:
            hi, best, best_rec = mid, mid, r
        else:
            low = mid
    return best, best_rec
