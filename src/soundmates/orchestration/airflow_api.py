"""A small client for Airflow 3's REST API, and the commands ``scripts/run.sh`` calls.

    python -m soundmates.orchestration.airflow_api wait-healthy --url http://127.0.0.1:8080
    python -m soundmates.orchestration.airflow_api run-dag soundmates_bootstrap --conf '{"world_users": 1000}'

Login: ``POST /auth/token`` (simple auth manager) gives a bearer token; DAG runs
are created with ``logical_date: null`` (omitting it is a 422 in 3.1). Only
``requests`` is imported: this runs beside Airflow, not inside it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import typer
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from soundmates.orchestration import DAG_IDS

TERMINAL_STATES = {"success", "failed"}


class AirflowApiError(RuntimeError):
    """The API answered something we cannot go on from; the message has the status and body."""


class _ServerBusy(RuntimeError):
    """A 5xx answer: worth retrying."""


@dataclass
class AirflowClient:
    url: str = "http://127.0.0.1:8080"
    username: str = "admin"
    password: str = ""
    timeout_s: float = 30.0
    _token: str | None = field(default=None, repr=False)

    def _url(self, path: str) -> str:
        return self.url.rstrip("/") + path

    def healthy(self) -> bool:
        try:
            r = requests.get(self._url("/api/v2/monitor/health"), timeout=self.timeout_s)
        except requests.RequestException:
            return False
        if r.status_code != 200:
            return False
        body = r.json()
        parts = [body.get(k, {}).get("status") for k in ("metadatabase", "scheduler")]
        return all(p == "healthy" for p in parts)

    def token(self) -> str:
        if self._token is None:
            r = requests.post(
                self._url("/auth/token"), json={"username": self.username, "password": self.password}, timeout=self.timeout_s
            )
            if r.status_code not in (200, 201):
                raise AirflowApiError(f"login as {self.username!r} failed: HTTP {r.status_code} {r.text[:200]}")
            self._token = r.json()["access_token"]
        return self._token

    # A standalone API server on SQLite under load answers slowly at times: retry transport
    # errors and 5xx a few times (backing off) before calling it a failure.
    @retry(
        retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout, _ServerBusy)),
        wait=wait_exponential(multiplier=1, max=20),
        stop=stop_after_attempt(6),
        reraise=True,
    )
    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        r = requests.request(method, self._url(path), headers=headers, timeout=self.timeout_s, **kw)
        if r.status_code >= 500:
            raise _ServerBusy(f"{method} {path}: HTTP {r.status_code}")
        return r

    def dag(self, dag_id: str) -> dict | None:
        r = self.request("GET", f"/api/v2/dags/{dag_id}")
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise AirflowApiError(f"GET dag {dag_id}: HTTP {r.status_code} {r.text[:200]}")
        return r.json()

    def unpause(self, dag_id: str) -> None:
        r = self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        if r.status_code != 200:
            raise AirflowApiError(f"unpause {dag_id}: HTTP {r.status_code} {r.text[:200]}")

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        r = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        if r.status_code not in (200, 201):
            raise AirflowApiError(f"trigger {dag_id}: HTTP {r.status_code} {r.text[:500]}")
        return r.json()["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        if r.status_code != 200:
            raise AirflowApiError(f"GET run {run_id}: HTTP {r.status_code} {r.text[:200]}")
        return r.json()["state"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        r = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        if r.status_code != 200:
            return {}
        out = {}
        for ti in r.json().get("task_instances", []):
            key = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
            out[key] = ti.get("state")
        return out


def _wait(predicate, timeout_s: float, interval_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def _client(url: str, username: str, password_file: Path | None) -> AirflowClient:
    password = ""
    if password_file is not None:
        password = json.loads(password_file.read_text(encoding="utf-8"))[username]
    return AirflowClient(url=url, username=username, password=password)


app = typer.Typer(add_completion=False, no_args_is_help=True, help="Talk to a running Airflow 3 (used by scripts/run.sh).")
URL = typer.Option("http://127.0.0.1:8080", "--url", help="Airflow API server URL.")
USER = typer.Option("admin", "--user", help="Airflow user.")
PASSWORDS = typer.Option(None, "--password-file", help="JSON {user: password} (the simple auth manager's file).")


@app.command("wait-healthy")
def wait_healthy(url: str = URL, timeout: float = typer.Option(180, help="Seconds to wait.")) -> None:
    """Wait until the API server answers and the scheduler is healthy."""
    t0 = time.monotonic()
    _wait(AirflowClient(url=url).healthy, timeout, 2.0, f"Airflow at {url} to be healthy")
    typer.echo(f"Airflow healthy after {time.monotonic() - t0:.1f} s", err=True)


@app.command("run-dag")
def run_dag(
    dag_id: str = typer.Argument(..., help="DAG to trigger."),
    conf: str = typer.Option("{}", help="Run conf, a JSON object."),
    url: str = URL,
    user: str = USER,
    password_file: Path = PASSWORDS,
    unpause_all: bool = typer.Option(True, help="Unpause every Soundmates DAG first."),
    wait: bool = typer.Option(True, help="Wait for the run to finish."),
    timeout: float = typer.Option(3600, help="Seconds to wait for the DAG to appear and the run to finish."),
) -> None:
    """Trigger a DAG run (after its file is parsed), wait for it, print one JSON object."""
    try:
        conf_obj = json.loads(conf)
    except ValueError as exc:
        raise typer.BadParameter(f"--conf is not JSON: {exc}") from None
    if not isinstance(conf_obj, dict):
        raise typer.BadParameter("--conf must be a JSON object")
    client = _client(url, user, password_file)
    t0 = time.monotonic()
    _wait(lambda: client.dag(dag_id), min(timeout, 600), 3.0, f"DAG {dag_id} to be parsed")
    if unpause_all:
        for other in DAG_IDS:
            if client.dag(other) is not None:
                client.unpause(other)
    run_id = client.trigger(dag_id, conf_obj)
    typer.echo(f"triggered {dag_id} run {run_id}", err=True)
    if wait:
        _wait_and_report(client, dag_id, run_id, timeout, t0)
    else:
        sys.stdout.write(json.dumps({"dag_id": dag_id, "run_id": run_id, "state": "queued"}) + "\n")


def _wait_and_report(client: AirflowClient, dag_id: str, run_id: str, timeout: float, t0: float) -> None:
    last = None

    def finished():
        nonlocal last
        st = client.run_state(dag_id, run_id)
        if st != last:
            typer.echo(f"  {time.monotonic() - t0:6.1f} s  {dag_id}: {st}", err=True)
            last = st
        return st if st in TERMINAL_STATES else None

    state = _wait(finished, timeout, 5.0, f"run {run_id} of {dag_id}")
    result = {
        "dag_id": dag_id,
        "run_id": run_id,
        "state": state,
        "seconds": round(time.monotonic() - t0, 1),
        "tasks": client.task_states(dag_id, run_id),
    }
    sys.stdout.write(json.dumps(result) + "\n")
    if state != "success":
        raise typer.Exit(1)


@app.command("wait-run")
def wait_run(
    dag_id: str = typer.Argument(..., help="DAG of the run."),
    run_id: str = typer.Argument(..., help="Run id (as printed by run-dag)."),
    url: str = URL,
    user: str = USER,
    password_file: Path = PASSWORDS,
    timeout: float = typer.Option(3600, help="Seconds to wait."),
) -> None:
    """Wait for an existing DAG run to finish; print one JSON object (exit 1 unless it succeeded)."""
    _wait_and_report(_client(url, user, password_file), dag_id, run_id, timeout, time.monotonic())


if __name__ == "__main__":  # pragma: no cover
    app()
