"""The one client for Airflow 3's REST API (dashboard and ``scripts/run.sh``), and the commands run.sh calls.

    python -m soundmates.orchestration.airflow_api wait-healthy --url http://127.0.0.1:8080
    python -m soundmates.orchestration.airflow_api run-dag soundmates_bootstrap --conf '{"world_users": 1000}'

Login: ``POST /auth/token`` (simple auth manager) gives a bearer token; DAG runs
are created with ``logical_date: null`` (omitting it is a 422 in 3.1). Only
``requests`` (the project's pinned HTTP library) is imported: this runs beside
Airflow, not inside it, and the dashboard imports it for its pipeline page.
Every request has a timeout; the password is a ``SecretStr`` and no message,
``repr`` or log line carries it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import requests
import typer
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from soundmates.orchestration import DAG_IDS

TERMINAL_STATES = {"success", "failed"}
DASHBOARD_TIMEOUT_S = 2.0
T = TypeVar("T")


class AirflowApiError(RuntimeError):
    """The API answered something we cannot go on from; the message has the status and body."""


class AirflowUnavailable(AirflowApiError):
    """Airflow could not be asked (unreachable, slow, login refused); the message says why, in words for a page."""


class _ServerBusy(RuntimeError):
    """A 5xx answer: worth retrying."""


class AirflowCredentials(BaseSettings):
    """``SOUNDMATES_AIRFLOW_USER`` / ``SOUNDMATES_AIRFLOW_PASSWORD`` (never logged: SecretStr)."""

    model_config = SettingsConfigDict(env_prefix="SOUNDMATES_AIRFLOW_", extra="ignore")
    user: str = ""
    password: SecretStr = SecretStr("")

    @property
    def configured(self) -> bool:
        return bool(self.user) and bool(self.password.get_secret_value())


def credentials_from_file(path: Path, user: str | None = None) -> AirflowCredentials:
    """``user`` (else ``admin``, else the first) from the simple auth manager's JSON ``{user: password}`` file."""
    users = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(users, dict) or not users:
        raise ValueError(f"{path} holds no {{user: password}} object")
    name = user or ("admin" if "admin" in users else next(iter(users)))
    if name not in users:
        raise ValueError(f"{path} has no password for user {name!r}")
    return AirflowCredentials(user=name, password=SecretStr(str(users[name])))


def default_credentials() -> AirflowCredentials:
    """``SOUNDMATES_AIRFLOW_USER/PASSWORD``; else the simple auth manager's passwords file.

    ``make run`` writes Airflow's admin password to the JSON file named by
    ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE`` and the dashboard inherits that
    variable, so the pipeline page can log in without a second copy of the secret.
    """
    creds = AirflowCredentials()
    path = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    if creds.configured or not path:
        return creds
    try:
        return credentials_from_file(Path(path))
    except (OSError, ValueError):
        return creds


@dataclass(frozen=True)
class DagRun:
    dag_id: str
    run_id: str
    state: str
    run_type: str | None
    run_after: datetime | None
    start_date: datetime | None
    end_date: datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.start_date is None or self.end_date is None:
            return None
        return (self.end_date - self.start_date).total_seconds()


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _dag_run(row: dict) -> DagRun:
    return DagRun(
        dag_id=str(row.get("dag_id", "?")),
        run_id=str(row.get("dag_run_id") or row.get("run_id") or "?"),
        state=str(row.get("state") or "unknown"),
        run_type=row.get("run_type"),
        run_after=_parse_time(row.get("run_after")),
        start_date=_parse_time(row.get("start_date")),
        end_date=_parse_time(row.get("end_date")),
    )


@dataclass
class AirflowClient:
    """Airflow's API server at ``url``. ``attempts`` > 1 retries transport errors and 5xx (backing off)."""

    url: str = "http://127.0.0.1:8080"
    credentials: AirflowCredentials = field(default_factory=lambda: AirflowCredentials(user="", password=SecretStr("")))
    timeout_s: float = 30.0
    attempts: int = 6
    _token: str | None = field(default=None, repr=False)
    _session: requests.Session = field(default_factory=requests.Session, repr=False)

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._session.close()

    def _url(self, path: str) -> str:
        return self.url.rstrip("/") + path

    def healthy(self) -> bool:
        try:
            r = self._session.get(self._url("/api/v2/monitor/health"), timeout=self.timeout_s)
            body = r.json() if r.status_code == 200 else {}
        except (requests.RequestException, ValueError):
            return False
        parts = [(body.get(k) or {}).get("status") for k in ("metadatabase", "scheduler")]
        return all(p == "healthy" for p in parts)

    def token(self) -> str | None:
        """A JWT from ``POST /auth/token``; None when no credentials are configured (requests go unauthenticated)."""
        creds = self.credentials
        if self._token is None and creds.configured:
            login = {"username": creds.user, "password": creds.password.get_secret_value()}
            r = self._send("POST", "/auth/token", json=login)
            if r.status_code in (400, 401, 403, 422):
                raise AirflowUnavailable(
                    f"Airflow refused the login for user {creds.user!r} (HTTP {r.status_code}); "
                    "check SOUNDMATES_AIRFLOW_USER and SOUNDMATES_AIRFLOW_PASSWORD (or --password-file)."
                )
            if r.status_code not in (200, 201):
                raise AirflowUnavailable(f"Airflow answered HTTP {r.status_code} to the login at {self.url}.")
            try:
                self._token = str(r.json()["access_token"])
            except (ValueError, KeyError, TypeError):
                raise AirflowUnavailable("Airflow's /auth/token answered without an access_token.") from None
        return self._token

    def _send(self, method: str, path: str, **kw: Any) -> requests.Response:
        # A standalone API server on SQLite under load answers slowly at times: with attempts > 1,
        # transport errors and 5xx are retried (backing off, bounded) before calling it a failure.
        def once() -> requests.Response:
            r = self._session.request(method, self._url(path), timeout=self.timeout_s, **kw)
            if r.status_code >= 500 and self.attempts > 1:
                raise _ServerBusy(f"{method} {path}: HTTP {r.status_code}")
            return r

        retrying = Retrying(
            retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout, _ServerBusy)),
            wait=wait_exponential(multiplier=1, max=20),
            stop=stop_after_attempt(max(1, self.attempts)),
            reraise=True,
        )
        try:
            return retrying(once)
        except requests.Timeout:
            raise AirflowUnavailable(f"Airflow at {self.url} did not answer within {self.timeout_s:g} s.") from None
        except requests.RequestException as exc:
            raise AirflowUnavailable(f"Airflow is not reachable at {self.url} ({type(exc).__name__}).") from None

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        token = self.token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = self._send(method, path, headers=headers, **kw)
        if r.status_code in (401, 403):
            hint = (
                "set SOUNDMATES_AIRFLOW_USER and SOUNDMATES_AIRFLOW_PASSWORD (or --password-file)"
                if not self.credentials.configured
                else f"user {self.credentials.user!r} may not do this"
            )
            raise AirflowUnavailable(f"Airflow answered HTTP {r.status_code} for {method} {path}: {hint}.")
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

    def recent_runs(self, limit: int = 15) -> list[DagRun]:
        """The latest ``limit`` runs of all DAGs, newest first (``GET /api/v2/dags/~/dagRuns``)."""
        r = self.request("GET", "/api/v2/dags/~/dagRuns", params={"order_by": "-run_after", "limit": limit})
        if r.status_code != 200:
            raise AirflowUnavailable(f"Airflow answered HTTP {r.status_code} for the DAG runs.")
        try:
            rows = r.json()["dag_runs"]
            return [_dag_run(row) for row in rows if isinstance(row, dict)]
        except (ValueError, KeyError, TypeError):
            raise AirflowUnavailable("Airflow's answer for the DAG runs had no 'dag_runs' list.") from None


def recent_dag_runs(
    base_url: str,
    *,
    limit: int = 15,
    credentials: AirflowCredentials | None = None,
    timeout_s: float = DASHBOARD_TIMEOUT_S,
) -> list[DagRun]:
    """What the dashboard's pipeline page shows: one try, a short timeout, every failure an ``AirflowUnavailable``."""
    creds = credentials if credentials is not None else default_credentials()
    with AirflowClient(url=base_url, credentials=creds, timeout_s=timeout_s, attempts=1) as client:
        return client.recent_runs(limit)


def _wait(predicate: Callable[[], T], timeout_s: float, interval_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def _client(url: str, username: str, password_file: Path | None) -> AirflowClient:
    if password_file is None:
        return AirflowClient(url=url)
    try:
        creds = credentials_from_file(password_file, username)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"--password-file: {exc}") from None
    return AirflowClient(url=url, credentials=creds)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """What went wrong as one ``error:`` line on stderr and exit 1, never a traceback."""
    try:
        yield
    except (AirflowApiError, TimeoutError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


app = typer.Typer(add_completion=False, no_args_is_help=True, help="Talk to a running Airflow 3 (used by scripts/run.sh).")
URL = typer.Option("http://127.0.0.1:8080", "--url", help="Airflow API server URL.")
USER = typer.Option("admin", "--user", help="Airflow user.")
PASSWORDS = typer.Option(None, "--password-file", help="JSON {user: password} (the simple auth manager's file).")


@app.command("wait-healthy")
def wait_healthy(url: str = URL, timeout: float = typer.Option(180, help="Seconds to wait.")) -> None:
    """Wait until the API server answers and the scheduler is healthy."""
    t0 = time.monotonic()
    with AirflowClient(url=url, timeout_s=10.0) as client, _one_line_errors():
        _wait(client.healthy, timeout, 2.0, f"Airflow at {url} to be healthy")
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
    with _client(url, user, password_file) as client, _one_line_errors():
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

    def finished() -> str | None:
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
    with _client(url, user, password_file) as client, _one_line_errors():
        _wait_and_report(client, dag_id, run_id, timeout, time.monotonic())


if __name__ == "__main__":  # pragma: no cover
    app()
