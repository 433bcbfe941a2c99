"""Shared fixtures. Each stage keeps its fixtures in tests/fixtures/<stage>.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Airflow reads its configuration at import time: pin a private home before any test imports it.
_AIRFLOW_HOME = Path(os.environ.get("SOUNDMATES_TEST_AIRFLOW_HOME", "/tmp/soundmates-test-airflow")) / str(os.getpid())
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).resolve().parents[1] / "dags"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME}/airflow.db")
_AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)

pytest_plugins = [
    "tests.fixtures.common",
    "tests.fixtures.spotify",
    "tests.fixtures.airflow",
    "tests.fixtures.dashboard",
    "tests.fixtures.browser",
    "tests.fixtures.features",
    "tests.fixtures.model",
    "tests.fixtures.schema",
    "tests.fixtures.objstore",
]


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory, monkeypatch):
    """Every test gets its own SOUNDMATES_DATA_DIR unless it sets one itself."""
    from soundmates.config import reset_settings

    monkeypatch.setenv("SOUNDMATES_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    reset_settings()
    yield
    reset_settings()
