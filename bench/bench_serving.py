"""Serving as evaluated: what "closer than X% of pairs" reads for served top-10 matches.

A generated world's users (profiles from the generator, real features), the model stage's training
(promoted through its gate where it has one), an index build, then ``Recommender.recommend`` for
held-in users. For every top-10 match: the percentile recommend now shows (calibrated on served
query·candidate pairs of the current index) beside the one calibrated on candidate·candidate pairs
(the index's build-time sample, what it showed before), and whether ``match_detail`` shows the same
score as the list.

    python -m bench.run_all --only serving      # SOUNDMATES_BENCH_SERVING_USERS=300 by default
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

USERS = int(os.environ.get("SOUNDMATES_BENCH_SERVING_USERS", "300"))
QUERIES = 40
EPOCHS = 5


def _log(msg: str) -> None:
    print(f"bench serving: {msg}", file=sys.stderr, flush=True)


def _world_store(data_dir: Path, n_users: int, seed: int) -> dict:
    """A generated world's ground truth, its users' profiles and features in ``data_dir``; seconds per step.

    Kept here (not borrowed from another benchmark) so this one runs whatever the others become.
    """
    from bench.bench_features import world_profiles
    from soundmates.config import Settings
    from soundmates.features.encoder import TextEncoder
    from soundmates.pipelines.features import build_features
    from soundmates.profiles import ProfileRepository
    from soundmates.world.generator import generate_world

    settings = Settings(data_dir=Path(data_dir))
    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    generate_world(settings.world_dir, n_users, seed)  # users.txt + hidden taste (the model stage's ground truth)
    steps["world_ground_truth_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    repo = ProfileRepository(settings.profiles_dir)
    for p in world_profiles(n_users, seed):
        repo.save(p)
    steps["profiles_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_features(settings, encoder=TextEncoder(settings))
    steps["features_s"] = time.perf_counter() - t0
    _log(f"{n_users} profiles in {steps['profiles_s']:.0f} s, features in {steps['features_s']:.0f} s")
    return {"settings": settings, "steps": {k: round(v, 1) for k, v in steps.items()}}


def _train_and_serve(settings) -> dict:
    from soundmates import pipelines
    from soundmates.pipelines import model as model_pipeline

    trained = model_pipeline.train_model(settings, max_epochs=EPOCHS)
    # The promotion step after evaluation where the model stage has one; before it, training promoted.
    promote = getattr(model_pipeline, "promote_model", None)
    promoted = promote(settings) if promote is not None else {"served": "two_tower", "promoted": trained.get("promoted")}
    built = pipelines.build_index(settings, progress=False)
    return {
        "promotion": {k: promoted.get(k) for k in ("served", "promoted", "reason") if k in promoted},
        "index": {k: built.get(k) for k in ("count", "model_version")},
    }


def _sides_differ(rec, emb, user_ids: list[str]) -> bool:
    """Measured, not declared: do the embedder's query and candidate sides give different vectors?"""
    frame = rec.store.read("user_features", keys=user_ids)
    frame = frame[frame["view"] == "full"].reset_index(drop=True)
    query = getattr(emb, "embed_query", emb.embed)
    return not np.allclose(query(frame), emb.embed(frame), atol=1e-5)


def _measure(settings) -> dict:
    from soundmates.recommend import Recommender

    rec = Recommender(settings)
    ids, _ = rec.index.all_vectors()
    rng = np.random.default_rng(0)
    queries = [str(u) for u in rng.choice(ids, size=min(QUERIES, len(ids)), replace=False)]
    served, before, same_detail, pairs = [], [], 0, 0
    t0 = time.perf_counter()
    for u in queries:
        res = rec.recommend(u, k=10)
        for m in res.matches:
            served.append(m.percentile)
            before.append(rec.index.percentile(m.score))
        for m in res.matches[:3]:
            d = rec.match_detail(u, m.user_id)
            pairs += 1
            same_detail += (d.score, d.percentile) == (m.score, m.percentile)
    seconds = time.perf_counter() - t0
    emb = rec.embedder((rec.index.manifest() or {}).get("model_version"))
    s, b = np.array(served, dtype=float), np.array(before, dtype=float)
    return {
        "embedder": res.embedder.model_dump() if res.embedder else None,
        "sides_differ": _sides_differ(rec, emb, queries),
        "queries": len(queries),
        "matches": int(s.size),
        "served_calibration": {
            "median": float(np.median(s)),
            "share_ge_98": float((s >= 98).mean()),
            "share_100": float((s >= 100).mean()),
        },
        "candidate_pair_calibration": {
            "median": float(np.median(b)),
            "share_ge_98": float((b >= 98).mean()),
            "share_100": float((b >= 100).mean()),
        },
        "detail_equals_list": f"{same_detail}/{pairs}",
        "seconds_per_query_with_details": round(seconds / len(queries), 3),
    }


def _verdict(sc: dict, cc: dict) -> str:
    """What the two calibrations say, plainly: they differ, or on this model they coincide."""
    gap = max(abs(sc["median"] - cc["median"]), 100 * abs(sc["share_100"] - cc["share_100"]))
    if gap < 1.0:
        return (
            "Here the two calibrations coincide (within a point): this model's query and candidate sides "
            "score pairs alike, so the old percentile was not inflated on this world. The served calibration "
            "matters where the sides diverge: in `tests/test_recommend.py`'s tight two-sided population the old "
            "one reads 100% for the top match and the served one does not."
        )
    return (
        f"The served calibration moves the median top-10 match from {cc['median']:.1f} to {sc['median']:.1f} and "
        f"the share reading 100% from {cc['share_100']:.0%} to {sc['share_100']:.0%}."
    )


def markdown(users: int, epochs: int, figures: dict) -> str:
    """The report section, from the figures alone (so it can be rewritten from a stored result)."""
    sc, cc = figures["served_calibration"], figures["candidate_pair_calibration"]
    return (
        f"{users}-user generated world (seed 11), real features, the model stage's training ({epochs} epochs) and gate, "
        f"served by `{(figures['embedder'] or {}).get('name')}` (query and candidate sides "
        f"{'differ' if figures['sides_differ'] else 'are one'}); {figures['queries']} users' top-10 matches "
        f"({figures['matches']}).\n\n"
        "| percentile calibrated on | median | share ≥ 98% | share = 100% |\n|---|---|---|---|\n"
        f"| served query·candidate pairs (shown now) | {sc['median']:.1f} | {sc['share_ge_98']:.0%} | {sc['share_100']:.0%} |\n"
        f"| candidate·candidate pairs (shown before) | {cc['median']:.1f} | {cc['share_ge_98']:.0%} | {cc['share_100']:.0%} |\n\n"
        f"match_detail shows the list's score and percentile for {figures['detail_equals_list']} matches checked. "
        "A top-10 match among a few hundred users reads in the high 90s on any honest calibration. " + _verdict(sc, cc)
    )


def run(out_dir: Path) -> dict:
    import torch

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    data = Path(tempfile.mkdtemp(prefix="soundmates-bench-serving-"))
    try:
        world = _world_store(data, USERS, seed=11)
        settings = world["settings"]
        t0 = time.perf_counter()
        serving = _train_and_serve(settings)
        _log(f"trained, served {serving['promotion']}, index {serving['index']} in {time.perf_counter() - t0:.0f} s")
        figures = _measure(settings)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    md = markdown(USERS, EPOCHS, figures)
    return {
        "title": "Serving as evaluated: match percentiles",
        "markdown": md,
        "users": USERS,
        **serving,
        **figures,
        "steps": world["steps"],
    }
