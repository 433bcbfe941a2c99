"""The DAGs end to end with ``dag.test()``: real tasks, real stores, the local Spotify server.

One tiny world (the ``small_world`` fixture) is bootstrapped once for the module (30 users,
1 epoch); every other test starts from its own copy of that data directory, so none sees what
another left behind and they pass in any order.
"""

from __future__ import annotations

import pytest

from tests.fixtures.airflow import parse_dags, run_dag
from tests.fixtures.spotify import spotify_env

pytestmark = pytest.mark.slow

BOOTSTRAP_USERS = 30


@pytest.fixture(scope="module")
def pipeline_env(tmp_path_factory, small_world, airflow_db):
    """A data dir, a running local Spotify server on the small world, and the env pointing at both."""
    from soundmates.world.server import SpotifyServer

    mp = pytest.MonkeyPatch()
    data_dir = tmp_path_factory.mktemp("e2e-data")
    server = SpotifyServer(small_world, port=0, mode="full").start()
    for key, value in spotify_env(server, "e2e-id", "e2e-secret").items():
        mp.setenv(key, value)
    mp.delenv("AIRFLOW_CONN_SPOTIFY_DEFAULT", raising=False)
    yield {"data_dir": data_dir, "world": small_world, "server": server}
    server.stop()
    mp.undo()


@pytest.fixture
def env(pipeline_env, bootstrapped, tmp_path, monkeypatch):
    """This test's own copy of the bootstrapped data dir, the environment pointed at it."""
    import shutil

    from soundmates.config import reset_settings

    data_dir = tmp_path / "data"
    shutil.copytree(pipeline_env["data_dir"], data_dir)
    monkeypatch.setenv("SOUNDMATES_DATA_DIR", str(data_dir))
    reset_settings()
    return {**pipeline_env, "data_dir": data_dir}


@pytest.fixture
def fresh_users(env):
    """Two users added through the inbox and processed as the new-users DAG does: now in the fresh buffer."""
    from soundmates.pipelines import process_inbox
    from soundmates.recommend import Recommender
    from tests.fixtures.spotify import world_user_ids

    rec = Recommender()
    for uid in world_user_ids(env["world"])[BOOTSTRAP_USERS + 4 : BOOTSTRAP_USERS + 6]:
        rec.add(f"spotify:user:{uid}")
    return process_inbox()["done"]


@pytest.fixture(scope="module")
def bootstrapped(pipeline_env):
    from soundmates.config import reset_settings

    mp = pytest.MonkeyPatch()
    mp.setenv("SOUNDMATES_DATA_DIR", str(pipeline_env["data_dir"]))
    reset_settings()
    conf = {"world_users": BOOTSTRAP_USERS, "world_dir": str(pipeline_env["world"]), "batch_size": 12, "max_epochs": 1}
    dr, states = run_dag(parse_dags().dags["soundmates_bootstrap"], conf)
    mp.undo()
    reset_settings()
    return dr, states


def test_bootstrap_runs_end_to_end(env, bootstrapped):
    from soundmates.index import UserIndex
    from soundmates.orchestration import steps

    dr, states = bootstrapped
    assert dr.state == "success", states
    # 30 users in batches of 12 -> 3 mapped ingest tasks.
    assert {k for k in states if k.startswith("ingest[")} == {"ingest[0]", "ingest[1]", "ingest[2]"}
    assert all(s == "success" for s in states.values()), states
    assert states.get("map") == "success", states  # the taste map laid out after the index build

    stored = steps.stored_user_count()
    assert 0 < stored <= BOOTSTRAP_USERS
    manifest = UserIndex().manifest()
    assert manifest is not None and 0 < manifest["count"] <= stored
    assert steps.last_training()["users"] == stored


def test_new_users_dag_makes_an_added_user_recommendable(env, bootstrapped, dagbag):
    from soundmates.index import UserIndex
    from soundmates.recommend import Recommender
    from soundmates.store import get_store, inbox
    from tests.fixtures.spotify import world_user_ids

    assert bootstrapped[0].state == "success"
    indexed_before = UserIndex().manifest()["count"]
    candidates = world_user_ids(env["world"])[BOOTSTRAP_USERS : BOOTSTRAP_USERS + 4]
    rec = Recommender()
    for uid in candidates:
        rec.add(f"spotify:user:{uid}")
    bad = "nobody-with-this-id-0000"
    rec.add(f"https://open.spotify.com/user/{bad}")

    dr, states = run_dag(dagbag.dags["soundmates_new_users"], {"min_pending": 1, "limit": 50})
    assert dr.state == "success", states
    assert states["wait_for_requests"] == "success" and states["process"] == "success", states

    store = get_store()
    entries = {uid: inbox.get(store, uid) for uid in [*candidates, bad]}
    assert entries[bad].status == "failed" and entries[bad].reason  # failed, with its reason
    done = [uid for uid, e in entries.items() if e.status == "done"]
    assert done, {uid: (e.status, e.reason) for uid, e in entries.items()}
    for uid, entry in entries.items():
        assert entry.status in {"done", "failed"}, (uid, entry)
        assert entry.status == "done" or entry.reason
    assert states["publish_new_features"] == "success"  # new users -> the new-features Asset

    # Recommendable without a rebuild: in the fresh buffer, findable by its own vector, and served.
    index = UserIndex()
    assert index.manifest()["count"] == indexed_before
    for uid in done:
        vector = index.vector(uid)
        assert vector is not None, uid
        assert uid in [u for u, _ in index.query(vector, k=3)]
    result = rec.recommend(f"spotify:user:{done[0]}", k=5)
    assert result.matches and all(m.user_id != done[0] for m in result.matches)
    others = world_user_ids(env["world"])[:BOOTSTRAP_USERS]
    assert any(
        done[0] in [m.user_id for m in rec.recommend(f"spotify:user:{o}", k=len(others) + 5).matches]
        for o in others[:5]
        if UserIndex().vector(o) is not None
    )


def test_index_rebuild_folds_in_the_fresh_buffer(env, bootstrapped, fresh_users, dagbag):
    from soundmates.index import UserIndex

    assert bootstrapped[0].state == "success"
    before = UserIndex().status()
    assert fresh_users and before["fresh"] == len(fresh_users), (fresh_users, before)
    dr, states = run_dag(dagbag.dags["soundmates_index_rebuild"])
    assert dr.state == "success", states
    after = UserIndex().status()
    assert after["version"] != before["version"]
    assert after["count"] == before["count"] + before["fresh"]


def test_retrain_trains_and_publishes_only_through_the_gate(env, bootstrapped, dagbag):
    from soundmates.model.registry import ModelRegistry
    from soundmates.orchestration import steps

    assert bootstrapped[0].state == "success"
    registry = ModelRegistry(env["data_dir"] / "models")
    current_before = registry.current_version()
    dr, states = run_dag(dagbag.dags["soundmates_retrain"], {"max_epochs": 1, "min_new_users": 1000})
    assert dr.state == "success", states
    # A manual run trains whatever the new-user count (the threshold gates Asset-triggered runs only).
    for task_id in ("check_new_users", "train", "evaluate", "promote"):
        assert states[task_id] == "success", states
    current_after = registry.current_version()
    new_version = steps.last_training()["model_version"]
    assert not steps.last_training()["promoted"]  # training registers unpromoted; the promote step is the gate
    meta = registry.meta(new_version)
    if current_after != current_before:  # the gate served the new model or its best tuned baseline
        assert states["publish_model"] == "success"
        assert current_after in {new_version, *meta["candidates"].values()}
    else:  # nothing new served: no model Asset, the served model unchanged
        assert states["publish_model"] == "skipped"
