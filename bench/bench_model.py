"""Model: the production-shaped evaluation (issue 15) on generated worlds and HetRec, 3 split seeds.

* generated worlds (default 5,000 and 20,000 users, world seed 0), built without the HTTP ingest:
  profiles straight from the generator (``soundmates.sources.world``), features through the
  features stage (MiniLM, cached in SQLite under the bench cache dir, reused across runs), then
  per split seed: train, tune every baseline on validation, gate, evaluate the test users against
  the whole population (``soundmates.model.experiment``);
* HetRec Last.fm 2k (when ``../shared/data/hetrec2011-lastfm-2k`` is present), seeds 0-2
  (the seed also draws the halves);
* training time per epoch on synthetic ``user_features`` (CPU).

Env: ``SOUNDMATES_BENCH_MODEL_WORLDS`` (``5000,20000``), ``SOUNDMATES_BENCH_MODEL_SEEDS`` (``0,1,2``),
``SOUNDMATES_BENCH_MODEL_HETREC`` (``1``), ``SOUNDMATES_BENCH_MODEL_USERS`` (timing sizes, ``5000``),
``SOUNDMATES_BENCH_CACHE`` (``<repo>/var/bench-cache``: worlds, feature frames, text-embedding cache).
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
HETREC = REPO.parent / "shared" / "data" / "hetrec2011-lastfm-2k"
TASTE = ("taste_ndcg@10", "taste_precision@10")
WORLD_METRICS = ("taste_ndcg@10", "taste_precision@10", "neighbour_recall@20", "recall@10")
HETREC_METRICS = ("neighbour_recall@20", "friends@10", "recall@10")


def _log(msg: str) -> None:
    print(f"bench model: {msg}", file=sys.stderr, flush=True)


def _env_list(name: str, default: str) -> list[int]:
    return [int(x) for x in os.environ.get(name, default).split(",") if x.strip()]


def cache_dir() -> Path:
    d = Path(os.environ.get("SOUNDMATES_BENCH_CACHE", REPO / "var" / "bench-cache"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _settings():
    from soundmates.config import Settings

    return Settings(data_dir=cache_dir() / "data")


# --------------------------------------------------------------------------- timing
def synthetic_frame(n_users: int, seed: int = 0, dense_dim: int = 384) -> pd.DataFrame:
    """Views full/a/b per user from a personal taste over 2,000 genres and 50,000 artists."""
    rng = np.random.default_rng(seed)
    n_genres, n_artists = 2000, 50_000
    rows = []
    for u in range(n_users):
        g_top = rng.choice(n_genres, 30, replace=False)
        a_top = rng.choice(n_artists, 60, replace=False)
        base = rng.normal(0, 1, dense_dim).astype(np.float32)
        for view in ("full", "a", "b"):
            g = rng.choice(g_top, 20)
            a = rng.choice(a_top, 25)
            gu, gc = np.unique(g, return_counts=True)
            au, ac = np.unique(a, return_counts=True)
            e = base + rng.normal(0, 0.5, dense_dim).astype(np.float32)
            rows.append(
                {
                    "user_id": f"u{u}",
                    "view": view,
                    "genre_names": [f"g{i}" for i in gu],
                    "genre_weights": gc.astype(np.float32),
                    "artist_ids": [f"a{i}" for i in au],
                    "artist_weights": ac.astype(np.float32),
                    "genre_emb": e / np.linalg.norm(e),
                    "n_tracks": int(rng.integers(10, 500)),
                    "n_playlists": 3,
                }
            )
    return pd.DataFrame(rows)


def time_epochs(n_users: int, epochs: int = 2) -> dict:
    from soundmates.model.config import ModelConfig
    from soundmates.model.train import fit_model

    frame = synthetic_frame(n_users)
    cfg = ModelConfig.load(max_epochs=epochs, patience=epochs)
    c0, w0 = time.process_time(), time.perf_counter()
    t = fit_model(cfg, frame)
    return {
        "users": n_users,
        "epochs": t.epochs_run,
        "train_users": len(t.datamodule.split.train),
        "objective": cfg.objective,
        "seconds_per_epoch": round(t.seconds_per_epoch, 2),
        "setup_and_fit_wall_s": round(time.perf_counter() - w0, 1),
        "process_cpu_s": round(time.process_time() - c0, 1),
    }


# --------------------------------------------------------------------------- datasets
def world_frame(n_users: int) -> tuple[pd.DataFrame, Path, dict]:
    """Features of the first ``n_users`` of the bench world (seed 0), cached as a pickle."""
    from soundmates.model.experiment import features_frame
    from soundmates.sources.world import world_profiles
    from soundmates.world.generator import generate_world

    world = cache_dir() / f"world-{n_users}"
    cached = cache_dir() / f"features-world-{n_users}.pkl"
    steps: dict = {}
    if not (world / "world.json").exists():
        t0 = time.perf_counter()
        world.mkdir(parents=True, exist_ok=True)
        generate_world(world, n_users, 0)
        steps["generate_s"] = round(time.perf_counter() - t0, 1)
    if cached.exists():
        return pd.read_pickle(cached), world, steps | {"features": "cached"}
    t0 = time.perf_counter()
    profiles = world_profiles(world, n_users)
    steps["profiles_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    frame = features_frame(profiles, _settings())
    steps["features_s"] = round(time.perf_counter() - t0, 1)
    frame.to_pickle(cached)
    _log(f"world {n_users}: profiles {steps['profiles_s']} s, features {steps['features_s']} s")
    return frame, world, steps


def hetrec_frame(seed: int):
    from soundmates.model.experiment import features_frame
    from soundmates.sources.hetrec import load_hetrec

    ds = load_hetrec(HETREC, seed=seed)
    cached = cache_dir() / f"features-hetrec-{seed}.pkl"
    if cached.exists():
        return pd.read_pickle(cached), ds
    frame = features_frame(ds.profiles, _settings())
    frame.to_pickle(cached)
    return frame, ds


def _compact(result: dict) -> dict:
    keep = (
        "served",
        "users",
        "candidates",
        "methods",
        "slices",
        "reason",
        "validation",
        "tuned",
        "seed",
        "split",
        "thin_rule",
        "objective",
    )
    out = {k: result[k] for k in keep if k in result}
    out["tuned"] = {m: {"params": t.get("params")} for m, t in result.get("tuned", {}).items() if "params" in t}
    return out


def run_seeds(frame: pd.DataFrame, seeds: list[int], **kw) -> list[dict]:
    from soundmates.model.config import ModelConfig
    from soundmates.model.experiment import run_experiment

    runs = []
    for seed in seeds:
        t0 = time.perf_counter()
        exp = run_experiment(frame, ModelConfig.load(seed=seed), **kw)
        r = _compact(exp.result) | {
            "seconds": {k: round(v, 1) for k, v in exp.seconds.items()} | {"total_s": round(time.perf_counter() - t0, 1)}
        }
        runs.append(r)
        partial = os.environ.get("SOUNDMATES_BENCH_MODEL_PARTIAL")
        if partial:  # a long run leaves its finished seeds behind
            import json

            Path(partial).write_text(json.dumps(runs, default=str))
        _log(f"seed {seed}: served {r['served']} ({r['reason']}); {r['seconds']}")
    return runs


def summary(runs: list[dict], metrics: tuple[str, ...]) -> dict:
    """Mean over seeds per method and metric, the best tuned baseline per metric, and served/baseline ratios."""
    methods = [m for m in runs[0]["methods"] if "skipped" not in runs[0]["methods"][m]]
    mean = {m: {k: float(np.nanmean([r["methods"][m].get(k, math.nan) for r in runs])) for k in metrics} for m in methods}
    baselines = [m for m in methods if m not in ("two_tower", "random")]
    out = {"mean": mean, "served": [r["served"] for r in runs], "best_baseline": {}, "per_seed": []}
    for k in metrics:
        best = max(baselines, key=lambda m: mean[m][k])
        out["best_baseline"][k] = {"method": best, "value": mean[best][k]}
    for r in runs:
        row = {"seed": r["seed"], "served": r["served"]}
        bl = [m for m in r["methods"] if m not in ("two_tower", "random") and "skipped" not in r["methods"][m]]
        for k in metrics:
            best = max(bl, key=lambda m: r["methods"][m][k])
            tt, sv = r["methods"]["two_tower"], r["methods"].get(r["served"], {})
            row[k] = {
                "two_tower": tt[k],
                "two_tower_ci95": tt["ci95"][k],
                "two_tower_init": r["methods"]["two_tower_init"][k],
                "best_baseline": best,
                "best_baseline_value": r["methods"][best][k],
                "two_tower_ratio": tt[k] / max(r["methods"][best][k], 1e-9),
                "served_value": sv.get(k),
                "served_ci95": (sv.get("ci95") or {}).get(k),
            }
        out["per_seed"].append(row)
    return out


def _table(s: dict, metrics: tuple[str, ...]) -> list[str]:
    lines = ["| method (mean of seeds) | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for m, v in s["mean"].items():
        lines.append(f"| {m} | " + " | ".join(f"{v[k]:.3f}" for k in metrics) + " |")
    return lines


def _per_seed(s: dict, metrics: tuple[str, ...]) -> list[str]:
    lines = [
        "| seed | served | " + " | ".join(f"{k}: two_tower [95% CI] / best baseline (ratio)" for k in metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for row in s["per_seed"]:
        cells = []
        for k in metrics:
            c = row[k]
            cells.append(
                f"{c['two_tower']:.3f} [{c['two_tower_ci95'][0]:.3f}, {c['two_tower_ci95'][1]:.3f}] / "
                f"{c['best_baseline']} {c['best_baseline_value']:.3f} ({c['two_tower_ratio']:.2f}×)"
            )
        lines.append(f"| {row['seed']} | {row['served']} | " + " | ".join(cells) + " |")
    return lines


def goals(s: dict, targets: dict[str, float]) -> list[str]:
    """Acceptance lines of issue 15 per seed: the served method against the best tuned baseline (by test value)."""
    lines = []
    for k, target in targets.items():
        cells = []
        for row in s["per_seed"]:
            c = row[k]
            sv, ci = c["served_value"], c["served_ci95"] or [math.nan, math.nan]
            ratio = sv / max(c["best_baseline_value"], 1e-9) if sv is not None else math.nan
            ok = ratio >= target and ci[0] > c["best_baseline_value"]
            cells.append(
                f"seed {row['seed']} {row['served']} {sv:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] vs {c['best_baseline']} "
                f"{c['best_baseline_value']:.3f} = {ratio:.2f}× ({'met' if ok else 'not met'})"
            )
        lines.append(f"- Goal served `{k}` ≥ {target:.2f}× the best tuned baseline, interval above it: " + "; ".join(cells))
    return lines


def _init_vs_trained(s: dict, metrics: tuple[str, ...]) -> str:
    m = s["mean"]
    cmp = ", ".join(f"{k} {m['two_tower'][k]:.3f} vs {m['two_tower_init'][k]:.3f}" for k in metrics)
    above = all(m["two_tower"][k] > m["two_tower_init"][k] for k in metrics)
    return f"- Goal `two_tower` above `two_tower_init` on every taste metric (mean of seeds): {cmp} ({'met' if above else 'not met'})"


def _gate_lines(runs: list[dict]) -> list[str]:
    return [f"- Gate, seed {r['seed']}: served **{r['served']}**: {r['reason']}." for r in runs]


def kendall_taus(runs: list[dict], test_metrics: tuple[str, ...]) -> dict[str, dict[str, list[float]]]:
    """Kendall tau, per seed, between each candidate validation metric and each test metric over the methods.

    ``random`` is left out (every metric puts it last, which would inflate tau; it is never served), and so
    is a method skipped on a dataset. Returns ``{candidate: {test_metric: [tau per run]}}``.
    """
    from scipy.stats import kendalltau

    out: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        val = r["validation"]["candidates"]
        methods = [m for m in val if m != "random" and "skipped" not in r["methods"].get(m, {"skipped": 1})]
        for cand in val[methods[0]]:
            for k in test_metrics:
                x = [val[m][cand] for m in methods]
                y = [r["methods"][m][k] for m in methods]
                tau = kendalltau(x, y).statistic if np.isfinite(x).all() and np.isfinite(y).all() else math.nan
                out.setdefault(cand, {}).setdefault(k, []).append(float(tau))
    return out


def tau_table(taus: dict[str, dict[str, dict[str, list[float]]]], chosen: str) -> list[str]:
    """Markdown: one row per candidate validation metric, a column per (dataset, test metric), tau per seed."""
    cols = [(d, k) for d, t in taus.items() for k in next(iter(t.values()))]
    lines = [
        "| validation metric | " + " | ".join(f"{d}: {k}" for d, k in cols) + " | worst |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    for cand in next(iter(taus.values())):
        cells, worst = [], math.inf
        for d, k in cols:
            v = taus[d].get(cand, {}).get(k, [])
            worst = min([worst, *[x for x in v if math.isfinite(x)]] or [math.nan])
            cells.append(" / ".join(f"{x:.2f}" for x in v))
        name = f"**{cand}** (chosen)" if cand == chosen else cand
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {worst:.2f} |")
    return lines


def worst_tau(taus: dict[str, dict[str, dict[str, list[float]]]]) -> dict[str, float]:
    cands = {c for t in taus.values() for c in t}
    return {
        c: float(min((x for t in taus.values() for v in t.get(c, {}).values() for x in v if math.isfinite(x)), default=math.nan))
        for c in sorted(cands)
    }


# blends across methods: they need every method at once, so they cannot pick a grid point or stop training
CROSS_METHOD = ("norm_mean", "mean_rank")


def tau_verdict(worst: dict[str, float], chosen: str) -> str:
    """One honest line: which metric had the best worst-case tau in this run, against the one in use."""
    per_method = {c: v for c, v in worst.items() if c not in CROSS_METHOD and math.isfinite(v)}
    if not per_method:
        return f"Validation metric in use: `{chosen}`."
    best = max(per_method, key=lambda c: per_method[c])
    if best == chosen:
        return (
            f"`{chosen}` (in use) has the best worst-case tau of the per-method metrics in this run ({per_method[chosen]:.2f})."
        )
    return (
        f"In this run `{best}` has the best worst-case tau of the per-method metrics ({per_method[best]:.2f}), above "
        f"`{chosen}` (in use, {per_method.get(chosen, math.nan):.2f}), which was chosen on the earlier study "
        "(`bench/results/model_validation_study.json`): the choice is not stable across runs."
    )


ARTIST_BAG_HALVES = (
    "`artist_bag` recall@10 on HetRec is 0 by construction: a user's two halves hold disjoint artists, so an "
    "artist-overlap bag cannot find the user's own other half (not applicable; the served-form metrics are valid)."
)


def world_section(n: int, runs: list[dict], steps: dict) -> tuple[dict, list[str], dict]:
    """One generated world's result entry, report lines and Kendall taus, from its per-seed runs."""
    seeds = [r["seed"] for r in runs]
    s = summary(runs, WORLD_METRICS)
    md = [
        f"**Generated world, {n:,} users** ({runs[0]['candidates']:,} with features; {runs[0]['users']:,} test queries "
        f"at seed {seeds[0]}), seeds {seeds}; served per seed: {s['served']}. Setup: {steps}.",
        "",
        *_table(s, WORLD_METRICS),
        "",
        *_per_seed(s, TASTE),
        "",
        *goals(s, {"taste_ndcg@10": 1.10, "taste_precision@10": 1.20}),
        _init_vs_trained(s, TASTE),
        "",
        *_gate_lines(runs),
        f"Chosen settings (seed {seeds[0]}): " + "; ".join(f"{m} {t['params']}" for m, t in runs[0]["tuned"].items()),
        "",
    ]
    return {"steps": steps, "runs": runs, "summary": s}, md, kendall_taus(runs, TASTE)


def merge_world_runs(paths: list[Path], title: str, note: str) -> dict:
    """One result from bench files that each ran some split seeds of the same world (a long run done in parts).

    Every figure comes from the runs stored in those files; the summary, goals and taus are recomputed
    over all of them exactly as a single run would compute them.
    """
    import json

    from soundmates.model.protocol import VAL_METRIC

    parts = [json.loads(Path(p).read_text()) for p in paths]
    (n,) = {k for part in parts for k in part["worlds"]}  # one world size across the parts
    runs = sorted((r for part in parts for r in part["worlds"][n]["runs"]), key=lambda r: r["seed"])
    entry, section, taus = world_section(int(n), runs, parts[0]["worlds"][n]["steps"])
    taus = {f"world-{n}": taus}
    md = [note, "", *section, *tau_table(taus, VAL_METRIC), "", tau_verdict(worst_tau(taus), VAL_METRIC)]
    return {
        "title": title,
        "seeds": [r["seed"] for r in runs],
        "worlds": {n: entry},
        "validation_tau": {"random_included": False, "chosen": VAL_METRIC, "tau": taus, "worst": worst_tau(taus)},
        "parts": [
            {"file": Path(p).name, "measured_at": part.get("measured_at"), "wall_s": part.get("wall_s")}
            for p, part in zip(paths, parts)
        ],
        "markdown": "\n".join(md),
    }


def run(out_dir: Path) -> dict:
    from soundmates.model.evaluate import write_report
    from soundmates.model.protocol import VAL_METRIC
    from soundmates.pipelines.model import PROTOCOL_HETREC, PROTOCOL_WORLD

    out_dir = Path(out_dir)
    seeds = _env_list("SOUNDMATES_BENCH_MODEL_SEEDS", "0,1,2")
    result: dict = {
        "title": "Model: served method vs tuned baselines, whole population as candidates (issue 15)",
        "seeds": seeds,
        "timing": [],
        "worlds": {},
    }
    import torch

    result["torch_threads"] = torch.get_num_threads()
    md = [
        "Protocol (`soundmates.model.protocol`): held-out test users (hash split, 20%) query the **whole population** "
        "through each method's query side; candidates = every user's full profile through the candidate side (what the index "
        "stores). Taste metrics: full vs full, relevance = cosine of the hidden taste, ideal over the whole population. "
        "neighbour_recall@20: half a -> top-10 neighbours' artists -> held-out half b. recall@10: half a vs every half b. "
        f"Baselines tuned on the validation users (10%) by `{VAL_METRIC}`; the gate and the model's early stopping use the "
        "same validation metric (chosen by the Kendall tau table below).",
        "",
    ]
    taus: dict[str, dict[str, dict[str, list[float]]]] = {}
    for n in _env_list("SOUNDMATES_BENCH_MODEL_WORLDS", "5000,20000"):
        frame, world, steps = world_frame(n)
        from soundmates.sources.world import world_taste

        taste = world_taste(world, sorted(set(frame["user_id"].astype(str))))
        runs = run_seeds(frame, seeds, protocol=PROTOCOL_WORLD, taste=taste)
        result["worlds"][str(n)], section, taus[f"world-{n}"] = world_section(n, runs, steps)
        write_report(runs[0] | {"dataset": f"world-{n}"}, out_dir / "model_reports", name=f"world-{n}")
        md += section
    if HETREC.exists() and os.environ.get("SOUNDMATES_BENCH_MODEL_HETREC", "1") == "1":
        runs = []
        for seed in seeds:
            frame, ds = hetrec_frame(seed)
            runs += run_seeds(frame, [seed], protocol=PROTOCOL_HETREC, friends=ds.friends, thin_tracks_only=True)
        s = summary(runs, HETREC_METRICS)
        result["hetrec"] = {"runs": runs, "summary": s}
        taus["hetrec"] = kendall_taus(runs, ("neighbour_recall@20", "recall@10"))
        write_report(runs[0] | {"dataset": "hetrec"}, out_dir / "model_reports", name="hetrec")
        md += [
            f"**HetRec Last.fm 2k** ({runs[0]['candidates']:,} users, {runs[0]['users']} test queries at seed {seeds[0]}), seeds "
            f"{seeds}; served per seed: {s['served']}.",
            "",
            *_table(s, HETREC_METRICS),
            "",
            *_per_seed(s, ("neighbour_recall@20", "recall@10")),
            "",
            *goals(s, {"neighbour_recall@20": 1.05, "recall@10": 1.10}),
            f"- {ARTIST_BAG_HALVES}",
            "",
            *_gate_lines(runs),
            "",
        ]
    if taus:
        result["validation_tau"] = {"random_included": False, "chosen": VAL_METRIC, "tau": taus, "worst": worst_tau(taus)}
        md += [
            "**Which validation metric ranks methods as the test does** (Kendall tau over the methods, `random` left out, "
            "per split seed; validation users only, no hidden taste):",
            "",
            *tau_table(taus, VAL_METRIC),
            "",
            tau_verdict(worst_tau(taus), VAL_METRIC),
            "",
        ]
    for n in _env_list("SOUNDMATES_BENCH_MODEL_USERS", "5000"):
        result["timing"].append(time_epochs(n))
    md += [
        "Training time per epoch on CPU (synthetic `user_features`), shared machine:",
        "",
        "| users | train users | objective | s / epoch (wall) | process CPU s (setup + fit) |",
        "|---|---|---|---|---|",
    ]
    md += [
        f"| {t['users']:,} | {t['train_users']:,} | {t['objective']} | {t['seconds_per_epoch']} | {t['process_cpu_s']} |"
        for t in result["timing"]
    ]
    result["markdown"] = "\n".join(md)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.bench_model merge OUT.json PART.json ...``: join the parts of a world run done seed by seed."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m bench.bench_model")
    sub = ap.add_subparsers(dest="cmd", required=True)
    merge = sub.add_parser("merge", help="one result from per-seed bench files of the same world")
    merge.add_argument("out", type=Path)
    merge.add_argument("parts", type=Path, nargs="+")
    merge.add_argument("--title", required=True)
    merge.add_argument("--note", default="")
    args = ap.parse_args(argv)
    result = merge_world_runs(args.parts, args.title, args.note)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {args.out}: seeds {result['seeds']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
