"""``get_embedder(settings) -> UserEmbedder``: the SERVED embedder, what the index and recommend call.

What is served is what the promotion gate chose (:mod:`soundmates.model.gate`): the registry's
``current`` version -- a two-tower model (``two_tower``, or its LSA start ``two_tower_init``) or a
tuned baseline registered as a first-class embedder (``als``, ``genre_bag``, ...). Only when
nothing at all is registered: the scaled ``combined`` feature vector, L2-normalised (method
``raw_cosine``, version ``"raw-features"``), so the product works before any training.

Every embedder has ``name`` (the method), ``version``, ``dim``, ``embed(rows)`` = the
candidate-side vectors (what the index stores, and what a fresh user is stored with) and
``embed_query(rows)`` = the query side; the served score is dot(query, candidate). Both take
rows of ``user_features`` and return L2-normalised float32 arrays. A feedback-tuned embedder
(``als+feedback``, :mod:`soundmates.model.feedback_tuning`) maps the query side only: its
``candidate_version`` is its base's, the version an index built for it records
(:func:`candidate_version`), so the base's index keeps serving it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

RAW_FEATURES_VERSION = "raw-features"


class UserEmbedder(Protocol):
    name: str
    version: str

    @property
    def dim(self) -> int: ...

    def embed(self, features_df: pd.DataFrame) -> np.ndarray: ...

    def embed_query(self, features_df: pd.DataFrame) -> np.ndarray: ...


def _l2(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n > 0, n, 1.0)).astype(np.float32)


class RawFeatureEmbedder:
    """The scaled ``combined`` vector, L2-normalised."""

    name = "raw_cosine"
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


class ModelEmbedder:
    """A two-tower LightningModule + its preprocessor as an embedder (trained or at its LSA start)."""

    def __init__(self, model, preprocessor, *, name: str = "two_tower", version: str = "unsaved"):
        self.model, self.preprocessor = model, preprocessor
        self.name, self.version = name, version
        self.dim = int(model.dim)
        # one tower for both sides (shared config, or the item objective): index vectors serve as queries
        self.shared_towers = model.candidate_tower is model.query_tower

    def embed(self, features_df: pd.DataFrame) -> np.ndarray:
        from soundmates.model.evaluate import embed_rows

        return embed_rows(self.model, self.preprocessor, features_df, tower="candidate")

    def embed_query(self, features_df: pd.DataFrame) -> np.ndarray:
        from soundmates.model.evaluate import embed_rows

        return embed_rows(self.model, self.preprocessor, features_df, tower="query")


class TwoTowerEmbedder(ModelEmbedder):
    """A registered two-tower version (old-style versions without a ``method`` are ``two_tower``)."""

    def __init__(self, loaded):
        super().__init__(loaded.model, loaded.preprocessor, name=loaded.meta.get("method", "two_tower"), version=loaded.version)
        self._loaded = loaded

    @property
    def meta(self) -> dict:
        return self._loaded.meta


def candidate_version(emb) -> str:
    """The version whose candidate side ``emb`` has (its own, or its base's for a feedback-tuned one):
    what an index of its vectors records as ``model_version``."""
    return str(getattr(emb, "candidate_version", None) or emb.version)


def get_embedder(settings=None, version: str | None = None) -> UserEmbedder:
    """The served embedder (or ``version``'s); raw features only when nothing is registered."""
    from soundmates.config import get_settings
    from soundmates.model.registry import ModelRegistry

    settings = settings or get_settings()
    reg = ModelRegistry.for_settings(settings)
    if version is None and reg.served_version() is None:
        return RawFeatureEmbedder()
    return reg.load_embedder(version)
