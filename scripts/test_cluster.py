"""`make test-cluster`: the cluster layout run and broken on purpose (issue 12), ending in one `cluster: {json}` line.

On a fresh data dir and free loopback ports it starts `scripts/run_cluster.sh` (PostgreSQL, Redis,
Airflow on the CeleryExecutor with two Celery workers) on a 200-user world, then, during ONE
soundmates_bootstrap run over the first 199 users (batches of 50):

1. queues the 200th user with `soundmates add` (the new-users DAG must pick it up);
2. kill -9s the Celery worker that runs an ingest batch (its whole process group: a lost host),
   found through the REST API's task-instance `hostname`; the batch's next try must run on the
   other worker;
3. restarts the scheduler (SIGTERM, then the same command with the same environment) once the
   ingest is over;
4. waits for the run to succeed and counts the stored profiles: users lost (planned, neither stored
   nor reported failed by the ingest) and duplicated (rows beyond one per user);
5. object store: starts an S3-compatible server on loopback (moto), runs the pipeline functions the
   DAGs ran (``steps.ingest_batch`` of the same users from the same local Spotify server, then
   ``steps.build_features`` with the run's persisted scaler) with ``SOUNDMATES_DATA_URL`` set, and
   compares the feature store's tables (sorted rows, time columns left out) with the cluster's.

Each step is timed; everything started is stopped at the end (scripts/stop.sh), even on failure.
Exit 0 only when every check held.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
USERS = 200
BATCH = 50
DAG = "soundmates_bootstrap"
TIMINGS: dict[str, float] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def step(name: str, t0: float) -> None:
    TIMINGS[name] = round(time.monotonic() - t0, 1)
    print(f"    {name}: {TIMINGS[name]} s", file=sys.stderr, flush=True)


def wait_for(what: str, predicate, timeout_s: float, interval_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")


def cluster_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        SOUNDMATES_DATA_DIR=str(data),
        SOUNDMATES_WORLD_USERS=str(USERS),
        SOUNDMATES_RUN_BOOTSTRAP="0",  # this script triggers the bootstrap itself, to break things during it
        AIRFLOW_PORT=str(free_port()),
        SPOTIFY_PORT=str(free_port()),
        DASHBOARD_PORT=str(free_port()),
        SOUNDMATES_PG_PORT=str(free_port()),
        SOUNDMATES_REDIS_PORT=str(free_port()),
        VENV=os.environ.get("VENV", str(REPO / ".venv")),
    )
    return env


def client(env: dict[str, str]):
    from pydantic import SecretStr

    from soundmates.orchestration.airflow_api import AirflowClient, AirflowCredentials

    passwords = Path(env["SOUNDMATES_DATA_DIR"]) / "cluster" / "airflow" / "passwords.json"
    password = json.loads(passwords.read_text())["admin"]
    return AirflowClient(
        url=f"http://127.0.0.1:{env['AIRFLOW_PORT']}", credentials=AirflowCredentials(user="admin", password=SecretStr(password))
    )


def task_instances(api, run_id: str) -> list[dict]:
    r = api.request("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
    return r.json().get("task_instances", []) if r.status_code == 200 else []


def tries(api, run_id: str, map_index: int) -> list[dict]:
    path = f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/ingest/{map_index}/tries"
    r = api.request("GET", path)
    return r.json().get("task_instances", []) if r.status_code == 200 else []


def pid_of(data: Path, name: str) -> int:
    return int((data / "run" / f"{name}.pid").read_text().strip())


def kill_worker_during_ingest(api, data: Path, run_id: str) -> dict[str, Any]:
    """kill -9 the worker group that runs an ingest try; wait for that batch's next try on the other worker."""

    def running_ingest() -> dict | None:
        for ti in task_instances(api, run_id):
            if ti["task_id"] == "ingest" and ti["state"] == "running" and (ti.get("hostname") or "").startswith("worker-"):
                return ti
        return None

    ti = wait_for("an ingest batch running on a worker", running_ingest, 300, 0.3)
    worker, map_index, first_try = ti["hostname"], ti["map_index"], ti["try_number"]
    pid = pid_of(data, f"airflow-{worker.split('@')[0]}")
    os.killpg(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    print(f"    killed {worker} (PID group {pid}) while it ran ingest[{map_index}] try {first_try}", file=sys.stderr)

    def retried() -> dict | None:
        for t in task_instances(api, run_id):
            if t["task_id"] == "ingest" and t["map_index"] == map_index and t["try_number"] > first_try:
                if t["state"] in {"running", "success"} and t.get("hostname"):
                    return t
        return None

    again = wait_for(f"ingest[{map_index}] retried", retried, 420, 1.0)
    return {
        "worker_killed": worker,
        "task": f"ingest[{map_index}]",
        "killed_try": first_try,
        "retried_try": again["try_number"],
        "task_retried_on": again["hostname"],
        "retried_after_s": round(time.monotonic() - killed_at, 1),
    }


def restart_scheduler(api, data: Path, run_id: str) -> dict[str, Any]:
    """Once the ingest is over, SIGTERM the scheduler and start it again with the same command and environment."""

    def ingest_over() -> bool:
        tis = task_instances(api, run_id)
        return any(t["task_id"] == "ingest_summary" and t["state"] == "success" for t in tis)

    wait_for("the ingest to finish", ingest_over, 600, 1.0)
    pid = pid_of(data, "airflow-scheduler")
    argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")]
    raw_env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = {k.decode(): v.decode() for k, _, v in (line.partition(b"=") for line in raw_env) if k}
    os.kill(pid, signal.SIGTERM)
    wait_for("the scheduler to exit", lambda: not Path(f"/proc/{pid}").exists(), 60)
    # As run.sh launches it: its own session, not our child (so init reaps it when stop.sh ends it).
    launch = 'setsid "$@" >>"$SCHEDULER_LOG" 2>&1 </dev/null & echo $!'
    log = str(data / "logs" / "airflow-scheduler.log")
    out = subprocess.run(["bash", "-c", launch, "_", *argv], env={**env, "SCHEDULER_LOG": log}, capture_output=True, timeout=30)
    (data / "run" / "airflow-scheduler.pid").write_text(f"{int(out.stdout)}\n")
    states = {t["task_id"]: t["state"] for t in task_instances(api, run_id) if t["map_index"] < 0}
    return {"scheduler_restarted_during": sorted(k for k, v in states.items() if v not in {"success", "skipped"})[:3]}


def store_counts(data: Path, planned: list[str], api, run_id: str) -> dict[str, int]:
    """Users lost (planned, neither stored nor reported failed) and duplicated (profile rows beyond one per user)."""
    os.environ["SOUNDMATES_DATA_DIR"] = str(data)
    from soundmates.config import reset_settings
    from soundmates.store import get_store

    reset_settings()
    profiles = get_store().read("user_profiles")
    ids = list(profiles["user_id"])
    path = f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/ingest_summary/xcomEntries/return_value"
    summary = api.request("GET", path, params={"deserialize": True}).json().get("value") or {}
    if isinstance(summary, str):
        summary = json.loads(summary)
    failed = {str(f.get("user_id") or f.get("ref", "")).removeprefix("spotify:user:") for f in summary.get("failed") or []}
    lost = [u for u in planned if u not in set(ids) and u not in failed]
    return {"stored": len(set(ids)), "failed": len(failed), "lost": len(lost), "duplicated": len(ids) - len(set(ids))}


def new_user_done(data: Path, uid: str) -> bool:
    from soundmates.store import get_store, inbox

    entry = inbox.get(get_store(), uid)
    return entry is not None and entry.status == "done"


_ON_S3 = """
import json, sys
from soundmates.orchestration import steps
steps.ingest_batch(json.loads(sys.argv[1]))
steps.build_features()
"""


def _max_diff(local, remote, group: str) -> float | None:
    """Largest difference between the two stores' rows of ``group`` (sorted by key, time columns left out);
    None when keys, columns or any non-float value differ. Floats differ by ~1e-7 (embeddings) to ~1e-5
    (scaled vectors) because the text encoder batches users differently in the DAG's runs."""
    import numpy as np

    a, b = local.read(group), remote.read(group)
    cols = [c for c in a.columns if not c.endswith("_at") and "time" not in c]
    if list(a.columns) != list(b.columns) or len(a) != len(b) or len(a) == 0:
        return None
    worst = 0.0
    for c in cols:
        for x, y in zip(a[c].tolist(), b[c].tolist()):
            try:
                fx, fy = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
            except (TypeError, ValueError):  # strings, lists of strings: exactly equal
                if np.asarray(x, dtype=object).tolist() != np.asarray(y, dtype=object).tolist():
                    return None
                continue
            if fx.shape != fy.shape or not np.array_equal(np.isnan(fx), np.isnan(fy)):
                return None
            if np.asarray(x).dtype.kind in "iub" and not np.array_equal(fx, fy):  # counts, flags: exactly equal
                return None
            worst = max(worst, float(np.nanmax(np.abs(fx - fy), initial=0.0)))
    return worst


def object_store_check(env: dict[str, str], data: Path, refs: list[str]) -> dict[str, Any]:
    """The same users through the same pipeline functions with the state on S3: the same feature-store tables."""
    import shutil

    from moto.server import ThreadedMotoServer

    from soundmates.config import Settings
    from soundmates.store import get_store

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        aws = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "cluster", "AWS_SECRET_ACCESS_KEY": "test"}
        aws |= {"AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true", "SOUNDMATES_DATA_URL": "s3://soundmates-cluster/state"}
        os.environ.update(aws)
        import boto3

        boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1").create_bucket(
            Bucket="soundmates-cluster"
        )
        s3_data = data / "s3-host"
        shutil.copytree(data / "features", s3_data / "features")  # the run's scaler: every row scaled alike
        run_env = {**env, **aws, "SOUNDMATES_DATA_DIR": str(s3_data)}
        spotify = f"http://127.0.0.1:{env['SPOTIFY_PORT']}"  # the cluster's local Spotify server, as run.sh points tasks at it
        api_env = {
            "SOUNDMATES_SPOTIFY_API_URL": f"{spotify}/v1/",
            "SOUNDMATES_SPOTIFY_TOKEN_URL": f"{spotify}/api/token",
            "SPOTIPY_CLIENT_ID": env.get("SPOTIPY_CLIENT_ID", "soundmates-local"),
            "SPOTIPY_CLIENT_SECRET": env.get("SPOTIPY_CLIENT_SECRET", "soundmates-local-secret"),
        }
        code = subprocess.run(
            [str(Path(env["VENV"]) / "bin" / "python"), "-c", _ON_S3, json.dumps(refs)], env={**api_env, **run_env}, timeout=600
        ).returncode
        assert code == 0, f"the pipeline on the object store exited {code}"
        local = get_store(Settings(data_dir=data, data_url=""))
        remote = get_store(Settings(data_dir=s3_data))
        groups = ("user_profiles", "user_features")
        diff = {g: _max_diff(local, remote, g) for g in groups}
        rows = {g: len(remote.read(g)) for g in groups}
        same = all(d is not None and d < 1e-4 for d in diff.values())
        return {"object_store": same, "object_store_check": {"max_float_diff": diff, "rows": rows}}
    finally:
        server.stop()


def run_checks(env: dict[str, str], data: Path, result: dict[str, Any]) -> None:
    t0 = time.monotonic()
    start = subprocess.run(["bash", str(REPO / "scripts" / "run_cluster.sh")], env=env, timeout=600)
    assert start.returncode == 0, f"run_cluster.sh exited {start.returncode} (logs: {data / 'logs'})"
    step("start the cluster", t0)
    world = [line.strip() for line in (data / "world" / "users.txt").read_text().splitlines() if line.strip()]
    planned, extra = world[: USERS - 1], world[USERS - 1]
    with client(env) as api:
        t0 = time.monotonic()
        wait_for(f"{DAG} parsed", lambda: api.dag(DAG), 300, 2.0)
        for dag_id in ("soundmates_bootstrap", "soundmates_new_users"):
            api.unpause(dag_id)
        conf = {"world_users": USERS - 1, "world_dir": str(data / "world"), "batch_size": BATCH, "max_epochs": 2}
        run_id = api.trigger(DAG, conf)
        cli = Path(env["VENV"]) / "bin" / "soundmates"
        add = subprocess.run(
            [str(cli), "add", f"spotify:user:{extra}"], env={**env, "SOUNDMATES_DATA_DIR": str(data)}, timeout=120
        )
        assert add.returncode == 0, "soundmates add failed"
        kill = kill_worker_during_ingest(api, data, run_id)
        result.update(worker_killed=kill["worker_killed"], task_retried_on=kill["task_retried_on"], kill=kill)
        step("kill a worker, batch retried", t0)
        t1 = time.monotonic()
        result.update(restart_scheduler(api, data, run_id))
        state = wait_for(
            "the bootstrap run to finish", lambda: (s := api.run_state(DAG, run_id)) in {"success", "failed"} and s, 1200, 3.0
        )
        result["bootstrap_state"] = state
        step("restart the scheduler, run completes", t1)
        step("bootstrap run (trigger to end)", t0)
        counts = store_counts(data, planned, api, run_id)
        result.update(users_lost=counts["lost"], users_duplicated=counts["duplicated"], users=counts)
        t2 = time.monotonic()
        result["new_user_picked_up"] = bool(
            wait_for("the added user done by the new-users DAG", lambda: new_user_done(data, extra), 300, 2.0)
        )
        step("new user picked up (after the run)", t2)
        t3 = time.monotonic()
        result.update(object_store_check(env, data, [f"spotify:user:{u}" for u in [*planned, extra]]))
        step("the same bootstrap on the object store", t3)


def main() -> int:
    sys.path.insert(0, str(REPO / "src"))
    # `timeout` (the Makefile's bound) sends SIGTERM: leave through `finally`, which stops everything
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    data = Path(tempfile.mkdtemp(prefix="soundmates-cluster-"))
    data.chmod(0o755)  # PostgreSQL runs as `postgres` when we are root: it must reach its data dir
    env = cluster_env(data)
    result: dict[str, Any] = {
        "executor": "CeleryExecutor",
        "workers": 2,
        "bootstrap_state": None,
        "worker_killed": None,
        "task_retried_on": None,
        "users_lost": None,
        "users_duplicated": None,
        "object_store": False,
    }
    t0 = time.monotonic()
    ok = False
    try:
        run_checks(env, data, result)
        ok = (
            result["bootstrap_state"] == "success"
            and result["task_retried_on"] not in (None, result["worker_killed"])
            and result["users_lost"] == 0
            and result["users_duplicated"] == 0
            and result["new_user_picked_up"]
            and result["object_store"]
        )
    except Exception as exc:  # noqa: BLE001 - reported in the result line, then everything is stopped
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        t1 = time.monotonic()
        subprocess.run(["bash", str(REPO / "scripts" / "stop.sh")], env=env, timeout=300)
        step("stop everything", t1)
    step("total", t0)
    result["timings_s"] = TIMINGS
    print("timings: " + ", ".join(f"{k} {v} s" for k, v in TIMINGS.items()))
    print("cluster: " + json.dumps(result))
    if ok:
        subprocess.run(["rm", "-rf", str(data)], check=False)
    else:
        print(f"FAILED; logs kept in {data / 'logs'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
