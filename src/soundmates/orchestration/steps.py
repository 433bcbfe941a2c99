"""What each DAG task does, as plain functions over the pipeline stages.

DAG files stay wiring; these functions import the stages (torch, sentence-
transformers, deltalake...) only when a task runs, return JSON-able dicts for
XCom, and are callable from tests without Airflow.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from soundmates.atomic import atomic_write_text
from soundmates.logs import configure_logging

log = logging.getLogger(__name__)

# The one logging policy (soundmates.logs): a handled per-user failure is one line in the task log.
configure_logging(handler=False)

# A bootstrap run waits for Spotify's rate limits at most this long in all (from the run's start);
# past it, the users still deferred are reported as such and the run goes on without them.
MAX_RATE_LIMIT_WAIT = timedelta(hours=6)


def jsonable(obj: Any) -> Any:
    """A stage's result (dataclass, pydantic model, dict) as plain JSON types for XCom.

    Non-finite floats become None: XCom is strict JSON (no NaN), and a metric that does not exist
    for a dataset (e.g. a genre metric without genres) is NaN in the stage's result.
    """
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "model_dump"):
        return jsonable(obj.model_dump(mode="json"))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalars
        return jsonable(obj.item())
    return json.loads(json.dumps(obj, default=str))


def ingest_batch(refs: list[str]) -> dict[str, Any]:
    """Ingest one batch of profile references (resumable and idempotent in the ingest stage)."""
    from soundmates.orchestration.credentials import spotify_credentials
    from soundmates.pipelines import ingest_users

    with spotify_credentials() as source:
        log.info("ingesting %d reference(s), credentials from %s", len(refs), source)
        return jsonable(ingest_users(refs, progress=False))


def ingest_resume_at(
    result: dict[str, Any],
    *,
    run_started: datetime | None,
    now: datetime | None = None,
    max_wait: timedelta = MAX_RATE_LIMIT_WAIT,
) -> datetime | None:
    """When a batch whose users were deferred by a rate limit should run again; None = do not.

    The moment is the server's own delay (the largest ``retry_after_s`` of the batch, at least
    1 s). None when nothing was deferred, or when that moment is more than ``max_wait`` after the
    run started (every wait is bounded: the deferred users are then reported, not waited for).
    Running the batch again is safe: stored users are skipped and kept raw pages reused.
    """
    deferred = result.get("deferred") or []
    if not deferred:
        return None
    now = now or datetime.now(UTC)
    wait_s = max(1.0, max(float(d.get("retry_after_s") or 0.0) for d in deferred))
    when = now + timedelta(seconds=wait_s)
    started = run_started or now
    if when - started > max_wait:
        log.warning(
            "%d user(s) still rate-limited after waiting %s; not waiting %.0f s more", len(deferred), now - started, wait_s
        )
        return None
    log.info(
        "%d user(s) rate-limited: running this batch again at %s (Retry-After %.0f s)",
        len(deferred),
        when.isoformat(timespec="seconds"),
        wait_s,
    )
    return when


def _count(value: Any) -> int:
    return len(value) if isinstance(value, (list, tuple, set, dict)) else int(value or 0)


def merge_ingest(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up the mapped ingest batches; fail only when no user at all could be ingested."""
    total: dict[str, Any] = {"batches": 0, "ingested": 0, "skipped": 0, "failed": [], "deferred": [], "api_calls": 0}
    for res in results:
        total["batches"] += 1
        total["ingested"] += _count(res.get("ingested"))
        total["skipped"] += _count(res.get("skipped"))
        total["api_calls"] += int(res.get("api_calls") or 0)
        total["failed"].extend(res.get("failed") or [])
        total["deferred"].extend(res.get("deferred") or [])
    if total["ingested"] == 0 and total["skipped"] == 0:
        reasons = sorted({str(f.get("reason")) for f in total["failed"]})[:5]
        if total["deferred"]:
            reasons.append(f"{len(total['deferred'])} user(s) still rate-limited by Spotify after the longest wait")
        raise RuntimeError(f"no user could be ingested ({len(total['failed'])} failed); reasons: {reasons}")
    return total


def build_features() -> dict[str, Any]:
    from soundmates.pipelines import build_features as run

    return jsonable(run())


def train(**hp: Any) -> dict[str, Any]:
    """Train with the model overrides a DAG run was given; ``None`` = not given (the model YAML's value)."""
    from soundmates.pipelines import train_model

    return jsonable(train_model(**{k: v for k, v in hp.items() if v is not None}))


def evaluate(dataset: str = "world") -> dict[str, Any]:
    from soundmates.pipelines import evaluate_model

    return jsonable(evaluate_model(dataset=dataset))


def promote() -> dict[str, Any]:
    """The gate, a step after evaluation: serve the trained model only if it beat the incumbent and
    the best tuned baseline on validation; otherwise the best baseline (or the incumbent) is served."""
    from soundmates.pipelines.model import promote_model

    return jsonable(promote_model())


def build_index() -> dict[str, Any]:
    from soundmates.pipelines import build_index as run

    return jsonable(run(progress=False))


def build_map() -> dict[str, Any]:
    """The taste map's layout of the index just published (UMAP; see ``pipelines.taste_map``)."""
    from soundmates.pipelines.taste_map import build_map as run

    return jsonable(run(progress=False))


# --- retraining state: how many users the current model was trained with ------------------------


def _state_path(settings) -> Path:
    return Path(settings.data_dir) / "orchestration" / "last_training.json"


def stored_user_count(settings=None) -> int:
    """Users with a stored profile (rows of ``user_profiles``; 0 before the first ingest)."""
    from soundmates.config import get_settings
    from soundmates.store import get_store

    settings = settings or get_settings()
    for info in get_store(settings).groups():
        if info.name == "user_profiles":
            return int(info.rows)
    return 0


def last_training(settings=None) -> dict[str, Any] | None:
    from soundmates.config import get_settings

    path = _state_path(settings or get_settings())
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def record_training(users: int, result: dict[str, Any], settings=None) -> dict[str, Any]:
    """Remember the user count a training run saw (atomic write: a crash leaves the old record)."""
    from soundmates.config import get_settings

    path = _state_path(settings or get_settings())
    state = {
        "users": int(users),
        "model_version": result.get("version") or result.get("model_version"),
        "promoted": result.get("promoted"),
        "at": datetime.now(UTC).isoformat(),
    }
    atomic_write_text(path, json.dumps(state))
    return state


def new_users_since_training(settings=None) -> dict[str, int]:
    """``{"users": now, "trained_with": then, "new": now - then}`` (then = 0 before any training)."""
    now = stored_user_count(settings)
    state = last_training(settings) or {}
    then = int(state.get("users") or 0)
    return {"users": now, "trained_with": then, "new": max(0, now - then)}


def retrain_decision(
    counts: dict[str, int], *, has_model: bool, asset_triggered: bool, min_new_users: int, force: bool = False
) -> dict[str, Any]:
    """Whether a retrain run trains: ``{"train": bool, "reason": str}``.

    Nothing is retrained before the bootstrap trained a first model (a weekly run right
    after ``make run`` would race it on an empty store). Asset-triggered runs also need
    ``min_new_users`` users stored since the last training; weekly/manual runs and
    ``force`` do not.
    """
    if not has_model and not force:
        return {"train": False, "reason": "no model trained yet: run soundmates_bootstrap first"}
    if counts.get("users", 0) == 0:
        return {"train": False, "reason": "no users are stored: nothing to train on"}
    if force or not asset_triggered:
        return {"train": True, "reason": f"training on {counts['users']} users ({'forced' if force else 'scheduled/manual run'})"}
    if counts["new"] >= min_new_users:
        return {"train": True, "reason": f"{counts['new']} new users since the last training (>= {min_new_users})"}
    return {
        "train": False,
        "reason": f"only {counts['new']} new user(s) since the last training (< {min_new_users}); not training",
    }


# --- gates -----------------------------------------------------------------------------------------


def promotion_decision(trained: dict[str, Any]) -> dict[str, Any]:
    """``{"promoted", "version", "reason"}`` from a training result.

    ``promote()`` (the gate) makes the decision; this only reads it back, so
    there is exactly one gate. ``promoted`` = what is served changed.
    """
    version = trained.get("version") or trained.get("model_version")
    promoted = bool(trained.get("promoted"))
    reason = trained.get("reason") or trained.get("promotion_reason") or trained.get("gate") or ""
    if not reason:
        reason = "passed the gate" if promoted else "the registry did not promote it"
    log.info("model %s promoted=%s (%s)", version, promoted, reason)
    return {"promoted": promoted, "version": None if version is None else str(version), "reason": str(reason)}


def check_published_index(built: dict[str, Any]) -> dict[str, Any]:
    """Confirm the index just built is the one readers now get; returns its manifest."""
    from soundmates.index import UserIndex

    manifest = jsonable(UserIndex().manifest()) or {}
    if built.get("published") is False:  # a build of newer data got there first: readers already have newer
        return manifest
    want = built.get("version")
    have = manifest.get("version")
    if want is not None and have is not None and str(want) != str(have):
        raise RuntimeError(f"index version {want} was built but readers get {have}; not publishing")
    return manifest
