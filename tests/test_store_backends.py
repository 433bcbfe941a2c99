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
    ((frame, kwargs),) = fg.inserts
    assert kwargs["operation"] == "upsert" and frame["user_id"].tolist() == ["u1"]
    assert version == max(fg.commits)


def test_importing_the_store_and_cli_loads_no_heavy_library():
    code = (
        "import sys, soundmates.store, soundmates.store.inbox, soundmates.cli.store\n"
        "heavy = [m for m in ('deltalake', 'hopsworks', 'hsfs', 'torch', 'duckdb') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class InMemoryFeatureGroup:
    """Behaves like an hsfs feature group for the calls the backend makes (upsert by key,
    commit timeline, read as of a commit, remove_rows) so the backend's own logic is tested
    without a server; the contract suite runs against a real one when HOPSWORKS_API_KEY is set."""

    def __init__(self, name, version, primary_key, **_):
        self.name, self.version, self.primary_key = name, version, primary_key
        self.snapshots: dict[int, pd.DataFrame] = {}
        self.features = []

    def _latest(self) -> pd.DataFrame | None:
        return self.snapshots[max(self.snapshots)] if self.snapshots else None

    def _commit(self, frame: pd.DataFrame) -> None:
        self.snapshots[1700000000000 + 1000 * len(self.snapshots)] = frame.reset_index(drop=True)
        self.features = [types.SimpleNamespace(name=c) for c in frame.columns]

    def insert(self, df, operation="upsert", write_options=None):
        assert operation == "upsert"
        old = self._latest()
        merged = df if old is None else pd.concat([old, df]).drop_duplicates(self.primary_key, keep="last")
        self._commit(merged)

    def remove_rows(self, keys):
        old = self._latest()
        gone = old.merge(keys, on=self.primary_key, how="left", indicator=True)["_merge"] == "both"
        self._commit(old[~gone.to_numpy()])

    def commit_details(self, limit=None):
        ids = sorted(self.snapshots, reverse=True)[:limit]
        return {i: {"committedOn": str(i)} for i in ids}

    def read(self, wallclock_time=None, dataframe_type="default"):
        at = max(self.snapshots) if wallclock_time is None else max(i for i in self.snapshots if i <= wallclock_time)
        return self.snapshots[at].sample(frac=1, random_state=0)  # the server promises no order


class InMemoryFeatureStore:
    def __init__(self):
        self.groups = {}

    def get_or_create_feature_group(self, name, version, primary_key, **kwargs):
        return self.groups.setdefault((name, version), InMemoryFeatureGroup(name, version, primary_key, **kwargs))

    def get_feature_group(self, name, version=None):
        return self.groups.get((name, version or 1))

    def get_feature_groups(self, name=None):
        return [fg for (n, _), fg in self.groups.items() if n == name]


def test_hopsworks_backend_maps_time_travel_deletes_and_listing_onto_the_sdk(monkeypatch):
    from soundmates.store import DataVersionNotFound
    from soundmates.store.hopsworks_store import HopsworksFeatureStore

    def request(user_id: str, status: str = "pending") -> pd.DataFrame:
        now = pd.Timestamp.now(tz="UTC")
        return pd.DataFrame(
            {
                "user_id": [user_id],
                "ref": f"ref-{user_id}",
                "status": status,
                "reason": None,
                "source": "test",
                "requested_at": now,
                "updated_at": now,
            }
        )

    fs = InMemoryFeatureStore()
    fake = types.ModuleType("hopsworks")
    fake.login = lambda **k: types.SimpleNamespace(get_feature_store=lambda: fs)
    fake.logout = lambda: None
    monkeypatch.setitem(sys.modules, "hopsworks", fake)
    store = HopsworksFeatureStore(HopsworksSettings(api_key="k3y"), name_prefix="test_")

    assert store.data_version("new_users_inbox") is None
    assert store.read("new_users_inbox").empty
    store.upsert("new_users_inbox", request("ann"))
    first = store.data_version("new_users_inbox")
    store.upsert("new_users_inbox", request("bob"))
    store.upsert("new_users_inbox", request("ann", "done"))
    assert ("test_new_users_inbox", 1) in fs.groups, "the name prefix keeps tests off the real groups"

    now = store.read("new_users_inbox").sort_values("user_id")
    assert now["status"].tolist() == ["done", "pending"]
    then = store.read("new_users_inbox", as_of=first)
    assert then["user_id"].tolist() == ["ann"] and then["status"].tolist() == ["pending"]
    with pytest.raises(DataVersionNotFound, match="no data version 5"):
        store.read("new_users_inbox", as_of=5)

    assert store.delete("new_users_inbox", ["ann", "nobody"]) == 1
    assert store.read("new_users_inbox")["user_id"].tolist() == ["bob"]
    assert store.delete("new_users_inbox", ["ann"]) == 0
    (info,) = store.groups()
    assert (info.name, info.version, info.rows, info.primary_key) == ("new_users_inbox", 1, 1, ["user_id"])
    assert info.data_version == store.data_version("new_users_inbox")
    store.close()
