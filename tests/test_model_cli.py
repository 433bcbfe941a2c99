"""`soundmates train --json` and `soundmates evaluate --json` end to end on the embedded feature store."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.helpers.model_data import full_schema_features


def _json(result, exit_code: int = 0) -> dict:
    assert result.exit_code == exit_code, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON object on stdout
    return json.loads(lines[0])


def test_train_promote_then_evaluate_stored(settings):
    from soundmates.cli.main import app
    from soundmates.model.embedder import get_embedder
    from soundmates.store import get_store

    runner = CliRunner()
    out = _json(runner.invoke(app, ["train", "--json"]), exit_code=1)
    assert "error" in out and "features" in out["error"]  # nothing stored yet: says how to build

    dv = get_store(settings).upsert("user_features", full_schema_features(60))
    out = _json(
        runner.invoke(
            app,
            [
                "train",
                "--json",
                "--max-epochs",
                "1",
                "--seed",
                "1",
                "--genre-dim",
                "8",
                "--artist-dim",
                "8",
                "--batch-size",
                "16",
            ],
        )
    )
    assert not out["promoted"] and out["data_version"] == dv  # training registers, never promotes
    assert set(out["metrics"]["test"]) == {
        "two_tower",
        "two_tower_init",
        "genre_bag",
        "artist_bag",
        "als",
        "raw_cosine",
        "random",
    }
    assert sum(out["users"].values()) == 60 and min(out["users"].values()) >= 1
    gate = out["gate"]
    # before the promote step, serving uses the registered best baseline, never the unproven model
    assert get_embedder(settings).name == next(m for m in out["candidates"] if m != "two_tower_init")

    pr = _json(runner.invoke(app, ["promote", "--json"]))
    assert pr["served"] == gate["served"] and pr["reason"] == gate["reason"]
    emb = get_embedder(settings)
    assert emb.name == gate["served"] and emb.version == pr["version"]

    ev = _json(runner.invoke(app, ["evaluate", "--json", "--dataset", "world"]))
    assert ev["served"] == gate["served"] and ev["users"] == out["users"]["test"] and ev["candidates"] == 60
    for m in ("two_tower", "two_tower_init", "als", "genre_bag", "random"):
        assert {"neighbour_recall@20", "recall@10", "ci95"} <= set(ev["methods"][m])
    assert ev["report"]["html"].endswith(".html")
    # the stored evaluation is what training measured
    assert ev["methods"]["two_tower"]["recall@10"] == pytest.approx(out["metrics"]["test"]["two_tower"]["recall@10"])


def test_evaluate_world_from_the_generator_prints_the_protocol_object(tmp_path):
    """`soundmates evaluate --dataset world --path DIR --users N --seed S --json` on a tiny generated world."""
    from soundmates.cli.main import app

    r = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--dataset",
            "world",
            "--path",
            str(tmp_path / "w"),
            "--users",
            "80",
            "--seed",
            "2",
            "--max-epochs",
            "1",
            "--json",
        ],
    )
    ev = _json(r)
    assert {"protocol", "served", "users", "candidates", "methods", "slices"} <= set(ev)
    assert isinstance(ev["protocol"], str) and ev["candidates"] <= 80 and 1 <= ev["users"] < ev["candidates"]
    assert {"two_tower", "two_tower_init", "genre_bag", "artist_bag", "als", "raw_cosine", "random"} <= set(ev["methods"])
    assert ev["served"] in ev["methods"] and ev["served"] != "random"
    # the gate's metric is the protocol's VAL_METRIC, named in the reason; every candidate metric is recorded
    from soundmates.model.protocol import VAL_CANDIDATES, VAL_METRIC

    assert ev["validation"]["metric"] == VAL_METRIC and VAL_METRIC in ev["reason"]
    for m in ev["methods"]:
        assert set(VAL_CANDIDATES) | {"norm_mean", "mean_rank"} <= set(ev["validation"]["candidates"][m]), m
        assert ev["validation"]["candidates"][m][VAL_METRIC] == pytest.approx(ev["validation"]["scores"][m])
    for m, v in ev["methods"].items():
        for metric in ("taste_ndcg@10", "taste_precision@10", "neighbour_recall@20", "recall@10"):
            assert 0.0 <= v[metric] <= 1.0, (m, metric)
            lo, hi = v["ci95"][metric]
            assert lo <= v[metric] <= hi
        assert set(ev["slices"]["thin"][m]) >= {"taste_ndcg@10", "taste_precision@10"}
    # the hidden taste is real signal: every learned or tuned method is far above chance
    assert (
        min(ev["methods"][m]["taste_ndcg@10"] for m in ("als", "genre_bag", "two_tower"))
        > ev["methods"]["random"]["taste_ndcg@10"] + 0.2
    )


def test_evaluate_rejects_unknown_dataset():
    from soundmates.cli.main import app

    r = CliRunner().invoke(app, ["evaluate", "--dataset", "nope"])
    assert r.exit_code != 0 and "world" in r.output
