"""Taste map: neighbour preservation of the UMAP layout vs the old PCA map, and the layout's cost at scale.

Neighbour preservation = share of each user's 10 nearest in embedding space (cosine) that stay among
its 10 nearest on the map (Euclidean), over everyone, mean over 2,000 random users
(``soundmates.index.layout.neighbour_preservation``).

Part 1: the served kinds of embedding of a generated world (``SOUNDMATES_BENCH_MAP_USERS``, default
1,500, the feedback bench's cached world): ALS (64-d) and raw_cosine (scaled combined features).
Part 2: synthetic clustered 64-d vectors (``SOUNDMATES_BENCH_MAP_SCALE``, default 30,000 users, 300
clusters): the pipeline's path past 20,000 users (UMAP fitted on 20,000, the rest transformed), timed.

    python -m bench.run_all --only map
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

N_USERS = int(os.environ.get("SOUNDMATES_BENCH_MAP_USERS", "1500"))
SCALE = int(os.environ.get("SOUNDMATES_BENCH_MAP_SCALE", "30000"))


def _log(msg: str) -> None:
    print(f"bench map: {msg}", file=sys.stderr, flush=True)


def _compare(vectors: np.ndarray) -> dict:
    from soundmates.index import layout as L

    out = {}
    for name, make in (("pca", L.pca_layout), ("umap", L.umap_layout)):
        t0 = time.perf_counter()
        xy = make(vectors)
        seconds = time.perf_counter() - t0
        out[name] = {"neighbour_preservation@10": round(L.neighbour_preservation(vectors, xy), 4), "seconds": round(seconds, 1)}
    return out


def world_part() -> dict:
    from bench.bench_feedback import ALS
    from bench.bench_model import world_frame
    from soundmates.model.baselines import make_baseline

    frame, _world, _ = world_frame(N_USERS)
    full = frame[frame["view"] == "full"].drop_duplicates("user_id").sort_values("user_id").reset_index(drop=True)
    res = {}
    for name, params in (("als", ALS), ("raw_cosine", {})):
        emb = make_baseline(name, params).fit(full)
        vectors = np.asarray(emb.embed(full), dtype=np.float32)
        res[name] = {"dim": int(vectors.shape[1]), **_compare(vectors)}
        _log(f"{name}: {res[name]}")
    return res


def scale_part() -> dict:
    from soundmates.index import layout as L

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(300, 64))
    vectors = (centres[rng.integers(0, 300, SCALE)] + 0.6 * rng.normal(size=(SCALE, 64))).astype(np.float32)
    t0 = time.perf_counter()
    xy = L.umap_layout(vectors)
    umap_s = time.perf_counter() - t0
    res = {
        "users": SCALE,
        "fitted_on": min(SCALE, L.FIT_MAX),
        "umap_seconds": round(umap_s, 1),
        "umap_neighbour_preservation@10": round(L.neighbour_preservation(vectors, xy), 4),
        "pca_neighbour_preservation@10": round(L.neighbour_preservation(vectors, L.pca_layout(vectors)), 4),
    }
    _log(f"scale: {res}")
    return res


def run(out_dir: Path) -> dict:
    world = world_part()
    scale = scale_part()
    rows = [
        f"| world {N_USERS:,}, {name} ({r['dim']}-d) | {r['pca']['neighbour_preservation@10']:.3f} | "
        f"{r['umap']['neighbour_preservation@10']:.3f} | {r['umap']['seconds']} |"
        for name, r in world.items()
    ]
    rows.append(
        f"| synthetic {scale['users']:,} (64-d, 300 clusters; UMAP fitted on {scale['fitted_on']:,}, rest transformed) | "
        f"{scale['pca_neighbour_preservation@10']:.3f} | {scale['umap_neighbour_preservation@10']:.3f} | {scale['umap_seconds']} |"
    )
    markdown = (
        "Share of each user's 10 nearest in embedding space (cosine) that stay among its 10 nearest on the 2-D map, "
        "mean over 2,000 random users, neighbours over everyone. PCA = the map before this change; UMAP = "
        "`soundmates map build` (n_neighbors 15, min_dist 0.1, cosine, seed 0, single-threaded because seeded). "
        "UMAP time includes numba's compilation on first use in the process (tens of seconds here).\n\n"
        "| embedding | PCA | UMAP | UMAP s |\n|---|---|---|---|\n" + "\n".join(rows)
    )
    return {"title": "Taste map (neighbour preservation)", "markdown": markdown, "world": world, "scale": scale}


if __name__ == "__main__":
    import json

    print(json.dumps(run(Path("bench/results")), indent=1))
