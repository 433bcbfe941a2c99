# Environment for a local Airflow 3 standalone serving the Soundmates DAGs.
# Sourced by scripts/run.sh (and usable by hand: `source scripts/airflow_env.sh; airflow dags list`).
# Every value can be overridden from the caller's environment.

SOUNDMATES_REPO="${SOUNDMATES_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export SOUNDMATES_DATA_DIR="${SOUNDMATES_DATA_DIR:-$SOUNDMATES_REPO/var}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$SOUNDMATES_DATA_DIR/airflow}"
export AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"

# SQLite + LocalExecutor (SequentialExecutor is gone in 3.x), small parallelism for 2-core machines.
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="${AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG:-4}"
export AIRFLOW__CORE__DAGS_FOLDER="$SOUNDMATES_REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$SOUNDMATES_REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-False}"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-30}"
# Loopback only; the execution API must follow the port the API server really uses.
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://127.0.0.1:$AIRFLOW_PORT}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://127.0.0.1:$AIRFLOW_PORT/execution/}"
# Log servers bind every interface on fixed ports; move them with the API port so two checkouts can coexist.
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT:-$((AIRFLOW_PORT + 713))}"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="${AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT:-$((AIRFLOW_PORT + 714))}"
# A fixed, generated admin password (written once by run.sh) instead of a new random one per start.
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-$AIRFLOW_HOME/passwords.json}"
# Same JWT secret for every component, stable across restarts (tokens stay valid).
if [[ -z "${AIRFLOW__API_AUTH__JWT_SECRET:-}" && -f "$AIRFLOW_HOME/jwt_secret" ]]; then
    export AIRFLOW__API_AUTH__JWT_SECRET="$(cat "$AIRFLOW_HOME/jwt_secret")"
fi
# Huge pages for large in-memory allocations (a loaded Voyager index answers ~1.4x faster at 1M users;
# see src/soundmates/index/huge_pages.py). Read by glibc at process start, so set for every process.
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}"
export SOUNDMATES_AIRFLOW_URL="${SOUNDMATES_AIRFLOW_URL:-http://127.0.0.1:$AIRFLOW_PORT}"
