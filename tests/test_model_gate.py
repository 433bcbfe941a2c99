"""The promotion gate both ways, and tuned baselines as servable embedders through the registry."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.model_data import synthetic_features


def test_gate_serves_the_model_only_when_it_beats_baseline_and_incumbent():
    from soundmates.model.gate import decide

    inc = {"method": "als", "version": "bl-als-1", "val": 0.30}
    win = decide(
        {"two_tower": 0.40, "als": 0.35, "genre_bag": 0.20, "random": 0.9},
        incumbent=inc,
        servable={"two_tower", "als", "genre_bag"},
    )
    assert win["promote"] == "two_tower" and win["served"] == "two_tower"
    # worse than a baseline: not served, the best baseline is (random is never servable)
    lose = decide(
        {"two_tower": 0.30, "als": 0.35, "genre_bag": 0.20, "random": 0.9},
        incumbent=None,
        servable={"two_tower", "als", "genre_bag"},
    )
    assert lose["promote"] == "als" and "does not beat" in lose["reason"] and "als 0.3500" in lose["reason"]
    assert "validation neighbour_recall@20" in decide({"als": 0.3}, metric="neighbour_recall@20")["reason"]
    # beats the baselines but not the incumbent: nothing new is promoted
    keep = decide({"two_tower": 0.30, "als": 0.25}, incumbent={"method": "two_tower", "version": "tt-1", "val": 0.31})
    assert keep["promote"] is None and keep["served"] == "two_tower" and "incumbent kept" in keep["reason"]
    # a tie is not a win
    assert decide({"two_tower": 0.35, "als": 0.35})["promote"] == "als"


def test_worse_model_is_not_served_end_to_end(trained, frame, settings):
    """A model zeroed to chance is registered, the gate serves the better tuned baseline, and get_embedder says so."""
    import copy

    import torch

    from soundmates.model.baselines import ALSUsers
    from soundmates.model.embedder import ModelEmbedder, get_embedder
    from soundmates.model.gate import decide
    from soundmates.model.protocol import VAL_METRIC, validation_metrics
    from soundmates.model.registry import ModelRegistry

    bad = copy.deepcopy(trained.model)
    with torch.no_grad():
        for p in bad.parameters():
            p.zero_()
    dm = trained.datamodule
    pop, val = dm.population, dm.split.val
    als = ALSUsers(factors=8, alpha=10.0, regularization=0.1).fit(pop.full[pop.full.user_id.isin(dm.split.train)])
    # scored with the gate's own validation metric (the one that ranks methods as the test does)
    scores = {
        "two_tower": validation_metrics(ModelEmbedder(bad, dm.pre), pop, val)[VAL_METRIC],
        "als": validation_metrics(als, pop, val)[VAL_METRIC],
    }
    assert scores["two_tower"] < scores["als"]  # measured, not assumed
    d = decide(scores)
    assert d["promote"] == "als" and VAL_METRIC in d["reason"]
    # the other way: the trained model against an ALS whose item factors are zeroed (every user the same vector)
    dead = ALSUsers(factors=8)
    dead.load_state({"items": als.items}, {"item_factors": np.zeros_like(als.item_factors)})
    other = {
        "two_tower": validation_metrics(ModelEmbedder(trained.model, dm.pre), pop, val)[VAL_METRIC],
        "als": validation_metrics(dead, pop, val)[VAL_METRIC],
    }
    assert other["two_tower"] > other["als"]
    assert decide(other)["promote"] == "two_tower" and VAL_METRIC in decide(other)["reason"]
    reg = ModelRegistry(settings.models_dir)
    reg.save(trained, metrics={}, data_version=1, feature_schema={}, model=bad)
    v = reg.save_baseline(als, metrics={"val": scores["als"]}, data_version=1)
    reg.promote(v, d["reason"])
    emb = get_embedder(settings)
    assert emb.name == "als" and emb.version == v


@pytest.mark.parametrize(
    "family,params",
    [
        ("als", {"factors": 8, "alpha": 10.0, "regularization": 0.1}),
        ("genre_bag", {"field": "genre", "tf": "log", "idf": True}),
        ("artist_bag", {"field": "artist", "tf": "binary", "idf": False}),
        ("raw_cosine", {}),
    ],
)
def test_baseline_is_servable_round_trip_through_the_registry(family, params, settings):
    from soundmates.model.baselines import make_baseline
    from soundmates.model.embedder import get_embedder
    from soundmates.model.registry import ModelRegistry

    df = synthetic_features(60)
    full = df[df.view == "full"]
    emb = make_baseline(family, params, seed=3).fit(full.head(40))
    want_c, want_q = emb.embed(full), emb.embed_query(full)
    reg = ModelRegistry(settings.models_dir)
    assert reg.served_version() is None
    v = reg.save_baseline(emb, metrics={"val": 0.1}, data_version=4)
    assert reg.current_version() is None and reg.served_version() == v  # before any promotion: the registered baseline
    got = get_embedder(settings)
    assert got.name == family and got.version == v and got.dim == want_c.shape[1]
    c, q = got.embed(full), got.embed_query(full)
    assert c.dtype == np.float32 and c.shape == want_c.shape
    np.testing.assert_allclose(c, want_c, atol=1e-5)
    np.testing.assert_allclose(q, want_q, atol=1e-5)
    norms = np.linalg.norm(c, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    # a fresh user (never in the fit rows) embeds too: ALS folds it in with the item factors fixed
    fresh = full.tail(1).assign(user_id="fresh-user")
    assert np.isfinite(got.embed(fresh)).all()


def test_tuning_reports_the_chosen_setting_and_labels_what_cannot_run():
    from soundmates.model.baselines import tune_baselines

    df = synthetic_features(40)
    full = df[df.view == "full"].drop(columns=["combined"])
    calls = []

    def score(emb):
        calls.append(emb.params)
        return 1.0 if emb.params.get("tf") == "binary" and emb.params.get("idf") else 0.0

    out = tune_baselines(full, score, families=("genre_bag", "raw_cosine"))
    assert out["genre_bag"]["params"] == {"field": "genre", "tf": "binary", "idf": True, "max_terms": 4096} or out["genre_bag"][
        "params"
    ] == {"field": "genre", "tf": "binary", "idf": True}
    assert len(out["genre_bag"]["grid"]) == 6 and "combined" in out["raw_cosine"]["skipped"]
