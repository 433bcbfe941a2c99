"""The cluster layout's scripts without starting it: they parse, stop.sh stops its processes by PID, workers tell apart."""

from __future__ import annotations

import os
import py_compile
import signal
import subprocess
import sys
import time

import pytest

from tests.fixtures.airflow import REPO_ROOT

SCRIPTS = REPO_ROOT / "scripts"


@pytest.mark.parametrize("script", ["run_cluster.sh", "install_cluster_services.sh"])
def test_cluster_scripts_parse(script):
    assert subprocess.run(["bash", "-n", str(SCRIPTS / script)], capture_output=True).returncode == 0


def test_cluster_test_script_compiles():
    py_compile.compile(str(SCRIPTS / "test_cluster.py"), doraise=True)


def test_worker_hostname_is_its_own_when_set(monkeypatch):
    import socket

    from soundmates.orchestration.cluster_env import hostname

    monkeypatch.setenv("SOUNDMATES_HOSTNAME", "worker-2")
    assert hostname() == "worker-2"
    monkeypatch.delenv("SOUNDMATES_HOSTNAME")
    assert hostname() == socket.getfqdn()


def _start_orphan(title: str) -> int:
    """A stand-in whose command line reads like ``title``, in its own session, not our child (init reaps it)."""
    # SIGINT back to its default first (a background job starts with it ignored): stop.sh sends it to PostgreSQL
    restore = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])"
    script = f'setsid "$PY" -c "$RESTORE" bash -c "exec -a \'{title}\' sleep 120" >/dev/null 2>&1 </dev/null & echo $!'
    env = {**os.environ, "PY": sys.executable, "RESTORE": restore}
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, env=env)
    return int(out.stdout.strip())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_stops_the_cluster_processes_by_pid(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # stand-ins whose command lines read like the programs run_cluster.sh starts
    titles = {
        "airflow-worker-1": "[celeryd: worker-1@host:MainProcess]",
        "airflow-scheduler": "airflow",
        "redis": "redis-server",
        "postgres": "postgres",
    }
    pids: dict[str, int] = {}
    try:
        for name, title in titles.items():
            pids[name] = _start_orphan(title)
            (run_dir / f"{name}.pid").write_text(f"{pids[name]}\n")
        time.sleep(0.5)
        env = {**os.environ, "SOUNDMATES_DATA_DIR": str(tmp_path)}
        out = subprocess.run(["bash", str(SCRIPTS / "stop.sh")], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        for name, pid in pids.items():
            assert f"{name}: stopped" in out.stderr, out.stderr
            assert not _alive(pid), name
        order = [line.split(":")[0].strip() for line in out.stderr.splitlines() if ": stopped" in line]
        assert order.index("airflow-worker-1") < order.index("airflow-scheduler") < order.index("redis") < order.index("postgres")
        assert list(run_dir.glob("*.pid")) == []
    finally:
        for pid in pids.values():
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
