"""Baselines the two-tower model must beat, on the same split and candidates.

Each takes the query rows and the candidate rows of ``user_features`` (one row per user)
and returns a ``(queries, candidates)`` score matrix, higher = closer.

* ``raw_cosine``: cosine of the scaled ``combined`` vector (the reference method);
* ``artist_jaccard``: artist-set overlap;
* ``genre_tfidf``: TF-IDF genre-profile cosine, IDF fitted on the fitting rows
  (the training users when given, never the held-out ones' answers);
* ``random``: seeded uniform scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BASELINES = ("raw_cosine", "artist_jaccard", "genre_tfidf", "random")


def _l2(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def raw_cosine(queries: pd.DataFrame, candidates: pd.DataFrame) -> np.ndarray:
    if "combined" not in queries.columns or "combined" not in candidates.columns:
        raise KeyError("raw_cosine needs the 'combined' column of user_features")
    q = _l2(np.stack(queries["combined"].map(lambda v: np.asarray(v, dtype=np.float32)).to_list()))
    c = _l2(np.stack(candidates["combined"].map(lambda v: np.asarray(v, dtype=np.float32)).to_list()))
    return q @ c.T


def bag_matrix(frames: list[pd.DataFrame], names_col: str, weights_col: str, vocab: dict[str, int] | None = None):
    """Sparse (rows, vocab) matrices of weighted bags; vocabulary built from all frames unless given."""
    from scipy import sparse

    if vocab is None:
        vocab = {}
        for f in frames:
            for names in f[names_col]:
                for n in names:
                    vocab.setdefault(n, len(vocab))
    mats = []
    for f in frames:
        rows, cols, vals = [], [], []
        for i, (names, weights) in enumerate(zip(f[names_col], f[weights_col])):
            for n, w in zip(names, weights):
                j = vocab.get(n)
                if j is not None and w > 0:
                    rows.append(i)
                    cols.append(j)
                    vals.append(float(w))
        mats.append(sparse.csr_matrix((vals, (rows, cols)), shape=(len(f), max(len(vocab), 1)), dtype=np.float64))
    return mats, vocab


def artist_jaccard(queries: pd.DataFrame, candidates: pd.DataFrame) -> np.ndarray:
    (q, c), _ = bag_matrix([queries, candidates], "artist_ids", "artist_weights")
    q = (q > 0).astype(np.float64)
    c = (c > 0).astype(np.float64)
    inter = (q @ c.T).toarray()
    qs = np.asarray(q.sum(axis=1)).ravel()[:, None]
    cs = np.asarray(c.sum(axis=1)).ravel()[None, :]
    union = qs + cs - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def genre_tfidf(queries: pd.DataFrame, candidates: pd.DataFrame, fit: pd.DataFrame | None = None) -> np.ndarray:
    """Cosine of TF-IDF genre profiles (sublinear tf of the bag weights, smoothed IDF)."""
    from sklearn.feature_extraction.text import TfidfTransformer

    fit_rows = fit if fit is not None and len(fit) else pd.concat([queries, candidates])
    (f, q, c), _ = bag_matrix([fit_rows, queries, candidates], "genre_names", "genre_weights")
    tfidf = TfidfTransformer(sublinear_tf=True).fit(f)
    return (tfidf.transform(q) @ tfidf.transform(c).T).toarray()


def random_scores(queries: pd.DataFrame, candidates: pd.DataFrame, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((len(queries), len(candidates)))


def baseline_scores(name: str, queries: pd.DataFrame, candidates: pd.DataFrame, *, fit: pd.DataFrame | None = None, seed: int = 0) -> np.ndarray:
    if name == "raw_cosine":
        return raw_cosine(queries, candidates)
    if name == "artist_jaccard":
        return artist_jaccard(queries, candidates)
    if name == "genre_tfidf":
        return genre_tfidf(queries, candidates, fit)
    if name == "random":
        return random_scores(queries, candidates, seed)
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
