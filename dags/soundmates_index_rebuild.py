"""
### Soundmates index rebuild: fold the fresh buffer and a new model into Annoy

Runs when either Asset gets an event: `soundmates_model` (a model was promoted: every user
must be re-embedded) or `soundmates_fresh_buffer_full` (the exact-search buffer of users added
since the last build passed its threshold). Also runnable by hand.

1. **build** — embeds every stored user with the current model and builds a new Annoy index
   version (written aside, then published atomically: readers never see half an index);
2. **publish** — checks the published manifest and emits the `soundmates_index` Asset;
3. **map** — lays the published index out in 2-D for the dashboard's taste map (UMAP, stored
   by the index stage beside its versions), so no page load computes it.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from soundmates.orchestration import INDEX_REBUILD_DAG_ID, steps
from soundmates.orchestration.assets import BUFFER_FULL, INDEX, MODEL
from soundmates.orchestration.dag_defaults import default_args

# An index build reads the whole store: wait longer before trying again.
DEFAULT_ARGS = default_args(retry_delay=timedelta(seconds=30), max_retry_delay=timedelta(minutes=10))


@dag(
    dag_id=INDEX_REBUILD_DAG_ID,
    schedule=(MODEL | BUFFER_FULL),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["soundmates", "index"],
)
def soundmates_index_rebuild():
    @task
    def build() -> dict:
        return steps.build_index()

    @task(outlets=[INDEX])
    def publish(built: dict) -> dict:
        return steps.check_published_index(built)

    @task(task_id="map")
    def taste_map(published: dict) -> dict:
        return steps.build_map()

    taste_map(publish(build()))


soundmates_index_rebuild()
