"""State on an S3-compatible object store (SOUNDMATES_DATA_URL) against moto's server on loopback.

Feature-store tables (Delta, conditional-put commits), the model registry and the index versions
(per-host cache, compare-and-swap pointer), and the same small pipeline on S3 as on local disk.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from soundmates.store import GroupSpec, register_group

GROUP = register_group(
    GroupSpec(name="s3_test_rows", primary_key=("user_id",), schema=pa.schema([("user_id", pa.string()), ("n", pa.int64())]))
)


def _store(root: Path, url: str):
    from soundmates.objstore import ObjectStore
    from soundmates.store.delta import DeltaFeatureStore

    return DeltaFeatureStore(root, remote=ObjectStore(url).child("store"))


def test_feature_store_round_trip_on_s3(s3_url, settings, tmp_path):
    from soundmates.objstore import ObjectStore
    from soundmates.store import get_store

    store = get_store(settings)
    assert store.remote is not None and store.remote.url() == s3_url + "/store"
    store.upsert(GROUP.name, pd.DataFrame({"user_id": ["a", "b"], "n": [1, 2]}))
    store.upsert(GROUP.name, pd.DataFrame({"user_id": ["b", "c"], "n": [20, 3]}))
    # another host (its own lock dir) reads what this one wrote, from the bucket alone
    other = _store(tmp_path / "other-host", s3_url)
    assert other.read(GROUP.name).to_dict("list") == {"user_id": ["a", "b", "c"], "n": [1, 20, 3]}
    assert other.read(GROUP.name, as_of=0)["n"].tolist() == [1, 2]
    assert [(g.name, g.rows, g.data_version) for g in other.groups()] == [(GROUP.name, 3, 1)]
    assert other.delete(GROUP.name, ["a"]) == 1 and store.read(GROUP.name)["user_id"].tolist() == ["b", "c"]
    keys = ObjectStore(s3_url).keys("store")
    assert any(k.startswith(f"store/{GROUP.name}_1/_delta_log/") for k in keys)
    assert not (Path(settings.store_dir) / f"{GROUP.name}_1").exists()  # nothing of the table on the local disk


def test_two_hosts_writing_one_table_lose_no_commit(s3_url, tmp_path):
    hosts = [_store(tmp_path / f"host{i}", s3_url) for i in range(2)]  # separate file locks: only S3 keeps them apart
    per_host, errors = 4, []

    def write(i: int) -> None:
        try:
            for j in range(per_host):
                hosts[i].upsert(GROUP.name, pd.DataFrame({"user_id": [f"h{i}-{j}"], "n": [j]}))
        except Exception as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    hosts[0].upsert(GROUP.name, pd.DataFrame({"user_id": ["seed"], "n": [0]}))
    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = hosts[1].read(GROUP.name)
    assert sorted(rows["user_id"]) == sorted(["seed", *(f"h{i}-{j}" for i in range(2) for j in range(per_host))])
    assert hosts[0].data_version(GROUP.name) == 2 * per_host  # every commit landed as its own version


def _other_host(tmp_path: Path, name: str = "host-b"):
    from soundmates.config import Settings

    return Settings(data_dir=tmp_path / name)  # same SOUNDMATES_DATA_URL, its own data dir and cache


def test_registry_promote_and_read_from_another_host(s3_url, settings, tmp_path):
    from soundmates.model.registry import ModelRegistry, RegistryError
    from soundmates.objstore import ObjectStore

    reg = ModelRegistry.for_settings(settings)
    assert reg.remote is not None
    version = reg._write("bl-test-1", {"version": "bl-test-1", "kind": "baseline"}, lambda d: (d / "x.bin").write_bytes(b"w"))
    with pytest.raises(RegistryError, match="already exists"):  # a version is written once
        ModelRegistry.for_settings(_other_host(tmp_path, "host-c"))._write("bl-test-1", {}, lambda d: None)
    other = ModelRegistry.for_settings(_other_host(tmp_path))
    assert other.versions() == [version] and other.current_version() is None
    reg.promote(version, "test")
    assert other.current_version() == version and other.meta(version)["promoted"] is True
    d = other.version_dir(version)  # downloaded into host b's cache
    assert d.is_relative_to(tmp_path / "host-b") and (d / "x.bin").read_bytes() == b"w"
    other.annotate(version, note="from b")
    assert reg.meta(version)["note"] == "from b" and reg.meta(version)["promoted"] is True
    assert ObjectStore(s3_url).get("models/CURRENT") == f"{version}\n".encode()


def _vectors(seed: int, n: int = 40, dim: int = 8):
    rng = np.random.default_rng(seed)
    return [f"u{i:02d}" for i in range(n)], rng.normal(size=(n, dim)).astype(np.float32)


def _neighbours(index, ids, vecs) -> list[list[str]]:
    return [[u for u, _ in index.query(v, k=5)] for v in vecs[:10]]


def test_index_published_on_one_host_is_served_by_another(s3_url, settings, tmp_path):
    from soundmates.index import UserIndex
    from soundmates.objstore import ObjectStore

    ids, vecs = _vectors(1)
    a = UserIndex(settings)
    version = a.build(ids, vecs, n_trees=10, search_k=2000)
    b = UserIndex(_other_host(tmp_path))
    assert b.current_version_name() == version and b.versions() == [version]
    assert _neighbours(b, ids, vecs) == _neighbours(a, ids, vecs)
    assert (tmp_path / "host-b" / "cache" / "objstore" / "index" / "versions" / version / "manifest.json").is_file()
    assert ObjectStore(s3_url).get("index/CURRENT") == f"{version}\n".encode()
    assert not (Path(settings.index_dir) / "CURRENT").exists()


def test_a_reader_during_rebuilds_sees_the_old_or_the_new_version_never_a_mix(s3_url, settings, tmp_path):
    from soundmates.index import UserIndex

    ids, old = _vectors(2)
    _, new = _vectors(3)
    builder = UserIndex(settings)
    builder.build(ids, old, n_trees=10, search_k=2000)
    reader = UserIndex(_other_host(tmp_path))
    probe = old[:10]
    want = {tuple(map(tuple, _neighbours(reader, ids, probe)))}
    stop, seen, errors = threading.Event(), [], []

    def rebuild() -> None:
        try:
            for k in range(4):
                builder.build(ids, new if k % 2 == 0 else old, n_trees=10, search_k=2000)
        except Exception as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)
        finally:
            stop.set()

    t = threading.Thread(target=rebuild)
    t.start()
    while not stop.is_set():
        result = reader.search(probe[0], k=5)
        seen.append((result.version, tuple(h.user_id for h in result.hits)))
    t.join()
    assert errors == []
    by_version: dict[str, set] = {}
    for version, hits in seen:
        by_version.setdefault(version, set()).add(hits)
    assert all(len(hits) == 1 for hits in by_version.values())  # one version, one answer: never half of one
    assert len(by_version) >= 2 and len(want) == 1  # the reader moved on to new versions while they were built
    assert reader.current_version_name() == builder.current_version_name()


def _pipeline(settings, refs: list[str]) -> dict:
    """ingest -> features -> a raw_cosine baseline promoted -> index; returns the store's rows and neighbours."""
    from soundmates.features.encoder import TextEncoder
    from soundmates.index import UserIndex
    from soundmates.model.baselines import make_baseline
    from soundmates.model.registry import ModelRegistry
    from soundmates.pipelines import build_features, build_index, ingest_users
    from soundmates.store import get_store
    from tests.helpers.encoders import HashModel

    failed = sorted(f.ref for f in ingest_users(refs, settings, progress=False).failed)  # e.g. no public playlists
    build_features(settings, encoder=TextEncoder(settings, model=HashModel(24)))
    store = get_store(settings)
    full = store.read("user_features")
    reg = ModelRegistry.for_settings(settings)
    reg.promote(reg.save_baseline(make_baseline("raw_cosine", {}).fit(full), metrics={}, data_version=1), "test")
    build_index(settings, progress=False)
    tables = {}
    for g in store.groups():
        frame = store.read(g.name)
        frame = frame[[c for c in frame.columns if not c.endswith("_at") and "time" not in c]]
        tables[g.name] = frame.to_json(orient="records", double_precision=6)
    index = UserIndex(settings)
    users = sorted(full["user_id"].unique())
    return {
        "failed": failed,
        "tables": tables,
        "neighbours": {u: [h for h, _ in index.query(index.vector(u), k=5)] for u in users[:10]},
    }


def test_the_same_pipeline_gives_the_same_store_on_s3_as_on_local_disk(s3_url, spotify_server, small_world, tmp_path):
    from soundmates.config import Settings
    from tests.fixtures.spotify import world_user_ids

    spotify_server()
    refs = [f"spotify:user:{u}" for u in world_user_ids(small_world)[:12]]
    on_s3 = _pipeline(Settings(data_dir=tmp_path / "s3-host"), refs)
    local = _pipeline(Settings(data_dir=tmp_path / "local", data_url=""), refs)
    assert on_s3["failed"] == local["failed"] and len(local["failed"]) < len(refs) // 2
    assert set(on_s3["tables"]) == set(local["tables"]) >= {"user_features", "user_profiles"}
    for name in local["tables"]:
        assert on_s3["tables"][name] == local["tables"][name], name
    assert local["neighbours"] and all(len(v) == 5 for v in local["neighbours"].values())
    assert on_s3["neighbours"] == local["neighbours"]
    assert not (tmp_path / "s3-host" / "store" / "user_features_1").exists()
