"""Model stage, end to end: train (registered unpromoted) -> evaluate -> promote (the gate).

``train_model`` trains on ``user_features`` at a named data version (default: the latest),
tunes the baselines, scores everything on validation and test users against the whole
population (:mod:`soundmates.model.experiment`) and registers the two-tower model and the
best tuned baseline, **unpromoted**, with the gate's decision. ``promote_model`` (the step
after evaluation) makes the gate's choice current. ``evaluate_model`` reports the protocol:
on a generated world built straight from the generator (``path``), on HetRec Last.fm 2k, or
(no ``path``) the latest training's evaluation on the stored users.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from soundmates.config import REPO_ROOT, Settings, get_settings

log = logging.getLogger(__name__)

DEFAULT_HETREC_DIR = REPO_ROOT.parent / "shared" / "data" / "hetrec2011-lastfm-2k"
PROTOCOL_WORLD = (
    "world: held-out users' full profiles vs every user's full profile (taste metrics, hidden taste); "
    "half a vs everyone's full profile (neighbour_recall@20); half a vs every half b (recall@10)"
)
PROTOCOL_HETREC = (
    "hetrec: held-out users' half a vs every user's full profile (neighbour_recall@20 of the held-out "
    "half b's artists), full vs full (friends@10), half a vs every half b (recall@10)"
)
DEFAULT_WORLD_USERS = 2000


def _feature_schema(pre) -> dict[str, Any]:
    from soundmates.features.schema import FEATURE_COLUMNS

    return {
        "columns": FEATURE_COLUMNS,
        "dense_columns": pre.dense_columns,
        "dense_widths": pre.dense_widths,
        "genre_vocab": len(pre.genres.tokens),
        "artist_vocab": len(pre.artists.tokens),
        "hash_buckets": pre.genres.buckets,
    }


def _world_taste_for(settings: Settings, user_ids: list[str]):
    """Hidden taste of the stored users when they come from the configured generated world, else None."""
    world = Path(settings.world_dir)
    if not (world / "users.txt").exists():
        return None
    try:
        from soundmates.sources.world import world_taste

        return world_taste(world, user_ids)
    except (KeyError, ValueError, OSError) as e:  # users not from this world, or no ground truth
        log.warning("no taste ground truth for these users: %s", e)
        return None


def _incumbent(settings: Settings):
    """The served embedder, as the gate's incumbent; a feedback-tuned one is its base (the gate judges base
    embedders, and the query-side map is fitted afresh on the current votes after it)."""
    from soundmates.model.registry import ModelRegistry

    reg = ModelRegistry.for_settings(settings)
    if reg.served_version() is None:
        return None
    try:
        served = reg.load_embedder()
    except Exception as e:  # noqa: BLE001 - an unreadable incumbent must not block a good new model
        log.warning("the served model could not be loaded: %s", e)
        return None
    from soundmates.model.feedback_tuning import FeedbackTuned

    return served.base if isinstance(served, FeedbackTuned) else served


def _base_version(decision: dict[str, Any], candidates: dict[str, str], trained_version: str, incumbent) -> str | None:
    """The registry version of the embedder the gate chose to serve (None: not registered, nothing to tune)."""
    chosen = decision.get("promote")
    if chosen == "two_tower":
        return trained_version
    if chosen is not None:
        return candidates.get(chosen)
    return getattr(incumbent, "version", None) if incumbent is not None and decision.get("served") == incumbent.name else None


def _register_feedback_tuned(reg, record: dict[str, Any], tuned, base_version: str | None, data_version) -> dict[str, Any]:
    """Register ``tuned`` (the gate's choice, its query side fitted on every vote) when the held-out decision
    said ``used``; the record then names what is served."""
    if tuned is None:
        return record
    if base_version is None:
        return record | {"note": "the chosen embedder is not registered: the base stays served"}
    version = reg.save_feedback_tuned(tuned, base_version=base_version, data_version=data_version, extra={"feedback": record})
    return record | {"tuned_served": True, "served_name": reg.meta(version)["method"], "served_version": version}


def train_model(
    settings: Settings | None = None,
    *,
    config_file: str | Path | None = None,
    data_version: int | None = None,
    fast_dev_run: bool = False,
    **hp: Any,
) -> dict[str, Any]:
    """Train + tune baselines + evaluate; register the model and the best baseline, unpromoted."""
    from soundmates.model.config import ModelConfig
    from soundmates.model.experiment import run_experiment
    from soundmates.model.registry import ModelRegistry, push_to_hopsworks
    from soundmates.pipelines.feedback_eval import training_feedback

    settings = settings or get_settings()
    cfg = ModelConfig.load(config_file, **hp)
    data_version, frame = _training_frame(settings, data_version)
    taste = _world_taste_for(settings, sorted(set(frame.loc[frame["view"] == "full", "user_id"].astype(str))))
    incumbent = _incumbent(settings)
    exp = run_experiment(
        frame,
        cfg,
        protocol=PROTOCOL_WORLD.replace("world:", "store:"),
        taste=taste,
        incumbent=incumbent,
        work_dir=settings.models_dir / "runs",
    )
    reg = ModelRegistry.for_settings(settings)
    res = exp.result
    # what serves after the promote step: the incumbent itself when the gate keeps it (not this run's refit
    # of its method), so the feedback map is fitted on the vectors of the version it is registered on
    kept = exp.decision["promote"] is None and incumbent is not None and exp.decision["served"] == incumbent.name
    chosen = incumbent if kept else exp.methods.get(exp.decision["served"])
    res["feedback"], tuned = training_feedback(settings, chosen, frame)
    metrics = {"val": exp.validation, "test": res["methods"], "test_users": res["users"], "slices": res["slices"]}
    candidates = _register_candidates(reg, exp, metrics, data_version)
    version = reg.save(
        exp.trained,
        metrics=metrics,
        data_version=data_version,
        feature_schema=_feature_schema(exp.trained.preprocessor),
        extra={"evaluation": res, "gate": exp.decision, "candidates": candidates},
    )
    if tuned is not None:  # its base may be the version just saved: registered after it, then recorded on it
        base_version = _base_version(exp.decision, candidates, version, incumbent)
        res["feedback"] = _register_feedback_tuned(reg, res["feedback"], tuned, base_version, data_version)
        reg.annotate(version, evaluation=res)
    hopsworks = push_to_hopsworks(reg.versions_dir / version, reg.meta(version))
    return _training_summary(exp, version, candidates, data_version) | hopsworks


def _training_frame(settings: Settings, data_version: int | None):
    """``(data_version, user_features at it)``: the latest version when none is named."""
    from soundmates.features.schema import USER_FEATURES
    from soundmates.store import get_store

    store = get_store(settings)
    if data_version is None:
        data_version = store.data_version(USER_FEATURES)
        if data_version is None:
            raise LookupError("the feature store has no user_features yet: run `soundmates features build` first")
    return data_version, store.read(USER_FEATURES, as_of=data_version)


def _register_candidates(reg, exp, metrics: dict[str, Any], data_version: int) -> dict[str, str]:
    """Register, unpromoted, what the gate may promote besides the trained model: ``method -> version``.

    The LSA start (``two_tower_init``) when the gate chose it, and the best servable tuned baseline.
    """
    trained, decision = exp.trained, exp.decision
    candidates: dict[str, str] = {}
    if decision["promote"] == "two_tower_init":
        candidates["two_tower_init"] = reg.save(
            trained,
            metrics=metrics,
            data_version=data_version,
            feature_schema=_feature_schema(trained.preprocessor),
            method="two_tower_init",
            model=trained.initial_model(),
        )
    servable = {
        m: v
        for m, v in exp.validation.items()
        if m in exp.tuned and exp.methods.get(m) is not None and getattr(exp.methods[m], "servable", True) and v == v
    }
    best_base = max(servable, key=servable.__getitem__) if servable else None
    if best_base is not None:
        candidates[best_base] = reg.save_baseline(
            exp.methods[best_base],
            metrics={"val": exp.validation[best_base]},
            data_version=data_version,
            extra={"tuned": exp.result["tuned"].get(best_base)},
        )
    return candidates


def _training_summary(exp, version: str, candidates: dict[str, str], data_version: int) -> dict[str, Any]:
    """The ``soundmates train --json`` object (without the Hopsworks keys)."""
    res, trained = exp.result, exp.trained
    return {
        "version": version,
        "promoted": False,
        "reason": "registered unpromoted; run the promote step (the gate) after evaluation",
        "gate": exp.decision,
        "candidates": candidates,
        "data_version": data_version,
        "metrics": {"val": exp.validation, "test": res["methods"]},
        "users": res["split"],
        "epochs": trained.epochs_run,
        "best_epoch": trained.best_epoch,
        "seconds_per_epoch": round(trained.seconds_per_epoch, 3),
        "notes": trained.notes,
        "seconds": {k: round(v, 1) for k, v in exp.seconds.items()},
        "feedback": res["feedback"],
    }


def _feedback_target(reg, feedback: dict[str, Any], base: str | None) -> tuple[str | None, str]:
    """What to make current on the gate's choice ``base`` (None: the incumbent stays), and why.

    Training's feedback-tuned version when it is tuned on that base; else the base. When the incumbent
    stays and is a feedback-tuned one that training did not refit, its base: no map outlives the votes
    it was fitted on. None: nothing to change.
    """
    served = reg.served_version()
    on = base if base is not None else (reg.candidate_version(served) if served is not None else None)
    if on is None:
        return None, ""
    tuned = feedback.get("served_version") if feedback.get("tuned_served") else None
    if tuned and reg.candidate_version(tuned) == on:
        return tuned, f"query side tuned on {feedback.get('served_fit_votes')} votes ({feedback.get('reason')})"
    if base is None and served != on:
        return on, f"the feedback-tuned query side is dropped ({feedback.get('reason') or 'no votes'})"
    return base, ""


def promote_model(settings: Settings | None = None, version: str | None = None) -> dict[str, Any]:
    """The gate's step: make the choice recorded by training ``version`` (default: the latest) current.

    When training registered the choice tuned on feedback (``feedback.tuned_served``), that version is
    made current instead of its base (see ``_feedback_target``).
    """
    from soundmates.model.registry import ModelRegistry, RegistryError

    settings = settings or get_settings()
    reg = ModelRegistry.for_settings(settings)
    if version is None:
        trained = [v for v in reg.versions() if reg.meta(v).get("method", "two_tower") == "two_tower" and "gate" in reg.meta(v)]
        if not trained:
            raise RegistryError("no trained model with a gate decision: run `soundmates train` first")
        version = max(trained, key=lambda v: reg.meta(v).get("created_at", ""))
    meta = reg.meta(version)
    gate, candidates = meta.get("gate") or {}, meta.get("candidates") or {}
    chosen = gate.get("promote")
    reason = gate.get("reason", "")
    if chosen == "two_tower":
        candidates = {**candidates, "two_tower": version}
    target, why = (None, "")
    if chosen is None or chosen in candidates:
        target, why = _feedback_target(reg, (meta.get("evaluation") or {}).get("feedback") or {}, candidates.get(chosen or ""))
    if target is None:
        reg.mark_not_promoted(version, reason)
        return {
            "promoted": False,
            "model_promoted": False,
            "served": gate.get("served"),
            "version": reg.current_version(),
            "trained_version": version,
            "reason": reason,
        }
    reason = f"{reason}; {why}" if why else reason
    reg.promote(target, reason)
    if target != version:
        reg.mark_not_promoted(version, reason)
    return {
        "promoted": True,
        "model_promoted": chosen == "two_tower",
        "served": reg.meta(target).get("method", chosen),
        "version": target,
        "trained_version": version,
        "reason": reason,
        "tuned_served": target != reg.candidate_version(target),
    }


# --------------------------------------------------------------------------- evaluation
def evaluate_model(
    settings: Settings | None = None,
    dataset: str = "world",
    *,
    path: str | Path | None = None,
    users: int | None = None,
    seed: int | None = None,
    config_file: str | Path | None = None,
    report_dir: str | Path | None = None,
    **hp: Any,
) -> dict[str, Any]:
    """The protocol's JSON object (see :mod:`soundmates.model.protocol`) for ``dataset``."""
    from soundmates.model.evaluate import write_report

    settings = settings or get_settings()
    if dataset == "hetrec":
        result = evaluate_hetrec_dir(settings, path, seed=seed, config_file=config_file, **hp)
    elif dataset == "world" and path is not None:
        result = evaluate_world_dir(settings, path, users=users, seed=seed, config_file=config_file, **hp)
    elif dataset == "world":
        result = stored_evaluation(settings)
    else:
        raise ValueError(f"unknown dataset {dataset!r}: use 'world' or 'hetrec'")
    out = Path(report_dir) if report_dir else settings.data_dir / "reports" / dataset
    result["report"] = write_report(result, out, name="evaluation")
    return result


def evaluate_world_dir(
    settings: Settings,
    path: str | Path,
    *,
    users: int | None = None,
    seed: int | None = None,
    config_file=None,
    grids=None,
    **hp: Any,
) -> dict[str, Any]:
    """Profiles straight from the world at ``path`` (generated there with world seed 0 when missing),
    features, train, evaluate. ``seed`` is the split/training seed (``None``: the model YAML's)."""
    from soundmates.model.config import ModelConfig
    from soundmates.model.experiment import features_frame, run_experiment
    from soundmates.sources.world import world_profiles, world_taste
    from soundmates.world.generator import generate_world

    cfg = ModelConfig.load(config_file, seed=seed, **hp)  # a bad config fails before the world is built
    world = Path(path)
    if not (world / "world.json").exists():
        world.mkdir(parents=True, exist_ok=True)
        generate_world(world, int(users or DEFAULT_WORLD_USERS), 0)
    profiles = world_profiles(world, users)
    frame = features_frame(profiles, settings)
    ids = sorted(set(frame["user_id"].astype(str)))
    exp = run_experiment(frame, cfg, protocol=PROTOCOL_WORLD, taste=world_taste(world, ids), grids=grids)
    return exp.result | {"dataset": "world", "world": str(world), "seconds": {k: round(v, 1) for k, v in exp.seconds.items()}}


def evaluate_hetrec_dir(
    settings: Settings, path: str | Path | None, *, seed: int | None = None, config_file=None, grids=None, **hp: Any
) -> dict[str, Any]:
    """HetRec Last.fm 2k: halves, features, train, evaluate; ``seed`` (``None``: the model YAML's) also draws the halves."""
    from soundmates.model.config import ModelConfig
    from soundmates.model.experiment import features_frame, run_experiment
    from soundmates.sources.hetrec import load_hetrec

    hetrec_dir = Path(path) if path else DEFAULT_HETREC_DIR
    if not hetrec_dir.exists():
        raise FileNotFoundError(
            f"HetRec Last.fm 2k not found at {hetrec_dir}: pass --path to the unzipped hetrec2011-lastfm-2k folder"
        )
    cfg = ModelConfig.load(config_file, seed=seed, **hp)
    ds = load_hetrec(hetrec_dir, seed=cfg.seed)
    frame = features_frame(ds.profiles, settings)
    exp = run_experiment(frame, cfg, protocol=PROTOCOL_HETREC, friends=ds.friends, thin_tracks_only=True, grids=grids)
    return exp.result | {"dataset": "hetrec", "seconds": {k: round(v, 1) for k, v in exp.seconds.items()}}


def stored_evaluation(settings: Settings) -> dict[str, Any]:
    """The latest training's evaluation on the stored users; ``served`` = what the registry serves now."""
    from soundmates.model.registry import ModelRegistry

    reg = ModelRegistry.for_settings(settings)
    trained = [v for v in reg.versions() if "evaluation" in reg.meta(v)]
    if not trained:
        raise LookupError(
            "no model is registered yet: run `soundmates train` first "
            "(or `soundmates evaluate --dataset world --path WORLD_DIR` to evaluate on a generated world)"
        )
    version = max(trained, key=lambda v: reg.meta(v).get("created_at", ""))
    meta = reg.meta(version)
    result = dict(meta["evaluation"])
    served = reg.served_version()
    if served is not None:
        smeta = reg.meta(served)
        result["served"] = smeta.get("method", "two_tower")
        result["served_version"] = served
        if smeta.get("base_version"):  # feedback-tuned: the base's candidate side, evaluated as the base
            result["served_base"] = smeta.get("base_method")
            result["served_base_version"] = smeta["base_version"]
        result["reason"] = smeta.get("promotion_reason") or result.get("reason")
    result.update(dataset="world", model_version=version, data_version=meta.get("data_version"))
    result["feedback_metrics"] = _served_feedback_or_error(settings)
    return result


def _served_feedback_or_error(settings: Settings) -> dict[str, Any] | None:
    """The served embedder's feedback metrics (None: nobody voted); a failure is recorded, never fatal."""
    from soundmates.pipelines.feedback_eval import served_feedback

    try:
        return served_feedback(settings)
    except Exception as e:  # noqa: BLE001 - the protocol's evaluation stands without the feedback metric
        log.warning("feedback metrics could not be computed: %s", e)
        return {"error": f"feedback metrics could not be computed ({e}); check the feature store and the registry"}
