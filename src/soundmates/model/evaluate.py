"""Honest evaluation: every method ranks the same held-out users' other views.

For each held-out user, view ``a`` is the query and every held-out user's view ``b`` is a
candidate; the relevant candidate is the user's own other half. Methods: the trained
two-tower model and the baselines of :mod:`soundmates.model.baselines`, on the same split.
Extra signal: ``taste_precision@10`` against the generator's true taste neighbours on a
generated world, ``friends@10`` (share of the top 10 other users who are friends) on HetRec.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soundmates.model.baselines import BASELINES, baseline_scores
from soundmates.model.metrics import precision_at_k, retrieval_metrics

log = logging.getLogger(__name__)

METHODS = ("two_tower", *BASELINES)


def score_two_tower(model, pre, queries: pd.DataFrame, candidates: pd.DataFrame) -> np.ndarray:
    q = embed_rows(model, pre, queries, tower="query")
    c = embed_rows(model, pre, candidates, tower="candidate")
    return q @ c.T


def embed_rows(model, pre, rows: pd.DataFrame, *, tower: str = "candidate", batch: int = 4096) -> np.ndarray:
    import torch

    enc = pre.transform(rows)
    fn = model.embed_query if tower == "query" else model.embed_candidate
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(rows), batch):
            out.append(fn({k: torch.from_numpy(v[s : s + batch]) for k, v in enc.items()}).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, model.dim), dtype=np.float32)


def compare_methods(
    trained,
    *,
    split: str = "test",
    relevant: dict[str, set[str]] | None = None,
    relevant_key: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of the model and every baseline on one held-out split of ``trained``'s datamodule."""
    dm = trained.datamodule
    qa, qb = dm.pairs[split]
    fit_rows = pd.concat(dm.pairs["train"], ignore_index=True)
    return compare_on(trained.model, dm.pre, qa, qb, fit_rows=fit_rows, relevant=relevant, relevant_key=relevant_key, seed=seed)


def compare_on(
    model,
    pre,
    queries: pd.DataFrame,
    candidates: pd.DataFrame,
    *,
    fit_rows: pd.DataFrame | None = None,
    relevant: dict[str, set[str]] | None = None,
    relevant_key: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Every method ranks ``candidates`` (view b, aligned with ``queries`` by user) for each query."""
    if list(queries["user_id"]) != list(candidates["user_id"]):
        raise ValueError("queries and candidates must hold the same users in the same order")
    users = queries["user_id"].tolist()
    methods: dict[str, dict[str, float]] = {}
    for name in METHODS:
        try:
            if name == "two_tower":
                scores = score_two_tower(model, pre, queries, candidates)
            else:
                scores = baseline_scores(name, queries, candidates, fit=fit_rows, seed=seed)
        except KeyError as e:  # e.g. no `combined` column on a bag-only frame
            log.warning("method %s skipped: %s", name, e)
            methods[name] = {"skipped": str(e)}
            continue
        m = retrieval_metrics(scores)
        if relevant is not None and relevant_key:
            m[relevant_key] = precision_at_k(scores, users, users, relevant, k=10)
        methods[name] = m
    return {"methods": methods, "users": len(users)}


# --------------------------------------------------------------------------- HetRec
def bag_features_from_profiles(profiles) -> pd.DataFrame:
    """Bag-only ``user_features`` rows (views full/a/b) of two-playlist profiles (HetRec halves).

    Used when the features stage is not available: genre weight = number of the view's
    artists carrying the genre; artist weight = the artist's item weight (play count).
    """
    from soundmates.sources.hetrec import view_members

    rows = []
    for p in profiles:
        for view in ("full", "a", "b"):
            g, a = Counter(), Counter()
            for it in view_members(p, view):
                tr = p.tracks.get(it.track_id)
                if tr is None:
                    continue
                for aid in tr.artist_ids:
                    a[aid] += it.weight
                    art = p.artists.get(aid)
                    for gn in (art.genres or []) if art else []:
                        g[gn] += 1
            gs = sorted(g.items(), key=lambda kv: (-kv[1], kv[0]))
            as_ = sorted(a.items(), key=lambda kv: (-kv[1], kv[0]))
            rows.append({
                "user_id": p.user_id, "view": view,
                "genre_names": [k for k, _ in gs], "genre_weights": [float(v) for _, v in gs],
                "artist_ids": [k for k, _ in as_], "artist_weights": [float(v) for _, v in as_],
            })
    return pd.DataFrame(rows)


def hetrec_features(dataset, settings=None) -> tuple[pd.DataFrame, str]:
    """Feature rows (full/a/b) of a HetRec dataset, through the features stage when it is available.

    The features stage splits each profile's playlists into views a and b; a HetRec profile has
    exactly two playlists (the protocol's seeded halves), so the views are those halves.
    ``combined`` is standardised over these users (as the features pipeline does over stored users).
    Falls back to bag-only rows (no dense features, no ``combined``) when the stage is missing.
    """
    try:
        from soundmates.features.encoder import TextEncoder
        from soundmates.features.scaler import CombinedScaler
        from soundmates.features.taste import featurize_profiles
    except ImportError as e:
        log.warning("features stage not available (%s): bag-only HetRec features", e)
        return bag_features_from_profiles(dataset.profiles), "bags-only"
    from soundmates.config import get_settings

    settings = settings or get_settings()
    encoder = TextEncoder(settings)
    batch = featurize_profiles(dataset.profiles, encoder, top_n=settings.top_n_artists)
    if batch.rejected:
        log.warning("%d HetRec profile(s) rejected by the features stage, e.g. %s", len(batch.rejected), batch.rejected[:2])
    df = pd.DataFrame(batch.feature_rows)
    raw = np.stack([np.asarray(v, dtype=np.float64) for v in df["combined"]])
    scaler = CombinedScaler.fit(raw, user_ids=df["user_id"].tolist(), profile_hashes=df["profile_hash"].astype(str).tolist(),
                                encoder_model=encoder.model_id, encoder_dim=encoder.dim)
    df["combined"] = list(scaler.transform(raw).astype(np.float32))
    return df, "features-stage"


def evaluate_hetrec(path: str | Path, *, cfg=None, settings=None, seed: int = 0, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """Train on the HetRec training users, evaluate every method on the held-out test users."""
    from soundmates.model.config import ModelConfig
    from soundmates.model.train import fit_model
    from soundmates.sources.hetrec import load_hetrec

    cfg = cfg or ModelConfig.load(seed=seed)
    ds = load_hetrec(path, seed=seed)
    if frame is None:
        frame, source = hetrec_features(ds, settings)
    else:
        source = "given"
    trained = fit_model(cfg, frame)
    out = compare_methods(trained, relevant=ds.friends, relevant_key="friends@10", seed=seed)
    out.update(dataset="hetrec", features=source, seed=seed, train_users=len(trained.datamodule.split.train),
               val_recall_at_10=trained.val_recall_at_10, epochs=trained.epochs_run, notes=trained.notes)
    return out


# --------------------------------------------------------------------------- report
def write_report(result: dict[str, Any], out_dir: str | Path, name: str = "evaluation") -> dict[str, str]:
    """``<name>.json``, a markdown table ``<name>.md`` and a plotly bar chart ``<name>.html``."""
    import plotly.graph_objects as go

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
    (out / f"{name}.md").write_text(markdown_table(result))
    methods = {k: v for k, v in result["methods"].items() if "recall@10" in v}
    keys = [k for k in ("recall@1", "recall@10", "recall@50", "mrr", "ndcg@10", "taste_precision@10", "friends@10")
            if any(k in v for v in methods.values())]
    fig = go.Figure([go.Bar(name=m, x=keys, y=[v.get(k) for k in keys]) for m, v in methods.items()])
    fig.update_layout(barmode="group", title=f"{result.get('dataset', '')} held-out retrieval, {result.get('users')} users",
                      yaxis_title="score")
    fig.write_html(out / f"{name}.html", include_plotlyjs=True, full_html=True)
    return {"json": str(out / f"{name}.json"), "markdown": str(out / f"{name}.md"), "html": str(out / f"{name}.html")}


def markdown_table(result: dict[str, Any]) -> str:
    methods = result["methods"]
    keys = [k for k in ("recall@1", "recall@10", "recall@50", "mrr", "ndcg@10", "taste_precision@10", "friends@10")
            if any(k in v for v in methods.values())]
    lines = [f"Held-out users: {result.get('users')} ({result.get('dataset', '')})", "",
             "| method | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for m, v in methods.items():
        if "skipped" in v:
            lines.append(f"| {m} | " + " | ".join("–" for _ in keys) + f" |  (skipped: {v['skipped']})")
            continue
        lines.append(f"| {m} | " + " | ".join(f"{v[k]:.3f}" if k in v and v[k] == v[k] else "–" for k in keys) + " |")
    base = [v["recall@10"] for m, v in methods.items() if m != "two_tower" and "recall@10" in v]
    if base and "recall@10" in methods.get("two_tower", {}):
        lines += ["", f"two_tower / best baseline recall@10 = {methods['two_tower']['recall@10'] / max(max(base), 1e-9):.2f}×"]
    return "\n".join(lines) + "\n"
