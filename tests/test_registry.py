"""Model registry: nothing stored is lost, a broken current model does not block a new one, Hopsworks optional."""

from __future__ import annotations

import os

import pytest


def test_unreadable_current_model_does_not_block_and_is_not_deleted(trained, settings):
    from soundmates.model.gate import decide
    from soundmates.model.registry import ModelRegistry
    from soundmates.pipelines.model import _incumbent

    reg = ModelRegistry(settings.models_dir)
    first = reg.register(trained, metrics={}, data_version=1, feature_schema={})
    reg.promote(first["version"], "first")
    assert _incumbent(settings).version == first["version"]
    (reg.versions_dir / first["version"] / "model.pt").write_bytes(b"not a checkpoint")
    assert _incumbent(settings) is None  # cannot be loaded: no incumbent to beat, the new model is not blocked
    second = reg.register(trained, metrics={}, data_version=2, feature_schema={})
    assert decide({"two_tower": 0.5, "als": 0.4}, incumbent=None)["promote"] == "two_tower"
    assert set(reg.versions()) == {first["version"], second["version"]}  # the broken one is kept for inspection


def test_failed_save_leaves_no_partial_version(trained, settings, monkeypatch):
    import torch

    from soundmates.model.registry import ModelRegistry

    reg = ModelRegistry(settings.models_dir)
    kept = reg.register(trained, metrics={}, data_version=1, feature_schema={})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        reg.register(trained, metrics={}, data_version=2, feature_schema={})
    assert reg.versions() == [kept["version"]]
    assert not [p for p in reg.versions_dir.iterdir() if p.name.startswith(".tmp-")]


def test_unknown_version_is_named(settings):
    from soundmates.model.registry import ModelRegistry, RegistryError

    reg = ModelRegistry(settings.models_dir)
    with pytest.raises(RegistryError, match="soundmates train"):
        reg.load()
    with pytest.raises(RegistryError, match="'nope' not found"):
        reg.load("nope")


def test_hopsworks_push_is_skipped_when_not_configured(tmp_path, monkeypatch):
    from soundmates.model.registry import push_to_hopsworks

    monkeypatch.delenv("HOPSWORKS_API_KEY", raising=False)
    assert push_to_hopsworks(tmp_path, {"version": "v"}) == {"hopsworks": "not configured"}


@pytest.mark.hopsworks
@pytest.mark.skipif(not os.environ.get("HOPSWORKS_API_KEY"), reason="needs a Hopsworks server (HOPSWORKS_API_KEY)")
def test_hopsworks_push(trained, settings):
    from soundmates.model.registry import ModelRegistry, push_to_hopsworks

    reg = ModelRegistry(settings.models_dir)
    v = reg.register(trained, metrics={"val": {"recall@10": 1.0}}, data_version=1, feature_schema={})["version"]
    assert push_to_hopsworks(reg.versions_dir / v, reg.meta(v))["hopsworks"] == "saved"


def test_feedback_tuned_version_round_trips_on_its_two_tower_base(trained, settings, frame):
    """Saved as its own kind on a registered base; loaded back: the base's candidate side, the map on the query side."""
    import numpy as np

    from soundmates.model.feedback_tuning import FeedbackTuned
    from soundmates.model.registry import FEEDBACK_FILE, ModelRegistry, RegistryError

    reg = ModelRegistry(settings.models_dir)
    base_version = reg.register(trained, metrics={}, data_version=1, feature_schema={})["version"]
    base = reg.load_embedder(base_version)
    rows = frame[frame["view"] == "full"].reset_index(drop=True)
    weight = np.eye(base.dim, dtype=np.float32) + np.random.default_rng(0).normal(0, 0.2, (base.dim, base.dim)).astype(np.float32)
    version = reg.save_feedback_tuned(FeedbackTuned(base, weight, votes=7), base_version=base_version, data_version=1)
    meta = reg.meta(version)
    assert version.startswith("fb-twotower-") and (reg.versions_dir / version / FEEDBACK_FILE).exists()
    assert (meta["kind"], meta["method"], meta["base_version"], meta["votes"], meta["promoted"]) == (
        "feedback_tuned",
        "two_tower+feedback",
        base_version,
        7,
        False,
    )
    assert reg.candidate_version(version) == base_version and reg.candidate_version(base_version) == base_version
    reg.promote(version, "tuned on votes")
    loaded = reg.load_embedder()  # the served one
    assert isinstance(loaded, FeedbackTuned) and (loaded.name, loaded.version) == ("two_tower+feedback", version)
    assert loaded.candidate_version == base_version and loaded.meta["base_version"] == base_version
    assert np.array_equal(loaded.embed(rows), base.embed(rows))
    q = base.embed_query(rows) @ weight
    assert np.allclose(loaded.embed_query(rows), q / np.linalg.norm(q, axis=1, keepdims=True), atol=1e-5)
    with pytest.raises(RegistryError, match="feedback-tuned itself"):
        reg.save_feedback_tuned(loaded, base_version=version, data_version=1)
    with pytest.raises(RegistryError, match="not a two-tower model"):
        reg.load(version)
    # a map that does not fit its base is refused with the reason, not served wrong
    np.savez(reg.versions_dir / version / FEEDBACK_FILE, weight=np.eye(3, dtype=np.float32))
    with pytest.raises(RegistryError, match="does not fit base"):
        reg.load_embedder(version)
