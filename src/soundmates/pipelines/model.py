"""Model stage, end to end: feature store -> two-tower training -> registry; and evaluation.

``train_model`` trains on ``user_features`` at a named data version (default: the latest),
evaluates the model and the baselines on the held-out test users, and registers the model
(promoted only through the gate of :mod:`soundmates.model.registry`).
``evaluate_model`` reports every method on a generated world (the served model, on its
held-out users) or on HetRec Last.fm 2k (trained on HetRec's own training users).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from soundmates.config import REPO_ROOT, Settings, get_settings

log = logging.getLogger(__name__)

DEFAULT_HETREC_DIR = REPO_ROOT.parent / "shared" / "data" / "hetrec2011-lastfm-2k"


def _feature_schema(pre) -> dict[str, Any]:
    from soundmates.features.schema import FEATURE_COLUMNS

    return {"columns": FEATURE_COLUMNS, "dense_columns": pre.dense_columns, "dense_widths": pre.dense_widths,
            "genre_vocab": len(pre.genres.tokens), "artist_vocab": len(pre.artists.tokens), "hash_buckets": pre.genres.buckets}


def _taste_relevance(settings: Settings, user_ids: list[str]) -> dict[str, set[str]] | None:
    """True taste neighbours (k=10) among ``user_ids`` when the users come from the generated world."""
    world = Path(settings.world_dir)
    if not (world / "users.txt").exists():
        return None
    try:
        from soundmates.world.groundtruth import true_neighbours

        return {u: set(v) for u, v in true_neighbours(world, user_ids, 10).items()}
    except (KeyError, ValueError, OSError) as e:  # users not from this world, or no ground truth
        log.warning("no taste ground truth for these users: %s", e)
        return None


def train_model(settings: Settings | None = None, *, config_file: str | Path | None = None,
                data_version: int | None = None, fast_dev_run: bool = False, **hp: Any) -> dict[str, Any]:
    """Train, evaluate against baselines on held-out users, register (promotion gate)."""
    from soundmates.model.config import ModelConfig
    from soundmates.model.evaluate import compare_methods, write_report
    from soundmates.model.registry import ModelRegistry, push_to_hopsworks
    from soundmates.model.train import fit_model

    settings = settings or get_settings()
    cfg = ModelConfig.load(config_file, **hp)
    runs = settings.models_dir / "runs"
    trained = fit_model(cfg, settings=settings, data_version=data_version, work_dir=runs, fast_dev_run=fast_dev_run)
    dm = trained.datamodule
    val = compare_methods(trained, split="val")["methods"]["two_tower"]
    relevant = _taste_relevance(settings, dm.split.test)
    test = compare_methods(trained, split="test", relevant=relevant, relevant_key="taste_precision@10" if relevant else None, seed=cfg.seed)
    reg = ModelRegistry(settings.models_dir)
    outcome = reg.register(trained, metrics={"val": val, "test": test["methods"], "test_users": test["users"]},
                           data_version=dm.data_version, feature_schema=_feature_schema(dm.pre))
    version_dir = reg.versions_dir / outcome["version"]
    report = write_report({**test, "dataset": "store"}, version_dir, name="evaluation")
    hopsworks = push_to_hopsworks(version_dir, reg.meta(outcome["version"]))
    return {
        **outcome,
        "data_version": dm.data_version,
        "metrics": {"val": val, "test": test["methods"]},
        "users": {k: len(v) for k, v in dm.split.as_dict().items()},
        "epochs": trained.epochs_run,
        "best_epoch": trained.best_epoch,
        "seconds_per_epoch": round(trained.seconds_per_epoch, 3),
        "initial_val_recall@10": trained.initial_val_recall_at_10,
        "notes": trained.notes,
        "report": report,
        **hopsworks,
    }


def evaluate_model(settings: Settings | None = None, dataset: str = "world", *, path: str | Path | None = None,
                   seed: int = 0, config_file: str | Path | None = None, report_dir: str | Path | None = None,
                   **hp: Any) -> dict[str, Any]:
    """``{"methods": {...}, "users": N, ...}`` on the world (served model) or HetRec (trained there)."""
    from soundmates.model.evaluate import write_report

    settings = settings or get_settings()
    if dataset == "hetrec":
        from soundmates.model.config import ModelConfig
        from soundmates.model.evaluate import evaluate_hetrec

        hetrec_dir = Path(path) if path else DEFAULT_HETREC_DIR
        if not hetrec_dir.exists():
            raise FileNotFoundError(f"HetRec Last.fm 2k not found at {hetrec_dir}: pass --path to the unzipped hetrec2011-lastfm-2k folder")
        cfg = ModelConfig.load(config_file, seed=seed, **hp)
        result = evaluate_hetrec(hetrec_dir, cfg=cfg, settings=settings, seed=seed)
    elif dataset == "world":
        result = _evaluate_served(settings, seed=seed)
    else:
        raise ValueError(f"unknown dataset {dataset!r}: use 'world' or 'hetrec'")
    out = Path(report_dir) if report_dir else settings.data_dir / "reports" / dataset
    result["report"] = write_report(result, out, name="evaluation")
    return result


def _evaluate_served(settings: Settings, *, seed: int = 0) -> dict[str, Any]:
    import pandas as pd

    from soundmates.features.schema import USER_FEATURES
    from soundmates.model.datamodule import paired_views
    from soundmates.model.evaluate import compare_on
    from soundmates.model.registry import ModelRegistry
    from soundmates.store import get_store

    reg = ModelRegistry(settings.models_dir)
    if reg.current_version() is None:
        raise LookupError("no model is registered yet: run `soundmates train` first")
    loaded = reg.load()
    held = loaded.meta.get("held_out", {})
    test_users = list(held.get("test", []))
    store = get_store(settings)
    df = store.read(USER_FEATURES)
    qa, qb = paired_views(df, test_users)
    if len(qa) < 2:
        raise LookupError(f"only {len(qa)} of the model's {len(test_users)} held-out users are still in the store")
    excluded = set(test_users) | set(held.get("val", []))
    train_rows = df[~df["user_id"].isin(excluded) & df["view"].isin(["a", "b"])]
    relevant = _taste_relevance(settings, qa["user_id"].tolist())
    result = compare_on(loaded.model, loaded.preprocessor, qa, qb, fit_rows=train_rows if len(train_rows) else None,
                        relevant=relevant, relevant_key="taste_precision@10" if relevant else None, seed=seed)
    result.update(dataset="world", model_version=loaded.version, data_version=store.data_version(USER_FEATURES))
    return result
