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
