"""The dashboard's non-UI parts: the Airflow REST client and the plotly figures."""

from __future__ import annotations

import json
import socket

import pytest

from soundmates.orchestration import airflow_api
from streamlit_app import charts


def creds(password: str = "s3cret") -> airflow_api.AirflowCredentials:
    return airflow_api.AirflowCredentials(user="admin", password=password)


def test_recent_runs_logs_in_and_parses_runs(airflow_double):
    runs = airflow_api.recent_dag_runs(airflow_double.url + "/", credentials=creds())
    assert [r.dag_id for r in runs] == ["soundmates_rebuild", "soundmates_new_users"]
    assert runs[0].duration_s == 150.0 and runs[0].state == "success"
    assert runs[1].duration_s is None and runs[1].run_after.year == 2026
    seen = airflow_double.seen
    assert [r.path for r in seen] == ["/auth/token", "/api/v2/dags/~/dagRuns"]
    assert seen[1].query == {"order_by": "-run_after", "limit": "15"}


def test_credentials_come_from_the_environment(monkeypatch, airflow_double):
    monkeypatch.setenv("SOUNDMATES_AIRFLOW_USER", "admin")
    monkeypatch.setenv("SOUNDMATES_AIRFLOW_PASSWORD", "s3cret")
    assert len(airflow_api.recent_dag_runs(airflow_double.url)) == 2
    assert "s3cret" not in repr(airflow_api.AirflowCredentials())  # never printed with the settings
    client = airflow_api.AirflowClient(url=airflow_double.url, credentials=airflow_api.default_credentials())
    assert "s3cret" not in repr(client) and "s3cret" not in str(vars(client))


def test_credentials_fall_back_to_airflows_passwords_file(monkeypatch, tmp_path, airflow_double):
    monkeypatch.delenv("SOUNDMATES_AIRFLOW_USER", raising=False)
    monkeypatch.delenv("SOUNDMATES_AIRFLOW_PASSWORD", raising=False)
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": "s3cret"}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    assert len(airflow_api.recent_dag_runs(airflow_double.url)) == 2
    passwords.write_text("not json")  # unreadable file: no credentials, and a clear 401 message
    with pytest.raises(airflow_api.AirflowUnavailable, match="set SOUNDMATES_AIRFLOW_USER"):
        airflow_api.recent_dag_runs(airflow_double.url)


def test_wrong_password_names_the_variables_to_check(airflow_double):
    with pytest.raises(airflow_api.AirflowUnavailable, match="SOUNDMATES_AIRFLOW_PASSWORD") as err:
        airflow_api.recent_dag_runs(airflow_double.url, credentials=creds("nope"))
    assert "nope" not in str(err.value)


def test_missing_credentials_say_which_variables_to_set(monkeypatch, airflow_double):
    monkeypatch.delenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", raising=False)
    monkeypatch.delenv("SOUNDMATES_AIRFLOW_USER", raising=False)
    monkeypatch.delenv("SOUNDMATES_AIRFLOW_PASSWORD", raising=False)
    with pytest.raises(airflow_api.AirflowUnavailable, match="HTTP 401.*set SOUNDMATES_AIRFLOW_USER"):
        airflow_api.recent_dag_runs(airflow_double.url)
    assert [r.path for r in airflow_double.seen] == ["/api/v2/dags/~/dagRuns"]  # no login without credentials


def test_unreachable_airflow_is_reported_quickly():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(airflow_api.AirflowUnavailable, match=f"not reachable at http://127.0.0.1:{port}"):
        airflow_api.recent_dag_runs(f"http://127.0.0.1:{port}", credentials=creds(), timeout_s=1.0)


def test_a_silent_airflow_is_a_bounded_wait():
    with socket.socket() as s:  # accepts connections (backlog), never answers
        s.bind(("127.0.0.1", 0))
        s.listen()
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(airflow_api.AirflowUnavailable, match="did not answer within 0.5 s"):
            airflow_api.recent_dag_runs(url, credentials=creds(), timeout_s=0.5)


def test_an_answer_without_runs_is_an_error_not_a_crash(airflow_double):
    airflow_double.runs_body = {"detail": "odd"}
    with pytest.raises(airflow_api.AirflowUnavailable, match="no 'dag_runs' list"):
        airflow_api.recent_dag_runs(airflow_double.url, credentials=creds())


def test_the_dashboard_tries_once_where_the_scripts_retry_a_busy_server(airflow_double):
    airflow_double.fail_next = 1
    with pytest.raises(airflow_api.AirflowUnavailable, match="HTTP 503"):
        airflow_api.recent_dag_runs(airflow_double.url, credentials=creds())
    airflow_double.fail_next = 1
    client = airflow_api.AirflowClient(url=airflow_double.url, credentials=creds(), timeout_s=5)
    assert client.dag("soundmates_bootstrap") == {"dag_id": "soundmates_bootstrap", "is_paused": True}
    assert [r.path for r in airflow_double.seen[-3:]] == ["/auth/token", "/auth/token", "/api/v2/dags/soundmates_bootstrap"]


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
