"""Stage function: embed every stored user with the current model and publish a new index version."""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

log = logging.getLogger("soundmates.pipelines.index")

EMBED_CHUNK = 20_000  # rows per embedder call: bounds memory at 1M users


class NothingToIndex(RuntimeError):
    """The feature store holds no user features yet."""


def parameters(manifest: dict) -> dict:
    """The search parameters of a version: Annoy's n_trees/search_k or Voyager's M/ef, and the calibrated recall."""
    out = {k: manifest[k] for k in ("metric", "n_trees", "search_k", "M", "ef_construction", "ef") if k in manifest}
    out["calibrated_recall_at_10"] = (manifest.get("calibration") or {}).get("recall_at_k")
    return out


def parameters_text(manifest: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in parameters(manifest).items() if k not in ("metric", "calibrated_recall_at_10"))


def build_index(
    settings=None, *, n_trees: int | None = None, search_k: int | None = None, progress: bool = True, backend: str | None = None
) -> dict:
    """Read view ``full`` of ``user_features`` (one data version), embed, build, publish; returns a summary.

    ``backend``: ``annoy`` or ``voyager`` (default ``SOUNDMATES_INDEX_BACKEND``, else Annoy).

    Keys: ``version``, ``published`` (False if a concurrent build of newer data was published first:
    then ``current`` names that one), ``count``, ``dim``, ``parameters`` (n_trees, search_k, calibrated
    recall@10), ``model_version``, ``feature_data_version``, ``skipped``, ``removed_excluded``, ``seconds``.
    """
    from soundmates.config import get_settings
    from soundmates.features import schema as S
    from soundmates.index import UserIndex
    from soundmates.model.embedder import candidate_version, get_embedder
    from soundmates.store import get_store

    def say(msg: str) -> None:
        log.info("%s", msg)
        if progress:
            print(f"index: {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    settings = settings or get_settings()
    store = get_store(settings)
    data_version = store.data_version(S.USER_FEATURES)
    if data_version is None:
        raise NothingToIndex("no user features are stored yet: run 'soundmates ingest' and 'soundmates features build' first")
    # Read the data version we record, so the manifest says exactly what was indexed; the time is taken
    # before the read, so a user removed while it runs counts as removed before it (their row is old data).
    read_at = time.time()
    frame = _full_rows(store, data_version)
    index = UserIndex(settings, backend=backend)
    frame, n_removed = _without_removed(index, frame, read_at)

    embedder = get_embedder(settings)
    space = candidate_version(embedder)  # a feedback-tuned embedder's candidate side is its base's
    say(f"embedding {len(frame):,} users with model {space}")
    vectors = _embed(embedder, frame)
    say(f"building the {index.backend.name} index ({vectors.shape[0]:,} x {vectors.shape[1]})")
    version = index.build(
        frame["user_id"].astype(str).tolist(),
        vectors,
        {
            "model_version": space,
            "feature_data_version": data_version,
            "features_read_at": read_at,
            "source": f"{S.USER_FEATURES}/{S.VIEW_FULL}",
        },
        n_trees=n_trees,
        search_k=search_k,
    )
    built = index.last_build or {}
    m = built.get("manifest") or index.verify(version)
    if built.get("published", True):
        say(f"published {version}: {m['count']:,} users, {parameters_text(m)}")
    else:
        say(f"built {version}, not published: {built.get('current')} indexes newer data")
    return _build_summary(index, version, built, m, n_removed, t0)


def _full_rows(store, data_version: int):
    """The ``full`` rows of ``user_features`` at ``data_version``, one per user (the last)."""
    from soundmates.features import schema as S

    frame = store.read(S.USER_FEATURES, as_of=data_version)
    frame = frame[frame["view"] == S.VIEW_FULL].drop_duplicates("user_id", keep="last").reset_index(drop=True)
    if frame.empty:
        raise NothingToIndex(f"user_features (data version {data_version}) holds no 'full' rows: run 'soundmates features build'")
    return frame


def _without_removed(index, frame, read_at: float):
    """``(frame without the users who asked to be removed before read_at, how many rows were left out)``."""
    removed = index.blocked_ids(frame["user_id"].astype(str).unique().tolist(), read_at)
    n_removed = int(frame["user_id"].isin(removed).sum())
    frame = frame[~frame["user_id"].isin(removed)].reset_index(drop=True)
    if frame.empty:
        raise NothingToIndex("every stored user has asked to be removed")
    return frame, n_removed


def _embed(embedder, frame) -> np.ndarray:
    """Every row's vector, ``EMBED_CHUNK`` rows per embedder call."""
    parts = [
        np.asarray(embedder.embed(frame.iloc[s : s + EMBED_CHUNK]), dtype=np.float32) for s in range(0, len(frame), EMBED_CHUNK)
    ]
    return np.vstack(parts)


def _build_summary(index, version: str, built: dict, m: dict, n_removed: int, t0: float) -> dict:
    """The ``soundmates index build --json`` object (see :func:`build_index`)."""
    return {
        "version": version,
        "published": bool(built.get("published", True)),
        "current": built.get("current", version),
        "count": m["count"],
        "dim": m["dim"],
        "backend": m.get("backend", "annoy"),
        "parameters": parameters(m),
        "model_version": m["model_version"],
        "feature_data_version": m["feature_data_version"],
        "skipped": m["skipped"],
        "removed_excluded": n_removed + int(m.get("n_removed") or 0),
        "fresh_buffer": len(index.fresh),
        "seconds": round(time.perf_counter() - t0, 2),
    }
