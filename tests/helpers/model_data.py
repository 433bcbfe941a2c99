"""Synthetic ``user_features`` rows for the model stage's tests: no world, no pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd

DIM = 8  # genre embedding width of the synthetic rows


def synthetic_features(n_users: int = 100, seed: int = 0) -> pd.DataFrame:
    """user_features-shaped rows (views full/a/b) where a user's two halves share a personal taste."""
    rng = np.random.default_rng(seed)
    genres = [f"genre {i}" for i in range(40)]
    artists = [f"artist{i}" for i in range(200)]
    rows = []
    for u in range(n_users):
        g_pref = rng.dirichlet(np.full(len(genres), 0.1))
        a_pref = rng.dirichlet(np.full(len(artists), 0.05))
        for view in ("full", "a", "b"):
            g = rng.multinomial(30, g_pref)
            a = rng.multinomial(20, a_pref)
            gi, ai = np.nonzero(g)[0], np.nonzero(a)[0]
            emb = g_pref[:DIM] + rng.normal(0, 0.01, DIM)
            rows.append(
                {
                    "user_id": f"user-{u:03d}",
                    "view": view,
                    "genre_names": [genres[i] for i in gi],
                    "genre_weights": g[gi].astype(np.float32).tolist(),
                    "artist_ids": [artists[i] for i in ai],
                    "artist_weights": a[ai].astype(np.float32).tolist(),
                    "genre_emb": (emb / np.linalg.norm(emb)).astype(np.float32).tolist(),
                    "year_mean": float(rng.normal(2000, 5)) if u % 7 else float("nan"),
                    "n_tracks": int(rng.integers(10, 100)),
                    "n_playlists": 2,
                    "combined": rng.normal(0, 1, 12).astype(np.float32).tolist(),
                }
            )
    return pd.DataFrame(rows)


def full_schema_features(n_users: int):
    """Synthetic user_features with every column of the schema, as the features stage writes them."""
    from soundmates.features.schema import FEATURE_COLUMNS, YEAR_BINS

    df = synthetic_features(n_users)
    n = len(df)
    for c in ("artist_emb", "playlist_emb"):
        df[c] = [np.zeros(8, dtype=np.float32)] * n
    df["year_std"] = 3.0
    df["year_hist"] = [np.full(len(YEAR_BINS), 1 / len(YEAR_BINS), dtype=np.float32)] * n
    df["mean_popularity"] = np.nan
    df["explicit_ratio"] = 0.1
    df["missing"] = [["popularity"]] * n
    df["profile_hash"] = df["user_id"]
    df["genre_weights"] = df["genre_weights"].map(lambda v: np.asarray(v, dtype=np.float32))
    df["artist_weights"] = df["artist_weights"].map(lambda v: np.asarray(v, dtype=np.float32))
    return df[["user_id", "view", *FEATURE_COLUMNS]]


# a one-epoch, tiny-towers training run: enough for the CLI's train/promote steps in a test
TRAIN_ARGS = ["--max-epochs", "1", "--seed", "1", "--genre-dim", "8", "--artist-dim", "8", "--batch-size", "16"]


def cli_json(result) -> dict:
    """The one JSON line a successful ``--json`` CLI call printed."""
    import json

    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])
