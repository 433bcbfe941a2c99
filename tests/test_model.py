"""Two-tower model stage: split, training (fast_dev_run), registry round trip, promotion gate, embedder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soundmates.model.config import ModelConfig
from soundmates.model.splits import paired_views, split_users


def test_split_is_disjoint_complete_seeded_and_stable_per_user():
    users = [f"u{i}" for i in range(1000)]
    s = split_users(users, seed=3)
    sets = [set(s.train), set(s.val), set(s.test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set().union(*sets) == set(users)
    assert 160 <= len(s.test) <= 240 and 70 <= len(s.val) <= 130  # hash fractions 0.2 / 0.1, binomial spread
    assert split_users(list(reversed(users)), seed=3) == s  # input order does not matter
    assert split_users(users, seed=4) != s
    # a growing population never moves a user: the incumbent is never scored on its own training users
    grown = split_users(users + [f"new{i}" for i in range(500)], seed=3)
    assert set(s.train) <= set(grown.train) and set(s.val) <= set(grown.val) and set(s.test) <= set(grown.test)
    tiny = split_users(["a", "b", "c", "d", "e"], seed=0)
    assert tiny.val and tiny.test and len(tiny.train) >= 2
    with pytest.raises(ValueError, match="too few"):
        split_users(["a", "b"], seed=0)


def test_paired_views_needs_both_halves(frame):
    df = frame[~((frame.user_id == "user-001") & (frame.view == "b"))]
    a, b = paired_views(df)
    assert "user-001" not in set(a.user_id) and list(a.user_id) == list(b.user_id)


def test_fast_dev_run_trains_one_batch(frame):
    from soundmates.model.train import fit_model

    t = fit_model(ModelConfig.load(batch_size=16, genre_dim=8, artist_dim=8, dense_dim=4, hidden=16), frame, fast_dev_run=True)
    q = t.model.embed_query({k: v[:5] for k, v in t.datamodule.tensors["val"]["a"].items()})
    assert q.shape == (5, t.model.dim)
    assert np.allclose(q.norm(dim=1).detach().numpy(), 1.0, atol=1e-5)  # L2-normalised outputs


def test_training_learns_and_preprocessing_sees_train_only(trained, frame):
    dm = trained.datamodule
    held_out = set(dm.split.val) | set(dm.split.test)
    # normalisation/vocabulary fitted on the training split only: its document count = 2 views x train users
    assert dm.pre.genres.n_docs == 2 * len(dm.split.train)
    assert not held_out & set(pd.concat(dm.pairs["train"]).user_id)
    # against the whole population (100 users' halves b), the model finds each held-out user's own
    # other half far above chance (random: recall@10 ~ 10/100)
    from soundmates.model.baselines import RandomVectors
    from soundmates.model.embedder import ModelEmbedder
    from soundmates.model.protocol import make_population, per_query_metrics

    pop = make_population(frame)
    model = per_query_metrics(ModelEmbedder(trained.model, trained.preprocessor), pop, dm.split.test)["recall@10"]
    chance = per_query_metrics(RandomVectors(seed=1), pop, dm.split.test)["recall@10"]
    assert len(model) == len(dm.split.test)
    assert model.mean() > 0.8 and chance.mean() < 0.4


def test_training_is_reproducible(frame):
    from soundmates.model.train import fit_model

    cfg = ModelConfig.load(max_epochs=1, batch_size=16, genre_dim=8, artist_dim=8, dense_dim=4, hidden=16)
    t1, t2 = fit_model(cfg, frame), fit_model(cfg, frame)
    for (k, v1), v2 in zip(t1.model.state_dict().items(), t2.model.state_dict().values()):
        assert np.array_equal(v1.numpy(), v2.numpy()), k


def test_registry_round_trip_reproduces_embeddings(trained, frame, settings):
    from soundmates.model.embedder import RAW_FEATURES_VERSION, get_embedder
    from soundmates.model.evaluate import embed_rows
    from soundmates.model.registry import ModelRegistry

    assert get_embedder(settings).version == RAW_FEATURES_VERSION  # nothing registered yet
    reg = ModelRegistry(settings.models_dir)
    out = reg.register(trained, metrics={"val": {}}, data_version=7, feature_schema={"columns": ["x"]})
    assert not out["promoted"] and reg.current_version() is None  # training registers, the gate promotes
    assert get_embedder(settings).version == RAW_FEATURES_VERSION  # an unpromoted model is not served
    reg.promote(out["version"], "test")
    assert reg.current_version() == out["version"]
    meta = reg.meta(out["version"])
    assert meta["data_version"] == 7 and meta["config"]["genre_dim"] == 16 and meta["feature_schema"] == {"columns": ["x"]}
    full = frame[frame.view == "full"]
    emb = get_embedder(settings)
    assert emb.version == out["version"] and emb.name == "two_tower"
    got = emb.embed(full)
    want = embed_rows(trained.model, trained.preprocessor, full)
    assert got.dtype == np.float32 and got.shape == (len(full), emb.dim)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_embedder_survives_bad_rows(trained, frame, settings):
    from soundmates.model.registry import ModelRegistry

    reg = ModelRegistry(settings.models_dir)
    loaded = reg.load(reg.register(trained, metrics={}, data_version=None, feature_schema={})["version"])
    bad = frame[frame.view == "full"].head(4).copy()
    bad.at[bad.index[0], "genre_emb"] = [1.0, 2.0]  # wrong width
    bad.at[bad.index[1], "artist_ids"] = ["never-seen-artist"]  # unseen id -> hash bucket
    bad.at[bad.index[1], "artist_weights"] = [3.0]
    bad.at[bad.index[2], "genre_names"] = []
    bad.at[bad.index[2], "genre_weights"] = []
    bad.at[bad.index[3], "artist_weights"] = ["x"] * len(bad.at[bad.index[3], "artist_ids"])  # not numbers
    from soundmates.model.embedder import TwoTowerEmbedder

    v = TwoTowerEmbedder(loaded).embed(bad)
    assert np.isfinite(v).all() and v.shape[0] == 4


def test_old_style_version_without_kind_still_loads(trained, frame, settings):
    """Versions written before baselines were servable (no ``kind``/``method`` in meta) load as two-tower ones."""
    import json

    from soundmates.model.embedder import get_embedder
    from soundmates.model.registry import ModelRegistry

    reg = ModelRegistry(settings.models_dir)
    v = reg.register(trained, metrics={}, data_version=1, feature_schema={})["version"]
    meta_path = reg.versions_dir / v / "meta.json"
    meta = json.loads(meta_path.read_text())
    for k in ("kind", "method"):
        meta.pop(k)
    meta_path.write_text(json.dumps(meta))
    reg.promote(v, "old style")
    emb = get_embedder(settings)
    assert emb.name == "two_tower" and emb.version == v
    assert emb.embed(frame[frame.view == "full"].head(3)).shape == (3, emb.dim)


def test_config_file_and_overrides(tmp_path):
    p = tmp_path / "hp.yaml"
    p.write_text("lr: 0.01\ntemperature: 0.1\n")
    cfg = ModelConfig.load(p, temperature=0.2)
    assert cfg.lr == 0.01 and cfg.temperature == 0.2
    p.write_text("lrr: 0.01\n")
    with pytest.raises(ValueError, match="lrr"):
        ModelConfig.load(p)
    with pytest.raises(FileNotFoundError):
        ModelConfig.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize("monitor", ["val_recall@10", "val_neighbour_recall@20"])
def test_monitor_picks_the_kept_model_and_reports_its_val_recall(frame, monitor):
    """Whatever metric early stopping watches, the result reports the kept model's own validation metrics."""
    from soundmates.model.embedder import ModelEmbedder
    from soundmates.model.protocol import neighbour_recall
    from soundmates.model.train import fit_model

    cfg = ModelConfig.load(
        val_frac=0.3, max_epochs=2, batch_size=16, genre_dim=8, artist_dim=8, dense_dim=4, hidden=16, patience=2, monitor=monitor
    )
    t = fit_model(cfg, frame)
    assert t.config.monitor == monitor
    # the callback's validation neighbour_recall@20 is the protocol's, on the kept model
    nr = neighbour_recall(ModelEmbedder(t.model, t.preprocessor), t.datamodule.population, t.datamodule.split.val)
    assert t.val_metrics["val_neighbour_recall@20"] == pytest.approx(float(np.nanmean(nr)), abs=1e-6)
    assert t.val_metrics[monitor] >= t.initial_val_metrics[monitor] - 1e-9  # training never ends below its start


def test_unknown_monitor_is_refused():
    with pytest.raises(ValueError, match="monitor"):
        ModelConfig.load(monitor="val_loss")
