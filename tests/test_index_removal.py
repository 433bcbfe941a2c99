"""Sticky removal, ordered publish and fail-closed removals, for every backend (part of the index contract); atomic writes."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

from soundmates.index import RemovalsUnreadable, UserIndex
from soundmates.index.fresh import FreshBuffer


def clustered(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim))
    x = centres[rng.integers(0, 8, n)] + 0.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(params=["annoy", "voyager"])
def backend(request):
    return request.param


@pytest.fixture
def index(tmp_path, backend):
    return UserIndex(root=tmp_path / "index", backend=backend)


IDS = [f"u{i}" for i in range(200)]


def served(index, v, k=200):
    return [u for u, _ in index.query(v, k)]


def test_removal_blocks_old_vectors_in_this_and_every_later_build(index):
    x = clustered(200)
    t_read = time.time()
    index.build(IDS, x, {"features_read_at": t_read})
    assert "u7" in served(index, x[7])
    assert index.remove("u7") and not index.remove("u7")  # a second removal is not "new"
    assert index.is_removed("u7") and "u7" not in served(index, x[7]) and index.vector("u7") is None
    # A build whose store read happened after the tombstone but before the data deletion (old data):
    index.build(IDS, x, {"features_read_at": time.time()})
    assert index.manifest()["count"] == 199 and index.manifest()["n_removed"] == 1
    for _ in range(2):  # and every later build, however it got the old row
        index.build(IDS, x)
        assert "u7" not in served(index, x[7]) and index.vector("u7") is None
    assert "u7" in json.loads((index.root / "tombstones.json").read_text())["users"]
    assert index.status()["tombstones"] == 1


def test_a_version_built_before_the_removal_never_serves_the_user(index, tmp_path):
    x = clustered(200)
    index.build(IDS, x, {"features_read_at": time.time()})
    other = UserIndex(root=index.root)  # another process, already serving that version
    assert "u3" in served(other, x[3])
    index.remove("u3")
    assert "u3" not in served(other, x[3]) and "u3" not in other.all_vectors()[0]
    assert other.vector("u3") is None


def test_new_data_after_removal_is_served_and_old_data_stays_blocked(index):
    x = clustered(200)
    index.build(IDS, x, {"features_read_at": time.time()})
    index.remove("u5")
    time.sleep(0.01)  # distinct clock readings: removal < slow read < comeback
    slow_read = time.time()  # a slow build read the store here: before the user came back
    time.sleep(0.01)
    new_vec = clustered(1, seed=99)[0]
    index.add_fresh("u5", new_vec, "raw-features")
    assert not index.is_removed("u5")
    assert served(index, new_vec, 1) == ["u5"]
    assert np.allclose(index.vector("u5"), new_vec, atol=1e-5)
    # The slow build (old data, read before the comeback) publishes: its u5 vector stays blocked, the fresh one serves.
    x_old = x.copy()
    index.build(IDS, x_old, {"features_read_at": slow_read})
    hits = index.search(new_vec, 3).hits
    assert hits[0].user_id == "u5" and hits[0].source == "fresh"
    assert "u5" not in [h.user_id for h in index.search(x[5], 200).hits if h.source == "index"]
    # A build from data read after the comeback indexes the new vector and folds the fresh entry in.
    x_new = x.copy()
    x_new[5] = new_vec
    index.build(IDS, x_new, {"features_read_at": time.time()})
    assert len(index.fresh) == 0
    hits = index.search(new_vec, 1).hits
    assert hits[0].user_id == "u5" and hits[0].source == "index"
    index.remove("u5")  # removed again: hidden again, whatever was indexed
    assert "u5" not in served(index, new_vec) and index.is_removed("u5")


def test_fresh_entry_from_before_the_removal_is_blocked(index):
    x = clustered(200)
    index.build(IDS, x)
    index.remove("u9")
    # A racing writer put an entry made before the removal back into the buffer.
    FreshBuffer(index.root / "fresh.npz").add("u9", x[9], at=time.time() - 60)
    assert "u9" in index.fresh and "u9" not in served(index, x[9]) and index.vector("u9") is None


def test_slower_concurrent_build_never_moves_current_back(index):
    old, new = clustered(200, seed=1), clustered(200, seed=2)
    t_old = time.time()
    t_new = t_old + 1.0
    v_new = index.build([f"new{i}" for i in range(200)], new, {"features_read_at": t_new})
    assert index.last_build["published"]
    v_old = index.build([f"old{i}" for i in range(200)], old, {"features_read_at": t_old})
    assert v_old > v_new  # built later (a later name) ...
    assert not index.last_build["published"] and index.last_build["current"] == v_new  # ... but of older data
    assert index.current_version_name() == v_new
    assert served(index, new[0], 1)[0].startswith("new")


def test_concurrent_builds_in_threads_end_on_the_newest_data(tmp_path, backend):
    root = tmp_path / "index"
    reads = sorted(time.time() + i for i in range(4))
    errors = []

    def build(i):
        try:
            UserIndex(root=root, backend=backend).build(
                [f"b{i}-{j}" for j in range(150)], clustered(150, seed=i), {"features_read_at": reads[i]}, search_k=300
            )
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            errors.append(repr(e))

    threads = [threading.Thread(target=build, args=(i,)) for i in (2, 0, 3, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    reader = UserIndex(root=root)
    assert reader.manifest()["features_read_at"] == reads[3]
    assert served(reader, clustered(1, seed=3)[0], 1)[0].startswith("b3-")


def test_unreadable_removals_fail_closed_and_are_never_overwritten(index):
    x = clustered(200)
    index.build(IDS, x)
    index.remove("u1")
    for name in ("tombstones.json", "tombstones.backup.json"):
        (index.root / name).write_text('{"format": 2, "users": {}, "sha256": "bad"}')
    before = {n: (index.root / n).read_bytes() for n in ("tombstones.json", "tombstones.backup.json")}
    reader = UserIndex(root=index.root)
    for call in (
        lambda: reader.query(x[1], 5),
        lambda: reader.vector("u1"),
        reader.status,
        reader.all_vectors,
        lambda: reader.remove("u2"),
        lambda: reader.add_fresh("u1", x[1]),
        lambda: reader.build(IDS, x),
    ):
        with pytest.raises(RemovalsUnreadable, match="removed-users list cannot be read"):
            call()
    assert {n: (index.root / n).read_bytes() for n in before} == before
    assert "u1" not in reader.fresh


def test_one_damaged_copy_costs_nothing_and_the_next_write_repairs_it(index):
    x = clustered(200)
    index.build(IDS, x)
    index.remove("u1")
    (index.root / "tombstones.json").write_bytes(b"\x00garbage")
    reader = UserIndex(root=index.root)
    res = reader.search(x[1], 200)
    assert "u1" not in [h.user_id for h in res.hits] and any("backup" in w for w in res.warnings)
    reader.remove("u2")
    assert json.loads((index.root / "tombstones.json").read_text())["users"].keys() == {"u1", "u2"}
    assert not reader.search(x[1], 3).warnings


def test_first_format_tombstones_still_hide(index):
    x = clustered(200)
    index.build(IDS, x)
    (index.root / "tombstones.json").write_text(json.dumps({"u4": "2026-01-01T00:00:00+00:00"}))
    reader = UserIndex(root=index.root)
    assert reader.is_removed("u4") and "u4" not in served(reader, x[4])


def test_damaged_fresh_buffer_is_moved_aside_on_the_next_write(index):
    x = clustered(200)
    index.build(IDS, x)
    (index.root / "fresh.npz").write_bytes(b"not an npz")
    assert len(index.fresh) == 0 and "damaged" in index.fresh.problem
    index.add_fresh("newbie", x[0])
    assert served(index, x[0], 2)[0] in {"newbie", "u0"} and "newbie" in index.fresh
    aside = list(index.root.glob("fresh.npz.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"not an npz"


def test_atomic_write_replaces_whole_file_and_leaves_nothing_behind(tmp_path):
    from soundmates.atomic import atomic_write_bytes, atomic_write_text

    target = tmp_path / "sub" / "f.json"
    atomic_write_text(target, "one")
    atomic_write_bytes(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two" and (target.stat().st_mode & 0o777) == 0o600
    (tmp_path / "sub" / "dir").mkdir()
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "sub" / "dir", b"x")  # cannot replace a directory: nothing half-written
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["dir", "f.json"]
    assert os.listdir(tmp_path / "sub" / "dir") == []


def test_voyager_takes_fresh_users_and_removals_into_its_graph(tmp_path):
    """With Voyager, a fresh user is added to the loaded graph and a removal is a native delete."""
    index = UserIndex(root=tmp_path / "index", backend="voyager")
    x = clustered(200)
    index.build(IDS, x)
    newbie = clustered(1, seed=7)[0]
    index.add_fresh("newbie", newbie)
    hit = index.search(newbie, 1).hits[0]
    searcher = index._current().searcher
    assert (hit.user_id, hit.source) == ("newbie", "fresh") and searcher.index.num_elements == 201
    assert [p for p, _ in searcher.search(newbie, 1)] == [200]  # the graph itself answers with the new item
    index.remove("u0")
    assert "u0" not in served(index, x[0])
    assert 0 not in [p for p, _ in searcher.search(x[0], 250)] and searcher._deleted == {0}  # a native delete
    index.remove("newbie")
    assert "newbie" not in served(index, newbie) and searcher._deleted == {0, 200}


def test_add_fresh_of_data_read_before_the_removal_does_not_revive(index):
    x = clustered(200)
    index.build(IDS, x)
    read_at = time.time()  # a pipeline read u8's features here ...
    time.sleep(0.01)
    index.remove("u8")  # ... the owner removed them ...
    assert index.add_fresh("u8", x[8], read_at=read_at) is False  # ... and its add_fresh arrives late
    assert index.is_removed("u8") and "u8" not in index.fresh and "u8" not in served(index, x[8])
    assert index.add_fresh("u8", x[8], read_at=time.time()) is True and not index.is_removed("u8")
