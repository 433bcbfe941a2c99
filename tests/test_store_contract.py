"""Contract of every feature-store backend (embedded always; Hopsworks when configured).

Each test uses its own freshly registered group, so the suite can run against a
shared Hopsworks project without touching the real groups.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
import uuid
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from soundmates.store import (
    DataVersionNotFound,
    GroupSpec,
    SchemaMismatch,
    UnknownGroup,
    register_group,
)

BACKENDS = [
    "embedded",
    pytest.param(
        "hopsworks",
        marks=pytest.mark.skipif(
            not os.environ.get("HOPSWORKS_API_KEY"),
            reason="HOPSWORKS_API_KEY is unset: no Hopsworks server to run the contract against",
        ),
    ),
]

SCORES_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("n", pa.int64()),
        pa.field("label", pa.string()),
    ]
)

VIEWS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("view", pa.string(), nullable=False),
        pa.field("emb", pa.list_(pa.float32())),
        pa.field("names", pa.list_(pa.string())),
        pa.field("x", pa.float64()),
    ]
)

# The concurrency test's rows: `check` is derived from the other columns, so a row
# mixing two writes (a torn or corrupt row) is detectable.
CONCURRENT_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("writer", pa.int64()),
        pa.field("seq", pa.int64()),
        pa.field("payload", pa.list_(pa.float32())),
        pa.field("check", pa.string()),
    ]
)


def make_store(backend: str, root: str):
    if backend == "embedded":
        from soundmates.store.delta import DeltaFeatureStore

        return DeltaFeatureStore(root, lock_timeout_s=60)
    from soundmates.config import HopsworksSettings
    from soundmates.store.hopsworks_store import HopsworksFeatureStore

    # A per-run prefix keeps the contract away from the project's real groups (inbox included).
    return HopsworksFeatureStore(HopsworksSettings(), name_prefix=f"t{zlib.crc32(root.encode()):08x}_")


def new_group(prefix: str, schema: pa.Schema | None, primary_key: tuple[str, ...] = ("user_id",)) -> str:
    name = f"t_{prefix}_{uuid.uuid4().hex[:8]}"
    register_group(GroupSpec(name=name, primary_key=primary_key, schema=schema))
    return name


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def store(backend, tmp_path):
    s = make_store(backend, str(tmp_path / "store"))
    yield s
    s.close()


def scores(rows: list[tuple[str, float, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "score", "n", "label"])


# --- upsert and read ---------------------------------------------------------------------


def test_upsert_inserts_then_updates_by_key_without_duplicates(store):
    group = new_group("upsert", SCORES_SCHEMA)
    assert store.data_version(group) is None
    v0 = store.upsert(group, scores([("a", 1.0, 1, "one"), ("b", 2.0, 2, "two"), ("c", 3.0, 3, "three")]))
    v1 = store.upsert(group, scores([("b", 20.0, 20, "twenty"), ("d", 4.0, 4, "four")]))
    assert v1 > v0
    assert store.data_version(group) == v1

    got = store.read(group)
    assert sorted(got["user_id"]) == ["a", "b", "c", "d"]
    assert not got["user_id"].duplicated().any()
    row_b = got.set_index("user_id").loc["b"]
    assert (row_b["score"], row_b["n"], row_b["label"]) == (20.0, 20, "twenty")
    assert got.set_index("user_id").loc["a", "label"] == "one"


def test_a_batch_repeating_a_key_keeps_its_last_row(store):
    group = new_group("dupes", SCORES_SCHEMA)
    store.upsert(group, scores([("a", 1.0, 1, "first"), ("a", 2.0, 2, "last")]))
    got = store.read(group)
    assert got["label"].tolist() == ["last"]


def test_read_by_keys_returns_only_those_users(store):
    group = new_group("keys", SCORES_SCHEMA)
    store.upsert(group, scores([(u, 1.0, 1, u) for u in "abcde"]))
    assert store.read(group, keys=["b", "d", "zz"])["user_id"].tolist() == ["b", "d"]
    assert store.read(group, keys=[]).empty


def test_read_of_a_group_never_written_is_empty_with_its_columns(store):
    group = new_group("empty", SCORES_SCHEMA)
    got = store.read(group)
    assert got.empty and list(got.columns) == SCORES_SCHEMA.names


def test_unknown_group_is_named_in_the_error(store):
    with pytest.raises(UnknownGroup, match="no_such_group"):
        store.read("no_such_group")
    with pytest.raises(UnknownGroup, match="no_such_group"):
        store.upsert("no_such_group", scores([("a", 1.0, 1, "x")]))


# --- time travel ------------------------------------------------------------------------------


def test_read_as_of_a_data_version_returns_the_old_values(store):
    group = new_group("travel", SCORES_SCHEMA)
    v0 = store.upsert(group, scores([("a", 1.0, 1, "old"), ("b", 2.0, 2, "old")]))
    v1 = store.upsert(group, scores([("a", 10.0, 10, "new"), ("c", 3.0, 3, "new")]))
    store.delete(group, ["b"])

    then = store.read(group, as_of=v0).set_index("user_id")
    assert sorted(then.index) == ["a", "b"]
    assert then.loc["a", "label"] == "old" and then.loc["a", "score"] == 1.0
    mid = store.read(group, as_of=v1).set_index("user_id")
    assert sorted(mid.index) == ["a", "b", "c"] and mid.loc["a", "label"] == "new"
    now = store.read(group).set_index("user_id")
    assert sorted(now.index) == ["a", "c"]


def test_read_as_of_a_version_that_does_not_exist_says_so(store):
    group = new_group("travel_missing", SCORES_SCHEMA)
    with pytest.raises(DataVersionNotFound, match="never written"):
        store.read(group, as_of=0)
    latest = store.upsert(group, scores([("a", 1.0, 1, "x")]))
    with pytest.raises(DataVersionNotFound, match=f"latest is {latest}"):
        store.read(group, as_of=latest + 50)


# --- schema mismatch -----------------------------------------------------------------------------

BAD_FRAMES = {
    "a column of another type": (
        pd.DataFrame({"user_id": ["a"], "score": ["high"], "n": [1], "label": ["x"]}),
        ["score", "double"],
    ),
    "an int column given floats with fractions": (
        pd.DataFrame({"user_id": ["a"], "score": [1.0], "n": [1.5], "label": ["x"]}),
        ["n", "int64"],
    ),
    "numeric text for a number": (
        pd.DataFrame({"user_id": ["a"], "score": ["1.5"], "n": [1], "label": ["x"]}),
        ["score", "string"],
    ),
    "python booleans in an object column for a number": (
        pd.DataFrame({"user_id": ["a"], "score": pd.Series([True], dtype=object), "n": [1], "label": ["x"]}),
        ["score", "bool"],
    ),
    "numbers for text": (
        pd.DataFrame({"user_id": ["a"], "score": [1.0], "n": [1], "label": [7]}),
        ["label", "int64"],
    ),
    "booleans for a number": (
        pd.DataFrame({"user_id": ["a"], "score": [True], "n": [1], "label": ["x"]}),
        ["score"],
    ),
    "a missing primary key": (
        pd.DataFrame({"score": [1.0], "n": [1], "label": ["x"]}),
        ["missing primary key", "user_id"],
    ),
    "a null primary key": (
        pd.DataFrame({"user_id": [None], "score": [1.0], "n": [1], "label": ["x"]}),
        ["user_id", "null"],
    ),
    "an unexpected column": (
        pd.DataFrame({"user_id": ["a"], "score": [1.0], "n": [1], "label": ["x"], "colour": ["red"]}),
        ["unexpected", "colour"],
    ),
    "a missing column": (
        pd.DataFrame({"user_id": ["a"], "score": [1.0], "n": [1]}),
        ["missing column", "label"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_schema_mismatch_is_rejected_clearly_and_the_table_is_unchanged(store, case):
    group = new_group("schema", SCORES_SCHEMA)
    version = store.upsert(group, scores([("a", 1.0, 1, "kept"), ("b", 2.0, 2, "kept")]))
    before = store.read(group)

    frame, words = BAD_FRAMES[case]
    with pytest.raises(SchemaMismatch) as err:
        store.upsert(group, frame)
    message = str(err.value)
    assert group in message
    for word in words:
        assert word in message, f"{case}: {word!r} not in {message!r}"

    assert store.data_version(group) == version
    pd.testing.assert_frame_equal(store.read(group), before)


def test_group_without_declared_schema_keeps_the_schema_of_its_first_write(store):
    group = new_group("free", None)
    store.upsert(group, pd.DataFrame({"user_id": ["a"], "score": [1.0]}))
    with pytest.raises(SchemaMismatch, match="score"):
        store.upsert(group, pd.DataFrame({"user_id": ["b"], "score": ["high"]}))
    with pytest.raises(SchemaMismatch, match="extra"):
        store.upsert(group, pd.DataFrame({"user_id": ["b"], "score": [2.0], "extra": [1]}))
    store.upsert(group, pd.DataFrame({"user_id": ["b"], "score": [2]}))  # an int fits a float column
    assert store.read(group)["score"].tolist() == [1.0, 2.0]


# --- delete --------------------------------------------------------------------------------------------


def test_deleting_a_user_removes_every_view_and_nobody_else(store):
    group = new_group("delete", VIEWS_SCHEMA, primary_key=("user_id", "view"))
    rows = [(u, v, [1.0, 2.0], ["g"], 1.0) for u in ("ann", "bob", "o'neil") for v in ("full", "a", "b")]
    store.upsert(group, pd.DataFrame(rows, columns=VIEWS_SCHEMA.names))
    assert len(store.read(group)) == 9

    assert store.delete(group, ["bob", "o'neil", "nobody"]) == 6
    got = store.read(group)
    assert sorted(set(got["user_id"])) == ["ann"] and sorted(got["view"]) == ["a", "b", "full"]

    version = store.data_version(group)
    assert store.delete(group, ["bob"]) == 0
    assert store.delete(group, []) == 0
    assert store.data_version(group) == version, "a delete that matched nothing must not make a new version"


def test_composite_key_updates_one_view_only(store):
    group = new_group("views", VIEWS_SCHEMA, primary_key=("user_id", "view"))
    store.upsert(group, pd.DataFrame([("u", v, [0.0], [], 0.0) for v in ("full", "a", "b")], columns=VIEWS_SCHEMA.names))
    store.upsert(group, pd.DataFrame([("u", "a", [9.0], ["new"], 9.0)], columns=VIEWS_SCHEMA.names))
    got = store.read(group).set_index("view")
    assert got.loc["a", "x"] == 9.0 and got.loc["full", "x"] == 0.0 and got.loc["b", "x"] == 0.0
    assert len(got) == 3


# --- list columns ----------------------------------------------------------------------------------------


def test_list_columns_round_trip(store):
    group = new_group("lists", VIEWS_SCHEMA, primary_key=("user_id", "view"))
    emb = np.linspace(-1, 1, 384, dtype=np.float32)
    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "view": ["full", "full", "full"],
            "emb": [emb, [0.5, -0.25], []],
            "names": [["indie rock", "k-pop", "ça"], [], None],
            "x": [1.0, np.nan, 3.0],
        }
    )
    store.upsert(group, frame)
    got = store.read(group).set_index("user_id")
    np.testing.assert_array_equal(np.asarray(got.loc["u1", "emb"], dtype=np.float32), emb)
    assert list(got.loc["u2", "emb"]) == [0.5, -0.25]
    assert len(got.loc["u3", "emb"]) == 0
    assert list(got.loc["u1", "names"]) == ["indie rock", "k-pop", "ça"]
    assert len(got.loc["u2", "names"]) == 0
    assert got.loc["u3", "names"] is None
    assert np.isnan(got.loc["u2", "x"])


def test_the_real_user_features_schema_round_trips(store):
    from soundmates.features import schema as fs

    rows = []
    for view in fs.VIEWS:
        rows.append(
            {
                "user_id": "spotify:alice",
                "view": view,
                **{c: np.full(4, 0.5, dtype=np.float32) for c in fs.EMBEDDING_COLUMNS},
                "year_mean": 1994.5,
                "year_std": np.nan,
                "year_hist": np.eye(len(fs.YEAR_BINS), dtype=np.float32)[4],
                "n_tracks": 40,
                "n_playlists": 2,
                "mean_popularity": np.nan,
                "explicit_ratio": 0.25,
                "genre_names": ["rock", "pop"],
                "genre_weights": [0.75, 0.25],
                "artist_ids": ["a1"],
                "artist_weights": [1.0],
                "missing": ["popularity"],
                "combined": np.arange(8, dtype=np.float32),
                "profile_hash": "h1",
            }
        )
    frame = pd.DataFrame(rows)
    group = new_group("features", fs.USER_FEATURES_SCHEMA, primary_key=tuple(fs.USER_FEATURES_KEYS))
    store.upsert(group, frame)
    got = store.read(group, keys=["spotify:alice"])
    assert sorted(got["view"]) == sorted(fs.VIEWS)
    assert list(got.columns) == fs.USER_FEATURES_SCHEMA.names
    full = got.set_index("view").loc["full"]
    np.testing.assert_array_equal(full["combined"], np.arange(8, dtype=np.float32))
    assert list(full["genre_names"]) == ["rock", "pop"] and list(full["missing"]) == ["popularity"]


# --- groups ----------------------------------------------------------------------------------------------------


def test_groups_lists_name_version_rows_and_data_version(store):
    group = new_group("listing", SCORES_SCHEMA)
    store.upsert(group, scores([("a", 1.0, 1, "x"), ("b", 1.0, 1, "y")]))
    v = store.upsert(group, scores([("c", 1.0, 1, "z")]), version=2)
    infos = {(g.name, g.version): g for g in store.groups()}
    assert infos[(group, 1)].rows == 2
    assert infos[(group, 2)].rows == 1 and infos[(group, 2)].data_version == v
    assert infos[(group, 1)].primary_key == ["user_id"]
    assert store.read(group, version=2)["user_id"].tolist() == ["c"]


# --- concurrency: two writer processes and a reader ----------------------------------------------

N_BATCHES = 12
SHARED_KEYS = 4


def expected_check(user_id: str, writer: int, seq: int) -> str:
    return f"{user_id}|{writer}|{seq}"


def writer_process(backend: str, root: str, group: str, writer: int, signals: str) -> dict:
    """Runs in a spawned process: upsert small batches of own and shared keys.

    Returns the (seq, data version) of every batch and the time span of the writes.
    Both writers say they are ready and wait for one "go" file, so their writes really overlap.
    """
    register_group(GroupSpec(name=group, primary_key=("user_id",), schema=CONCURRENT_SCHEMA))
    store = make_store(backend, root)
    store.data_version(group)  # warm the imports before the start line
    (Path(signals) / f"ready-{writer}").touch()
    deadline = time.monotonic() + 120
    while not (Path(signals) / "go").exists():
        assert time.monotonic() < deadline, "no go signal"
        time.sleep(0.01)
    began = time.time()
    done = []
    for seq in range(N_BATCHES):
        keys = [f"w{writer}-{seq}", f"w{writer}-{seq}-b", f"shared-{seq % SHARED_KEYS}"]
        frame = pd.DataFrame(
            {
                "user_id": keys,
                "writer": writer,
                "seq": seq,
                "payload": [np.full(8, seq, dtype=np.float32)] * len(keys),
                "check": [expected_check(k, writer, seq) for k in keys],
            }
        )
        done.append((seq, store.upsert(group, frame)))
    return {"done": done, "began": began, "ended": time.time()}


def assert_consistent(frame: pd.DataFrame) -> None:
    assert not frame["user_id"].duplicated().any(), "a key appears twice"
    for row in frame.itertuples(index=False):
        assert row.check == expected_check(row.user_id, row.writer, row.seq), f"corrupt row {row}"
        assert len(row.payload) == 8 and set(np.asarray(row.payload).tolist()) == {float(row.seq)}, f"torn payload {row}"


def test_two_writer_processes_and_a_reader_lose_nothing_and_see_no_partial_write(backend, tmp_path):
    root = str(tmp_path / "store")
    group = new_group("concurrent", CONCURRENT_SCHEMA)
    reader = make_store(backend, root)

    ctx = multiprocessing.get_context("spawn")
    reads, last_rows, last_version = 0, 0, -1
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        signals = tmp_path / "signals"
        signals.mkdir()
        futures = [pool.submit(writer_process, backend, root, group, w, str(signals)) for w in (1, 2)]
        deadline = time.monotonic() + 240
        while not all((signals / f"ready-{w}").exists() for w in (1, 2)):
            assert time.monotonic() < deadline and not any(f.done() for f in futures), "writers did not start"
            time.sleep(0.01)
        (signals / "go").touch()
        while not all(f.done() for f in futures):
            assert time.monotonic() < deadline, "writers did not finish"
            version = reader.data_version(group)
            frame = reader.read(group)
            reads += 1
            assert_consistent(frame)
            # Upserts only: the table never shrinks and versions never go back.
            assert len(frame) >= last_rows
            if version is not None:
                assert version >= last_version
                last_version = version
            last_rows = len(frame)
        spans = {w: f.result() for w, f in zip((1, 2), futures, strict=True)}
    results = {w: spans[w]["done"] for w in spans}
    assert max(s["began"] for s in spans.values()) < min(s["ended"] for s in spans.values()), "writes did not overlap"

    assert reads >= 2, "the reader should have read while the writers wrote"
    final = reader.read(group)
    assert_consistent(final)
    expected_keys = {f"w{w}-{s}{suffix}" for w in (1, 2) for s in range(N_BATCHES) for suffix in ("", "-b")}
    expected_keys |= {f"shared-{i}" for i in range(SHARED_KEYS)}
    assert set(final["user_id"]) == expected_keys, "rows were lost or invented"

    versions = [v for w in results for _, v in results[w]]
    assert len(set(versions)) == len(versions) == 2 * N_BATCHES, "two commits claimed the same data version"

    # Every shared key ends with the value of whichever write of it committed last.
    last_write = {}
    for w, done in results.items():
        for seq, v in done:
            key = f"shared-{seq % SHARED_KEYS}"
            if v > last_write.get(key, (-1, None, None))[0]:
                last_write[key] = (v, w, seq)
    by_key = final.set_index("user_id")
    for key, (_, w, seq) in last_write.items():
        assert (by_key.loc[key, "writer"], by_key.loc[key, "seq"]) == (w, seq)

    # Time travel to a version one writer returned shows that very batch.
    seq, v = results[1][N_BATCHES // 2]
    then = reader.read(group, as_of=v).set_index("user_id")
    assert then.loc[f"w1-{seq}", "seq"] == seq and then.loc[f"shared-{seq % SHARED_KEYS}", "writer"] == 1


# --- new-users inbox ------------------------------------------------------------------------------------------


def test_inbox_add_is_idempotent_and_requeues_failed(store):
    from soundmates.store import inbox

    first = inbox.add_request(store, "u1", "https://open.spotify.com/user/u1", source="dashboard")
    assert (first.status, first.ref, first.source, first.reason) == (
        "pending",
        "https://open.spotify.com/user/u1",
        "dashboard",
        None,
    )
    again = inbox.add_request(store, "u1", "spotify:user:u1", source="cli")
    assert again == first, "re-adding a pending user must not change or duplicate it"
    assert len(inbox.latest(store)) == 1

    inbox.mark(store, "u1", "processing")
    assert inbox.add_request(store, "u1", "x").status == "processing"
    inbox.mark(store, "u1", "done")
    assert inbox.add_request(store, "u1", "x").status == "done"
    assert inbox.pending(store) == []

    inbox.add_request(store, "u2", "spotify:user:u2")
    failed = inbox.mark(store, "u2", "failed", reason="profile is private")
    assert inbox.get(store, "u2") == failed and failed.reason == "profile is private"
    requeued = inbox.add_request(store, "u2", "spotify:user:u2", source="cli")
    assert (requeued.status, requeued.reason, requeued.source) == ("pending", None, "cli")
    assert requeued.requested_at >= failed.requested_at
    assert len(inbox.latest(store)) == 2


def test_inbox_status_flow_pending_order_and_counts(store):
    from soundmates.store import inbox

    assert inbox.counts(store) == {"pending": 0, "processing": 0, "done": 0, "failed": 0}
    assert inbox.get(store, "nobody") is None
    for user in ("c", "a", "b"):  # requested in this order
        inbox.add_request(store, user, f"ref-{user}")
    assert [e.user_id for e in inbox.pending(store)] == ["c", "a", "b"], "oldest request first"
    assert [e.user_id for e in inbox.pending(store, limit=2)] == ["c", "a"]

    claimed = inbox.claim(store, limit=2)
    assert [(e.user_id, e.status) for e in claimed] == [("c", "processing"), ("a", "processing")]
    assert [e.user_id for e in inbox.pending(store)] == ["b"]
    inbox.mark(store, "c", "done")
    inbox.mark(store, "a", "failed", reason="no playlists")
    assert inbox.counts(store) == {"pending": 1, "processing": 0, "done": 1, "failed": 1}
    entry = inbox.get(store, "a")
    assert entry.status == "failed" and entry.reason == "no playlists" and entry.updated_at >= entry.requested_at


def test_inbox_rejects_bad_status_unknown_users_and_empty_ids(store):
    from soundmates.store import inbox

    inbox.add_request(store, "u1", "ref")
    with pytest.raises(ValueError, match="pending, processing, done, failed"):
        inbox.mark(store, "u1", "finished")
    with pytest.raises(inbox.InboxEntryNotFound, match="ghost"):
        inbox.mark(store, "ghost", "done")
    with pytest.raises(ValueError, match="user_id"):
        inbox.add_request(store, "  ", "ref")
    with pytest.raises(ValueError, match="ref"):
        inbox.add_request(store, "u3", "")
    assert inbox.get(store, "u1").status == "pending", "a rejected mark changes nothing"
