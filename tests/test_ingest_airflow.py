"""The bootstrap DAG's ingest under a rate limit beyond the cap: a real ``dag.test()`` run.

5% of requests answer 429 with ``Retry-After: 1`` and the cap is 0.5 s, so each try of a mapped ingest task
stops at its first 429 and defers the rest; the task must be rescheduled (not failed, no retry
spent) after the server's delay and resume from the kept raw pages until every user is done.
Only plan / ingest / ingest_summary run; the later tasks are marked success (mark_success_pattern).
"""

from __future__ import annotations

from datetime import UTC

import pytest

from soundmates.config import get_settings, reset_settings
from soundmates.profiles import ProfileRepository
from soundmates.spotify.ingest import Ingestor

USERS = 6


def test_resume_at_is_the_servers_delay_bounded_from_the_run_start():
    from datetime import datetime, timedelta

    from soundmates.orchestration.steps import ingest_resume_at

    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    started = now - timedelta(minutes=5)
    two = {"deferred": [{"ref": "a", "retry_after_s": 31.0}, {"ref": "b", "retry_after_s": 45.5}]}
    assert ingest_resume_at({"deferred": []}, run_started=started, now=now) is None
    assert ingest_resume_at(two, run_started=started, now=now) == now + timedelta(seconds=45.5)
    assert ingest_resume_at({"deferred": [{"ref": "a", "retry_after_s": 0}]}, run_started=started, now=now) == now + timedelta(
        seconds=1
    )
    # past the longest wait from the run's start: not rescheduled (the users stay reported as deferred)
    assert ingest_resume_at(two, run_started=now - timedelta(hours=6), now=now) is None
    assert ingest_resume_at(two, run_started=None, now=now, max_wait=timedelta(seconds=10)) is None


def test_merge_ingest_reports_deferred_users_and_says_so_when_nobody_could_be_done():
    from soundmates.orchestration.steps import merge_ingest

    total = merge_ingest([{"ingested": 1, "skipped": 0, "failed": [], "deferred": [{"ref": "a", "retry_after_s": 3.0}]}])
    assert total["deferred"] == [{"ref": "a", "retry_after_s": 3.0}] and total["failed"] == []
    with pytest.raises(RuntimeError, match="1 user\\(s\\) still rate-limited"):
        merge_ingest([{"ingested": 0, "skipped": 0, "failed": [], "deferred": [{"ref": "a", "retry_after_s": 3.0}]}])


@pytest.mark.slow
def test_rate_limited_ingest_tasks_are_rescheduled_and_resume_to_the_same_profiles(
    small_world, spotify_server, dagbag, airflow_db, tmp_path, monkeypatch
):
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    from soundmates.world.generator import World, describe_user
    from soundmates.world.server import FaultConfig
    from tests.fixtures.spotify import world_user_ids

    world = World(small_world)
    # small users (a few pages each) keep the number of reschedules, and the test, short
    users = [u for u in world_user_ids(small_world) if 0 < describe_user(world, u)["items"] <= 150][:USERS]
    assert len(users) == USERS
    spotify_server(world=small_world)
    reset_settings()
    clean = get_settings().model_copy(update={"data_dir": tmp_path / "clean"})
    expected = Ingestor(clean).ingest_many(users, progress=False)
    assert expected.ingested == USERS

    server = spotify_server(world=small_world, faults=FaultConfig(rate_429=0.05, retry_after=1, seed=9))
    monkeypatch.delenv("AIRFLOW_CONN_SPOTIFY_DEFAULT", raising=False)
    monkeypatch.setenv("SOUNDMATES_DATA_DIR", str(tmp_path / "dag"))
    monkeypatch.setenv("SOUNDMATES_SPOTIFY_RETRY_AFTER_CAP_S", "0.5")
    reset_settings()

    conf = {"refs": users, "batch_size": 3}
    dr = dagbag.dags["soundmates_bootstrap"].test(run_conf=conf, mark_success_pattern="features|train|evaluate|promote|index|map")
    reset_settings()

    assert dr.state == "success", {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert server.stats()["faults"].get("429", 0) > 0
    tis = {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): ti for ti in dr.get_task_instances()}
    ingest_tis = [ti for key, ti in tis.items() if key.startswith("ingest[")]
    assert len(ingest_tis) == 2
    with create_session() as session:
        reschedules = session.query(TaskReschedule).filter(TaskReschedule.ti_id.in_([ti.id for ti in ingest_tis])).count()
    assert reschedules > 0, "the rate limit must reschedule the ingest tasks"
    assert all(ti.try_number == 1 for ti in ingest_tis), "a reschedule spends no retry"

    summary = tis["ingest_summary"].xcom_pull(task_ids="ingest_summary")
    assert summary["deferred"] == [] and not any("rate limit" in f["reason"] for f in summary["failed"])
    assert summary["ingested"] + summary["skipped"] == expected.ingested
    dag_repo, clean_repo = ProfileRepository(tmp_path / "dag" / "profiles"), ProfileRepository(clean.profiles_dir)
    assert {p.user_id: p.content_hash() for p in dag_repo} == {p.user_id: p.content_hash() for p in clean_repo}
