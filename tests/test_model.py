"""Two-tower model stage: split, training (fast_dev_run), registry round trip, promotion gate, embedder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soundmates.model.config import ModelConfig
from soundmates.model.datamodule import paired_views, split_users

DIM = 8


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
            rows.append({
                "user_id": f"user-{u:03d}", "view": view,
                "genre_names": [genres[i] for i in gi], "genre_weights": g[gi].astype(np.float32).tolist(),
                "artist_ids": [artists[i] for i in ai], "artist_weights": a[ai].astype(np.float32).tolist(),
                "genre_emb": (emb / np.linalg.norm(emb)).astype(np.float32).tolist(),
                "year_mean": float(rng.normal(2000, 5)) if u % 7 else float("nan"),
                "n_tracks": int(rng.integers(10, 100)), "n_playlists": 2,
                "combined": rng.normal(0, 1, 12).astype(np.float32).tolist(),
            })
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_features()


@pytest.fixture(scope="module")
def trained(frame):
    from soundmates.model.train import fit_model

    # a large validation set (30 users), so recall@10 on it separates good from bad models
    cfg = ModelConfig.load(val_frac=0.3, max_epochs=3, batch_size=16, genre_dim=16, artist_dim=16, dense_dim=8, hidden=32, patience=2)
    return fit_model(cfg, frame)


def test_split_is_disjoint_complete_and_seeded():
    users = [f"u{i}" for i in range(1000)]
    s = split_users(users, seed=3)
    sets = [set(s.train), set(s.val), set(s.test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set().union(*sets) == set(users)
    assert (len(s.test), len(s.val)) == (200, 100)
    assert split_users(list(reversed(users)), seed=3) == s  # input order does not matter
    assert split_users(users, seed=4) != s
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
    # the model ranks each held-out user's other half far above chance (1/16 users -> recall@10 ~ 0.6 by chance)
    from soundmates.model.evaluate import compare_methods

    res = compare_methods(trained, split="test")
    assert res["users"] == len(dm.split.test)
    assert res["methods"]["two_tower"]["recall@1"] > 0.5
    assert res["methods"]["random"]["recall@1"] < 0.5
    assert set(res["methods"]) == {"two_tower", "raw_cosine", "artist_jaccard", "genre_tfidf", "random"}


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
    assert out["promoted"] and reg.current_version() == out["version"]
    meta = reg.meta(out["version"])
    assert meta["data_version"] == 7 and meta["config"]["genre_dim"] == 16 and meta["feature_schema"] == {"columns": ["x"]}
    full = frame[frame.view == "full"]
    emb = get_embedder(settings)
    assert emb.version == out["version"]
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


def test_promotion_gate_both_ways(trained, settings):
    import copy

    from soundmates.model.registry import ModelRegistry
    import torch

    reg = ModelRegistry(settings.models_dir)
    first = reg.register(trained, metrics={}, data_version=1, feature_schema={})
    assert first["promoted"] and first["reason"] == "first model in the registry"

    # a worse model: every weight zeroed, so all users embed alike (ranking = chance);
    # its validation recall is measured honestly, not asserted
    bad = copy.copy(trained)
    bad.model = copy.deepcopy(trained.model)
    with torch.no_grad():
        for p in bad.model.parameters():
            p.zero_()
    from soundmates.model.evaluate import compare_methods

    bad.val_recall_at_10 = compare_methods(bad, split="val")["methods"]["two_tower"]["recall@10"]
    assert bad.val_recall_at_10 < trained.val_recall_at_10
    worse = reg.register(bad, metrics={}, data_version=2, feature_schema={})
    assert not worse["promoted"] and "kept but not served" in worse["reason"]
    assert reg.current_version() == first["version"]  # still serving the better one
    assert worse["version"] in reg.versions()  # kept

    # an equally good model (same validation set) is promoted: "not worse"
    same = reg.register(trained, metrics={}, data_version=3, feature_schema={})
    assert same["promoted"] and reg.current_version() == same["version"]


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


@pytest.mark.parametrize("monitor", ["val_recall@10", "val_mrr"])
def test_monitor_picks_the_kept_model_and_reports_its_val_recall(frame, monitor):
    """Whatever metric early stopping watches, the result reports the kept model's own validation recall@10."""
    from soundmates.model.evaluate import compare_methods
    from soundmates.model.train import fit_model

    cfg = ModelConfig.load(val_frac=0.3, max_epochs=2, batch_size=16, genre_dim=8, artist_dim=8, dense_dim=4, hidden=16,
                           patience=2, monitor=monitor)
    t = fit_model(cfg, frame)
    assert t.config.monitor == monitor
    val = compare_methods(t, split="val")["methods"]["two_tower"]["recall@10"]
    assert t.val_recall_at_10 == pytest.approx(val, abs=1e-6)


def test_unknown_monitor_is_refused():
    with pytest.raises(ValueError, match="monitor"):
        ModelConfig.load(monitor="val_loss")
