"""scripts/run.sh and scripts/stop.sh without starting Airflow: refusals, and stopping by PID only what is ours."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from tests.fixtures.airflow import REPO_ROOT

RUN = REPO_ROOT / "scripts" / "run.sh"
STOP = REPO_ROOT / "scripts" / "stop.sh"


@pytest.mark.parametrize("script", [RUN, STOP, REPO_ROOT / "scripts" / "airflow_env.sh"])
def test_scripts_parse(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


def _start(argv0: str) -> subprocess.Popen:
    # A stand-in process whose command line reads like the program run.sh would have started.
    return subprocess.Popen(["bash", "-c", f"exec -a {argv0} sleep 120"], start_new_session=True)


def _gone(proc: subprocess.Popen, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return True
        time.sleep(0.1)
    return False


def test_stop_stops_what_run_started_and_leaves_reused_pids_alone(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ours = _start("soundmates")
    stranger = _start("someone-elses-server")
    try:
        (run_dir / "spotify.pid").write_text(f"{ours.pid}\n")
        (run_dir / "dashboard.pid").write_text(f"{stranger.pid}\n")  # PID reused by another program
        (run_dir / "airflow.pid").write_text("999999999\n")  # long gone
        env = {**os.environ, "SOUNDMATES_DATA_DIR": str(tmp_path)}
        out = subprocess.run(["bash", str(STOP)], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        assert _gone(ours), out.stderr
        assert stranger.poll() is None, "stop.sh killed a process it did not start"
        assert "not touching it" in out.stderr and "not running" in out.stderr
        assert list(run_dir.glob("*.pid")) == []
    finally:
        for proc in (ours, stranger):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_stop_with_nothing_started(tmp_path):
    env = {**os.environ, "SOUNDMATES_DATA_DIR": str(tmp_path)}
    out = subprocess.run(["bash", str(STOP)], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and "nothing to stop" in out.stderr


def test_run_refuses_a_busy_port_before_starting_anything(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            **os.environ,
            "SOUNDMATES_DATA_DIR": str(tmp_path),
            "SPOTIFY_PORT": str(port),
            "AIRFLOW_PORT": "1",
            "DASHBOARD_PORT": "2",
        }
        env.pop("AIRFLOW_HOME", None)
        out = subprocess.run(["bash", str(RUN)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1
    assert f"port {port} is in use" in out.stderr and "SPOTIFY_PORT" in out.stderr
    assert not (tmp_path / "world").exists() and list((tmp_path / "run").glob("*.pid")) == []


def test_airflow_api_client_reports_down_server_and_bad_conf():
    from typer.testing import CliRunner

    from soundmates.orchestration.airflow_api import AirflowClient, app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert AirflowClient(url=f"http://127.0.0.1:{closed}", timeout_s=2).healthy() is False
    result = CliRunner().invoke(app, ["run-dag", "soundmates_bootstrap", "--conf", "[1, 2]"])
    assert result.exit_code == 2 and "JSON object" in result.output


def test_run_dag_logs_in_unpauses_triggers_and_reports_the_run(airflow_double, tmp_path):
    from typer.testing import CliRunner

    from soundmates.orchestration import DAG_IDS
    from soundmates.orchestration.airflow_api import app

    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": airflow_double.password}))
    args = ["run-dag", "soundmates_bootstrap", "--conf", '{"world_users": 20}', "--url", airflow_double.url]
    result = CliRunner().invoke(app, [*args, "--password-file", str(passwords), "--timeout", "60"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["state"] == "success" and report["tasks"] == {"ingest": "success"}
    assert airflow_double.triggered == [{"dag_id": "soundmates_bootstrap", "logical_date": None, "conf": {"world_users": 20}}]
    assert airflow_double.paused == dict.fromkeys(DAG_IDS, False)
    assert airflow_double.password not in result.output


def test_airflow_commands_end_in_one_error_line(airflow_double, tmp_path):
    from typer.testing import CliRunner

    from soundmates.orchestration.airflow_api import app

    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": "wrong-password"}))
    args = ["run-dag", "soundmates_bootstrap", "--url", airflow_double.url, "--password-file", str(passwords)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: Airflow refused the login for user 'admin'")
    assert "wrong-password" not in result.output
