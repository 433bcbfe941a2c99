"""The Lightning data module of the two-tower model: user features -> per-user (view a, view b) pairs, split by user.

``TwoViewDataModule`` yields, per user, the two disjoint views ``a`` and ``b`` of
``user_features`` (read from the feature store at a named data version, or given as a
DataFrame for tests and HetRec). The split is :mod:`soundmates.model.splits`, the
transformation :mod:`soundmates.model.preprocessing` (fitted on the training users only),
the batches :mod:`soundmates.model.batching`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import pandas as pd

from soundmates.model.batching import pair_loader
from soundmates.model.config import ModelConfig
from soundmates.model.preprocessing import PAD, FeaturePreprocessor
from soundmates.model.splits import Split, paired_views, split_users

if TYPE_CHECKING:
    from soundmates.model.protocol import Population

log = logging.getLogger(__name__)


class TwoViewDataModule(L.LightningDataModule):
    """Pairs (view a, view b) per user; split by user; preprocessing fitted on train only.

    Give ``frame`` (rows of ``user_features``) directly, or ``settings`` (+ ``data_version``)
    to read the feature store at that version.
    """

    def __init__(self, cfg: ModelConfig, frame: pd.DataFrame | None = None, *, settings=None, data_version: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.frame = frame
        self.settings = settings
        self.data_version = data_version
        self.split: Split | None = None
        self.pre: FeaturePreprocessor | None = None
        self.tensors: dict[str, dict[str, Any]] = {}
        self.pairs: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
        self.population: Population | None = None
        self.population_tensors: dict[str, Any] | None = None

    @property
    def preprocessor(self) -> FeaturePreprocessor:
        """The preprocessor fitted on the training users by ``setup()``."""
        if self.pre is None:
            raise RuntimeError("the data module is not set up yet: call setup() first")
        return self.pre

    def _read(self) -> pd.DataFrame:
        if self.frame is not None:
            return self.frame
        from soundmates.features.schema import USER_FEATURES
        from soundmates.store import get_store

        store = get_store(self.settings)
        if self.data_version is None:
            self.data_version = store.data_version(USER_FEATURES)
            if self.data_version is None:
                raise LookupError("the feature store has no user_features yet: run `soundmates features build` first")
        self.frame = store.read(USER_FEATURES, as_of=self.data_version)
        return self.frame

    def setup(self, stage: str | None = None) -> None:
        if self.pre is not None:
            return
        import torch

        df = self._read()
        a, b = paired_views(df)
        if len(a) < 4:
            raise ValueError(f"only {len(a)} users have both views a and b; training needs at least 4")
        self.split = split_users(
            a["user_id"].tolist(), seed=self.cfg.seed, val_frac=self.cfg.val_frac, test_frac=self.cfg.test_frac
        )
        for name, users in self.split.as_dict().items():
            self.pairs[name] = paired_views(df, users)
        train_rows = pd.concat(self.pairs["train"], ignore_index=True)
        self.pre = FeaturePreprocessor.fit(train_rows, self.cfg)
        for name, (qa, qb) in self.pairs.items():
            self.tensors[name] = {
                "a": {k: torch.from_numpy(v) for k, v in self.pre.transform(qa).items()},
                "b": {k: torch.from_numpy(v) for k, v in self.pre.transform(qb).items()},
            }
        # everyone with a full profile: the candidates of the validation neighbour metric (as the index holds them)
        from soundmates.model.protocol import make_population

        self.population = make_population(df) if (df["view"] == "full").sum() >= 2 else None
        self.population_tensors = (
            None
            if self.population is None
            else {k: torch.from_numpy(v) for k, v in self.pre.transform(self.population.full).items()}
        )
        log.info("split: %d train / %d val / %d test users", len(self.split.train), len(self.split.val), len(self.split.test))

    def item_log_q(self) -> tuple[np.ndarray, np.ndarray]:
        """log share of each artist / genre row among the training targets (bag weights, per user summing to 1)."""
        out = []
        for idx_key, w_key, rows in (
            ("a_idx", "a_w", self.preprocessor.artists.rows),
            ("g_idx", "g_w", self.preprocessor.genres.rows),
        ):
            q = np.zeros(rows, dtype=np.float64)
            for view in ("a", "b"):
                idx = self.tensors["train"][view][idx_key].numpy()
                w = self.tensors["train"][view][w_key].numpy().astype(np.float64)
                w = w / np.maximum(w.sum(1, keepdims=True), 1e-12)
                np.add.at(q, idx.ravel(), w.ravel())
            q[PAD] = 0.0
            q = q + max(q.sum(), 1.0) * 1e-6  # unseen rows: rare, not impossible
            out.append(np.log(q / q.sum()).astype(np.float32))
        return out[0], out[1]

    def init_tables(self) -> dict[str, np.ndarray]:
        """SVD (LSA) initial tables of the bag embeddings, from the training rows only."""
        train = {
            k: np.concatenate([self.tensors["train"]["a"][k].numpy(), self.tensors["train"]["b"][k].numpy()])
            for k in ("g_idx", "g_w", "a_idx", "a_w")
        }
        return {
            "genre": self.preprocessor.svd_init(train, "genre", self.cfg.genre_dim, self.cfg.seed),
            "artist": self.preprocessor.svd_init(train, "artist", self.cfg.artist_dim, self.cfg.seed),
        }

    def _loader(self, name: str, shuffle: bool):
        n = len(self.pairs[name][0])
        return pair_loader(self.tensors[name], n, batch_size=self.cfg.batch_size, shuffle=shuffle, seed=self.cfg.seed)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)
