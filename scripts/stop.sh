#!/usr/bin/env bash
# `make stop`: stop what scripts/run.sh started, by the PIDs in $SOUNDMATES_DATA_DIR/run/*.pid.
# Airflow standalone gets SIGINT (the only signal it shuts its children down on), the others SIGTERM;
# whatever is left of a process group after 30 s gets SIGKILL. A PID whose command line is not the
# program run.sh started (a reused PID) is left alone.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${SOUNDMATES_DATA_DIR:-$REPO/var}"
RUN_DIR="$DATA/run"

expected_cmd() {
    case "$1" in
        airflow-worker-*) echo "celery" ;;  # a Celery worker retitles itself: [celeryd: worker-1@host:MainProcess]
        airflow | airflow-*) echo "airflow" ;;
        postgres) echo "postgres" ;;
        redis) echo "redis-server" ;;
        dashboard) echo "streamlit" ;;
        spotify) echo "soundmates" ;;
        *) echo "" ;;
    esac
}

group_alive() { kill -0 -- "-$1" 2>/dev/null; }

stop_one() {  # name
    local name="$1" pidfile="$RUN_DIR/$1.pid" pid sig want
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    want="$(expected_cmd "$name")"
    if ! [[ "$pid" =~ ^[0-9]+$ ]]; then
        echo "  $name: bad PID file ($pidfile), removed" >&2; rm -f "$pidfile"; return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null && ! group_alive "$pid"; then
        echo "  $name: not running (stale PID $pid)" >&2; rm -f "$pidfile"; return 0
    fi
    if kill -0 "$pid" 2>/dev/null && [[ -n "$want" ]] && ! ps -o args= -p "$pid" | grep -q -- "$want"; then
        echo "  $name: PID $pid is now another program ($(ps -o comm= -p "$pid")); not touching it" >&2
        rm -f "$pidfile"; return 0
    fi
    # standalone shuts its children down on SIGINT only; SIGINT is PostgreSQL's fast shutdown (TERM waits for clients)
    sig=TERM; [[ "$name" == airflow || "$name" == postgres ]] && sig=INT
    local t0=$SECONDS
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || group_alive "$pid" || break
        sleep 0.5
    done
    if group_alive "$pid"; then  # children that outlived their parent (run.sh put each in its own group)
        kill -TERM -- "-$pid" 2>/dev/null || true
        sleep 2
        group_alive "$pid" && kill -KILL -- "-$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
    echo "  $name: stopped (PID $pid, SIG$sig, $((SECONDS - t0)) s)" >&2
}

if [[ ! -d "$RUN_DIR" ]] || ! compgen -G "$RUN_DIR/*.pid" >/dev/null; then
    echo "nothing to stop (no PID files in $RUN_DIR)" >&2
    exit 0
fi
echo "stopping Soundmates:" >&2
# Workers before the scheduler, Airflow before the services it keeps its state in (Redis, PostgreSQL: last).
for name in dashboard airflow airflow-worker-1 airflow-worker-2 airflow-scheduler airflow-triggerer \
    airflow-dag-processor airflow-apiserver spotify; do stop_one "$name"; done
for pidfile in "$RUN_DIR"/*.pid; do
    name="$(basename "$pidfile" .pid)"
    [[ -e "$pidfile" && "$name" != redis && "$name" != postgres ]] && stop_one "$name"
done
for name in redis postgres; do stop_one "$name"; done
exit 0
