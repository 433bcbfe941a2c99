"""docker-compose.yaml and the Dockerfile: `docker compose config` when the plugin exists, else the YAML itself."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from soundmates.orchestration.cluster_env import localize, parse_env_file
from tests.fixtures.airflow import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}
REQUIRED = AIRFLOW_SERVICES | {"postgres", "redis", "spotify", "dashboard"}


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def compose() -> dict:
    """The resolved compose model: from `docker compose config` when available, else PyYAML (merge keys resolved)."""
    if _compose_plugin():
        out = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE), "config", "--format", "yaml"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO_ROOT,
        )
        assert out.returncode == 0, out.stderr
        return yaml.safe_load(out.stdout)
    model = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    # as `docker compose config` does: each env_file's values under the service's own `environment:`
    for svc in model["services"].values():
        files = svc.get("env_file") or []
        merged: dict = {}
        for name in [files] if isinstance(files, str) else files:
            merged.update(parse_env_file(REPO_ROOT / name))
        svc["environment"] = {**merged, **(svc.get("environment") or {})}
    return model


def test_all_services_present(compose):
    assert REQUIRED <= set(compose["services"])


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, svc in compose["services"].items():
        if name in {"airflow-init", "airflow-cli"}:
            continue
        check = svc.get("healthcheck", {})
        assert check.get("test"), f"{name} has no healthcheck"


def test_depends_on_names_existing_services_with_conditions(compose):
    services = compose["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on should use conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert spec["condition"] in {"service_healthy", "service_completed_successfully", "service_started"}
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["airflow-init"]["condition"] == "service_completed_successfully"


def test_airflow_environment_is_the_celery_layout(compose):
    envs = {name: compose["services"][name]["environment"] for name in AIRFLOW_SERVICES}
    for name, env in envs.items():
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert str(env["AIRFLOW__CORE__LOAD_EXAMPLES"]).lower() == "false", name
        for key in ("HOPSWORKS_API_KEY", "HOPSWORKS_HOST", "HOPSWORKS_PROJECT", "SOUNDMATES_STORE_BACKEND"):
            assert key in env, f"{name} does not pass {key} through"
    # Task tokens minted by one component must verify in every other.
    assert len({str(env["AIRFLOW__API_AUTH__JWT_SECRET"]) for env in envs.values()}) == 1


def test_project_is_built_in_and_dags_mounted(compose):
    worker = compose["services"]["airflow-worker"]
    assert "build" in worker
    mounts = [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in worker["volumes"]]
    assert any(m.rstrip("/").endswith(":/opt/airflow/dags") for m in mounts), mounts
    assert any(m.rstrip("/").endswith(":/opt/airflow/plugins") for m in mounts), mounts
    assert any(":/opt/soundmates/var" in m for m in mounts), mounts  # state shared by workers and dashboard


def test_published_ports_bind_loopback():
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    for name, svc in raw["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_dockerfile_matches_pinned_airflow():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    requirements = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8")
    pinned = re.search(r"^apache-airflow==([\d.]+)$", requirements, re.M).group(1)
    assert re.search(rf"^FROM apache/airflow:{re.escape(pinned)}-python3\.11$", dockerfile, re.M)
    # the image takes the same pins as `make setup`, as constraints, and only the runtime + [hopsworks] deps
    assert "-c /opt/soundmates/requirements.txt" in dockerfile
    assert '"/opt/soundmates[hopsworks]"' in dockerfile and "[test]" not in dockerfile


def test_airflow_settings_come_from_the_one_cluster_env_file(compose):
    """docker-compose.yaml and `make run-cluster` read the same file: compose must not restate its settings."""
    cluster_env = REPO_ROOT / "configs" / "airflow-cluster.env"
    settings = parse_env_file(cluster_env)
    assert settings["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    for name in AIRFLOW_SERVICES:
        svc = raw["services"][name]
        files = svc.get("env_file") or raw["x-airflow-common"].get("env_file")
        assert "configs/airflow-cluster.env" in files, name
        assert not set(svc.get("environment") or {}) & set(settings), f"{name} restates a setting of the env file"
        assert compose["services"][name]["environment"]["AIRFLOW__CELERY__BROKER_URL"] == settings["AIRFLOW__CELERY__BROKER_URL"]
    assert not any("SECRET" in key or "FERNET" in key for key in settings), "secrets never live in the env file"


def test_cluster_env_points_the_service_names_at_loopback():
    settings = parse_env_file(REPO_ROOT / "configs" / "airflow-cluster.env")
    local = localize(settings, {"postgres": "127.0.0.1:5433", "redis": "127.0.0.1:6380", "airflow-apiserver": "127.0.0.1:8090"})
    assert local["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://airflow:airflow@127.0.0.1:5433/airflow"
    assert local["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql://airflow:airflow@127.0.0.1:5433/airflow"
    assert local["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6380/0"
    assert local["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8090/execution/"
    assert local["AIRFLOW__CORE__EXECUTOR"] == settings["AIRFLOW__CORE__EXECUTOR"]  # not a URL: unchanged
