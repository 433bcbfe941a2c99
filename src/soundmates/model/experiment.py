"""One evaluation run: split, train, tune the baselines, gate, evaluate -- the same for every dataset.

``run_experiment(frame, cfg, ...)`` splits users by a stable hash (``cfg.seed``), trains the
two-tower on the training users, tunes every baseline family on the validation users (small
grids, :data:`~soundmates.model.protocol.VAL_METRIC`), scores the incumbent on the same users, lets the gate decide
what to serve, and evaluates every method on the test users against the whole population
(:mod:`soundmates.model.protocol`). ``result`` is the ``soundmates evaluate --json`` object.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from soundmates.model.config import ModelConfig

log = logging.getLogger(__name__)


@dataclass
class Experiment:
    result: dict[str, Any]
    trained: Any
    methods: dict[str, Any]
    tuned: dict[str, dict[str, Any]]
    validation: dict[str, float]
    decision: dict[str, Any]
    population: Any
    seconds: dict[str, float] = field(default_factory=dict)


def run_experiment(
    frame: pd.DataFrame,
    cfg: ModelConfig,
    *,
    protocol: str,
    taste: dict[str, np.ndarray] | None = None,
    friends: dict[str, set[str]] | None = None,
    thin_tracks_only: bool = False,
    incumbent=None,
    work_dir=None,
    grids: dict | None = None,
) -> Experiment:
    from soundmates.model.baselines import NOT_SERVABLE, tune_baselines
    from soundmates.model.gate import decide
    from soundmates.model.protocol import VAL_METRIC, blend_validation, evaluate_methods, make_population
    from soundmates.model.train import fit_model

    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    trained = fit_model(cfg, frame, work_dir=work_dir)
    secs["train_s"] = time.perf_counter() - t0
    split = trained.datamodule.split
    pop = make_population(frame, taste=taste, friends=friends, thin_tracks_only=thin_tracks_only)
    scorer = _ValidationScorer(pop, split.val)

    t0 = time.perf_counter()
    fit_rows = pop.full[pop.full["user_id"].isin(set(split.train))]
    tuned = tune_baselines(fit_rows, scorer.score, seed=cfg.seed, grids=grids)
    secs["tune_baselines_s"] = time.perf_counter() - t0
    methods = _methods(trained, tuned)
    validation = {"two_tower": scorer.score(methods["two_tower"]), "two_tower_init": scorer.score(methods["two_tower_init"])}
    validation.update({fam: t["val"] for fam, t in tuned.items() if "val" in t})
    inc = _score_incumbent(incumbent, scorer.score)
    servable = {m for m in methods if m not in NOT_SERVABLE}
    decision = decide(validation, incumbent=inc, servable=servable, metric=VAL_METRIC)
    candidates = blend_validation({m: scorer.all_metrics(e) for m, e in methods.items()})
    t0 = time.perf_counter()
    ev = evaluate_methods(methods, pop, split.test, seed=cfg.seed)
    secs["evaluate_s"] = time.perf_counter() - t0
    result = _result(protocol, cfg, trained, pop, tuned, ev, decision, _validation_section(trained, validation, candidates, inc))
    return Experiment(
        result=result,
        trained=trained,
        methods=methods,
        tuned=tuned,
        validation=validation,
        decision=decision,
        population=pop,
        seconds=secs,
    )


class _ValidationScorer:
    """Every validation metric of an embedder on the validation users, computed once per embedder."""

    def __init__(self, pop, val_users: list[str]):
        self.pop, self.val_users = pop, val_users
        self.scored: dict[int, tuple[Any, dict[str, float]]] = {}  # id -> (embedder kept alive, every candidate metric)

    def all_metrics(self, emb) -> dict[str, float]:
        from soundmates.model.protocol import validation_metrics

        if id(emb) not in self.scored:
            self.scored[id(emb)] = (emb, validation_metrics(emb, self.pop, self.val_users))
        return self.scored[id(emb)][1]

    def score(self, emb) -> float:
        """The gate's validation metric (:data:`~soundmates.model.protocol.VAL_METRIC`)."""
        from soundmates.model.protocol import VAL_METRIC

        return self.all_metrics(emb)[VAL_METRIC]


def _methods(trained, tuned: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The trained two-tower, its LSA start, and every tuned baseline that has an embedder."""
    from soundmates.model.embedder import ModelEmbedder

    methods: dict[str, Any] = {
        "two_tower": ModelEmbedder(trained.model, trained.preprocessor, name="two_tower"),
        "two_tower_init": ModelEmbedder(trained.initial_model(), trained.preprocessor, name="two_tower_init"),
    }
    methods.update({fam: t["embedder"] for fam, t in tuned.items() if "embedder" in t})
    return methods


def _score_incumbent(incumbent, score) -> dict[str, Any] | None:
    """``{"method", "version", "val"}`` of the served model, or None (none, or it could not be scored)."""
    if incumbent is None:
        return None
    try:
        return {"method": incumbent.name, "version": incumbent.version, "val": score(incumbent)}
    except Exception as e:  # noqa: BLE001 - an unreadable incumbent must not block a good new one
        log.warning("incumbent %s could not be scored: %s", getattr(incumbent, "version", "?"), e)
        return None


def _validation_section(trained, validation, candidates, inc) -> dict[str, Any]:
    """The ``validation`` object of the result."""
    from soundmates.model.protocol import VAL_METRIC

    return {
        "metric": VAL_METRIC,
        "users": len(trained.datamodule.split.val),
        "scores": validation,
        "candidates": candidates,
        "incumbent": inc,
        "two_tower_epochs": trained.epochs_run,
        "two_tower_best_epoch": trained.best_epoch,
        "two_tower_notes": trained.notes,
    }


def _result(protocol: str, cfg: ModelConfig, trained, pop, tuned, ev, decision, validation_section) -> dict[str, Any]:
    """The ``soundmates evaluate --json`` object of the run."""
    split = trained.datamodule.split
    return {
        "protocol": protocol,
        "served": decision["served"],
        "users": sum(1 for u in split.test if u in pop.pos),
        "candidates": len(pop.ids),
        "methods": ev["methods"],
        "slices": ev["slices"],
        "reason": decision["reason"],
        "validation": validation_section,
        "tuned": {fam: ({"params": t["params"], "grid": t["grid"]} if "params" in t else t) for fam, t in tuned.items()},
        "seed": cfg.seed,
        "split": {k: len(v) for k, v in split.as_dict().items()},
        "thin_rule": pop.thin_rule,
        "objective": cfg.objective,
    }


# --------------------------------------------------------------------------- datasets
def features_frame(profiles, settings=None) -> pd.DataFrame:
    """``user_features`` rows (full/a/b) of canonical profiles through the features stage, ``combined``
    standardised over these users (as the features pipeline does over the stored users)."""
    from soundmates.config import get_settings
    from soundmates.features.encoder import TextEncoder
    from soundmates.features.scaler import CombinedScaler
    from soundmates.features.taste import featurize_profiles

    settings = settings or get_settings()
    encoder = TextEncoder(settings)
    batch = featurize_profiles(profiles, encoder, top_n=settings.top_n_artists)
    if batch.rejected:
        log.warning("%d profile(s) rejected by the features stage, e.g. %s", len(batch.rejected), batch.rejected[:2])
    df = pd.DataFrame(batch.feature_rows)
    raw = np.stack([np.asarray(v, dtype=np.float64) for v in df["combined"]])
    scaler = CombinedScaler.fit(
        raw,
        user_ids=df["user_id"].tolist(),
        profile_hashes=df["profile_hash"].astype(str).tolist(),
        encoder_model=encoder.model_id,
        encoder_dim=encoder.dim,
    )
    df["combined"] = list(scaler.transform(raw).astype(np.float32))
    return df
