"""The two-tower run's configuration (hyperparameters, Trainer, callbacks): validated here, valued in YAML.

Every default lives in one file, ``configs/model/default.yaml``; the fields below carry types and
ranges only, so code and file cannot disagree. A run is that file, then an optional override file,
then command-line overrides (:meth:`ModelConfig.load`); the registry stores exactly what was used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from soundmates.config import REPO_ROOT

CONFIG_DIR_ENV = "SOUNDMATES_CONFIG_DIR"


def default_config_file() -> Path:
    """``<configs>/model/default.yaml``; ``$SOUNDMATES_CONFIG_DIR`` names the configs folder of an
    installed (non-editable) package, e.g. the Docker image; else the repository's ``configs/``."""
    return Path(os.environ.get(CONFIG_DIR_ENV) or REPO_ROOT / "configs") / "model" / "default.yaml"


class TrainerConfig(BaseModel):
    """Arguments of ``lightning.Trainer`` that are not hyperparameters (``max_epochs`` is one)."""

    model_config = ConfigDict(extra="forbid")

    # the embedding, checkpoint-loading and determinism code assume CPU tensors
    accelerator: Literal["cpu"]
    devices: Literal[1]
    deterministic: bool
    enable_progress_bar: bool
    enable_model_summary: bool
    num_sanity_val_steps: int = Field(ge=0)
    log_every_n_steps: int = Field(ge=1)
    # "csv": lightning's CSVLogger under <work_dir>/logs; "none": no logger
    logger: Literal["csv", "none"]


class EarlyStoppingConfig(BaseModel):
    """``EarlyStopping`` arguments; its monitor and patience are the hyperparameters of those names."""

    model_config = ConfigDict(extra="forbid")

    # every monitor is higher-is-better, and keeping the LSA start compares with >=
    mode: Literal["max"]
    min_delta: float = Field(ge=0)


class CheckpointConfig(BaseModel):
    """``ModelCheckpoint`` arguments; its monitor is the hyperparameter of that name."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["max"]
    save_top_k: int = Field(ge=1)
    filename: str = Field(min_length=1)


class CallbacksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    early_stopping: EarlyStoppingConfig
    model_checkpoint: CheckpointConfig


class ModelConfig(BaseModel):
    """Hyperparameters, Trainer and callbacks of one run (values and reasons: the default YAML)."""

    model_config = ConfigDict(extra="forbid")

    seed: int
    # split by user, deterministic by seed; test = floor(n * test_frac) users
    val_frac: float = Field(gt=0, lt=0.5)
    test_frac: float = Field(gt=0, lt=0.5)

    # bag towers: vocabulary from the training split, capped; the rest (and unseen ids) hash to buckets
    max_genres: int = Field(ge=1)
    max_artists: int = Field(ge=1)
    hash_buckets: int = Field(ge=1)
    max_bag: int = Field(ge=1, description="largest bag kept per view (top weights)")
    genre_dim: int = Field(ge=2)
    artist_dim: int = Field(ge=2)
    dense_dim: int = Field(ge=1)
    svd_init: bool
    use_dense: bool
    use_genres: bool
    use_artists: bool
    shared_towers: bool
    hidden: int = Field(ge=8)
    dropout: float = Field(ge=0, lt=1)

    # "items": a user's half predicts the items of their other half; "halves": self-retrieval of the
    # same user's other half; "items+halves": the sum (see two_tower.py and the YAML's measurements)
    objective: Literal["items", "halves", "items+halves"]
    item_positives: int = Field(ge=1, description="items sampled per user and step for the item objective")
    genre_items: bool
    # in-batch sampled softmax (Yi et al. 2019), symmetric over the two views
    temperature: float = Field(gt=0)
    learn_temperature: bool
    batch_size: int = Field(ge=2)
    lr: float = Field(gt=0)
    bag_lr_scale: float = Field(gt=0, description="learning-rate multiplier of the SVD-initialised bag embeddings")
    weight_decay: float = Field(ge=0)
    max_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)
    # what early stopping, checkpointing and "did training beat the start" compare on validation
    # val_geo_nr_mrr: sqrt(neighbour_recall@20 x self-retrieval MRR), chosen by Kendall tau (model/protocol.py)
    monitor: Literal[
        "val_recall@10",
        "val_mrr",
        "val_neighbour_recall@20",
        "val_genre_recall@20",
        "val_self_recall@10",
        "val_self_mrr",
        "val_geo_nr_mrr",
    ]

    trainer: TrainerConfig
    callbacks: CallbacksConfig

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> ModelConfig:
        """The default YAML, then the file at ``path`` over it, then ``overrides`` (``None`` = not given).

        Sections (``trainer``, ``callbacks``) merge key by key, so an override file names only what it changes.
        """
        data = _read_yaml(default_config_file(), what="model defaults")
        if path:
            p = Path(path)
            if not p.exists():
                raise FileNotFoundError(f"model config {p} does not exist")
            data = _merge(data, _read_yaml(p, what="model config"))
        return cls.model_validate(_merge(data, {k: v for k, v in overrides.items() if v is not None}))

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> ModelConfig:
        """A config a registry version or preprocessor stored; keys an older version did not know yet
        (e.g. ``trainer``) take the default YAML's values, as code defaults filled them before."""
        return cls.model_validate(_merge(_read_yaml(default_config_file(), what="model defaults"), stored))


def _read_yaml(path: Path, *, what: str) -> dict[str, Any]:
    import yaml

    if not path.exists():
        raise FileNotFoundError(
            f"{what} file {path} not found: restore configs/model/default.yaml or set {CONFIG_DIR_ENV} to its configs folder"
        )
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{what} {path}: expected a mapping of hyperparameters, got {type(loaded).__name__}")
    return loaded


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; nested mappings merge key by key (a section override keeps its siblings)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
