"""The dashboard's non-UI parts: the Airflow REST client and the plotly figures."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from streamlit_app import airflow_api, charts
from tests.helpers.dashboard import RUNS


def airflow_double(seen: list[httpx.Request], *, password: str = "s3cret"):
    """Airflow's two endpoints as the simple auth manager answers them."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/auth/token":
            body = json.loads(request.content)
            if body == {"username": "admin", "password": password}:
                return httpx.Response(201, json={"access_token": "tok-123"})
            return httpx.Response(401, json={"detail": "Invalid credentials"})
        if request.url.path == "/api/v2/dags/~/dagRuns":
            if request.headers.get("Authorization") != "Bearer tok-123":
                return httpx.Response(401, json={"detail": "Not authenticated"})
            return httpx.Response(200, json=RUNS)
        return httpx.Response(404)

    return httpx.MockTransport(handler)


def creds(password: str = "s3cret") -> airflow_api.AirflowCredentials:
    return airflow_api.AirflowCredentials(user="admin", password=password)


def test_recent_runs_logs_in_and_parses_runs():
    seen: list[httpx.Request] = []
    runs = airflow_api.recent_dag_runs("http://airflow.test/", credentials=creds(), transport=airflow_double(seen))
    assert [r.dag_id for r in runs] == ["soundmates_rebuild", "soundmates_new_users"]
    assert runs[0].duration_s == 150.0 and runs[0].state == "success"
    assert runs[1].duration_s is None and runs[1].run_after.year == 2026
    assert [r.url.path for r in seen] == ["/auth/token", "/api/v2/dags/~/dagRuns"]
    assert seen[1].url.params["order_by"] == "-run_after" and seen[1].url.params["limit"] == "15"


def test_credentials_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SOUNDMATES_AIRFLOW_USER", "admin")
    monkeypatch.setenv("SOUNDMATES_AIRFLOW_PASSWORD", "s3cret")
    seen: list[httpx.Request] = []
    runs = airflow_api.recent_dag_runs("http://airflow.test", transport=airflow_double(seen))
    assert len(runs) == 2
    assert "s3cret" not in repr(airflow_api.AirflowCredentials())  # never printed with the settings


def test_credentials_fall_back_to_airflows_passwords_file(monkeypatch, tmp_path):
    monkeypatch.delenv("SOUNDMATES_AIRFLOW_USER", raising=False)
    monkeypatch.delenv("SOUNDMATES_AIRFLOW_PASSWORD", raising=False)
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": "s3cret"}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    seen: list[httpx.Request] = []
    assert len(airflow_api.recent_dag_runs("http://airflow.test", transport=airflow_double(seen))) == 2
    passwords.write_text("not json")  # unreadable file: no credentials, and a clear 401 message
    with pytest.raises(airflow_api.AirflowUnavailable, match="set SOUNDMATES_AIRFLOW_USER"):
        airflow_api.recent_dag_runs("http://airflow.test", transport=airflow_double([]))


def test_wrong_password_names_the_variables_to_check():
    with pytest.raises(airflow_api.AirflowUnavailable, match="SOUNDMATES_AIRFLOW_PASSWORD"):
        airflow_api.recent_dag_runs("http://airflow.test", credentials=creds("nope"), transport=airflow_double([]))


def test_missing_credentials_say_which_variables_to_set(monkeypatch):
    monkeypatch.delenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", raising=False)
    monkeypatch.delenv("SOUNDMATES_AIRFLOW_USER", raising=False)
    monkeypatch.delenv("SOUNDMATES_AIRFLOW_PASSWORD", raising=False)
    with pytest.raises(airflow_api.AirflowUnavailable, match="HTTP 401.*set SOUNDMATES_AIRFLOW_USER"):
        airflow_api.recent_dag_runs("http://airflow.test", transport=airflow_double([]))


def test_unreachable_airflow_is_reported_quickly():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(airflow_api.AirflowUnavailable, match=f"not reachable at http://127.0.0.1:{port}"):
        airflow_api.recent_dag_runs(f"http://127.0.0.1:{port}", credentials=creds(), timeout_s=1.0)


def test_an_answer_without_runs_is_an_error_not_a_crash():
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"detail": "odd"}))
    with pytest.raises(airflow_api.AirflowUnavailable, match="no 'dag_runs' list"):
        airflow_api.recent_dag_runs(
            "http://airflow.test", credentials=airflow_api.AirflowCredentials(user="", password=""), transport=transport
        )


def test_user_map_puts_you_and_matches_in_their_own_traces():
    fig = charts.user_map_figure(
        ["a", "b", "c", "d"], ["A", None, "C", "D"], [0, 1, 2, 3], [3, 2, 1, 0], you="c", matches=["a", "d"]
    )
    by_name = {t.name: t for t in fig.data}
    assert list(by_name) == ["everyone", "your matches", "you"]  # you drawn last, on top
    assert list(by_name["you"].customdata) == ["c"]
    assert list(by_name["your matches"].customdata) == ["a", "d"]
    assert list(by_name["everyone"].text) == ["b"]  # a missing name falls back to the id


def test_genre_overlap_mirrors_your_side_and_orders_by_weight():
    fig = charts.genre_overlap_figure(["rock", "jazz", "folk"], [0.1, 0.5, 0.0], [0.1, 0.3, 0.6], them="Ana")
    you, them = fig.data
    # Ascending combined weight (0.2, 0.6, 0.8): plotly draws the last on top, so the biggest leads.
    assert list(you.y) == ["rock", "folk", "jazz"]
    assert list(you.x) == [-0.1, -0.0, -0.5] and list(them.x) == [0.1, 0.6, 0.3]
    assert them.name == "Ana"


def test_genre_overlap_keeps_the_largest_genres_only():
    genres = [f"g{i}" for i in range(40)]
    fig = charts.genre_overlap_figure(genres, [i / 100 for i in range(40)], [0.0] * 40)
    assert len(fig.data[0].y) == charts.MAX_GENRES
    assert fig.data[0].y[-1] == "g39" and "g0" not in fig.data[0].y


@pytest.mark.parametrize(
    "build",
    [
        lambda: charts.genre_overlap_figure(["rock"], [0.1, 0.2], [0.1]),
        lambda: charts.era_overlap_figure(["1990"], [0.1], []),
        lambda: charts.closest_artists_figure(["A", "B"], [0.3]),
        lambda: charts.user_map_figure(["a"], ["A"], [0.0], []),
    ],
)
def test_mismatched_inputs_are_a_clear_error(build):
    with pytest.raises(ValueError, match="but|must match"):
        build()
