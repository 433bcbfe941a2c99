"""Two-tower model: training time per epoch on CPU, and the held-out evaluation tables.

* time per epoch for 5,000 and 50,000 synthetic users (bags + a 384-d dense embedding per
  view, the shape of ``user_features``); wall and process CPU seconds (shared machine);
* HetRec Last.fm 2k (when ``../shared/data/hetrec2011-lastfm-2k`` is present): every method
  on the held-out 20% of users, protocol of issue 4, shared vs separate towers side by side;
* a generated world of 5,000 users (seed 0), built without the HTTP ingest: canonical profiles
  straight from the world generator (``bench.bench_features.world_profiles``), features through
  ``soundmates.pipelines.features.build_features`` into an embedded store in a temporary data
  dir, then the model stage's own training and evaluation; ``taste_precision@10`` against the
  generator's true taste neighbours. Each step timed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HETREC = Path(__file__).resolve().parents[2] / "shared" / "data" / "hetrec2011-lastfm-2k"


def synthetic_frame(n_users: int, seed: int = 0, dense_dim: int = 384) -> pd.DataFrame:
    """Views a/b per user from a personal taste over 2,000 genres and 50,000 artists."""
    rng = np.random.default_rng(seed)
    n_genres, n_artists = 2000, 50_000
    rows = []
    for u in range(n_users):
        g_top = rng.choice(n_genres, 30, replace=False)
        a_top = rng.choice(n_artists, 60, replace=False)
        base = rng.normal(0, 1, dense_dim).astype(np.float32)
        for view in ("a", "b"):
            g = rng.choice(g_top, 20)
            a = rng.choice(a_top, 25)
            gu, gc = np.unique(g, return_counts=True)
            au, ac = np.unique(a, return_counts=True)
            e = base + rng.normal(0, 0.5, dense_dim).astype(np.float32)
            rows.append({"user_id": f"u{u}", "view": view,
                         "genre_names": [f"g{i}" for i in gu], "genre_weights": gc.astype(np.float32),
                         "artist_ids": [f"a{i}" for i in au], "artist_weights": ac.astype(np.float32),
                         "genre_emb": e / np.linalg.norm(e), "n_tracks": int(rng.integers(10, 500)), "n_playlists": 3})
    return pd.DataFrame(rows)


def time_epochs(n_users: int, epochs: int = 2) -> dict:
    from soundmates.model.config import ModelConfig
    from soundmates.model.train import fit_model

    frame = synthetic_frame(n_users)
    cfg = ModelConfig.load(max_epochs=epochs, patience=epochs, svd_init=True)
    c0, w0 = time.process_time(), time.perf_counter()
    t = fit_model(cfg, frame)
    return {"users": n_users, "epochs": t.epochs_run, "train_users": len(t.datamodule.split.train),
            "seconds_per_epoch": round(t.seconds_per_epoch, 2), "setup_and_fit_wall_s": round(time.perf_counter() - w0, 1),
            "process_cpu_s": round(time.process_time() - c0, 1)}


def hetrec_tables(seed: int = 0) -> dict:
    from soundmates.model.config import ModelConfig
    from soundmates.model.evaluate import compare_methods, hetrec_features
    from soundmates.model.train import fit_model
    from soundmates.sources.hetrec import load_hetrec

    ds = load_hetrec(HETREC, seed=seed)
    t0 = time.perf_counter()
    frame, source = hetrec_features(ds)
    feat_s = time.perf_counter() - t0
    out = {"features": source, "features_s": round(feat_s, 1), "variants": {}}
    for name, over in (("shared", {"shared_towers": True}), ("separate", {"shared_towers": False})):
        t0 = time.perf_counter()
        trained = fit_model(ModelConfig.load(seed=seed, **over), frame)
        res = compare_methods(trained, relevant=ds.friends, relevant_key="friends@10", seed=seed)
        res.update(dataset="hetrec", val_recall_at_10=trained.val_recall_at_10, initial_val_recall_at_10=trained.initial_val_recall_at_10,
                   epochs=trained.epochs_run, best_epoch=trained.best_epoch, seconds=round(time.perf_counter() - t0, 1), notes=trained.notes)
        out["variants"][name] = res
    return out


WORLD_USERS = 5000
WORLD_SEED = 0


def _log(msg: str) -> None:
    print(f"bench model: {msg}", file=sys.stderr, flush=True)


def build_world_store(data_dir: Path, n_users: int = WORLD_USERS, seed: int = WORLD_SEED) -> dict:
    """A generated world's ground truth, profiles and features in ``data_dir``; seconds per step."""
    from bench.bench_features import world_profiles
    from soundmates.config import Settings
    from soundmates.features.encoder import TextEncoder
    from soundmates.pipelines.features import build_features
    from soundmates.profiles import ProfileRepository
    from soundmates.world.generator import generate_world

    settings = Settings(data_dir=Path(data_dir))
    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    generate_world(settings.world_dir, n_users, seed)  # users.txt + hidden taste, for the ground truth only
    steps["world_ground_truth_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    profiles = world_profiles(n_users, seed)
    steps["profiles_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    repo = ProfileRepository(settings.profiles_dir)
    for p in profiles:
        repo.save(p)
    steps["save_profiles_s"] = time.perf_counter() - t0
    _log(f"{len(profiles)} profiles built in {steps['profiles_s']:.0f} s, saved in {steps['save_profiles_s']:.0f} s")
    t0 = time.perf_counter()
    built = build_features(settings, encoder=TextEncoder(settings))
    steps["features_s"] = time.perf_counter() - t0
    _log(f"features: {built['updated']} users, {len(built['rejected'])} rejected, {built['without_views']} without views, "
         f"{steps['features_s']:.0f} s")
    return {"settings": settings, "steps": steps, "features": {k: built[k] for k in ("users", "updated", "without_views", "data_version")}
            | {"rejected": len(built["rejected"]), "encoded_strings": built["encoder"].get("encoded")}}


def world_tables(settings, cfg=None) -> dict:
    """Train on the world's training users (store at its latest version), evaluate on the held-out test users."""
    from soundmates.model.config import ModelConfig
    from soundmates.model.evaluate import compare_methods
    from soundmates.model.train import fit_model
    from soundmates.world.groundtruth import true_neighbours

    cfg = cfg or ModelConfig.load(seed=WORLD_SEED)
    t0 = time.perf_counter()
    trained = fit_model(cfg, settings=settings, work_dir=Path(settings.data_dir) / "train")
    train_s = time.perf_counter() - t0
    dm = trained.datamodule
    t0 = time.perf_counter()
    val = compare_methods(trained, split="val", seed=cfg.seed)
    relevant = {u: set(v) for u, v in true_neighbours(settings.world_dir, dm.split.test, 10).items()}
    res = compare_methods(trained, split="test", relevant=relevant, relevant_key="taste_precision@10", seed=cfg.seed)
    eval_s = time.perf_counter() - t0
    res.update(dataset="world", users_split={k: len(v) for k, v in dm.split.as_dict().items()},
               val_methods=val["methods"], val_recall_at_10=trained.val_recall_at_10,
               initial_val_recall_at_10=trained.initial_val_recall_at_10, epochs=trained.epochs_run, best_epoch=trained.best_epoch,
               seconds_per_epoch=round(trained.seconds_per_epoch, 2), train_s=round(train_s, 1), evaluate_s=round(eval_s, 1),
               notes=trained.notes, config=cfg.model_dump())
    return res


def world_section(n_users: int = WORLD_USERS, seed: int = WORLD_SEED, keep_dir: Path | None = None) -> dict:
    tmp = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="bench-model-world-"))
    try:
        built = build_world_store(tmp, n_users, seed)
        res = world_tables(built["settings"])
        res["steps"] = {k: round(v, 1) for k, v in built["steps"].items()} | {"train_s": res["train_s"], "evaluate_s": res["evaluate_s"]}
        res["features"] = built["features"]
        res["world_users"], res["world_seed"] = n_users, seed
        return res
    finally:
        if keep_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)


def run(out_dir: Path) -> dict:
    from soundmates.model.evaluate import markdown_table, write_report

    out_dir = Path(out_dir)
    result: dict = {"title": "Two-tower model: training time and held-out retrieval", "timing": [], "torch_threads": None}
    import torch

    result["torch_threads"] = torch.get_num_threads()
    sizes = [int(x) for x in os.environ.get("SOUNDMATES_BENCH_MODEL_USERS", "5000,50000").split(",") if x]
    for n in sizes:
        result["timing"].append(time_epochs(n))
    md = ["Training time per epoch on CPU (synthetic `user_features`: genre/artist bags + a 384-d embedding; "
          "70% of users train; includes the validation pass). Machine shared by ~8 engineers: process CPU time is the steadier figure.",
          "", "| users | train users | s / epoch (wall) | process CPU s (setup + fit) |", "|---|---|---|---|"]
    md += [f"| {t['users']:,} | {t['train_users']:,} | {t['seconds_per_epoch']} | {t['process_cpu_s']} |" for t in result["timing"]]
    if HETREC.exists() and os.environ.get("SOUNDMATES_BENCH_MODEL_HETREC", "1") == "1":
        h = hetrec_tables()
        result["hetrec"] = h
        best = max(h["variants"], key=lambda k: h["variants"][k]["val_recall_at_10"])
        result["hetrec_kept"] = best
        md += ["", f"**HetRec Last.fm 2k** (features: {h['features']}), seed 0, held-out 20% of users; "
               f"shared vs separate towers (kept by validation recall@10: **{best}**):"]
        for name, res in h["variants"].items():
            md += ["", f"*{name} towers* (val recall@10 {res['val_recall_at_10']:.3f}, LSA start {res['initial_val_recall_at_10']:.3f}, "
                   f"best epoch {res['best_epoch']}, {res['seconds']} s)", "", markdown_table(res)]
        write_report(h["variants"][best], out_dir / "model_reports", name="hetrec")  # not *.json in results/: run_all reads those as sections
    if os.environ.get("SOUNDMATES_BENCH_MODEL_WORLD", "1") == "1":
        w = world_section()
        result["world"] = w
        tt = w["methods"]["two_tower"]["recall@10"]
        best_base = max((m for m in w["methods"] if m != "two_tower" and "recall@10" in w["methods"][m]),
                        key=lambda m: w["methods"][m]["recall@10"])
        w["ratio_to_best_baseline"] = round(tt / max(w["methods"][best_base]["recall@10"], 1e-9), 3)
        st = w["steps"]
        md += ["", f"**Generated world, {w['world_users']:,} users (seed {w['world_seed']})**, no HTTP ingest: profiles from the generator "
               f"({st['profiles_s']} s), saved ({st['save_profiles_s']} s), `build_features` into an embedded store ({st['features_s']} s, "
               f"{w['features']['encoded_strings']:,} strings encoded cold; {w['features']['users']:,} users with features, "
               f"{w['features']['rejected']} rejected), training ({st['train_s']} s: {w['epochs']} epochs, best epoch {w['best_epoch']}, "
               f"{w['seconds_per_epoch']} s/epoch), evaluation ({st['evaluate_s']} s). Split {w['users_split']}; "
               f"validation recall@10 {w['val_recall_at_10']:.3f} (LSA start {w['initial_val_recall_at_10']:.3f}); "
               f"config: temperature {w['config']['temperature']}, monitor {w['config']['monitor']}, batch {w['config']['batch_size']}.",
               "", "Held-out test users (taste_precision@10 = share of the top 10 other users among the generator's 10 true taste neighbours):",
               "", markdown_table(w), f"Best baseline: {best_base}; two_tower = **{w['ratio_to_best_baseline']:.2f}×** its recall@10 (goal 1.1×)."]
        write_report(w, out_dir / "model_reports", name="world")
    result["markdown"] = "\n".join(md)
    return result
