"""Fit the two-tower model: seeded, deterministic on CPU, early stopping and checkpointing
on a validation metric (``ModelConfig.monitor``: recall@10 or MRR), CSV logs.

The LSA-initialised model is validated before the first epoch; if training never beats
that start on validation, the start is kept (and the result says so), so training can
only help on the validation set.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from soundmates.model.config import ModelConfig

log = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    model: Any  # TwoTowerModel
    datamodule: Any  # TwoViewDataModule (split, preprocessor, tensors)
    config: ModelConfig
    val_recall_at_10: float
    initial_val_recall_at_10: float
    epochs_run: int
    best_epoch: int | None
    seconds: float
    seconds_per_epoch: float
    log_dir: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def preprocessor(self):
        return self.datamodule.pre


def fit_model(
    cfg: ModelConfig,
    frame: pd.DataFrame | None = None,
    *,
    settings=None,
    data_version: int | None = None,
    work_dir: str | Path | None = None,
    fast_dev_run: bool = False,
) -> TrainedModel:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from soundmates.model.datamodule import TwoViewDataModule
    from soundmates.model.two_tower import TwoTowerModel

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="soundmates-train-"))
    work.mkdir(parents=True, exist_ok=True)
    dm = TwoViewDataModule(cfg, frame, settings=settings, data_version=data_version)
    dm.setup()
    tables = dm.init_tables() if cfg.svd_init else {}
    model = TwoTowerModel(cfg.model_dump(), dm.pre.genres.rows, dm.pre.artists.rows, dm.pre.dense_dim,
                          tables.get("genre"), tables.get("artist"))
    # a fresh checkpoint folder per run: best-of-run must never pick up an older run's file
    ckpt = ModelCheckpoint(dirpath=tempfile.mkdtemp(prefix="checkpoints-", dir=work), monitor=cfg.monitor, mode="max", save_top_k=1,
                           filename="best-{epoch}")
    stop = EarlyStopping(monitor=cfg.monitor, mode="max", patience=cfg.patience)
    logger = CSVLogger(str(work), name="logs") if not fast_dev_run else False
    trainer = L.Trainer(
        max_epochs=cfg.max_epochs, accelerator="cpu", devices=1, deterministic=True, logger=logger,
        callbacks=[ckpt, stop], enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, fast_dev_run=fast_dev_run, log_every_n_steps=1,
    )
    initial_metrics = trainer.validate(model, datamodule=dm, verbose=False)[0]
    initial = initial_metrics[cfg.monitor]
    initial_state = copy.deepcopy(model.state_dict())
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    seconds = time.perf_counter() - t0
    epochs = max(trainer.current_epoch, 1)
    notes = []
    best = float(ckpt.best_model_score) if ckpt.best_model_score is not None else None
    best_epoch = None
    if best is not None and ckpt.best_model_path and best >= initial:
        saved = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["state_dict"])
        best_epoch = int(saved.get("epoch", -1))
    else:
        model.load_state_dict(initial_state)
        if not fast_dev_run:
            notes.append(f"training did not beat the SVD/LSA start on validation {cfg.monitor} ({best} < {initial}); kept the start")
    model.eval()
    # the kept model's validation recall@10 (what the registry's promotion gate compares), whatever was monitored
    val = initial_metrics["val_recall@10"] if best_epoch is None else trainer.validate(model, datamodule=dm, verbose=False)[0]["val_recall@10"]
    return TrainedModel(
        model=model, datamodule=dm, config=cfg, val_recall_at_10=float(val), initial_val_recall_at_10=float(initial_metrics["val_recall@10"]),
        epochs_run=epochs, best_epoch=best_epoch, seconds=seconds, seconds_per_epoch=seconds / epochs,
        log_dir=str(logger.log_dir) if logger else None, notes=notes,
    )
