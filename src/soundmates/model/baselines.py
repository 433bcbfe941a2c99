"""Baselines the two-tower model must beat: servable embedders, each tuned on validation.

Every baseline is an embedder like the model (``name``, ``version``, ``dim``, ``embed`` =
candidate side, ``embed_query`` = query side, both from ``user_features`` rows), fitted on the
training users only, so the promotion gate can serve one and the index can store it:

* ``genre_bag`` / ``artist_bag``: cosine of the genre (tag) or artist bag; tf raw, sublinear
  (log1p) or binary; IDF or none; the most frequent ``max_terms`` terms of the training users;
* ``als``: implicit-feedback ALS (``implicit``) on the training users' artist bags, confidence
  1 + alpha * log(1 + weight); any user (held-out, fresh) is folded in with the item factors
  fixed (``recalculate_user``, the library's public API) -> cosine of the user factors;
* ``raw_cosine``: cosine of the scaled ``combined`` feature vector;
* ``random``: a seeded random vector per user id (never served).

An artist-overlap (Jaccard) baseline is not here: on disjoint halves of a user's artists
(HetRec) it cannot find the other half at all, so it measures nothing in the halves form.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

BASELINES = ("genre_bag", "artist_bag", "als", "raw_cosine", "random")
# small grids, searched on the validation users (neighbour_recall@20); the chosen setting is reported
GRIDS: dict[str, list[dict[str, Any]]] = {
    "genre_bag": [{"field": "genre", "tf": tf, "idf": idf} for tf in ("raw", "log", "binary") for idf in (False, True)],
    "artist_bag": [{"field": "artist", "tf": tf, "idf": idf} for tf in ("raw", "log", "binary") for idf in (False, True)],
    "als": [{"factors": f, "alpha": a, "regularization": r} for f in (32, 64) for a in (2.0, 10.0) for r in (0.1, 1.0)],
    "raw_cosine": [{}],
    "random": [{}],
}
NOT_SERVABLE = {"random"}
_COLUMNS = {"genre": ("genre_names", "genre_weights"), "artist": ("artist_ids", "artist_weights")}


def _l2_dense(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n > 0, n, 1.0)).astype(np.float32)


def _bags(rows: pd.DataFrame, field: str) -> list[tuple[list[str], np.ndarray]]:
    """(names, weights) per row; a malformed bag is empty (one bad row never fails a batch)."""
    names_col, weights_col = _COLUMNS[field]
    out = []
    names_iter = rows[names_col] if names_col in rows.columns else [None] * len(rows)
    weights_iter = rows[weights_col] if weights_col in rows.columns else [None] * len(rows)
    for names, weights in zip(names_iter, weights_iter):
        try:
            names = [str(t) for t in names] if names is not None else []
            w = np.asarray(
                weights if weights is not None and len(weights) == len(names) else [1.0] * len(names), dtype=np.float64
            )
            w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
        except (TypeError, ValueError):
            names, w = [], np.zeros(0)
        out.append((names, w))
    return out


def _vocab(bags: list[tuple[list[str], np.ndarray]], cap: int) -> tuple[list[str], list[int]]:
    from collections import Counter

    df: Counter[str] = Counter()
    for names, w in bags:
        df.update({n for n, x in zip(names, w) if x > 0})
    kept = sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))[:cap]
    return [t for t, _ in kept], [d for _, d in kept]


def _matrix(bags, index: dict[str, int], values) -> Any:
    """csr (rows, vocab) of ``values(weights)`` (elementwise) for the names in the vocabulary.

    One vectorised pass over all bags (pandas' hash look-up of the names): the per-name Python loop
    it replaces was ~12% of a bootstrap-sized training run (cProfile), as every grid setting builds its
    matrices."""
    from itertools import chain

    from scipy import sparse

    lengths = np.fromiter((len(names) for names, _ in bags), dtype=np.int64, count=len(bags))
    shape = (len(bags), max(len(index), 1))
    if not lengths.sum():
        return sparse.csr_matrix(shape, dtype=np.float64)
    names = list(chain.from_iterable(names for names, _ in bags))
    weights = np.concatenate([np.asarray(w, dtype=np.float64) for _, w in bags])
    vals = np.asarray(values(weights), dtype=np.float64)
    positions = pd.Index(list(index)).get_indexer(names)
    cols = np.fromiter(index.values(), dtype=np.int64, count=len(index))[positions] if len(index) else positions
    rows = np.repeat(np.arange(len(bags)), lengths)
    keep = (positions >= 0) & (vals > 0)
    m = sparse.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=shape, dtype=np.float64)
    m.sum_duplicates()
    return m


class _Baseline:
    name = "baseline"
    servable = True
    shared_towers = True  # one space: a user's query vector is their candidate (index) vector
    meta: dict[str, Any]  # the registered version's meta, set by the registry when it loads one

    def __init__(self, **params: Any):
        self.params = params
        self.version = f"{self.name}-unsaved"

    def fit(self, rows: pd.DataFrame) -> Self:
        raise NotImplementedError(f"{type(self).__name__} must define fit")

    def embed(self, rows: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define embed")

    def embed_query(self, rows: pd.DataFrame) -> np.ndarray:
        return self.embed(rows)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    def load_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        pass

    def describe(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in self.params.items())})"


class BagCosine(_Baseline):
    """Cosine of a genre or artist bag (tf raw / log1p / binary, optional smoothed IDF)."""

    def __init__(self, field: str = "genre", tf: str = "raw", idf: bool = False, max_terms: int = 4096):
        if field not in _COLUMNS or tf not in ("raw", "log", "binary"):
            raise ValueError(f"bag baseline: field must be genre|artist and tf raw|log|binary, got {field!r}, {tf!r}")
        self.name = f"{field}_bag"
        super().__init__(field=field, tf=tf, idf=bool(idf), max_terms=int(max_terms))
        self.terms: list[str] = []
        self.idf = np.ones(0)

    @property
    def dim(self) -> int:
        return max(len(self.terms), 1)

    def fit(self, rows: pd.DataFrame) -> BagCosine:
        bags = _bags(rows, self.params["field"])
        self.terms, df = _vocab(bags, self.params["max_terms"])
        n = len(bags)
        self.idf = np.log((1 + n) / (1 + np.asarray(df, dtype=np.float64))) + 1.0
        return self

    def _tf(self, w: np.ndarray) -> np.ndarray:
        mode = self.params["tf"]
        return np.log1p(w) if mode == "log" else (w > 0).astype(np.float64) if mode == "binary" else w

    def embed_sparse(self, rows: pd.DataFrame):
        from scipy import sparse
        from sklearn.preprocessing import normalize

        m = _matrix(_bags(rows, self.params["field"]), {t: i for i, t in enumerate(self.terms)}, self._tf)
        if self.params["idf"] and len(self.terms):
            m = m @ sparse.diags(self.idf)
        return normalize(m.tocsr(), norm="l2", axis=1).astype(np.float32)

    embed_query_sparse = embed_sparse

    def embed(self, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.embed_sparse(rows).toarray(), dtype=np.float32)

    def state(self):
        return {"terms": self.terms}, {"idf": self.idf}

    def load_state(self, state, arrays):
        self.terms = list(state["terms"])
        self.idf = np.asarray(arrays["idf"], dtype=np.float64)


class ALSUsers(_Baseline):
    """Implicit ALS user factors; every user (trained or not) folded in with the item factors fixed."""

    name = "als"

    def __init__(
        self,
        factors: int = 32,
        alpha: float = 10.0,
        regularization: float = 0.1,
        iterations: int = 15,
        max_items: int = 50_000,
        seed: int = 0,
    ):
        super().__init__(
            factors=int(factors),
            alpha=float(alpha),
            regularization=float(regularization),
            iterations=int(iterations),
            max_items=int(max_items),
            seed=int(seed),
        )
        self.items: list[str] = []
        self.item_factors = np.zeros((0, factors), dtype=np.float32)
        self._model: Any = None  # implicit's AlternatingLeastSquares (no type stubs)

    @property
    def dim(self) -> int:
        return self.params["factors"]

    def _confidence(self, rows: pd.DataFrame):
        alpha = self.params["alpha"]
        return (
            _matrix(_bags(rows, "artist"), {t: i for i, t in enumerate(self.items)}, lambda w: 1.0 + alpha * np.log1p(w))
            .astype(np.float32)
            .tocsr()
        )

    def _als(self):
        from implicit.cpu.als import AlternatingLeastSquares

        p = self.params
        return AlternatingLeastSquares(
            factors=p["factors"],
            regularization=p["regularization"],
            alpha=1.0,
            iterations=p["iterations"],
            random_state=p["seed"],
        )

    def fit(self, rows: pd.DataFrame) -> ALSUsers:
        from threadpoolctl import threadpool_limits

        self.items, _ = _vocab(_bags(rows, "artist"), self.params["max_items"])
        model = self._als()
        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, single-threaded BLAS
            model.fit(self._confidence(rows), show_progress=False)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        self._model = model
        return self

    def embed(self, rows: pd.DataFrame) -> np.ndarray:
        if self._model is None:
            self._model = self._als()
            self._model.item_factors = self.item_factors
        if len(rows) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        conf = self._confidence(rows)
        out = [
            self._model.recalculate_user(np.arange(s, min(s + 4096, len(rows))), conf[s : s + 4096])
            for s in range(0, len(rows), 4096)
        ]
        return _l2_dense(np.nan_to_num(np.concatenate(out)))

    def state(self):
        return {"items": self.items}, {"item_factors": self.item_factors}

    def load_state(self, state, arrays):
        self.items = list(state["items"])
        self.item_factors = np.asarray(arrays["item_factors"], dtype=np.float32)
        self._model = None


class RawCosine(_Baseline):
    """The scaled ``combined`` feature vector, L2-normalised (no fitting)."""

    name = "raw_cosine"

    def __init__(self):
        super().__init__()
        self._dim = 0

    @property
    def dim(self) -> int:
        return self._dim

    def fit(self, rows: pd.DataFrame) -> RawCosine:
        if "combined" not in rows.columns:
            raise KeyError("raw_cosine needs the 'combined' column of user_features")
        self._dim = len(rows["combined"].iloc[0]) if len(rows) else 0
        return self

    def state(self):
        return {"dim": self._dim}, {}

    def load_state(self, state, arrays):
        self._dim = int(state.get("dim", 0))

    def embed(self, rows: pd.DataFrame) -> np.ndarray:
        from soundmates.model.embedder import RawFeatureEmbedder

        raw = RawFeatureEmbedder()
        v = raw.embed(rows)
        self._dim = v.shape[1]
        return v


class RandomVectors(_Baseline):
    """A seeded random unit vector per (user id, view): the chance level."""

    name = "random"
    servable = False

    def __init__(self, seed: int = 0, dim: int = 32):
        super().__init__(seed=int(seed), dim=int(dim))

    @property
    def dim(self) -> int:
        return self.params["dim"]

    def fit(self, rows: pd.DataFrame) -> RandomVectors:
        return self

    def embed(self, rows: pd.DataFrame) -> np.ndarray:
        vecs = []
        views = rows["view"].astype(str) if "view" in rows.columns else [""] * len(rows)
        for u, view in zip(rows["user_id"].astype(str), views):  # per row: a user's two halves are not alike
            h = int.from_bytes(hashlib.sha256(f"{self.params['seed']}:{u}:{view}".encode()).digest()[:8], "little")
            vecs.append(np.random.default_rng(h).normal(size=self.dim))
        return _l2_dense(np.asarray(vecs).reshape(len(rows), self.dim))


def make_baseline(family: str, params: dict[str, Any], seed: int = 0) -> _Baseline:
    if family in ("genre_bag", "artist_bag"):
        return BagCosine(**params)
    if family == "als":
        return ALSUsers(**params, seed=seed)
    if family == "raw_cosine":
        return RawCosine()
    if family == "random":
        return RandomVectors(seed=seed)
    raise ValueError(f"unknown baseline {family!r}; known: {', '.join(BASELINES)}")


def tune_baselines(
    fit_rows: pd.DataFrame, score, *, seed: int = 0, families=BASELINES, grids: dict[str, list[dict[str, Any]]] | None = None
) -> dict[str, dict[str, Any]]:
    """Each family fitted on ``fit_rows`` at every grid point, kept by ``score(embedder)`` (validation).

    Returns ``{family: {"embedder", "params", "val", "grid": [{"params", "val"}]}}``; a family that
    cannot run on these rows (no ``combined`` column) is reported with ``skipped``.
    """
    grids = grids or GRIDS
    out: dict[str, dict[str, Any]] = {}
    for fam in families:
        tried, best = [], None
        for params in grids.get(fam, [{}]):
            try:
                emb = make_baseline(fam, params, seed).fit(fit_rows)
                val = float(score(emb))
            except KeyError as e:
                out[fam] = {"skipped": str(e)}
                best = None
                break
            tried.append({"params": params, "val": val})
            if best is None or val > best[1]:
                best = (emb, val, params)
        if best is not None:
            emb, val, params = best
            out[fam] = {"embedder": emb, "params": params, "val": val, "grid": tried}
            log.info("baseline %s: chose %s (validation %.4f of %d settings)", fam, params, val, len(tried))
    return out


# --------------------------------------------------------------------------- persistence
def save_baseline(emb: _Baseline, directory: Path) -> None:
    state, arrays = emb.state()
    (directory / "baseline.json").write_text(json.dumps({"method": emb.name, "params": emb.params, "state": state}))
    np.savez(directory / "baseline.npz", **arrays)  # type: ignore[arg-type]  # numpy's stub checks **kwds against allow_pickle


def load_baseline(directory: Path, version: str) -> _Baseline:
    spec = json.loads((directory / "baseline.json").read_text())
    fam = spec["method"]
    params = dict(spec["params"])
    seed = int(params.pop("seed", 0))
    emb = (
        make_baseline(fam, params if fam not in ("raw_cosine", "random") else {}, seed)
        if fam != "als"
        else ALSUsers(**params, seed=seed)
    )
    with np.load(directory / "baseline.npz") as z:
        emb.load_state(spec["state"], {k: z[k] for k in z.files})
    emb.version = version
    return emb
