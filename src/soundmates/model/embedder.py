"""``get_embedder(settings) -> UserEmbedder``: what the index and recommend stages call.

The registered ``current`` two-tower model when there is one; otherwise the scaled
``combined`` feature vector, L2-normalised (version ``"raw-features"``), so the rest of the
product works before any model is trained. ``embed`` gives the candidate-tower embedding
(what the index stores); ``embed_query`` the query tower's (identical with shared towers).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

RAW_FEATURES_VERSION = "raw-features"


class UserEmbedder(Protocol):
    version: str
    dim: int

    def embed(self, features_df: pd.DataFrame) -> np.ndarray: ...

    def embed_query(self, features_df: pd.DataFrame) -> np.ndarray: ...


def _l2(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n > 0, n, 1.0)).astype(np.float32)


class RawFeatureEmbedder:
    """The scaled ``combined`` vector, L2-normalised."""

    version = RAW_FEATURES_VERSION

    def __init__(self, dim: int | None = None):
        self._dim = dim

    @property
    def dim(self) -> int:
        if self._dim is None:
            from soundmates.features.schema import combined_dim

            return combined_dim(384)  # all-MiniLM-L6-v2, the default encoder
        return self._dim

    def embed(self, features_df: pd.DataFrame) -> np.ndarray:
        if "combined" not in features_df.columns:
            raise KeyError("features_df lacks the 'combined' column of user_features")
        if len(features_df) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = [np.asarray(v, dtype=np.float32) for v in features_df["combined"]]
        widths = {len(v) for v in vecs}
        if len(widths) != 1:
            raise ValueError(f"'combined' vectors have mixed lengths {sorted(widths)}; rebuild the features")
        self._dim = widths.pop()
        return _l2(np.nan_to_num(np.stack(vecs)))

    embed_query = embed


class TwoTowerEmbedder:
    def __init__(self, loaded):
        self._loaded = loaded
        self.version = loaded.version
        self.dim = loaded.dim

    @property
    def meta(self) -> dict:
        return self._loaded.meta

    def embed(self, features_df: pd.DataFrame) -> np.ndarray:
        from soundmates.model.evaluate import embed_rows

        return embed_rows(self._loaded.model, self._loaded.preprocessor, features_df, tower="candidate")

    def embed_query(self, features_df: pd.DataFrame) -> np.ndarray:
        from soundmates.model.evaluate import embed_rows

        return embed_rows(self._loaded.model, self._loaded.preprocessor, features_df, tower="query")


def get_embedder(settings=None, version: str | None = None) -> UserEmbedder:
    """The served model's embedder (or ``version``'s); raw features when none is registered."""
    from soundmates.config import get_settings
    from soundmates.model.registry import ModelRegistry

    settings = settings or get_settings()
    reg = ModelRegistry(settings.models_dir)
    if version is None and reg.current_version() is None:
        return RawFeatureEmbedder()
    return TwoTowerEmbedder(reg.load(version))
