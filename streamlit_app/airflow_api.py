"""Read-only client for Airflow 3's REST API: the recent DAG runs the pipeline page shows.

The dashboard must paint even when Airflow is down or not installed as a
service, so every failure becomes an :class:`AirflowUnavailable` with a reason
the page can show, and every request has a short timeout.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TIMEOUT_S = 2.0


class AirflowCredentials(BaseSettings):
    """``SOUNDMATES_AIRFLOW_USER`` / ``SOUNDMATES_AIRFLOW_PASSWORD`` (never logged: SecretStr)."""

    model_config = SettingsConfigDict(env_prefix="SOUNDMATES_AIRFLOW_", extra="ignore")
    user: str = ""
    password: SecretStr = SecretStr("")

    @property
    def configured(self) -> bool:
        return bool(self.user) and bool(self.password.get_secret_value())


def default_credentials() -> AirflowCredentials:
    """``SOUNDMATES_AIRFLOW_USER/PASSWORD``; else the simple auth manager's passwords file.

    ``make run`` writes Airflow's admin password to the JSON file named by
    ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE`` and the dashboard inherits that
    variable, so the pipeline page can log in without a second copy of the secret.
    """
    creds = AirflowCredentials()
    if creds.configured:
        return creds
    path = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    if not path:
        return creds
    try:
        users = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return creds
    if not isinstance(users, dict) or not users:
        return creds
    user = "admin" if "admin" in users else next(iter(users))
    return AirflowCredentials(user=user, password=SecretStr(str(users[user])))


class AirflowUnavailable(RuntimeError):
    """Airflow could not be asked; the message says why, in words for the page."""


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


def _token(client: httpx.Client, creds: AirflowCredentials) -> str | None:
    """A JWT from ``POST /auth/token``; None when no credentials are configured."""
    if not creds.configured:
        return None
    resp = client.post(
        "/auth/token",
        json={"username": creds.user, "password": creds.password.get_secret_value()},
    )
    if resp.status_code not in (200, 201):
        raise AirflowUnavailable(
            f"Airflow refused the login for user {creds.user!r} (HTTP {resp.status_code}); "
            "check SOUNDMATES_AIRFLOW_USER and SOUNDMATES_AIRFLOW_PASSWORD."
        )
    token = resp.json().get("access_token")
    if not token:
        raise AirflowUnavailable("Airflow's /auth/token answered without an access_token.")
    return token


def recent_dag_runs(
    base_url: str,
    *,
    limit: int = 15,
    credentials: AirflowCredentials | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    transport: httpx.BaseTransport | None = None,
) -> list[DagRun]:
    """The latest ``limit`` runs of all DAGs, newest first (``GET /api/v2/dags/~/dagRuns``).

    Raises :class:`AirflowUnavailable` when Airflow is unreachable, refuses the
    login, or answers something that is not a run list.
    """
    creds = credentials if credentials is not None else default_credentials()
    try:
        with httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport) as client:
            token = _token(client, creds)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            resp = client.get(
                "/api/v2/dags/~/dagRuns",
                params={"order_by": "-run_after", "limit": limit},
                headers=headers,
            )
    except httpx.TimeoutException as exc:
        raise AirflowUnavailable(f"Airflow at {base_url} did not answer within {timeout_s:g} s.") from exc
    except httpx.HTTPError as exc:
        raise AirflowUnavailable(f"Airflow is not reachable at {base_url} ({type(exc).__name__}).") from exc

    if resp.status_code in (401, 403):
        hint = (
            "set SOUNDMATES_AIRFLOW_USER and SOUNDMATES_AIRFLOW_PASSWORD"
            if not creds.configured
            else f"user {creds.user!r} may not read DAG runs"
        )
        raise AirflowUnavailable(f"Airflow answered HTTP {resp.status_code} for the DAG runs: {hint}.")
    if resp.status_code != 200:
        raise AirflowUnavailable(f"Airflow answered HTTP {resp.status_code} for the DAG runs.")
    try:
        rows = resp.json()["dag_runs"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AirflowUnavailable("Airflow's answer for the DAG runs had no 'dag_runs' list.") from exc

    return [
        DagRun(
            dag_id=str(row.get("dag_id", "?")),
            run_id=str(row.get("dag_run_id") or row.get("run_id") or "?"),
            state=str(row.get("state") or "unknown"),
            run_type=row.get("run_type"),
            run_after=_parse_time(row.get("run_after")),
            start_date=_parse_time(row.get("start_date")),
            end_date=_parse_time(row.get("end_date")),
        )
        for row in rows
        if isinstance(row, dict)
    ]
