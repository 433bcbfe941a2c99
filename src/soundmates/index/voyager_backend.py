"""Voyager (Spotify's HNSW, cosine) as an index backend: build with a calibrated query depth, load, search, update in place.

Unlike Annoy, a loaded Voyager index takes new vectors and deletions in memory: the serving
process adds fresh users to it and marks removed users deleted (``native_updates``), so a query is
one graph search. The published file itself is never changed (it stays checksummed); the fresh
buffer and tombstones files remain the durable record every process applies to its copy.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from soundmates.index import huge_pages
from soundmates.index._files import fsync_file
from soundmates.index.errors import IndexCorrupt
from soundmates.index.tuning import CALIBRATION_QUERIES, exact_top_k, recall_at_k
from soundmates.index.versions import is_int

log = logging.getLogger(__name__)

VOY_FILE = "users.voy"
# M 32, ef_construction 200. Measured at 1M clustered 64-d users (300 newcomers, raw Voyager queries
# timed beside numpy brute force, 2026-12-03): the recall a query buys per microsecond grows with M
# (ef_construction 100):
#   M 16 (386 MB): ef 140 -> recall@10 0.969 at 40x brute force; ef 200 -> 0.984 at 33x
#   M 24 (447 MB): ef 80  -> 0.971 at 50x
#   M 32 (508 MB): ef 60  -> 0.970 at 58x; ef 70 -> 0.975 at 54x; ef 80 -> 0.984 at 49x
#   M 48 (630 MB): ef 60  -> 0.974 at 48x (no better than M 32, and larger)
# and a better-built graph buys far more: M 32 with ef_construction 200 reached 0.983 at ef 50 (70x) and
# 0.989 at ef 60 (68x), for a 358 s build instead of ~200 s. (At 100k users, before, 200 had bought only
# +0.004.) With ef_construction 100 three 1M builds at ef 70 gave newcomers 0.979 / 0.972 / 0.968: too
# close to the 0.97 goal. Each step of M costs ~8 bytes a user (level-0 links); M 32 is 0.41x the Annoy
# file at 1M (64 trees, 1,268 MB), within the <= 0.5x goal. Smaller stored vectors were measured and lose
# recall nobody can buy back with ef: Float8 / E4M3 storage capped recall@10 (vs exact float32 search) at
# 0.956 / 0.931 on 100k users. The query ef is calibrated per build.
M = 32
EF_CONSTRUCTION = 200
HUGE_PAGES_HINT_AT = 100_000  # the hint is for large graphs: the gain was measured at 1M (index/huge_pages.py)


# Calibration queries are held out of the graph while measured, yet read up to ~0.014 above the
# benchmark's newcomers (1M, M 32, ef_construction 100, ef 70: calibration 0.982, newcomers 0.968; M 14:
# 0.9805 vs 0.971), and each multithreaded build is a different graph. So calibrate to 0.98 for
# newcomers >= 0.97; query time grows with ef, and past 0.98 it buys recall nobody asked for.
VOYAGER_TARGET = 0.98
# 200 held-out queries put ef anywhere from 140 to 400 in three 1M builds (recall@10 0.971..0.991): a few
# hard queries swing a small sample. 1,000 cost ~10 s of exact search at 1M and steady the choice.
VOYAGER_CALIBRATION_QUERIES = 1000


def calibrate_ef(
    query, base: np.ndarray, base_ids: np.ndarray, queries: np.ndarray, *, k: int = 10, target: float = VOYAGER_TARGET
) -> dict:
    """A small query ``ef`` (doubling, then bisecting) whose recall@k reaches ``target`` for ``queries``.

    The queries are held out of the graph while it is measured (the caller adds them afterwards):
    queries that are graph nodes reach their neighbours too easily (measured: ef 13 gave recall
    0.986 on indexed items but 0.941 on newcomers, 6,000 clustered 32-d users).
    """
    n = base.shape[0]
    if n <= k or len(queries) == 0:
        return {"ef": max(k + 1, n), "recall_at_k": 1.0, "calibration_queries": 0, "steps": []}
    exact = base_ids[exact_top_k(base, queries, k)]
    steps = []

    def measure(ef: int) -> float:
        t0 = time.perf_counter()
        approx = [query(q, k, ef) for q in queries]
        latency_ms = round((time.perf_counter() - t0) / len(queries) * 1e3, 3)
        rec = recall_at_k(approx, exact)
        steps.append({"ef": int(ef), "recall": round(rec, 4), "latency_ms": latency_ms})
        return rec

    ef, low = k, None
    rec = measure(ef)
    while rec < target and ef < n:
        low, ef = ef, min(ef * 2, n)
        rec = measure(ef)
    best, best_rec = ef, rec
    if low is not None and rec >= target:
        hi = ef
        for _ in range(2):
            mid = (low + hi) // 2
            r = measure(mid)
            if r >= target:
                hi, best, best_rec = mid, mid, r
            else:
                low = mid
    return {
        "ef": int(best),
        "recall_at_k": round(best_rec, 4),
        "target": round(target, 4),
        "calibration_queries": len(queries),
        "steps": steps,
    }


def _cosine(distance: float) -> float:
    """Voyager's cosine distance (1 - cos) as a cosine in [-1, 1] (rounding can step just outside)."""
    c = 1.0 - distance
    return 1.0 if c > 1.0 else -1.0 if c < -1.0 else c


class VoyagerSearcher:
    """One loaded Voyager index of a verified version, updated in memory (adds, deletes) by the caller."""

    native_updates = True

    def __init__(self, path: Path, manifest: dict):
        from voyager import Index, Space

        self.ef = int(manifest["ef"])
        try:
            self.index = Index.load(str(path))
        except Exception as e:  # noqa: BLE001 - the library raises RuntimeError/ValueError for a bad file
            raise IndexCorrupt(f"index version {manifest['version']}: {VOY_FILE} cannot be loaded ({str(e)[:100]})") from None
        if self.index.space != Space.Cosine or self.index.num_dimensions != int(manifest["dim"]):
            raise IndexCorrupt(
                f"index version {manifest['version']}: {VOY_FILE} is not a cosine index of dimension {manifest['dim']}"
            )
        self.n_items = int(self.index.num_elements)
        self._next = self.n_items
        if self.n_items >= HUGE_PAGES_HINT_AT and not huge_pages.in_use():
            log.info(
                "Voyager queries of %s users run faster with huge pages (~1.4x at 1M): start the serving process with GLIBC_TUNABLES=%s",
                f"{self.n_items:,}",
                huge_pages.SERVING_TUNABLES,
            )
        self._deleted: set[int] = set()

    def search(self, v: np.ndarray, want: int) -> list[tuple[int, float]]:
        """(position, cosine) of up to ``want`` nearest live items, best first."""
        from voyager import RecallError

        want = min(want, self._next - len(self._deleted))
        while want > 0:
            try:
                ids, dists = self.index.query(v, k=want, query_ef=max(self.ef, want))
            except RecallError:  # deletions left fewer reachable items than asked for: ask for fewer
                want = want * 3 // 4
                continue
            return [(i, _cosine(d)) for i, d in zip(ids.tolist(), dists.tolist())]
        return []

    def vector(self, position: int) -> np.ndarray:
        return np.asarray(self.index.get_vector(position), dtype=np.float32)

    def add(self, v: np.ndarray) -> int:
        pos = self._next
        self.index.add_item(np.asarray(v, dtype=np.float32), id=pos)
        self._next += 1
        return pos

    def delete(self, position: int) -> None:
        self.index.mark_deleted(position)
        self._deleted.add(position)

    def undelete(self, position: int) -> None:
        self.index.unmark_deleted(position)
        self._deleted.discard(position)


class VoyagerBackend:
    name = "voyager"
    metric = "cosine"
    files = (VOY_FILE,)

    @staticmethod
    def check_manifest(m: dict) -> str | None:
        if m.get("metric") != "cosine":
            return f"metric {str(m.get('metric'))[:20]!r} is not 'cosine'"
        if not is_int(m.get("ef"), 1) or not is_int(m.get("M"), 2):
            return "has no valid M and ef"
        return None

    @staticmethod
    def build(
        out_dir: Path,
        data: np.ndarray,
        *,
        n_trees: int | None = None,
        search_k: int | None = None,
        seed: int = 0,
        n_jobs: int = -1,
        ef: int | None = None,
    ) -> dict:
        """Write ``users.voy`` for unit vectors ``data`` (row i = id i); returns the manifest's parameters.

        ``search_k`` given (the CLI's fixed-parameter option) is used as the query ``ef``.
        """
        from voyager import Index, Space

        t0 = time.perf_counter()
        n, dim = data.shape
        index = Index(
            Space.Cosine, num_dimensions=dim, M=M, ef_construction=EF_CONSTRUCTION, random_seed=seed + 1, max_elements=n
        )
        fixed = ef or search_k
        held = np.zeros(n, dtype=bool)
        n_cal = min(VOYAGER_CALIBRATION_QUERIES, n // 5)
        if not fixed and n_cal >= CALIBRATION_QUERIES:  # calibration queries join the graph after being measured
            held[np.random.default_rng(seed).choice(n, n_cal, replace=False)] = True
        base_ids = np.flatnonzero(~held)
        index.add_items(np.ascontiguousarray(data[base_ids]), ids=base_ids.tolist(), num_threads=n_jobs)
        build_s = time.perf_counter() - t0
        if fixed:
            calib: dict[str, Any] = {"ef": int(fixed), "recall_at_k": None, "calibration_queries": 0, "steps": []}
        else:

            def query(v, k, e):
                return index.query(v, k=min(k, len(index)), query_ef=max(e, k))[0].tolist()

            calib = calibrate_ef(query, data[base_ids], base_ids, data[held])
        if held.any():
            t1 = time.perf_counter()
            index.add_items(np.ascontiguousarray(data[held]), ids=np.flatnonzero(held).tolist(), num_threads=n_jobs)
            build_s += time.perf_counter() - t1
        path = out_dir / VOY_FILE
        index.save(str(path))
        fsync_file(path)
        return {
            "metric": "cosine",
            "M": M,
            "ef_construction": EF_CONSTRUCTION,
            "ef": int(calib["ef"]),
            "calibration": calib,
            "build_seconds": round(build_s, 3),
        }

    @staticmethod
    def open(vdir: Path, manifest: dict) -> VoyagerSearcher:
        return VoyagerSearcher(vdir / VOY_FILE, manifest)
