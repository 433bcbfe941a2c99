"""The feature preprocessor: user-feature rows -> padded bag tensors and a standardised dense matrix.

``FeaturePreprocessor`` is fitted on the **training split only** (vocabularies, IDF,
dense-feature mean/std, the SVD that initialises the bag embeddings) and is saved with the
model, so serving applies exactly the transformation training saw.
"""

from __future__ import annotations

import logging
import math
import warnings
import zlib
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from soundmates.features.schema import EMBEDDING_COLUMNS
from soundmates.model.config import ModelConfig

# the logger of the module this class lived in before, so the logs read exactly as before the split
log = logging.getLogger("soundmates.model.datamodule")

PAD = 0
SCALARS = ("year_mean", "year_std", "n_tracks", "n_playlists", "mean_popularity", "explicit_ratio")
LOG_SCALARS = {"n_tracks", "n_playlists"}  # heavy-tailed counts enter as log1p


def _stable_hash(token: str, buckets: int) -> int:
    return zlib.crc32(token.encode("utf-8")) % buckets


class _BagVocab:
    """Capped vocabulary with IDF from the training documents; unseen tokens hash to buckets."""

    def __init__(self, tokens: list[str], df: list[int], n_docs: int, buckets: int):
        self.tokens = list(tokens)
        self.index = {t: i + 1 for i, t in enumerate(self.tokens)}  # 0 = padding
        self.df = [int(d) for d in df]
        self.n_docs = n_docs
        self.buckets = buckets
        # smoothed IDF (as sklearn); unseen tokens get the rarest-possible IDF
        self.idf = np.array([math.log((1 + n_docs) / (1 + d)) + 1 for d in df], dtype=np.float64)
        self.unseen_idf = math.log(1 + n_docs) + 1

    @property
    def rows(self) -> int:
        return 1 + len(self.tokens) + self.buckets

    @classmethod
    def fit(cls, bags: list[list[str]], cap: int, buckets: int) -> _BagVocab:
        df: Counter[str] = Counter()
        for bag in bags:
            df.update(set(bag))
        kept = sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))[:cap]
        return cls([t for t, _ in kept], [d for _, d in kept], len(bags), buckets)

    def lookup(self, token: str) -> tuple[int, float]:
        i = self.index.get(token)
        if i is not None:
            return i, self.idf[i - 1]
        return 1 + len(self.tokens) + _stable_hash(token, self.buckets), self.unseen_idf

    def lookup_many(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(rows, IDFs) of ``tokens``, as :meth:`lookup` gives them one by one."""
        ids = np.fromiter((self.index.get(t, 0) for t in tokens), dtype=np.int64, count=len(tokens))
        seen = ids > 0
        idf = np.full(len(tokens), self.unseen_idf, dtype=np.float64)
        idf[seen] = self.idf[ids[seen] - 1]
        for j in np.flatnonzero(~seen).tolist():
            ids[j] = 1 + len(self.tokens) + _stable_hash(tokens[j], self.buckets)
        return ids, idf

    def state(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "df": self.df, "n_docs": self.n_docs, "buckets": self.buckets}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> _BagVocab:
        return cls(s["tokens"], s["df"], s["n_docs"], s["buckets"])


def _tf(weights: np.ndarray, mode: str) -> np.ndarray:
    if mode == "log":  # scale-free sublinear tf: 1 + log(w / smallest w in the bag)
        pos = weights[weights > 0]
        return np.where(weights > 0, 1.0 + np.log(weights / (pos.min() if len(pos) else 1.0)), 0.0)
    return np.maximum(weights, 0.0)


class FeaturePreprocessor:
    """Fitted on training rows only; turns feature rows into padded bag tensors + a dense matrix."""

    GENRE_TF = "raw"  # genre counts: raw tf measured better than sublinear on HetRec (0.50 vs 0.43 recall@10)
    ARTIST_TF = "log"  # play counts / occurrences are heavy-tailed

    def __init__(
        self,
        cfg: ModelConfig,
        genres: _BagVocab,
        artists: _BagVocab,
        dense_columns: list[str],
        dense_widths: list[int],
        dense_mean: np.ndarray,
        dense_std: np.ndarray,
    ):
        self.cfg = cfg
        self.genres, self.artists = genres, artists
        self.dense_columns, self.dense_widths = dense_columns, dense_widths
        self.dense_mean, self.dense_std = dense_mean, dense_std

    # ---- fitting
    @classmethod
    def fit(cls, rows: pd.DataFrame, cfg: ModelConfig) -> FeaturePreprocessor:
        if len(rows) == 0:
            raise ValueError("cannot fit the feature preprocessor on zero training rows")
        genres = _BagVocab.fit(
            [list(x) for x in rows.get("genre_names", pd.Series([[]] * len(rows)))], cfg.max_genres, cfg.hash_buckets
        )
        artists = _BagVocab.fit(
            [list(x) for x in rows.get("artist_ids", pd.Series([[]] * len(rows)))], cfg.max_artists, cfg.hash_buckets
        )
        cols, widths = [], []
        if cfg.use_dense:
            for c in [*EMBEDDING_COLUMNS, "year_hist"]:
                if c in rows.columns:
                    w = max((len(v) for v in rows[c] if v is not None), default=0)
                    if w:
                        cols.append(c)
                        widths.append(w)
            for c in SCALARS:
                if c in rows.columns:
                    cols.append(c)
                    widths.append(1)
        pre = cls(cfg, genres, artists, cols, widths, np.zeros(0), np.ones(0))
        raw = pre._dense_raw(rows)
        with warnings.catch_warnings():  # an all-missing column (e.g. popularity) is expected: mean 0, std 1
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(raw, axis=0) if raw.shape[1] else np.zeros(0)
            std = np.nanstd(raw, axis=0) if raw.shape[1] else np.ones(0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        pre.dense_mean, pre.dense_std = mean, std
        return pre

    @property
    def dense_dim(self) -> int:
        return int(sum(self.dense_widths))

    def _dense_raw(self, rows: pd.DataFrame) -> np.ndarray:
        n = len(rows)
        blocks = []
        for c, w in zip(self.dense_columns, self.dense_widths):
            if c not in rows.columns:
                blocks.append(np.full((n, w), np.nan))
                continue
            if w == 1 and c in SCALARS:
                v = pd.to_numeric(rows[c], errors="coerce").to_numpy(dtype=np.float64)
                if c in LOG_SCALARS:
                    v = np.log1p(np.maximum(v, 0))
                blocks.append(v[:, None])
                continue
            m = np.full((n, w), np.nan)
            for i, vec in enumerate(rows[c]):
                try:
                    if vec is not None and len(vec) == w:
                        m[i] = np.asarray(vec, dtype=np.float64)
                except (TypeError, ValueError):  # malformed vector: treated as missing (the training mean)
                    pass
            blocks.append(m)
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0))

    # ---- transform
    def _bags(self, rows: pd.DataFrame, names_col: str, weights_col: str, vocab: _BagVocab, tf_mode: str):
        n, cap = len(rows), self.cfg.max_bag
        idx = np.zeros((n, cap), dtype=np.int64)
        wts = np.zeros((n, cap), dtype=np.float32)
        if names_col not in rows.columns:
            return idx, wts
        weights_iter = rows[weights_col] if weights_col in rows.columns else [None] * n
        for i, (names, weights) in enumerate(zip(rows[names_col], weights_iter)):
            try:
                names = [str(t) for t in names] if names is not None else []
                w = np.asarray(
                    weights if weights is not None and len(weights) == len(names) else [1.0] * len(names), dtype=np.float64
                )
            except (TypeError, ValueError) as e:  # one malformed bag must not fail the batch: it stays empty
                log.warning("row %d: unreadable %s/%s (%s); bag left empty", i, names_col, weights_col, e)
                continue
            if not names:
                continue
            w = np.where(np.isfinite(w), w, 0.0)
            tf = _tf(w, tf_mode)
            ids, idf = vocab.lookup_many(names)
            vals = tf * idf
            order = np.argsort(-vals, kind="stable")[:cap]
            norm = np.linalg.norm(vals[order])
            if norm <= 0:
                continue
            idx[i, : len(order)] = ids[order]
            wts[i, : len(order)] = vals[order] / norm
        return idx, wts

    def transform(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        g_idx, g_w = self._bags(rows, "genre_names", "genre_weights", self.genres, self.GENRE_TF)
        a_idx, a_w = self._bags(rows, "artist_ids", "artist_weights", self.artists, self.ARTIST_TF)
        dense = (self._dense_raw(rows) - self.dense_mean) / self.dense_std
        dense = np.where(np.isfinite(dense), dense, 0.0).astype(np.float32)  # missing -> the training mean
        return {"g_idx": g_idx, "g_w": g_w, "a_idx": a_idx, "a_w": a_w, "dense": dense}

    def svd_init(self, enc: dict[str, np.ndarray], kind: str, dim: int, seed: int) -> np.ndarray:
        """(rows, dim) embedding table whose bag sums equal the LSA projection of the TF-IDF bags."""
        from scipy import sparse
        from sklearn.decomposition import TruncatedSVD

        idx, w = (enc["g_idx"], enc["g_w"]) if kind == "genre" else (enc["a_idx"], enc["a_w"])
        n_rows = (self.genres if kind == "genre" else self.artists).rows
        r, c = np.nonzero(w)
        mat = sparse.csr_matrix((w[r, c].astype(np.float64), (r, idx[r, c])), shape=(len(idx), n_rows))
        table = np.random.default_rng(seed).normal(0, 1e-3, size=(n_rows, dim))
        k = min(dim, n_rows - 1, mat.shape[0] - 1, mat.nnz)
        if k >= 1:
            svd = TruncatedSVD(k, random_state=seed).fit(mat)
            table[:, :k] = svd.components_.T
        table[PAD] = 0.0
        return table.astype(np.float32)

    # ---- persistence
    def state(self) -> dict[str, Any]:
        return {
            "config": self.cfg.model_dump(),
            "genres": self.genres.state(),
            "artists": self.artists.state(),
            "dense_columns": self.dense_columns,
            "dense_widths": self.dense_widths,
            "dense_mean": self.dense_mean.tolist(),
            "dense_std": self.dense_std.tolist(),
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> FeaturePreprocessor:
        return cls(
            ModelConfig.from_stored(s["config"]),
            _BagVocab.from_state(s["genres"]),
            _BagVocab.from_state(s["artists"]),
            list(s["dense_columns"]),
            list(s["dense_widths"]),
            np.asarray(s["dense_mean"], dtype=np.float64),
            np.asarray(s["dense_std"], dtype=np.float64),
        )
