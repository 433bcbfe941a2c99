"""What only the embedded Delta backend promises: locking, crash safety, maintenance."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from soundmates.store import DataVersionNotFound, StoreUnavailable
from soundmates.store.delta import DeltaFeatureStore


def inbox_rows(*user_ids: str, status: str = "pending") -> pd.DataFrame:
    now = pd.Timestamp.now(tz="UTC")
    return pd.DataFrame(
        {
            "user_id": list(user_ids),
            "ref": "r",
            "status": status,
            "reason": None,
            "source": "test",
            "requested_at": now,
            "updated_at": now,
        }
    )


def hold_lock_forever(root: str, ready: str) -> None:
    store = DeltaFeatureStore(root)
    with store.exclusive("new_users_inbox"):
        Path(ready).touch()
        time.sleep(600)


def start_lock_holder(tmp_path: Path):
    ready = tmp_path / "holding"
    proc = multiprocessing.get_context("spawn").Process(target=hold_lock_forever, args=(str(tmp_path / "store"), str(ready)))
    proc.start()
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert time.monotonic() < deadline and proc.is_alive(), "lock holder did not start"
        time.sleep(0.02)
    return proc


def test_readers_do_not_wait_for_a_writer_and_writers_time_out_clearly(tmp_path):
    # The reader's lock timeout is long so that a read which waited for the lock would show as many
    # seconds, well apart from a read on a busy host; the writer's is short so the test does not wait it.
    reader = DeltaFeatureStore(tmp_path / "store", lock_timeout_s=30)
    version = reader.upsert("new_users_inbox", inbox_rows("a"))
    writer = DeltaFeatureStore(tmp_path / "store", lock_timeout_s=0.5)
    holder = start_lock_holder(tmp_path)
    try:
        t0 = time.monotonic()
        assert reader.read("new_users_inbox")["user_id"].tolist() == ["a"]
        assert reader.data_version("new_users_inbox") == version
        assert time.monotonic() - t0 < 10, "a read waited for the writer's lock"
        with pytest.raises(StoreUnavailable, match=r"locked by another writer.*new_users_inbox_1\.lock"):
            writer.upsert("new_users_inbox", inbox_rows("b"))
    finally:
        holder.kill()
        holder.join()


def test_a_writer_killed_while_holding_the_lock_blocks_nobody(tmp_path):
    store = DeltaFeatureStore(tmp_path / "store", lock_timeout_s=10)
    store.upsert("new_users_inbox", inbox_rows("a"))
    holder = start_lock_holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    t0 = time.monotonic()
    store.upsert("new_users_inbox", inbox_rows("b"))
    assert time.monotonic() - t0 < 5
    assert store.read("new_users_inbox")["user_id"].tolist() == ["a", "b"]


def test_files_of_an_uncommitted_write_are_invisible(tmp_path):
    # A writer that dies after writing data files but before its commit leaves orphans:
    # readers must not see them (Delta only reads files named in the log).
    store = DeltaFeatureStore(tmp_path / "store")
    store.upsert("new_users_inbox", inbox_rows("a"))
    table = store.table_path("new_users_inbox")
    orphan = next(table.glob("*.parquet"))
    (table / "part-99999-orphan.parquet").write_bytes(orphan.read_bytes())  # same rows, never committed
    assert store.read("new_users_inbox")["user_id"].tolist() == ["a"]
    assert store.groups()[0].rows == 1


def test_optimize_keeps_recent_time_travel_and_refuses_a_tiny_window(tmp_path):
    store = DeltaFeatureStore(tmp_path / "store")
    versions = [store.upsert("new_users_inbox", inbox_rows(f"u{i}")) for i in range(5)]
    files_before = len(list(store.table_path("new_users_inbox").glob("*.parquet")))
    result = store.optimize("new_users_inbox")
    assert result["compacted"]["numFilesRemoved"] == 5 and result["vacuumed"] == []
    assert len(list(store.table_path("new_users_inbox").glob("*.parquet"))) == files_before + 1
    assert sorted(store.read("new_users_inbox", as_of=versions[2])["user_id"]) == ["u0", "u1", "u2"]
    assert len(store.read("new_users_inbox")) == 5
    with pytest.raises(ValueError, match="retention_hours"):
        store.optimize("new_users_inbox", retention_hours=0)


def test_bad_versions_are_rejected_with_their_name(tmp_path):
    store = DeltaFeatureStore(tmp_path / "store")
    with pytest.raises(ValueError, match="version"):
        store.upsert("new_users_inbox", inbox_rows("a"), version=0)
    with pytest.raises(ValueError, match="as_of"):
        store.read("new_users_inbox", as_of=-1)
    store.upsert("new_users_inbox", inbox_rows("a"))
    with pytest.raises(DataVersionNotFound):
        store.read("new_users_inbox", as_of=7)


def test_history_names_each_commit(tmp_path):
    store = DeltaFeatureStore(tmp_path / "store")
    store.upsert("new_users_inbox", inbox_rows("a", "b"))
    store.upsert("new_users_inbox", inbox_rows("a", status="done"))
    store.delete("new_users_inbox", ["b"])
    ops = [(h["version"], h["operation"]) for h in store.history("new_users_inbox")]
    assert ops == [(2, "DELETE"), (1, "MERGE"), (0, "WRITE")]


def test_many_small_upserts_are_compacted_and_old_versions_stay_readable(tmp_path):
    store = DeltaFeatureStore(tmp_path / "store", compact_after_files=4)
    versions = [store.upsert("new_users_inbox", inbox_rows(f"u{i}")) for i in range(10)]
    from deltalake import DeltaTable

    assert len(DeltaTable(str(store.table_path("new_users_inbox"))).file_uris()) <= 5
    assert versions == sorted(set(versions)) and versions[-1] == store.data_version("new_users_inbox")
    assert sorted(store.read("new_users_inbox")["user_id"]) == sorted(f"u{i}" for i in range(10))
    assert sorted(store.read("new_users_inbox", as_of=versions[1])["user_id"]) == ["u0", "u1"]


def test_numpy_vectors_convert_exactly_and_lossy_ones_are_refused(tmp_path):
    import numpy as np
    import pyarrow as pa

    from soundmates.store import GroupSpec, SchemaMismatch, register_group

    schema = pa.schema(
        [
            pa.field("user_id", pa.string(), nullable=False),
            pa.field("v", pa.list_(pa.float32())),
            pa.field("c", pa.list_(pa.int64())),
        ]
    )
    register_group(GroupSpec(name="t_vectors", primary_key=("user_id",), schema=schema))
    store = DeltaFeatureStore(tmp_path / "store")
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b", "c"],
            "v": [np.array([0.1, 0.2], dtype=np.float64), None, np.arange(3, dtype=np.int32)],
            "c": [np.array([1, 2]), np.array([], dtype=np.int64), None],
        }
    )
    store.upsert("t_vectors", frame)
    got = store.read("t_vectors").set_index("user_id")
    np.testing.assert_array_equal(got.loc["a", "v"], np.array([0.1, 0.2], dtype=np.float32))
    assert got.loc["b", "v"] is None and list(got.loc["c", "v"]) == [0.0, 1.0, 2.0]
    assert list(got.loc["a", "c"]) == [1, 2] and len(got.loc["b", "c"]) == 0 and got.loc["c", "c"] is None

    lossy = frame.assign(c=[np.array([1.5]), None, None])
    with pytest.raises(SchemaMismatch, match="'c'"):
        store.upsert("t_vectors", lossy)


def test_a_column_added_to_the_declared_schema_evolves_the_table_and_keeps_old_rows(tmp_path):
    import pyarrow as pa

    from soundmates.store import GroupSpec, SchemaMismatch, register_group

    v1 = pa.schema([pa.field("user_id", pa.string(), nullable=False), pa.field("x", pa.float64())])
    register_group(GroupSpec(name="t_evolving", primary_key=("user_id",), schema=v1))
    store = DeltaFeatureStore(tmp_path / "store")
    first = store.upsert("t_evolving", pd.DataFrame({"user_id": ["a", "b"], "x": [1.0, 2.0]}))

    v2 = pa.schema([*v1, pa.field("tag", pa.string())])
    register_group(GroupSpec(name="t_evolving", primary_key=("user_id",), schema=v2))
    store.upsert("t_evolving", pd.DataFrame({"user_id": ["b", "c"], "x": [20.0, 3.0], "tag": ["new", "new"]}))
    got = store.read("t_evolving").set_index("user_id")
    assert got["x"].to_dict() == {"a": 1.0, "b": 20.0, "c": 3.0}
    assert got.loc["a", "tag"] is None and got.loc["b", "tag"] == "new"
    assert list(store.read("t_evolving", as_of=first).columns) == ["user_id", "x"]

    # Removing a column (or changing a type) is not additive: refused, table unchanged.
    register_group(GroupSpec(name="t_evolving", primary_key=("user_id",), schema=v1.remove(1)))
    before = store.data_version("t_evolving")
    with pytest.raises(SchemaMismatch, match="missing column.*x"):
        store.upsert("t_evolving", pd.DataFrame({"user_id": ["d"]}))
    assert store.data_version("t_evolving") == before


def test_sql_over_groups_through_duckdb_with_a_pinned_data_version(tmp_path):
    store = DeltaFeatureStore(tmp_path / "store")
    first = store.upsert("new_users_inbox", inbox_rows("a", "b"))
    store.upsert("new_users_inbox", inbox_rows("a", "c", status="done"))
    now = store.sql("SELECT status, count(*) AS n FROM new_users_inbox GROUP BY status ORDER BY status")
    assert now.to_dict("records") == [{"status": "done", "n": 2}, {"status": "pending", "n": 1}]
    then = store.sql("SELECT count(*) AS n FROM new_users_inbox WHERE status = 'pending'", as_of={"new_users_inbox": first})
    assert int(then["n"].iloc[0]) == 2
    arrow = store.read_arrow("new_users_inbox", columns=["user_id"])
    assert sorted(arrow["user_id"].to_pylist()) == ["a", "b", "c"]
