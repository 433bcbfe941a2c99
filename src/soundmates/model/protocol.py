"""Production-shaped evaluation: held-out users query the whole population, as the index serves it.

Candidates are every user of the population, through the candidate side of a method (what
the index stores); queries go through its query side (what ``recommend`` computes). Forms:

* **served**: the query's full profile against every other user's full profile, top 10 ->
  ``taste_ndcg@10`` / ``taste_precision@10`` (hidden taste of a generated world: relevance =
  cosine of the taste vectors, ideal = the best 10 of the whole population), ``friends@10``
  (HetRec: share of the top 10 who are friends);
* **neighbours**: the query's half ``a`` against everyone else's full profile; the artists of
  its top-10 neighbours (summed similarity) predict its held-out half ``b``:
  ``neighbour_recall@20`` = hits in the top 20 predicted artists (not in ``a``) over
  min(20, |b|). Needs no hidden taste, so it is also the validation metric for tuning,
  early stopping and the promotion gate;
* **halves**: the query's half ``a`` against every user's half ``b``; its own ``b`` is the one
  right answer -> self-retrieval ``recall@10``.

Every metric is a mean over queries with a bootstrap 95% interval (``ci95``) and a thin-profile
slice (<= 2 playlists or <= 30 tracks). Score matrices are computed in chunks of queries, so
20,000 x 20,000 never exists at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from soundmates.model.metrics import bootstrap_ci, graded_ndcg, item_recall, overlap_at_k, share_relevant

log = logging.getLogger(__name__)

CHUNK = 512
K = 10
N_ITEMS = 20
THIN_PLAYLISTS, THIN_TRACKS = 2, 30
METRICS = ("taste_ndcg@10", "taste_precision@10", "neighbour_recall@20", "friends@10", "recall@10")
# candidate validation metrics (no hidden taste), recorded for every method; VAL_METRIC is the one the gate,
# the baseline grids and early stopping use, chosen by its worst-case Kendall tau against the test metrics over
# both datasets (bench/bench_model.py's table). Study on world 5k + HetRec, seeds 0-2, random left out, worst tau:
# neighbour_recall@20 0.20 (world taste 0.20-0.33), genre_recall@20 -0.20, self_recall@10 0.00, self_mrr 0.07,
# geo_nr_mrr 0.20 (world 0.71-1.00, HetRec 0.20-1.00); the cross-method mean_rank 0.41 cannot tune a grid or stop
# training (it needs every method at once) -> geo_nr_mrr = sqrt(neighbour_recall@20 * self_mrr)
BASE_VAL_METRICS = ("neighbour_recall@20", "genre_recall@20", "self_recall@10", "self_mrr")
VAL_CANDIDATES = (*BASE_VAL_METRICS, "geo_nr_mrr")
VAL_METRIC = "geo_nr_mrr"


@dataclass
class Population:
    """Everyone the index holds (full rows), their halves, item sets and the ground truth."""

    full: pd.DataFrame
    a: pd.DataFrame
    b: pd.DataFrame
    ids: list[str]
    pos: dict[str, int]
    half_pos: dict[str, int]
    items: Any  # csr (population, items), 1 where the user's full profile has the artist
    item_index: dict[str, int]
    thin: np.ndarray
    genres: Any = None  # csr (population, genres), 1 where the user's full profile has the genre (None: no genre bags)
    genre_index: dict[str, int] = field(default_factory=dict)
    taste: np.ndarray | None = None  # (population, d), L2-normalised, rows aligned with ids
    friends: dict[str, set[str]] | None = None
    thin_rule: str = f"<= {THIN_PLAYLISTS} playlists or <= {THIN_TRACKS} tracks"
    extra: dict[str, Any] = field(default_factory=dict)

    def item_set(self, rows: pd.DataFrame) -> list[set[int]]:
        return [{self.item_index[a] for a in ids if a in self.item_index} for ids in rows["artist_ids"]]

    def genre_set(self, rows: pd.DataFrame) -> list[set[int]]:
        if "genre_names" not in rows.columns:
            return [set() for _ in range(len(rows))]
        return [{self.genre_index[g] for g in _names(gs) if g in self.genre_index} for gs in rows["genre_names"]]


def _names(values) -> list[str]:
    return [str(x) for x in values] if values is not None and not isinstance(values, float) else []


def _incidence(bags, n_rows: int) -> tuple[Any, dict[str, int]]:
    """Binary csr (rows, names) of a column of name lists, and the name -> column index."""
    from scipy import sparse

    index: dict[str, int] = {}
    rows, cols = [], []
    for i, names in enumerate(bags):
        for x in _names(names):
            rows.append(i)
            cols.append(index.setdefault(x, len(index)))
    m = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_rows, max(len(index), 1)))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m, index


def make_population(
    frame: pd.DataFrame,
    *,
    taste: dict[str, np.ndarray] | None = None,
    friends: dict[str, set[str]] | None = None,
    thin_tracks_only: bool = False,
) -> Population:
    """Population of a ``user_features`` frame (views full/a/b); ``taste`` maps user id -> hidden taste."""
    from soundmates.model.splits import paired_views

    full = frame[frame["view"] == "full"].drop_duplicates("user_id", keep="last").sort_values("user_id").reset_index(drop=True)
    if len(full) < 2:
        raise ValueError(f"the population needs at least 2 users with a full profile, got {len(full)}")
    a, b = paired_views(frame)
    ids = full["user_id"].astype(str).tolist()
    items, item_index = _incidence(full["artist_ids"], len(ids))
    genres, genre_index = _incidence(full["genre_names"], len(ids)) if "genre_names" in full.columns else (None, {})
    n_tr = pd.to_numeric(full.get("n_tracks", pd.Series([np.nan] * len(full))), errors="coerce").to_numpy()
    n_pl = pd.to_numeric(full.get("n_playlists", pd.Series([np.nan] * len(full))), errors="coerce").to_numpy()
    thin = (n_tr <= THIN_TRACKS) if thin_tracks_only else ((n_pl <= THIN_PLAYLISTS) | (n_tr <= THIN_TRACKS))
    tmat = None
    if taste is not None:
        missing = [u for u in ids if u not in taste]
        if missing:
            raise KeyError(f"{len(missing)} user(s) have no hidden taste, e.g. {missing[:3]}")
        tmat = np.stack([np.asarray(taste[u], dtype=np.float32) for u in ids])
        tmat /= np.maximum(np.linalg.norm(tmat, axis=1, keepdims=True), 1e-12)
    pop = Population(
        full=full,
        a=a,
        b=b,
        ids=ids,
        pos={u: i for i, u in enumerate(ids)},
        half_pos={u: i for i, u in enumerate(a["user_id"].astype(str))},
        items=items,
        item_index=item_index,
        genres=genres,
        genre_index=genre_index,
        thin=np.asarray(thin, dtype=bool),
        taste=tmat,
        friends=friends,
    )
    if thin_tracks_only:
        pop.thin_rule = f"<= {THIN_TRACKS} tracks (HetRec: every profile is two pseudo-playlists)"
    return pop


# --------------------------------------------------------------------------- vectors and neighbours
def vectors(method, rows: pd.DataFrame, side: str):
    """Dense (or, for bag methods, sparse) vectors of ``rows`` on the ``query`` or ``candidate`` side."""
    name = "embed_query" if side == "query" else "embed"
    fn = getattr(method, name + "_sparse", None) or getattr(method, name)
    return fn(rows)


def _scores(q, c) -> np.ndarray:
    s = q @ c.T
    if hasattr(s, "toarray"):
        s = s.toarray()
    return np.asarray(s, dtype=np.float32)


def top_k(q, c, k: int, exclude: np.ndarray | None = None, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores) of each query's k best candidates; ``exclude[i]`` = a column to skip (-1 none).

    Ties break by column order (stable), so results are reproducible.
    """
    n = q.shape[0]
    k = min(k, c.shape[0] - (1 if exclude is not None else 0))
    idx = np.zeros((n, k), dtype=np.int64)
    val = np.zeros((n, k), dtype=np.float32)
    for s in range(0, n, chunk):
        sc = _scores(q[s : s + chunk], c)
        if exclude is not None:
            ex = exclude[s : s + chunk]
            r = np.flatnonzero(ex >= 0)
            sc[r, ex[r]] = -np.inf
        part = np.argpartition(-sc, k - 1, axis=1)[:, :k] if k < sc.shape[1] else np.tile(np.arange(sc.shape[1]), (len(sc), 1))
        ps = np.take_along_axis(sc, part, axis=1)
        order = np.lexsort((part, -ps), axis=1)
        idx[s : s + chunk] = np.take_along_axis(part, order, axis=1)
        val[s : s + chunk] = np.take_along_axis(ps, order, axis=1)
    return idx, val


def positive_rank(q, c, positives: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """0-based rank of each query's positive column; ties with it count half (expected rank under random ties)."""
    out = np.zeros(q.shape[0], dtype=np.float64)
    for s in range(0, q.shape[0], chunk):
        sc = _scores(q[s : s + chunk], c)
        p = sc[np.arange(len(sc)), positives[s : s + chunk]][:, None]
        out[s : s + chunk] = (sc > p).sum(1) + 0.5 * ((sc == p).sum(1) - 1)
    return out


def neighbour_items(
    pop: Population, nb_idx: np.ndarray, nb_sim: np.ndarray, known: list[set[int]], n: int = N_ITEMS, items=None
) -> list[list[int]]:
    """Top-n items of each query's neighbours (weighted by similarity), leaving out what it already has.

    ``items``: the population's (users, items) incidence to vote with (default: artists).
    """
    from scipy import sparse

    nq, k = nb_idx.shape
    w = np.maximum(nb_sim.astype(np.float64), 0.0) + 1e-6  # a neighbour always votes a little
    weights = sparse.csr_matrix((w.ravel(), (np.repeat(np.arange(nq), k), nb_idx.ravel())), shape=(nq, len(pop.ids)))
    votes = (weights @ (pop.items if items is None else items)).tocsr()
    out = []
    for i in range(nq):
        lo, hi = votes.indptr[i], votes.indptr[i + 1]
        cols, vals = votes.indices[lo:hi], votes.data[lo:hi]
        keep = np.array([c not in known[i] for c in cols], dtype=bool) if len(cols) else np.zeros(0, bool)
        cols, vals = cols[keep], vals[keep]
        order = np.lexsort((cols, -vals))[:n]
        out.append(cols[order].tolist())
    return out


# --------------------------------------------------------------------------- per-query metrics
def neighbour_recall(method, pop: Population, queries: list[str], *, candidates=None) -> np.ndarray:
    """Per-query ``neighbour_recall@20`` (half a -> top-10 neighbours' artists -> held-out half b)."""
    users = [u for u in queries if u in pop.half_pos]
    qa = pop.a.iloc[[pop.half_pos[u] for u in users]]
    qb = pop.b.iloc[[pop.half_pos[u] for u in users]]
    c = vectors(method, pop.full, "candidate") if candidates is None else candidates
    return neighbour_recall_from_vectors(vectors(method, qa, "query"), c, pop, users, qa, qb)


def neighbour_recall_from_vectors(qv, cv, pop: Population, users: list[str], qa: pd.DataFrame, qb: pd.DataFrame) -> np.ndarray:
    exclude = np.array([pop.pos.get(u, -1) for u in users], dtype=np.int64)
    nb_idx, nb_sim = top_k(qv, cv, K, exclude)
    known = pop.item_set(qa)
    pred = neighbour_items(pop, nb_idx, nb_sim, known)
    held = [h - a for h, a in zip(pop.item_set(qb), known)]
    return item_recall(pred, held, N_ITEMS)


# --------------------------------------------------------------------------- validation metrics (no hidden taste)
def _nanmean(v: np.ndarray) -> float:
    v = np.asarray(v, dtype=np.float64)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def validation_metrics_from_vectors(
    qv, c_full, c_b, pop: Population, users: list[str], qa: pd.DataFrame, qb: pd.DataFrame
) -> dict[str, float]:
    """Every candidate validation metric (:data:`VAL_CANDIDATES`) of queries ``users`` (their halves ``qa``/``qb``).

    ``qv``: the halves a through the query side; ``c_full``: every user's full profile and ``c_b``:
    every user's half b (rows of ``pop.b``), both through the candidate side.
    """
    exclude = np.array([pop.pos.get(u, -1) for u in users], dtype=np.int64)
    nb_idx, nb_sim = top_k(qv, c_full, K, exclude)
    known = pop.item_set(qa)
    held = [h - a for h, a in zip(pop.item_set(qb), known)]
    nr = item_recall(neighbour_items(pop, nb_idx, nb_sim, known, n=N_ITEMS), held, N_ITEMS)
    gr = np.full(len(users), np.nan)
    if pop.genres is not None:
        gknown = pop.genre_set(qa)
        gheld = [h - a for h, a in zip(pop.genre_set(qb), gknown)]
        gr = item_recall(neighbour_items(pop, nb_idx, nb_sim, gknown, n=N_ITEMS, items=pop.genres), gheld, N_ITEMS)
    rank = positive_rank(qv, c_b, np.array([pop.half_pos[u] for u in users], dtype=np.int64))
    out = {
        "neighbour_recall@20": _nanmean(nr),
        "genre_recall@20": _nanmean(gr),
        "self_recall@10": _nanmean(rank < K),
        "self_mrr": _nanmean(1.0 / (rank + 1.0)),
    }
    out["geo_nr_mrr"] = float(np.sqrt(max(out["neighbour_recall@20"], 0.0) * max(out["self_mrr"], 0.0)))
    return out


def validation_metrics(method, pop: Population, users: list[str]) -> dict[str, float]:
    """:func:`validation_metrics_from_vectors` of a method on validation ``users`` (those with halves)."""
    users = [u for u in users if u in pop.half_pos]
    hp = [pop.half_pos[u] for u in users]
    qa, qb = pop.a.iloc[hp], pop.b.iloc[hp]
    qv = vectors(method, qa, "query")
    return validation_metrics_from_vectors(
        qv, vectors(method, pop.full, "candidate"), vectors(method, pop.b, "candidate"), pop, users, qa, qb
    )


def blend_validation(table: dict[str, dict[str, float]], exclude: tuple[str, ...] = ("random",)) -> dict[str, dict[str, float]]:
    """Cross-method blends of the per-method metrics (they need every method, so they rank, never tune):
    ``norm_mean`` = mean over the base metrics of value / the best method's value; ``mean_rank`` = minus the mean
    rank (higher = better, like every metric). Methods in ``exclude`` get NaN and do not set the scale."""
    base = [m for m in BASE_VAL_METRICS if any(np.isfinite(v.get(m, np.nan)) for v in table.values())]
    ranked = [n for n in table if n not in exclude]
    out = {n: dict(v) for n, v in table.items()}
    for n in out:
        out[n]["norm_mean"] = out[n]["mean_rank"] = float("nan")
    if not ranked or not base:
        return out
    best = {m: max(table[n][m] for n in ranked) for m in base}
    for n in ranked:
        out[n]["norm_mean"] = float(np.mean([table[n][m] / best[m] if best[m] > 0 else 0.0 for m in base]))
    ranks: dict[str, list[int]] = {n: [] for n in ranked}
    for m in base:
        for r, n in enumerate(sorted(ranked, key=lambda n: -table[n][m])):
            ranks[n].append(r + 1)
    for n in ranked:
        out[n]["mean_rank"] = -float(np.mean(ranks[n]))
    return out


def per_query_metrics(method, pop: Population, queries: list[str]) -> dict[str, np.ndarray]:
    """Every applicable metric per query (aligned with ``queries``; NaN where a query cannot score)."""
    queries = [u for u in queries if u in pop.pos]
    n = len(queries)
    out: dict[str, np.ndarray] = {}
    c_full = vectors(method, pop.full, "candidate")
    qf = vectors(method, pop.full.iloc[[pop.pos[u] for u in queries]], "query")
    exclude = np.array([pop.pos[u] for u in queries], dtype=np.int64)
    top, _ = top_k(qf, c_full, K, exclude)
    if pop.taste is not None:
        t = pop.taste
        true_idx, ideal = top_k(t[exclude], t, K, exclude)
        gains = np.einsum("qd,qkd->qk", t[exclude], t[top])
        out["taste_ndcg@10"] = graded_ndcg(gains, ideal)
        out["taste_precision@10"] = overlap_at_k(top, true_idx)
    if pop.friends is not None:
        ids = np.asarray(pop.ids, dtype=object)
        out["friends@10"] = share_relevant([list(ids[r]) for r in top], [pop.friends.get(u, set()) for u in queries])
    with_halves = [i for i, u in enumerate(queries) if u in pop.half_pos]
    nr = np.full(n, np.nan)
    rec = np.full(n, np.nan)
    if with_halves:
        users = [queries[i] for i in with_halves]
        hp = np.array([pop.half_pos[u] for u in users], dtype=np.int64)
        qa, qb = pop.a.iloc[hp], pop.b.iloc[hp]
        qav = vectors(method, qa, "query")
        nr[with_halves] = neighbour_recall_from_vectors(qav, c_full, pop, users, qa, qb)
        cb = vectors(method, pop.b, "candidate")
        rec[with_halves] = (positive_rank(qav, cb, hp) < K).astype(np.float64)
    out["neighbour_recall@20"] = nr
    out["recall@10"] = rec
    return out


def summarise(
    per_query: dict[str, np.ndarray], mask: np.ndarray | None = None, *, seed: int = 0, ci: bool = True
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    cis: dict[str, list[float]] = {}
    for m, v in per_query.items():
        v = v if mask is None else v[mask]
        finite = v[np.isfinite(v)]
        res[m] = float(finite.mean()) if len(finite) else float("nan")
        if ci:
            cis[m] = bootstrap_ci(v, seed=seed)
    if ci:
        res["ci95"] = cis
    return res


def evaluate_methods(methods: dict[str, Any], pop: Population, queries: list[str], *, seed: int = 0) -> dict[str, Any]:
    """``{"methods": {name: {metric: mean, "ci95": {...}}}, "slices": {"thin": {name: {metric: mean}}}}``."""
    queries = [u for u in queries if u in pop.pos]
    thin = np.array([pop.thin[pop.pos[u]] for u in queries], dtype=bool)
    out: dict[str, Any] = {"methods": {}, "slices": {"thin": {}}}
    for name, m in methods.items():
        try:
            pq = per_query_metrics(m, pop, queries)
        except KeyError as e:  # e.g. raw_cosine on bag-only rows without `combined`
            log.warning("method %s skipped: %s", name, e)
            out["methods"][name] = {"skipped": str(e)}
            continue
        out["methods"][name] = summarise(pq, seed=seed)
        out["slices"]["thin"][name] = summarise(pq, thin, ci=False) | {"queries": int(thin.sum())}
    return out
