"""Features: users/s on a 1,000-user world, cold and warm embedding cache, vs a seed-style baseline.

Profiles come straight from the local world's generator (``soundmates.world.generator``:
the same pure functions the local Spotify server serves from), turned into canonical
``Profile`` objects in memory, so the benchmark needs neither the server nor the ingest.

Measured side by side in one process, on the same profiles:
- **seed-style baseline**: per user, encode that user's genre strings and top-N artist
  names afresh with the model and average them (what the reference does; generous to
  it: each user's genre list is de-duplicated first). Run on a subset, per-user rate reported.
- **ours, cold cache**: empty SQLite cache; every distinct string encoded once for the batch.
- **ours, warm cache**: a new encoder instance (empty in-process dict) on the filled cache,
  i.e. the next run of ``features build`` or another process.
Both "full view only" (the baseline's work) and "full + views a/b" (what the pipeline stores).
The model is loaded before any timing (its load time is reported on its own line).
"""

from __future__ import annotations

import gc
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

N_USERS = 1000
BASELINE_USERS = 50
WORLD_SEED = 7


def _log(msg: str) -> None:
    print(f"bench features: {msg}", file=sys.stderr, flush=True)


def world_profiles(n_users: int, seed: int = WORLD_SEED) -> list:
    """Canonical profiles of the first ``n_users`` users of a generated world (what ingest would produce)."""
    from soundmates.sources.world import profile_from_specs
    from soundmates.world import catalog
    from soundmates.world import generator as g

    table = catalog.artists()
    return [profile_from_specs(u, g.user_playlists(seed, u), table) for u in (g.user_spec(seed, i) for i in range(n_users))]


def seed_style_features(profile, model, top_n: int) -> dict:
    """The reference's way: encode this user's genres and top artist names afresh, then average."""
    from collections import Counter

    genres, artist_counts = [], Counter()
    for pl in profile.playlists:
        for it in pl.items:
            t = profile.tracks.get(it.track_id)
            if t is None:
                continue
            for aid in t.artist_ids:
                artist_counts[aid] += 1
                a = profile.artists.get(aid)
                if a is not None and a.genres:
                    genres.extend(a.genres)
    out = {}
    uniq = sorted(set(genres))
    if uniq:
        out["genre_emb"] = model.encode(uniq, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False).mean(
            axis=0
        )
    names = [profile.artists[a].name for a, _ in artist_counts.most_common(top_n) if a in profile.artists]
    if names:
        out["artist_emb"] = model.encode(names, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False).mean(
            axis=0
        )
    return out


def _timed(fn):
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def run(out_dir: Path) -> dict:
    import torch

    from soundmates.config import Settings
    from soundmates.features.encoder import TextEncoder, load_model
    from soundmates.features.taste import featurize_profiles, taste_bags, texts_needed

    # One intra-op thread for both sides: on this shared 2-core machine two spinning OpenMP
    # threads made encoding ~10x slower under load, which would flatter the ratio.
    torch.set_num_threads(1)
    top_n = Settings().top_n_artists
    _, load_s = _timed(lambda: load_model(""))
    model = load_model("")
    profiles, gen_s = _timed(lambda: world_profiles(N_USERS))
    n_items = sum(p.n_items for p in profiles)
    distinct = set()
    for p in profiles:
        distinct |= texts_needed(taste_bags(p), p, top_n)
    _log(f"{len(profiles)} profiles ({n_items} playlist tracks, {len(distinct)} distinct strings) in {gen_s:.1f} s")

    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        # Seed-style baseline on a subset (it is ~100x slower; per-user rate is what compares).
        subset = profiles[:BASELINE_USERS]
        _, base_s = _timed(lambda: [seed_style_features(p, model, top_n) for p in subset])
        _log(f"baseline {len(subset)} users in {base_s:.1f} s")

        cold_enc = TextEncoder(settings)
        cold, cold_s = _timed(lambda: featurize_profiles(profiles, cold_enc, top_n=top_n, views=True))
        _log(f"cold (full+views) {cold_s:.1f} s, encoded {cold_enc.stats['encoded']}")

        def warm_run(views: bool, users=None):
            enc = TextEncoder(settings)  # new instance: nothing in memory, everything in SQLite
            batch = featurize_profiles(profiles if users is None else users, enc, top_n=top_n, views=views)
            assert enc.stats["encoded"] == 0, "warm run must not call the model"
            return batch

        def warm_run_on(users):
            return warm_run(False, users)

        # The baseline's own users, same work (full view), warm: the like-for-like ratio. Short, so best of 5.
        subset_s = min(_timed(lambda: warm_run_on(subset))[1] for _ in range(5))

        warm, warm_s = _timed(lambda: warm_run(True))
        _, warm_full_s = _timed(lambda: warm_run(False))
        _log(f"warm full+views {warm_s:.1f} s, warm full only {warm_full_s:.1f} s")

        # Same numbers as a from-scratch computation: the cache changes speed, not values.
        same = all(
            np.allclose(a["combined"], b["combined"], equal_nan=True) for a, b in zip(cold.feature_rows, warm.feature_rows)
        )

        tracemalloc.start()
        warm_run(True)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        # End to end into the embedded store (profiles on disk -> Delta tables), warm cache.
        from soundmates.pipelines.features import build_features
        from soundmates.profiles import ProfileRepository

        repo = ProfileRepository(settings.profiles_dir)
        for p in profiles:
            repo.save(p)
        built, build_s = _timed(lambda: build_features(settings, encoder=TextEncoder(settings)))
        rebuilt, rebuild_s = _timed(lambda: build_features(settings, encoder=TextEncoder(settings)))
        _log(f"build_features {build_s:.1f} s, unchanged rerun {rebuild_s:.1f} s")

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(profiles)
    base_rate = len(subset) / base_s
    rates = {
        "baseline_seed_style": base_rate,
        "cold_full_views": n / cold_s,
        "warm_full_only": n / warm_full_s,
        "warm_full_views": n / warm_s,
        "build_features_store": n / build_s,
        "build_features_unchanged": n / rebuild_s,
    }
    rates["warm_full_only_baseline_users"] = len(subset) / subset_s
    ratio_same_users = rates["warm_full_only_baseline_users"] / base_rate
    ratio_warm = rates["warm_full_only"] / base_rate
    ratio_warm_views = rates["warm_full_views"] / base_rate
    ratio_cold = rates["cold_full_views"] / base_rate
    rows = [
        ("seed-style baseline (encode per user), full view", f"{len(subset)}", f"{base_s:.1f}", f"{base_rate:.1f}", "1.0x"),
        (
            "ours, warm cache, full view, the baseline's users",
            f"{len(subset)}",
            f"{subset_s:.2f}",
            f"{rates['warm_full_only_baseline_users']:.0f}",
            f"**{ratio_same_users:.0f}x**",
        ),
        ("ours, cold cache, full + views a/b", f"{n}", f"{cold_s:.1f}", f"{rates['cold_full_views']:.1f}", f"{ratio_cold:.1f}x"),
        ("ours, warm cache, full view", f"{n}", f"{warm_full_s:.2f}", f"{rates['warm_full_only']:.0f}", f"{ratio_warm:.0f}x"),
        (
            "ours, warm cache, full + views a/b",
            f"{n}",
            f"{warm_s:.2f}",
            f"{rates['warm_full_views']:.0f}",
            f"{ratio_warm_views:.0f}x",
        ),
        ("`build_features` into the Delta store, warm", f"{n}", f"{build_s:.1f}", f"{rates['build_features_store']:.0f}", ""),
        ("`build_features` rerun, nothing changed", f"{n}", f"{rebuild_s:.2f}", f"{rates['build_features_unchanged']:.0f}", ""),
    ]
    table = "\n".join(
        ["| run | users | seconds | users/s | vs baseline |", "|---|---:|---:|---:|---:|"]
        + [f"| {' | '.join(r)} |" for r in rows]
    )
    markdown = (
        f"{n} users of a generated world (seed {WORLD_SEED}, profiles built from `soundmates.world.generator` in memory): "
        f"{n_items:,} playlist tracks, {len(distinct):,} distinct genre and artist strings; top-N artists = {top_n}.\n\n"
        f"{table}\n\n"
        f"- Goal >= 20x the seed-style baseline warm: **{'met' if min(ratio_same_users, ratio_warm) >= 20 else 'not met'}** "
        f"({ratio_same_users:.0f}x on the baseline's own {len(subset)} users, {ratio_warm:.0f}x per-user rate over all {n}; same work: full view).\n"
        f"- Cold cache: {cold_enc.stats['encoded']:,} strings encoded once ({cold_enc.stats['model_calls']} model call) for the whole batch; "
        f"warm runs call the model 0 times and give identical features: {same}.\n"
        f"- Encoder on CPU with 1 torch thread for both sides (the machine is shared; 2 contended threads were ~10x slower).\n"
        f"- Model load (once per process, not in the timings): {load_s:.1f} s; building the profiles: {gen_s:.1f} s.\n"
        f"- Peak memory: {traced_peak / 2**20:.0f} MiB traced by tracemalloc during a warm full+views run; "
        f"process peak RSS {peak_rss_mb:.0f} MiB (model, torch and the 1,000 profiles included).\n"
        f"- `build_features`: {built['updated']} updated, {len(built['rejected'])} rejected (no public playlists or no music), "
        f"rerun: {rebuilt['updated']} updated, {rebuilt['unchanged']} unchanged.\n"
    )
    return {
        "title": "Features: users/s, cold vs warm cache vs seed-style baseline",
        "markdown": markdown,
        "users": n,
        "baseline_users": len(subset),
        "playlist_tracks": n_items,
        "distinct_strings": len(distinct),
        "seconds": {
            "baseline": base_s,
            "cold_full_views": cold_s,
            "warm_full_only": warm_full_s,
            "warm_full_views": warm_s,
            "warm_full_only_baseline_users": subset_s,
            "build_features": build_s,
            "build_features_unchanged": rebuild_s,
            "model_load": load_s,
            "profiles": gen_s,
        },
        "users_per_s": rates,
        "ratio_warm_vs_baseline": ratio_warm,
        "ratio_warm_same_users_vs_baseline": ratio_same_users,
        "ratio_warm_views_vs_baseline": ratio_warm_views,
        "ratio_cold_vs_baseline": ratio_cold,
        "encoded_cold": cold_enc.stats["encoded"],
        "warm_equals_cold": same,
        "tracemalloc_peak_mib": traced_peak / 2**20,
        "peak_rss_mib": peak_rss_mb,
        "rejected": len(built["rejected"]),
    }


def build_only(prepared: Path) -> dict:
    """`build_features` alone, warm, on a prepared data dir (``profiles/`` + a filled ``cache/``): a fresh store,
    then a rerun with nothing changed. The model is loaded before timing; wall and CPU seconds."""
    import shutil

    import torch

    from soundmates.config import Settings
    from soundmates.features.encoder import TextEncoder
    from soundmates.pipelines.features import build_features

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        run_dir = Path(tmp)
        shutil.copytree(prepared / "profiles", run_dir / "profiles")
        shutil.copytree(prepared / "cache", run_dir / "cache")
        settings = Settings(data_dir=run_dir)
        _ = TextEncoder(settings).dim  # load the model outside the timings
        n = len(list((run_dir / "profiles").glob("*.json")))
        out = {"users": n}
        for label in ("warm", "unchanged_rerun"):
            t0, c0 = time.perf_counter(), time.process_time()
            summary = build_features(settings, encoder=TextEncoder(settings))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            out[label] = {
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "users_per_s": round(n / wall, 1),
                "updated": summary["updated"],
                "unchanged": summary["unchanged"],
                "rejected": len(summary["rejected"]),
            }
    return out


if __name__ == "__main__":
    import json

    if len(sys.argv) == 3 and sys.argv[1] == "--build-only":
        print(json.dumps(build_only(Path(sys.argv[2]))))
    else:
        print("usage: python -m bench.bench_features --build-only PREPARED_DATA_DIR", file=sys.stderr)
        raise SystemExit(2)
