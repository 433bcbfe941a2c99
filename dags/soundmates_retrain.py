"""
### Soundmates retrain: a better model, only through the gate

Scheduled weekly (Sunday 03:00 UTC) **and** on the `soundmates_new_features` Asset.
An Asset-triggered run trains only when at least `min_new_users` users were stored
since the last training; the weekly and manual runs always train (`force` too) — once
`soundmates_bootstrap` has trained a first model (before that, runs end skipped).

1. **check_new_users** — counts users stored since the last training; skips the run if too few;
2. **train** — the two-tower model and the tuned baselines, registered **unpromoted** with their metrics;
3. **evaluate** — held-out metrics (whole population as candidates) for the model and the baselines;
4. **promote** — the gate: the new model is served only if it beats the incumbent and the best
   tuned baseline on the validation neighbour metric; otherwise the best baseline is served (if it
   beats the incumbent) and the log says why;
5. **publish_model** — emits the `soundmates_model` Asset when what is served changed, which starts
   `soundmates_index_rebuild`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from soundmates.orchestration import RETRAIN_DAG_ID, steps
from soundmates.orchestration.assets import MODEL, NEW_FEATURES
from soundmates.orchestration.dag_defaults import default_args

# Training is minutes of CPU: one retry, after a minute.
DEFAULT_ARGS = default_args(retries=1, retry_delay=timedelta(minutes=1), max_retry_delay=timedelta(minutes=10))


def _train_stage():
    """check_new_users (skips the run when too few arrived) -> train; returns the training result."""

    @task.short_circuit
    def check_new_users() -> dict | bool:
        context = get_current_context()
        params = context["params"]
        counts = steps.new_users_since_training()
        run_type = str(getattr(context["dag_run"], "run_type", ""))
        decision = steps.retrain_decision(
            counts,
            has_model=steps.last_training() is not None,
            asset_triggered="asset" in run_type.lower(),
            min_new_users=int(params["min_new_users"]),
            force=bool(params["force"]),
        )
        print(decision["reason"])
        return counts if decision["train"] else False

    @task(execution_timeout=timedelta(hours=6))
    def train(counts: dict) -> dict:
        params = get_current_context()["params"]
        result = steps.train(max_epochs=params.get("max_epochs"), seed=params.get("seed"))
        steps.record_training(counts["users"], result)
        return result

    return train(check_new_users())


def _gate_stage(trained):
    """evaluate -> promote (the gate, after ``trained`` and its evaluation) -> publish_model (the MODEL asset)."""

    @task
    def evaluate(trained: dict) -> dict:
        return steps.evaluate()

    @task
    def promote(trained: dict, evaluation: dict) -> dict:
        return steps.promotion_decision(steps.promote())

    @task(outlets=[MODEL])
    def publish_model(decision: dict) -> str:
        from airflow.exceptions import AirflowSkipException

        if not decision["promoted"]:
            raise AirflowSkipException(f"model not promoted: {decision['reason']}")
        get_current_context()["outlet_events"][MODEL].extra = {"version": decision["version"]}
        return decision["version"]

    publish_model(promote(trained, evaluate(trained)))


@dag(
    dag_id=RETRAIN_DAG_ID,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 0", timezone="UTC"),
        assets=[NEW_FEATURES],
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["soundmates", "training", "model"],
    params={
        "min_new_users": Param(
            100,
            type="integer",
            minimum=1,
            description="New users since the last training that make an Asset-triggered run train.",
        ),
        "force": Param(False, type="boolean", description="Train even if too few new users arrived."),
        # model overrides: empty = the value in configs/model/default.yaml (the DAG holds no model defaults)
        "max_epochs": Param(
            None, type=["null", "integer"], minimum=1, maximum=500, description="Most training epochs; empty = the model YAML's."
        ),
        "seed": Param(None, type=["null", "integer"], minimum=0, description="Training seed; empty = the model YAML's."),
    },
)
def soundmates_retrain():
    # Each stage defines its tasks and wires them in order; the gate runs after the training.
    _gate_stage(_train_stage())


soundmates_retrain()
