#!/usr/bin/env bash
# `make run-cluster`: the same system as `make run` on the cluster layout (docker-compose.yaml's), as
# processes on this machine:
#
#   1. PostgreSQL (Airflow's metadata DB and Celery's result backend): its own data dir under
#      $SOUNDMATES_DATA_DIR/cluster/postgres, initdb once, 127.0.0.1:$SOUNDMATES_PG_PORT, started with
#      pg_ctl (as the `postgres` user when run as root: the server refuses root);
#   2. Redis (the Celery broker): 127.0.0.1:$SOUNDMATES_REDIS_PORT, its own dir, no persistence;
#   3. the Airflow settings of configs/airflow-cluster.env (CeleryExecutor, broker, result backend,
#      metadata DB, parallelism), its service names pointed at those loopback ports;
#   4. then scripts/run.sh with SOUNDMATES_AIRFLOW_LAYOUT=cluster: world, local Spotify server,
#      `airflow db migrate`, api-server, scheduler, dag-processor, triggerer and $SOUNDMATES_CELERY_WORKERS
#      (2) `airflow celery worker`s, the dashboard, and the bootstrap DAG, as `make run` does.
#
# Every process is started by PID ($SOUNDMATES_DATA_DIR/run/*.pid); `make stop` stops them all.
# Knobs (env), besides run.sh's: SOUNDMATES_PG_PORT (5432), SOUNDMATES_REDIS_PORT (6379),
# SOUNDMATES_CELERY_WORKERS (2), SOUNDMATES_WORKER_CONCURRENCY (1).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BIN="${VENV:-$REPO/.venv}/bin"
PY="$BIN/python"
[[ -x "$PY" ]] || { echo "error: no virtualenv at $BIN; run 'make setup' first" >&2; exit 2; }
"$PY" -c 'import airflow.providers.celery, psycopg2, redis' 2>/dev/null \
    || { echo "error: $BIN lacks the Celery provider, psycopg2 or redis: 'make setup' (requirements.txt pins them)" >&2; exit 2; }

export SOUNDMATES_DATA_DIR="${SOUNDMATES_DATA_DIR:-$REPO/var}"
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}"  # huge pages for a loaded index (src/soundmates/index/huge_pages.py)
DATA="$SOUNDMATES_DATA_DIR"
CLUSTER="$DATA/cluster"
RUN_DIR="$DATA/run"
LOG_DIR="$DATA/logs"
PG_PORT="${SOUNDMATES_PG_PORT:-5432}"
REDIS_PORT="${SOUNDMATES_REDIS_PORT:-6379}"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
mkdir -p "$RUN_DIR" "$LOG_DIR" "$CLUSTER/redis"

alive() { [[ -f "$RUN_DIR/$1.pid" ]] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for name in postgres redis; do
    if alive "$name"; then
        echo "error: the cluster is already running ($name, PID $(cat "$RUN_DIR/$name.pid")); 'make stop' first." >&2
        exit 1
    fi
done
for spec in "$PG_PORT:SOUNDMATES_PG_PORT" "$REDIS_PORT:SOUNDMATES_REDIS_PORT"; do
    if port_busy "${spec%%:*}"; then
        echo "error: port ${spec%%:*} is in use by another program; choose another with ${spec##*:}=..." >&2
        exit 1
    fi
done

# --- 1. PostgreSQL ---------------------------------------------------------------------------------
PGBIN="$(dirname "$(readlink -f "$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")")"
PGDATA="$CLUSTER/postgres"
AS_PG=()
if [[ "$(id -u)" -eq 0 ]]; then AS_PG=(runuser -u postgres --); fi
echo "==> PostgreSQL (127.0.0.1:$PG_PORT, $PGDATA)" >&2
t0=$SECONDS
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    pwfile="$CLUSTER/.pg-password"
    printf 'airflow\n' >"$pwfile"
    if [[ ${#AS_PG[@]} -gt 0 ]]; then chown postgres: "$PGDATA" "$pwfile"; fi
    "${AS_PG[@]}" "$PGBIN/initdb" -D "$PGDATA" -U airflow --pwfile="$pwfile" -E UTF8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$LOG_DIR/postgres-initdb.log" 2>&1
    rm -f "$pwfile"
fi
: >"$LOG_DIR/postgres.log"
if [[ ${#AS_PG[@]} -gt 0 ]]; then chown postgres: "$LOG_DIR/postgres.log"; fi
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$LOG_DIR/postgres.log" -w -t 120 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PGDATA" start >&2
head -1 "$PGDATA/postmaster.pid" >"$RUN_DIR/postgres.pid"
export PGPASSWORD=airflow
if [[ -z "$("$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U airflow -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'airflow'")" ]]; then
    "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U airflow airflow
fi
echo "    done in $((SECONDS - t0))s (PID $(cat "$RUN_DIR/postgres.pid"))" >&2

# --- 2. Redis --------------------------------------------------------------------------------------
echo "==> Redis (127.0.0.1:$REDIS_PORT)" >&2
t0=$SECONDS
setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$CLUSTER/redis" --save "" --appendonly no \
    --daemonize no --protected-mode yes >"$LOG_DIR/redis.log" 2>&1 </dev/null &
echo $! >"$RUN_DIR/redis.pid"
deadline=$((SECONDS + 60))
until port_busy "$REDIS_PORT"; do
    (( SECONDS < deadline )) || { echo "error: Redis did not open port $REDIS_PORT (log: $LOG_DIR/redis.log)" >&2; exit 1; }
    sleep 0.5
done
echo "    done in $((SECONDS - t0))s (PID $(cat "$RUN_DIR/redis.pid"))" >&2

# --- 3. the cluster settings, on loopback ------------------------------------------------------------
eval "$("$PY" -m soundmates.orchestration.cluster_env "$REPO/configs/airflow-cluster.env" \
    --host "postgres=127.0.0.1:$PG_PORT" --host "redis=127.0.0.1:$REDIS_PORT" \
    --host "airflow-apiserver=127.0.0.1:$AIRFLOW_PORT")"
export AIRFLOW__CELERY__WORKER_CONCURRENCY="${SOUNDMATES_WORKER_CONCURRENCY:-$AIRFLOW__CELERY__WORKER_CONCURRENCY}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$CLUSTER/airflow}"
export AIRFLOW_PORT
export SOUNDMATES_AIRFLOW_LAYOUT=cluster

# --- 4. everything else, as `make run` -------------------------------------------------------------
exec bash "$REPO/scripts/run.sh"
