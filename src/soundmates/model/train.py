"""Fit the two-tower model: seeded, deterministic on CPU, early stopping and checkpointing
on a validation metric (``ModelConfig.monitor``: neighbour_recall@20, recall@10 or MRR), CSV logs;
the Trainer and the callbacks are built from the config's ``trainer`` / ``callbacks`` sections.

``val_neighbour_recall@20`` is computed each validation epoch by :class:`NeighbourRecall`:
validation users' halves a query the whole population's full profiles (candidate side),
the artists of their top-10 neighbours predict their held-out halves b (no hidden taste).

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
    initial_state: dict | None = None  # the LSA start, before any training step (method two_tower_init)
    val_metrics: dict = field(default_factory=dict)
    initial_val_metrics: dict = field(default_factory=dict)

    @property
    def preprocessor(self):
        return self.datamodule.pre

    def initial_model(self):
        """A copy of the model at its LSA start (``two_tower_init``)."""
        m = copy.deepcopy(self.model)
        if self.initial_state is not None:
            m.load_state_dict(self.initial_state)
        m.eval()
        return m


def _embed_tensors(fn, tensors: dict, batch: int = 8192):
    import torch

    n = len(next(iter(tensors.values())))
    with torch.no_grad():
        return torch.cat([fn({k: v[s : s + batch] for k, v in tensors.items()}) for s in range(0, n, batch)]).numpy()


def _neighbour_recall_callback(dm):
    from lightning.pytorch.callbacks import Callback

    from soundmates.model.protocol import validation_metrics_from_vectors

    class NeighbourRecall(Callback):
        """Logs every validation metric of the protocol (``val_neighbour_recall@20``, ``val_self_mrr``, ...)
        of the model being trained, on the whole population."""

        halves_b: dict | None = None

        def on_validation_epoch_end(self, trainer, pl_module):
            import torch

            if self.halves_b is None:  # every user's half b, the self-retrieval candidates
                self.halves_b = {k: torch.from_numpy(v) for k, v in dm.pre.transform(dm.population.b).items()}
            qa, qb = dm.pairs["val"]
            qv = _embed_tensors(pl_module.embed_query, dm.tensors["val"]["a"])
            cv = _embed_tensors(pl_module.embed_candidate, dm.population_tensors)
            cb = _embed_tensors(pl_module.embed_candidate, self.halves_b)
            users = qa["user_id"].astype(str).tolist()
            for name, v in validation_metrics_from_vectors(qv, cv, cb, dm.population, users, qa, qb).items():
                pl_module.log(f"val_{name}", v if v == v else 0.0)

    return NeighbourRecall()


def build_callbacks(cfg: ModelConfig, checkpoint_dir: str | Path) -> tuple[Any, Any]:
    """``(ModelCheckpoint, EarlyStopping)`` from the config's ``callbacks`` section, on ``cfg.monitor``."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    ckpt = ModelCheckpoint(dirpath=str(checkpoint_dir), monitor=cfg.monitor, **cfg.callbacks.model_checkpoint.model_dump())
    stop = EarlyStopping(monitor=cfg.monitor, patience=cfg.patience, **cfg.callbacks.early_stopping.model_dump())
    return ckpt, stop


def build_trainer(cfg: ModelConfig, callbacks: list[Any], *, work_dir: str | Path, fast_dev_run: bool = False) -> Any:
    """A ``lightning.Trainer`` from the config's ``trainer`` section and ``max_epochs`` (CSV logs under
    ``work_dir/logs`` when the section asks for them; a ``fast_dev_run`` logs nothing)."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    csv = cfg.trainer.logger == "csv" and not fast_dev_run
    return L.Trainer(
        max_epochs=cfg.max_epochs,
        logger=CSVLogger(str(work_dir), name="logs") if csv else False,
        callbacks=callbacks,
        fast_dev_run=fast_dev_run,
        **cfg.trainer.model_dump(exclude={"logger"}),
    )


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
    from lightning.pytorch.loggers import CSVLogger

    from soundmates.model.datamodule import TwoViewDataModule

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="soundmates-train-"))
    work.mkdir(parents=True, exist_ok=True)
    dm = TwoViewDataModule(cfg, frame, settings=settings, data_version=data_version)
    dm.setup()
    model = _initial_model(cfg, dm)
    extra = _validation_callbacks(cfg, dm)
    # a fresh checkpoint folder per run: best-of-run must never pick up an older run's file
    ckpt, stop = build_callbacks(cfg, tempfile.mkdtemp(prefix="checkpoints-", dir=work))
    trainer = build_trainer(cfg, [*extra, ckpt, stop], work_dir=work, fast_dev_run=fast_dev_run)
    initial_metrics = trainer.validate(model, datamodule=dm, verbose=False)[0]
    initial_state = copy.deepcopy(model.state_dict())
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    seconds = time.perf_counter() - t0
    epochs = max(trainer.current_epoch, 1)
    best_epoch, notes = _keep_best_or_start(model, ckpt, initial_metrics[cfg.monitor], initial_state, cfg, fast_dev_run)
    model.eval()
    # the kept model's validation recall@10 (what the registry's promotion gate compares), whatever was monitored
    kept = initial_metrics if best_epoch is None else trainer.validate(model, datamodule=dm, verbose=False)[0]
    return TrainedModel(
        model=model,
        datamodule=dm,
        config=cfg,
        val_recall_at_10=float(kept["val_recall@10"]),
        initial_val_recall_at_10=float(initial_metrics["val_recall@10"]),
        epochs_run=epochs,
        best_epoch=best_epoch,
        seconds=seconds,
        seconds_per_epoch=seconds / epochs,
        log_dir=str(trainer.logger.log_dir) if isinstance(trainer.logger, CSVLogger) else None,
        notes=notes,
        initial_state=initial_state,
        val_metrics={k: float(v) for k, v in kept.items()},
        initial_val_metrics={k: float(v) for k, v in initial_metrics.items()},
    )


def _initial_model(cfg: ModelConfig, dm) -> Any:
    """The two-tower model at its start: LSA-initialised bag tables (``svd_init``), item priors of the training targets."""
    from soundmates.model.two_tower import TwoTowerModel

    pre = dm.preprocessor
    tables = dm.init_tables() if cfg.svd_init else {}
    model = TwoTowerModel(
        cfg.model_dump(), pre.genres.rows, pre.artists.rows, pre.dense_dim, tables.get("genre"), tables.get("artist")
    )
    model.set_item_priors(*dm.item_log_q())
    if cfg.objective != "halves":
        model.eval()
        model.init_item_tables(pre.dense_dim)
        model.train()
    return model


def _validation_callbacks(cfg: ModelConfig, dm) -> list[Any]:
    """The protocol's validation metrics callback, when the users' full profiles allow it (``cfg.monitor`` may need it)."""
    if dm.population is not None:
        return [_neighbour_recall_callback(dm)]
    if cfg.monitor not in ("val_recall@10", "val_mrr"):
        raise ValueError(f"monitor {cfg.monitor} needs the users' full profiles (view 'full') in the features")
    return []


def _keep_best_or_start(model, ckpt, initial: float, initial_state: dict, cfg: ModelConfig, fast_dev_run: bool):
    """Load the best checkpoint into ``model`` if it is at least as good as the start, else the start back.

    Returns ``(best_epoch, notes)``: ``best_epoch`` is None when the start was kept.
    """
    import torch

    notes: list[str] = []
    best = float(ckpt.best_model_score) if ckpt.best_model_score is not None else None
    if best is not None and ckpt.best_model_path and best >= initial:
        saved = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["state_dict"])
        return int(saved.get("epoch", -1)), notes
    model.load_state_dict(initial_state)
    if not fast_dev_run:
        notes.append(f"training did not beat the SVD/LSA start on validation {cfg.monitor} ({best} < {initial}); kept the start")
    return None, notes
