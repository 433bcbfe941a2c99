"""`soundmates train --json` and `soundmates evaluate --json` end to end on the embedded feature store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.test_model import synthetic_features


def _full_schema_rows(n_users: int):
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


def _json(result, exit_code: int = 0) -> dict:
    assert result.exit_code == exit_code, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON object on stdout
    return json.loads(lines[0])


def test_train_then_evaluate_world(settings):
    from soundmates.cli.main import app
    from soundmates.store import get_store

    runner = CliRunner()
    out = _json(runner.invoke(app, ["train", "--json"]), exit_code=1)
    assert "error" in out and "features" in out["error"]  # nothing stored yet: says how to build

    dv = get_store(settings).upsert("user_features", _full_schema_rows(60))
    out = _json(runner.invoke(app, ["train", "--json", "--max-epochs", "1", "--seed", "1", "--genre-dim", "8",
                                    "--artist-dim", "8", "--batch-size", "16"]))
    assert out["promoted"] and out["data_version"] == dv
    assert set(out["metrics"]["test"]) == {"two_tower", "raw_cosine", "artist_jaccard", "genre_tfidf", "random"}
    assert out["users"] == {"train": 42, "val": 6, "test": 12}

    ev = _json(runner.invoke(app, ["evaluate", "--json", "--dataset", "world"]))
    assert ev["users"] == 12 and ev["model_version"] == out["version"]
    for m in ("two_tower", "raw_cosine", "artist_jaccard", "genre_tfidf", "random"):
        assert {"recall@1", "recall@10", "recall@50", "mrr", "ndcg@10"} <= set(ev["methods"][m])
    assert ev["report"]["html"].endswith(".html")
    # the served model matches what training measured on the same test users
    assert ev["methods"]["two_tower"]["recall@10"] == pytest.approx(out["metrics"]["test"]["two_tower"]["recall@10"])


def test_evaluate_rejects_unknown_dataset():
    from soundmates.cli.main import app

    r = CliRunner().invoke(app, ["evaluate", "--dataset", "nope"])
    assert r.exit_code != 0 and "world" in r.output
