#!/usr/bin/env bash
# `make run`: the whole Soundmates system on one machine, on the embedded defaults.
#
#   1. generate a Spotify-like world (SOUNDMATES_WORLD_USERS, default 1000) unless one exists;
#   2. serve it with the local Spotify-compatible server (loopback);
#   3. start Airflow 3 standalone (SQLite, LocalExecutor, loopback, fixed generated admin password);
#   4. start the Streamlit dashboard when streamlit_app/app.py exists (while Airflow starts);
#   5. trigger soundmates_bootstrap (ingest -> features -> train -> evaluate -> index) and wait for it.
#
# Every process is started in its own session with its PID in $SOUNDMATES_DATA_DIR/run/*.pid;
# `make stop` (scripts/stop.sh) stops exactly those. Logs: $SOUNDMATES_DATA_DIR/logs/.
# Knobs (env): SOUNDMATES_DATA_DIR, SOUNDMATES_WORLD_USERS, SOUNDMATES_WORLD_SEED, AIRFLOW_PORT (8080),
# SPOTIFY_PORT (8765), DASHBOARD_PORT (8501), BOOTSTRAP_MAX_EPOCHS (10; empty: configs/model/default.yaml's max_epochs),
# SOUNDMATES_RUN_BOOTSTRAP (1), BOOTSTRAP_TIMEOUT_S (3600).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export SOUNDMATES_REPO="$REPO"
BIN="${VENV:-$REPO/.venv}/bin"
PY="$BIN/python"
[[ -x "$PY" ]] || { echo "error: no virtualenv at $BIN; run 'make setup' (or 'make run', which sets up first)" >&2; exit 2; }
export PATH="$BIN:$PATH"

source "$REPO/scripts/airflow_env.sh"
DATA="$SOUNDMATES_DATA_DIR"
RUN_DIR="$DATA/run"
LOG_DIR="$DATA/logs"
WORLD_DIR="${SOUNDMATES_WORLD_DIR:-$DATA/world}"
WORLD_USERS="${SOUNDMATES_WORLD_USERS:-1000}"
WORLD_SEED="${SOUNDMATES_WORLD_SEED:-0}"
SPOTIFY_PORT="${SPOTIFY_PORT:-8765}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8501}"
# model overrides only when set: the model defaults live in configs/model/default.yaml alone
# the bootstrap trains a first model quickly (a newcomer waits for it); retraining uses the YAML's max_epochs
MAX_EPOCHS="${BOOTSTRAP_MAX_EPOCHS-10}"
mkdir -p "$RUN_DIR" "$LOG_DIR" "$AIRFLOW_HOME"
# Known before Airflow starts: its plugin links to the dashboard.
export SOUNDMATES_DASHBOARD_URL="${SOUNDMATES_DASHBOARD_URL:-http://127.0.0.1:$DASHBOARD_PORT}"

T0=$SECONDS
declare -a TIMINGS=()
step_start() { STEP_NAME="$1"; STEP_T0=$SECONDS; echo "==> $1" >&2; }
step_done() { local dt=$((SECONDS - STEP_T0)); TIMINGS+=("$(printf '%-34s %5ss' "$STEP_NAME" "$dt")"); echo "    done in ${dt}s" >&2; }
on_error() {
    echo >&2
    echo "error: '${STEP_NAME:-run.sh}' failed. Logs: $LOG_DIR/ ; what was started keeps running: 'make stop' stops it." >&2
}
trap on_error ERR

alive() { [[ -f "$RUN_DIR/$1.pid" ]] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {  # port seconds what
    local deadline=$((SECONDS + $2))
    until port_busy "$1"; do
        (( SECONDS < deadline )) || { echo "error: $3 did not open port $1 within $2 s (log: $LOG_DIR)" >&2; return 1; }
        sleep 0.5
    done
}
# Start "$@" in a new session with SIGINT restored (a backgrounding shell ignores it, and Airflow
# standalone shuts down cleanly only on SIGINT); the PID written is the program's own.
launch() {  # name cmd...
    local name="$1"; shift
    setsid "$PY" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' \
        "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/$name.pid"
}

# standalone (`make run`) or cluster (`make run-cluster`: scripts/run_cluster.sh sets it, after starting
# PostgreSQL and Redis): api-server, scheduler, dag-processor, triggerer and Celery workers, each by PID.
LAYOUT="${SOUNDMATES_AIRFLOW_LAYOUT:-standalone}"
WORKERS="${SOUNDMATES_CELERY_WORKERS:-2}"
for name in spotify airflow dashboard airflow-apiserver airflow-scheduler airflow-worker-1; do
    if alive "$name"; then
        echo "error: Soundmates is already running ($name, PID $(cat "$RUN_DIR/$name.pid")); 'make stop' first." >&2
        exit 1
    fi
done
for spec in "$SPOTIFY_PORT:SPOTIFY_PORT" "$AIRFLOW_PORT:AIRFLOW_PORT" "$DASHBOARD_PORT:DASHBOARD_PORT"; do
    if port_busy "${spec%%:*}"; then
        echo "error: port ${spec%%:*} is in use by another program; choose another with ${spec##*:}=..." >&2
        exit 1
    fi
done

# --- 1. world ------------------------------------------------------------------------------------
step_start "world ($WORLD_USERS users, seed $WORLD_SEED)"
if [[ -s "$WORLD_DIR/users.txt" ]]; then
    echo "    reusing the world in $WORLD_DIR ($(wc -l <"$WORLD_DIR/users.txt") users)" >&2
else
    soundmates world generate --users "$WORLD_USERS" --seed "$WORLD_SEED" --out "$WORLD_DIR" >&2
fi
WORLD_COUNT=$(grep -c . "$WORLD_DIR/users.txt")
step_done

# --- 2. local Spotify server ----------------------------------------------------------------------
step_start "local Spotify server (port $SPOTIFY_PORT), started"
# Waited for after the Airflow database is set up: the two start side by side.
launch spotify soundmates spotify serve --world "$WORLD_DIR" --port "$SPOTIFY_PORT"
export SOUNDMATES_SPOTIFY_API_URL="http://127.0.0.1:$SPOTIFY_PORT/v1/"
export SOUNDMATES_SPOTIFY_TOKEN_URL="http://127.0.0.1:$SPOTIFY_PORT/api/token"
# The local server accepts any non-empty pair; real credentials stay whatever the caller exported.
export SPOTIPY_CLIENT_ID="${SPOTIPY_CLIENT_ID:-soundmates-local}"
export SPOTIPY_CLIENT_SECRET="${SPOTIPY_CLIENT_SECRET:-soundmates-local-secret}"
step_done

# --- 3. Airflow standalone ------------------------------------------------------------------------
step_start "Airflow metadata DB, pool, connection; Spotify server up"
umask 077
[[ -s "$AIRFLOW_HOME/jwt_secret" ]] || "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$AIRFLOW_HOME/jwt_secret"
[[ -s "$AIRFLOW_HOME/fernet_key" ]] || "$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' >"$AIRFLOW_HOME/fernet_key"
if [[ ! -s "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" ]]; then
    "$PY" -c 'import json, secrets; print(json.dumps({"admin": secrets.token_urlsafe(12)}))' >"$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
fi
umask 022
export AIRFLOW__API_AUTH__JWT_SECRET="$(cat "$AIRFLOW_HOME/jwt_secret")"
export AIRFLOW__CORE__FERNET_KEY="$(cat "$AIRFLOW_HOME/fernet_key")"
airflow db migrate >"$LOG_DIR/airflow-db-migrate.log" 2>&1
"$PY" -m soundmates.orchestration.airflow_setup \
    --api-url "$SOUNDMATES_SPOTIFY_API_URL" --token-url "$SOUNDMATES_SPOTIFY_TOKEN_URL" 2>>"$LOG_DIR/airflow-setup.log"
wait_port "$SPOTIFY_PORT" 60 "the local Spotify server"
step_done

if [[ "$LAYOUT" == cluster ]]; then
    # scripts/run_cluster.sh started PostgreSQL and Redis and exported configs/airflow-cluster.env's settings.
    step_start "Airflow on Celery (port $AIRFLOW_PORT, $WORKERS workers)"
    launch airflow-apiserver airflow api-server --port "$AIRFLOW_PORT"
    launch airflow-scheduler airflow scheduler
    launch airflow-dag-processor airflow dag-processor
    launch airflow-triggerer airflow triggerer
    for i in $(seq 1 "$WORKERS"); do
        # Each worker its own Celery node name, task-instance hostname and log-server port.
        launch "airflow-worker-$i" env SOUNDMATES_HOSTNAME="worker-$i" \
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="$((AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT + 2 * i))" \
            airflow celery worker --celery-hostname "worker-$i@%h" --concurrency "$AIRFLOW__CELERY__WORKER_CONCURRENCY"
    done
else
    step_start "Airflow standalone (port $AIRFLOW_PORT)"
    launch airflow airflow standalone
fi
# --- 4. dashboard, started while Airflow starts ------------------------------------------------------
DASHBOARD_URL=""
if [[ -f "$REPO/streamlit_app/app.py" ]]; then
    launch dashboard streamlit run "$REPO/streamlit_app/app.py" --server.address 127.0.0.1 \
        --server.port "$DASHBOARD_PORT" --server.headless true --browser.gatherUsageStats false
fi
"$PY" -m soundmates.orchestration.airflow_api wait-healthy --url "$SOUNDMATES_AIRFLOW_URL" --timeout 300
step_done
if [[ -f "$REPO/streamlit_app/app.py" ]]; then
    step_start "Streamlit dashboard (port $DASHBOARD_PORT)"
    wait_port "$DASHBOARD_PORT" 120 "the dashboard"
    DASHBOARD_URL="$SOUNDMATES_DASHBOARD_URL"
    step_done
fi

ADMIN_PASSWORD="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")"
print_access() {
    echo
    echo "Soundmates is running (data in $DATA):"
    echo "  Airflow UI        $SOUNDMATES_AIRFLOW_URL   login: admin / $ADMIN_PASSWORD"
    [[ -n "$DASHBOARD_URL" ]] && echo "  Dashboard         $DASHBOARD_URL"
    echo "  Spotify (local)   $SOUNDMATES_SPOTIFY_API_URL   (world: $WORLD_DIR, $WORLD_COUNT users)"
    echo "  Logs              $LOG_DIR/"
    echo "  Stop everything   make stop"
}
print_access

# --- 5. bootstrap -----------------------------------------------------------------------------------
if [[ "${SOUNDMATES_RUN_BOOTSTRAP:-1}" == "1" ]]; then
    step_start "soundmates_bootstrap ($WORLD_COUNT users)"
    EPOCHS_CONF=""
    if [[ -n "$MAX_EPOCHS" ]]; then EPOCHS_CONF=$(printf ', "max_epochs": %d' "$MAX_EPOCHS"); fi
    CONF=$(printf '{"world_users": %d, "world_dir": "%s"%s}' "$WORLD_COUNT" "$WORLD_DIR" "$EPOCHS_CONF")
    "$PY" -m soundmates.orchestration.airflow_api run-dag soundmates_bootstrap --conf "$CONF" \
        --url "$SOUNDMATES_AIRFLOW_URL" --password-file "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" \
        --timeout "${BOOTSTRAP_TIMEOUT_S:-3600}" | tee "$LOG_DIR/bootstrap-run.json"
    step_done
fi

echo
echo "Timings:"
printf '  %s\n' "${TIMINGS[@]}"
printf '  %-34s %5ss\n' "total" "$((SECONDS - T0))"
print_access
echo
echo "Next: 'soundmates add <profile ref>' queues a user; soundmates_new_users picks it up within seconds."
