"""Two-tower model: training time per epoch on CPU, and the held-out evaluation tables.

* time per epoch for 5,000 and 50,000 synthetic users (bags + a 384-d dense embedding per
  view, the shape of ``user_features``); wall and process CPU seconds (shared machine);
* HetRec Last.fm 2k (when ``../shared/data/hetrec2011-lastfm-2k`` is present): every method
  on the held-out 20% of users, protocol of issue 4, shared vs separate towers side by side;
* a generated world's evaluation when a trained model and world features exist in the
  default data dir (``soundmates evaluate --dataset world``).
"""

from __future__ import annotations

import json
import os
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


def world_table() -> dict | None:
    from soundmates.config import get_settings
    from soundmates.model.registry import ModelRegistry

    s = get_settings()
    if ModelRegistry(s.models_dir).current_version() is None:
        return None
    from soundmates.pipelines.model import evaluate_model

    return evaluate_model(s, dataset="world")


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
        write_report(h["variants"][best], out_dir, name="model_hetrec")
    w = world_table()
    if w is not None:
        result["world"] = w
        md += ["", "**Generated world** (served model, its held-out users):", "", markdown_table(w)]
    else:
        md += ["", "Generated world: no trained model in the default data dir (run `soundmates train` after building features)."]
    result["markdown"] = "\n".join(md)
    return result
