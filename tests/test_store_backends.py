"""Backend selection by configuration, and the Hopsworks backend's wiring (no server needed)."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest

from soundmates.config import HopsworksSettings, Settings
from soundmates.store import StoreUnavailable, get_store


def test_embedded_is_the_default_and_lives_in_store_dir(tmp_path, monkeypatch):
    from soundmates.store.delta import DeltaFeatureStore

    monkeypatch.delenv("SOUNDMATES_STORE_BACKEND", raising=False)
    settings = Settings(data_dir=tmp_path)
    store = get_store(settings)
    assert isinstance(store, DeltaFeatureStore) and store.backend == "embedded"
    assert store.root == settings.store_dir


@pytest.fixture
def login_must_not_be_called(monkeypatch):
    """Replace hopsworks.login: unconfigured it would block on a password prompt."""
    calls = []
    fake = types.ModuleType("hopsworks")
    fake.login = lambda *a, **k: calls.append((a, k)) or pytest.fail("hopsworks.login() was called unconfigured")
    monkeypatch.setitem(sys.modules, "hopsworks", fake)
    return calls


def test_hopsworks_selected_without_api_key_refuses_clearly(tmp_path, monkeypatch, login_must_not_be_called):
    monkeypatch.delenv("HOPSWORKS_API_KEY", raising=False)
    monkeypatch.setenv("SOUNDMATES_STORE_BACKEND", "hopsworks")
    with pytest.raises(StoreUnavailable, match="HOPSWORKS_API_KEY is unset") as err:
        get_store(Settings(data_dir=tmp_path))
    assert "SOUNDMATES_STORE_BACKEND" in str(err.value)
    assert login_must_not_be_called == []


def test_an_empty_api_key_counts_as_unset(login_must_not_be_called):
    from soundmates.store.hopsworks_store import HopsworksFeatureStore

    with pytest.raises(StoreUnavailable, match="HOPSWORKS_API_KEY"):
        HopsworksFeatureStore(HopsworksSettings(api_key=""))


def test_backend_comes_from_the_environment(tmp_path, monkeypatch, login_must_not_be_called):
    from soundmates.store.hopsworks_store import HopsworksFeatureStore

    monkeypatch.setenv("SOUNDMATES_STORE_BACKEND", "hopsworks")
    monkeypatch.setenv("HOPSWORKS_API_KEY", "k3y")
    store = get_store(Settings(data_dir=tmp_path))
    assert isinstance(store, HopsworksFeatureStore)
    assert login_must_not_be_called == [], "constructing the store must not log in (lazy)"


class FakeFeatureGroup:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.version = kwargs["version"]
        self.inserts: list[tuple[pd.DataFrame, dict]] = []
        self.commits: dict[int, dict] = {}

    def insert(self, df, **kwargs):
        self.inserts.append((df, kwargs))
        self.commits[1700000000000 + len(self.inserts)] = {}

    def commit_details(self, limit=None):
        return self.commits


class FakeFeatureStore:
    def __init__(self):
        self.created: list[FakeFeatureGroup] = []

    def get_or_create_feature_group(self, **kwargs):
        fg = FakeFeatureGroup(**kwargs)
        self.created.append(fg)
        return fg


def test_hopsworks_backend_logs_in_from_settings_and_upserts_with_a_cosine_index(monkeypatch):
    pytest.importorskip("hsfs.embedding")
    from soundmates.store.hopsworks_store import HopsworksFeatureStore

    fs = FakeFeatureStore()
    logins = []
    project = types.SimpleNamespace(get_feature_store=lambda: fs)
    fake = types.ModuleType("hopsworks")
    fake.login = lambda **k: logins.append(k) or project
    monkeypatch.setitem(sys.modules, "hopsworks", fake)

    store = HopsworksFeatureStore(HopsworksSettings(api_key="k3y", host="hops.example", project="soundmates"))
    from soundmates.features import schema as fschema

    row = {c: None for c in fschema.USER_FEATURES_SCHEMA.names}
    row.update(user_id="u1", view="full", profile_hash="h", n_tracks=3, n_playlists=1)
    for col in ("genre_emb", "artist_emb", "playlist_emb", "combined"):
        row[col] = np.ones(6 if col == "combined" else 4, dtype=np.float32)
    version = store.upsert("user_features", pd.DataFrame([row]))

    assert logins == [{"host": "hops.example", "project": "soundmates", "api_key_value": "k3y"}]
    (fg,) = fs.created
    assert fg.kwargs["name"] == "user_features" and fg.kwargs["version"] == 1
    assert fg.kwargs["primary_key"] == ["user_id", "view"] and fg.kwargs["online_enabled"] is True
    index = fg.kwargs["embedding_index"]
    dims = {e.name: (e.dimension, e.similarity_function_type) for e in index.get_embeddings()}
    assert dims == {
        "genre_emb": (4, "cosine"),
        "artist_emb": (4, "cosine"),
        "playlist_emb": (4, "cosine"),
        "combined": (6, "cosine"),
    }
    (frame, kwargs), = fg.inserts
    assert kwargs["operation"] == "upsert" and frame["user_id"].tolist() == ["u1"]
    assert version == max(fg.commits)


def test_importing_the_store_and_cli_loads_no_heavy_library():
    code = (
        "import sys, soundmates.store, soundmates.store.inbox, soundmates.cli.store\n"
        "heavy = [m for m in ('deltalake', 'hopsworks', 'hsfs', 'torch', 'duckdb') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
