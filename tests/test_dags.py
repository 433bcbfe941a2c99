"""The DAG files: they parse, carry docs and tags, wire the stages as designed, validate params."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from soundmates.orchestration import DAG_IDS, SPOTIFY_POOL
from tests.fixtures.airflow import DAGS_DIR, REPO_ROOT


def test_dagbag_loads_without_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(DAG_IDS) <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_each_dag_has_tags_docs_and_retries(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert "soundmates" in dag.tags
    assert dag.doc_md and len(dag.doc_md.strip()) > 200
    assert dag.max_active_runs == 1
    assert all(t.retries >= 1 or t.task_id == "plan" for t in dag.tasks), {t.task_id: t.retries for t in dag.tasks}


def test_dags_share_one_default_args_and_state_what_differs(dagbag):
    """One definition (soundmates.orchestration.dag_defaults); each DAG's own differences are explicit there."""
    from datetime import timedelta

    from soundmates.orchestration.dag_defaults import default_args

    expected = {
        "soundmates_bootstrap": default_args(),
        "soundmates_new_users": default_args(),
        "soundmates_index_rebuild": default_args(retry_delay=timedelta(seconds=30), max_retry_delay=timedelta(minutes=10)),
        "soundmates_retrain": default_args(retries=1, retry_delay=timedelta(minutes=1), max_retry_delay=timedelta(minutes=10)),
    }
    for dag_id, args in expected.items():
        dag = dagbag.dags[dag_id]
        assert {k: dag.default_args[k] for k in args} == args, dag_id
        assert all(t.owner == "soundmates" and t.retry_exponential_backoff for t in dag.tasks), dag_id
    assert dagbag.dags["soundmates_retrain"].get_task("train").retries == 1
    assert default_args() is not default_args()  # a fresh dict: one DAG's change never leaks into another
    for f in DAGS_DIR.glob("*.py"):
        assert '"retry_exponential_backoff"' not in f.read_text(encoding="utf-8"), f.name  # no copy left behind


def test_dag_files_import_no_heavy_modules():
    """Parsing must stay fast: no torch / sentence-transformers / deltalake at DAG top level."""
    code = (
        "import sys, runpy, glob\n"
        f"for f in sorted(glob.glob({str(DAGS_DIR)!r} + '/*.py')): runpy.run_path(f)\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'lightning', 'deltalake', 'annoy', 'streamlit') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_bootstrap_wiring(dagbag):
    dag = dagbag.dags["soundmates_bootstrap"]
    order = ["plan", "ingest", "ingest_summary", "features", "train", "evaluate", "promote", "index", "map"]
    assert set(order) == set(dag.task_ids)
    for up, down in zip(order, order[1:]):
        assert down in dag.get_task(up).downstream_task_ids, (up, down)
    ingest = dag.get_task("ingest")
    assert type(ingest).__name__.endswith("MappedOperator")  # dynamic task mapping over batches
    assert ingest.pool == SPOTIFY_POOL
    assert dag.get_task("train").retry_exponential_backoff
    assert dag.schedule is None  # manual, from the UI
    assert [a.name for a in dag.get_task("index").outlets] == ["soundmates_index"]


def test_new_users_wiring(dagbag):
    dag = dagbag.dags["soundmates_new_users"]
    sensor = dag.get_task("wait_for_requests")
    assert type(sensor).__name__ == "NewUsersSensor"
    assert sensor.deferrable and sensor.soft_fail
    assert type(sensor).__module__ == "soundmates.orchestration.sensors"  # importable by the triggerer
    assert dag.get_task("process").pool == SPOTIFY_POOL
    assert {"publish_new_features", "request_rebuild"} == dag.get_task("process").downstream_task_ids
    assert [a.name for a in dag.get_task("publish_new_features").outlets] == ["soundmates_new_features"]
    assert [a.name for a in dag.get_task("request_rebuild").outlets] == ["soundmates_fresh_buffer_full"]


def _asset_names(condition) -> set[str]:
    return {asset.name for _key, asset in condition.iter_assets()}


def test_retrain_and_index_schedules_are_asset_driven(dagbag):
    retrain = dagbag.dags["soundmates_retrain"]
    assert type(retrain.timetable).__name__ == "AssetOrTimeSchedule"
    assert "0 3 * * 0" in retrain.timetable.summary or "0 3 * * 0" in retrain.timetable.timetable.summary
    assert _asset_names(retrain.timetable.asset_condition) == {"soundmates_new_features"}
    assert [a.name for a in retrain.get_task("publish_model").outlets] == ["soundmates_model"]
    order = ["check_new_users", "train", "evaluate", "promote", "publish_model"]
    for up, down in zip(order, order[1:]):
        assert down in retrain.get_task(up).downstream_task_ids, (up, down)

    rebuild = dagbag.dags["soundmates_index_rebuild"]
    assert _asset_names(rebuild.timetable.asset_condition) == {"soundmates_model", "soundmates_fresh_buffer_full"}
    assert [a.name for a in rebuild.get_task("publish").outlets] == ["soundmates_index"]


@pytest.mark.parametrize(
    "conf, fragment",
    [
        ({"refs": "spotify:user:alice"}, "refs"),
        ({"world_users": 0}, "world_users"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_epochs": "ten"}, "max_epochs"),
    ],
)
def test_bootstrap_params_reject_bad_input(dagbag, conf, fragment):
    """What the UI's trigger form (and the REST API) checks before a run is created."""
    from airflow.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags["soundmates_bootstrap"].params)
    with pytest.raises(ParamValidationError, match=f"Invalid input for param {fragment}"):
        params.update(conf)  # validates each value as it is set
        params.validate()


def test_bootstrap_defaults_validate(dagbag):
    dag = dagbag.dags["soundmates_bootstrap"]
    resolved = dag.params.validate()
    assert resolved["refs"] == [] and resolved["world_users"] == 1000
    json.dumps(resolved)  # what the UI shows must be JSON
