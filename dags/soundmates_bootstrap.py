"""
### Soundmates bootstrap: from profile references to a served index

Run it by hand (**Trigger DAG** with params) on an empty system, or to rebuild everything:

1. **plan** — validates the params and cuts the users into batches;
2. **ingest** — one mapped task per batch (dynamic task mapping), in the `spotify_api` pool so
   concurrent Spotify calls stay bounded; resumable, so a retry never refetches or duplicates a user;
   when Spotify rate-limits beyond the 30 s cap, the batch is rescheduled for the time Spotify asked
   (up to 6 h from the run's start) and resumes from the kept raw pages;
3. **features** — taste features into the feature store (incremental: only changed profiles);
4. **train** — the two-tower model and the tuned baselines (registered, unpromoted);
5. **evaluate** — held-out metrics against the whole population for the model and the baselines;
6. **promote** — the gate: the model if it beats the best tuned baseline, else that baseline;
7. **index** — the Annoy index of every stored user (with the served embedder), published atomically;
8. **map** — lays that index out in 2-D for the dashboard's taste map (UMAP, as the index-rebuild DAG does
   after its build), so no page load computes it.

Params: `refs` (a list of Spotify profile references) **or**, when `refs` is empty,
`world_users` (the first N users of the generated world in `world_dir`, default
`$SOUNDMATES_DATA_DIR/world`). Spotify credentials come from the Airflow connection
`spotify_default` (login = client id, password = secret, extra `api_url`/`token_url`
for the local server) or the `SPOTIPY_*` environment.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from soundmates.orchestration import BOOTSTRAP_DAG_ID, SPOTIFY_POOL, steps
from soundmates.orchestration.assets import INDEX
from soundmates.orchestration.dag_defaults import default_args

DEFAULT_ARGS = default_args()  # Spotify and file work: 2 retries, 10 s backing off to 5 min


def _ingest_stage():
    """plan -> ingest (one mapped task per batch, in the Spotify pool) -> ingest_summary; returns the summary."""

    @task(retries=0)  # bad params will not get better by retrying
    def plan() -> list[list[str]]:
        from airflow.exceptions import AirflowFailException

        from soundmates.config import get_settings
        from soundmates.orchestration.bootstrap import BootstrapParamsError, batches, resolve_refs

        params = get_current_context()["params"]
        try:
            refs = resolve_refs(
                params.get("refs") or None,
                None if params.get("refs") else params.get("world_users"),
                params.get("world_dir") or None,
                default_world_dir=get_settings().world_dir,
            )
            return batches(refs, params.get("batch_size", 100))
        except BootstrapParamsError as exc:
            raise AirflowFailException(f"invalid params: {exc}") from exc

    @task(pool=SPOTIFY_POOL, max_active_tis_per_dagrun=2)
    def ingest(batch: list[str]) -> dict:
        result = steps.ingest_batch(batch)
        # Rate-limited users are a pause: run this batch again when Spotify said (a reschedule frees
        # the pool slot and spends no retry); the rerun skips stored users and reuses kept pages.
        when = steps.ingest_resume_at(result, run_started=getattr(get_current_context()["dag_run"], "start_date", None))
        if when is not None:
            from airflow.exceptions import AirflowRescheduleException

            raise AirflowRescheduleException(reschedule_date=when)
        return result

    @task
    def ingest_summary(results) -> dict:
        return steps.merge_ingest(list(results))

    return ingest_summary(ingest.expand(batch=plan()))


def _model_stage(ingested):
    """features -> train -> evaluate -> promote, after ``ingested``; returns the promotion."""

    @task
    def features(_ingested: dict) -> dict:
        return steps.build_features()

    @task(execution_timeout=timedelta(hours=6))
    def train(_features: dict) -> dict:
        params = get_current_context()["params"]
        result = steps.train(max_epochs=params.get("max_epochs"), seed=params.get("seed"))
        steps.record_training(steps.stored_user_count(), result)
        return result

    @task
    def evaluate(_trained: dict) -> dict:
        return steps.evaluate()

    @task
    def promote(_evaluated: dict) -> dict:
        return steps.promote()

    return promote(evaluate(train(features(ingested))))


def _serve_stage(promoted):
    """index (emits the INDEX asset) -> map, after ``promoted``."""

    @task(outlets=[INDEX])
    def index(_promoted: dict) -> dict:
        return steps.build_index()

    @task(task_id="map")
    def taste_map(_indexed: dict) -> dict:
        return steps.build_map()

    taste_map(index(promoted))


@dag(
    dag_id=BOOTSTRAP_DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["soundmates", "bootstrap", "ingest", "training"],
    params={
        "refs": Param(
            [],
            type="array",
            items={"type": "string", "minLength": 1},
            description="Spotify profile references (URL, spotify:user:ID or ID). Empty = use world_users.",
        ),
        "world_users": Param(
            1000,
            type=["null", "integer"],
            minimum=1,
            description="When refs is empty: ingest the first N users of the generated world.",
        ),
        "world_dir": Param("", type="string", description="Generated world directory; empty = $SOUNDMATES_DATA_DIR/world."),
        "batch_size": Param(100, type="integer", minimum=1, maximum=10000, description="References per ingest task."),
        # model overrides: empty = the value in configs/model/default.yaml (the DAG holds no model defaults)
        "max_epochs": Param(
            None, type=["null", "integer"], minimum=1, maximum=500, description="Most training epochs; empty = the model YAML's."
        ),
        "seed": Param(None, type=["null", "integer"], minimum=0, description="Training seed; empty = the model YAML's."),
    },
)
def soundmates_bootstrap():
    # Each stage defines its tasks and wires them in order; the stages run one after the other.
    _serve_stage(_model_stage(_ingest_stage()))


soundmates_bootstrap()
