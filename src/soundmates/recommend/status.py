"""Pipeline status, the served method's evaluation and the 2-D taste map, for the dashboard and the CLI."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from soundmates.recommend.context import RecommendContext, embedder_info
from soundmates.recommend.models import Evaluation, MapData, MethodScores, NothingBuiltYet, PipelineStatus

log = logging.getLogger("soundmates.recommend")

MAP_MAX_USERS = 5000  # the on-the-fly PCA map (no stored layout)
MAP_POINTS = 20_000  # points a page draws from a stored layout; past it an even sample (plus those highlighted)


def _index_part(ctx: RecommendContext, st: PipelineStatus) -> dict:
    from soundmates.index import IndexCorrupt

    try:
        idx = ctx.index.status()
    except IndexCorrupt as e:
        idx = {}
        st.warnings.append(str(e))
    st.index_version = idx.get("version")
    st.index_size = int(idx.get("count") or 0)
    st.index_built_at = idx.get("built_at")
    st.index_age_s = idx.get("age_s")
    st.index_parameters = dict(idx.get("parameters") or {})
    st.fresh_buffer_size = int(idx.get("fresh") or 0)
    st.rebuild_due = bool(idx.get("rebuild_due"))
    st.tombstones = int(idx.get("tombstones") or 0)
    st.warnings += list(idx.get("warnings") or [])
    st.model_version = idx.get("model_version")
    return idx


def _store_part(ctx: RecommendContext, st: PipelineStatus) -> None:
    try:
        infos = {g.name: g for g in ctx.store.groups()}
        st.users_stored = int(infos["user_profiles"].rows) if "user_profiles" in infos else len(ctx.profiles)
    except Exception as e:  # noqa: BLE001 - a status page shows what it can
        st.users_stored = len(ctx.profiles)
        st.warnings.append(f"feature store unavailable: {e}")
    try:
        from soundmates.store import inbox

        st.inbox_counts = inbox.counts(ctx.store)
    except Exception as e:  # noqa: BLE001
        st.warnings.append(f"inbox unavailable: {e}")


def pipeline_status(ctx: RecommendContext) -> PipelineStatus:
    """Users stored, served model and its evaluation, index version/size/age, fresh buffer, inbox counts."""
    st = PipelineStatus()
    idx = _index_part(ctx, st)
    _store_part(ctx, st)
    model = model_info(ctx)
    st.model_version = model.get("version") or st.model_version
    st.model_metrics = model.get("metrics") or {}
    st.evaluation = served_evaluation(ctx)
    st.feedback = _feedback_part(ctx, st)
    if st.model_version:
        st.embedder = embedder_info(_Named(st.model_version, model.get("method")))
    space = model.get("candidate_version") or model.get("version")  # a feedback-tuned model's is its base's
    if space and idx.get("model_version") and space != idx["model_version"]:
        st.warnings.append(
            f"the index was built with model {idx['model_version']}, the current model is {space}: run 'soundmates index build'"
        )
        st.rebuild_due = True
    return st


def _feedback_part(ctx: RecommendContext, st: PipelineStatus) -> dict | None:
    from soundmates.recommend import feedback

    try:
        return feedback.summary(ctx)
    except Exception as e:  # noqa: BLE001 - a status page shows what it can
        st.warnings.append(f"match feedback unavailable: {e}")
        return None


class _Named:
    """Version and name of the served method, without loading it (torch) for a status page."""

    def __init__(self, version: str, name: str | None):
        self.version, self.name = version, name


def model_info(ctx: RecommendContext) -> dict:
    """The served model's version and its recorded metrics, from the model registry (no torch import)."""
    try:
        from soundmates.model.registry import ModelRegistry

        reg = ModelRegistry.for_settings(ctx.settings)
        # ``served_version``: the gate's choice, or a registered baseline before any promotion.
        version = (getattr(reg, "served_version", None) or reg.current_version)()
        if version is None:
            return {}
        meta = reg.meta(version)
        return {
            "version": version,
            "method": meta.get("method"),
            "metrics": dict(meta.get("metrics") or {}),
            "candidate_version": meta.get("base_version") or version,
        }
    except Exception as e:  # noqa: BLE001 - a status page shows what it can
        log.warning("model registry unreadable: %s", e)
        return {}


def _report_from_model_stage(ctx: RecommendContext) -> dict | None:
    """The model stage's evaluation of what it serves (issue 15 protocol object), read through its own function."""
    from soundmates.pipelines.model import stored_evaluation

    try:
        return stored_evaluation(ctx.settings)
    except LookupError:  # nothing evaluated yet
        return None
    except Exception as e:  # noqa: BLE001 - a status page shows what it can
        log.warning("evaluation report unreadable: %s", e)
        return None


def _method_scores(values: Any) -> MethodScores | None:
    if not isinstance(values, dict):
        return None
    metrics = {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    }
    ci = values.get("ci95")
    if not isinstance(ci, dict):
        ci = {}
    ci95 = {k: [float(v[0]), float(v[1])] for k, v in ci.items() if isinstance(v, (list, tuple)) and len(v) == 2}
    return MethodScores(metrics=metrics, ci95=ci95) if metrics else None


def served_evaluation(ctx: RecommendContext) -> Evaluation | None:
    """Served method vs baselines, from the model stage's evaluation report."""
    report = _report_from_model_stage(ctx)
    if not isinstance(report, dict) or not isinstance(report.get("methods"), dict):
        return None
    methods = {m: s for m, s in ((m, _method_scores(v)) for m, v in report["methods"].items()) if s is not None}
    if not methods:
        return None
    users = report.get("users")
    return Evaluation(
        protocol=report.get("protocol"),
        served=report.get("served"),
        reason=report.get("reason"),
        users=users if isinstance(users, int) else None,
        candidates=report.get("candidates") if isinstance(report.get("candidates"), int) else None,
        methods=methods,
        run=_text(report.get("model_version")),
        served_version=_text(report.get("served_version")),
        served_base=_text(report.get("served_base")),
        served_base_version=_text(report.get("served_base_version")),
        dataset=_text(report.get("dataset")),
        data_version=report.get("data_version") if isinstance(report.get("data_version"), int) else None,
    )


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _display_names(ctx: RecommendContext, user_ids: list[str]) -> dict[str, str | None]:
    try:
        frame = ctx.store.read("user_profiles")
        names = dict(zip(frame["user_id"].astype(str), frame["display_name"]))
    except Exception:  # noqa: BLE001 - fall back to the profile files
        names = {}
    out = {}
    for u in user_ids:
        n = names.get(u)
        out[u] = None if n is None or (isinstance(n, float) and math.isnan(n)) else n
    return out


def _stored_map(ctx: RecommendContext, highlight: list[str]) -> MapData | None:
    """The pipeline's layout of the served index (UMAP), at most MAP_POINTS of it; None when none is stored."""
    from soundmates.index.layout import LayoutNotBuilt, read_layout

    manifest = ctx.index.manifest() or {}
    try:
        frame, meta = read_layout(ctx.settings, manifest.get("version"))
    except LayoutNotBuilt:
        return None
    # A removal since the layout was made stays removed: the index's own rule, for data read at that time.
    removed = ctx.index.blocked_ids(frame["user_id"].astype(str).tolist(), float(meta.get("built_at") or 0.0))
    frame = frame[~frame["user_id"].isin(removed)].reset_index(drop=True)
    total = len(frame)
    if total > MAP_POINTS:
        keep = np.zeros(total, dtype=bool)
        keep[np.linspace(0, total - 1, MAP_POINTS).astype(np.int64)] = True
        keep |= frame["user_id"].isin(set(highlight)).to_numpy()
        frame = frame[keep].reset_index(drop=True)
    return MapData(
        user_ids=frame["user_id"].astype(str).tolist(),
        display_names=[None if n is None or n != n else str(n) for n in frame["display_name"]],
        x=[round(float(v), 5) for v in frame["x"]],
        y=[round(float(v), 5) for v in frame["y"]],
        model_version=meta.get("model_version"),
        families=frame["family"].astype(str).tolist(),
        method=str(meta.get("method") or "umap"),
        neighbour_preservation=meta.get("neighbour_preservation@10"),
        pca_neighbour_preservation=meta.get("pca_neighbour_preservation@10"),
        total_users=total,
        index_version=meta.get("index_version"),
    )


def user_map(ctx: RecommendContext, highlight: list[str] | None = None) -> MapData:
    """The pipeline's stored layout of the served index (``_stored_map``); without one, a PCA 2-D projection
    of every user's embedding (at most MAP_MAX_USERS, evenly sampled)."""
    from soundmates.index import IndexCorrupt, IndexNotBuilt

    try:
        stored = _stored_map(ctx, list(highlight or ()))
        if stored is not None and stored.user_ids:
            return stored
        ids, vecs = ctx.index.all_vectors(limit=MAP_MAX_USERS)
        manifest = ctx.index.manifest() or {}
    except (IndexNotBuilt, IndexCorrupt):
        raise NothingBuiltYet() from None
    if not ids:
        raise NothingBuiltYet()
    if len(ids) < 3:
        xy = np.zeros((len(ids), 2))
        explained: list[float] = []
    else:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=0)
        xy = pca.fit_transform(vecs)
        explained = [round(float(v), 4) for v in pca.explained_variance_ratio_]
    names = _display_names(ctx, ids)
    return MapData(
        user_ids=ids,
        display_names=[names.get(u) for u in ids],
        x=[round(float(v), 5) for v in xy[:, 0]],
        y=[round(float(v), 5) for v in xy[:, 1]],
        explained_variance=explained,
        model_version=manifest.get("model_version"),
        total_users=len(ids),
        index_version=manifest.get("version"),
    )
