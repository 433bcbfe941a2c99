"""
### Soundmates new users: the inbox becomes findable users

Runs continuously, one run at a time. Each run:

1. **wait_for_requests** — `NewUsersSensor` waits in the *triggerer* (deferrable, no worker slot held)
   until the new-users inbox holds `min_pending` pending requests (written by the dashboard or
   `soundmates add REF`); after an hour without any it ends skipped and the next run takes over;
2. **process** — `process_inbox`: ingest → features (upserted) → embed with the current model →
   the index's fresh buffer, so the users are findable at once; each request is marked `done`, or
   `failed` with its reason, and one bad user never fails the others;
3. **publish_new_features** — emits the `soundmates_new_features` Asset when users were added
   (it feeds `soundmates_retrain`);
4. **request_rebuild** — emits `soundmates_fresh_buffer_full` when the fresh buffer passed its
   threshold (`SOUNDMATES_FRESH_BUFFER_THRESHOLD`), which starts `soundmates_index_rebuild`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from soundmates.orchestration import NEW_USERS_DAG_ID, SPOTIFY_POOL
from soundmates.orchestration.assets import BUFFER_FULL, NEW_FEATURES
from soundmates.orchestration.dag_defaults import default_args
from soundmates.orchestration.sensors import NewUsersSensor

DEFAULT_ARGS = default_args()  # Spotify and file work: 2 retries, 10 s backing off to 5 min


@dag(
    dag_id=NEW_USERS_DAG_ID,
    schedule="@continuous",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["soundmates", "new-users", "sensor"],
    params={
        "min_pending": Param(1, type="integer", minimum=1, description="Pending requests that start a run."),
        "limit": Param(200, type="integer", minimum=1, maximum=100000, description="Most requests processed per run."),
    },
)
def soundmates_new_users():
    wait = NewUsersSensor(
        task_id="wait_for_requests",
        min_pending="{{ params.min_pending }}",
        trigger_poll_interval_s=5.0,
        timeout=3600,
        soft_fail=True,  # an hour with no request is not an error: end skipped, the next run waits again
        retries=1,
    )

    @task(pool=SPOTIFY_POOL)
    def process() -> dict:
        from soundmates.orchestration.credentials import spotify_credentials
        from soundmates.orchestration.steps import jsonable
        from soundmates.pipelines import process_inbox

        limit = int(get_current_context()["params"]["limit"])
        with spotify_credentials():
            return jsonable(process_inbox(limit=limit))

    @task(outlets=[NEW_FEATURES])
    def publish_new_features(summary: dict) -> int:
        from airflow.exceptions import AirflowSkipException

        added = len(summary.get("done") or [])
        if not added:
            raise AirflowSkipException("no user was added in this run")
        get_current_context()["outlet_events"][NEW_FEATURES].extra = {"new_users": added}
        return added

    @task(outlets=[BUFFER_FULL])
    def request_rebuild(summary: dict) -> int | None:
        from airflow.exceptions import AirflowSkipException

        if not summary.get("rebuild_due"):
            raise AirflowSkipException("the fresh buffer is below its threshold")
        get_current_context()["outlet_events"][BUFFER_FULL].extra = {"fresh_buffer": summary.get("fresh_buffer")}
        return summary.get("fresh_buffer")

    summary = process()
    wait >> summary
    publish_new_features(summary)
    request_rebuild(summary)


soundmates_new_users()
