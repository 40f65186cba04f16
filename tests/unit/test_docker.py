"""The docker/ files are validated here: no Docker engine runs on CI machines."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
AIRFLOW_COMPONENTS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
LONG_RUNNING = [*AIRFLOW_COMPONENTS, "postgres", "redis", "warehouse", "gong-simulator"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def test_dockerfile_builds_on_the_official_image_and_installs_the_provider(dockerfile: str) -> None:
    assert re.search(r"^ARG AIRFLOW_IMAGE=apache/airflow:3\.3\.2", dockerfile, re.M)
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\} AS base$", dockerfile, re.M)
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in dockerfile  # never upgrades Airflow
    assert "/opt/sophia[postgres,redis,profiling]" in dockerfile
    for source in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert (DOCKER.parent / path).exists(), f"Dockerfile copies missing {path}"


def test_every_component_of_a_celery_deployment_exists(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, command in AIRFLOW_COMPONENTS.items():
        assert services[name]["command"] == command
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")


def test_services_using_our_image_build_it_from_the_dockerfile(
    compose: dict[str, Any], dockerfile: str
) -> None:
    stages = set(re.findall(r"^FROM \S+ AS (\w+)$", dockerfile, re.M))
    built = {}
    for name, service in compose["services"].items():
        if "build" in service:
            build = service["build"]
            assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile", name
            assert build["target"] in stages, name
            built[service["image"]] = build["target"]
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("airflow-sophia"):
            assert service["image"] in built, f"{name} uses {service['image']}, which no service builds"


def test_long_running_services_have_health_checks(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        assert compose["services"][name]["healthcheck"]["test"], name


def test_dependencies_and_volumes_are_declared(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name} mounts undeclared volume {source}"
            else:
                assert (DOCKER / source).resolve().exists(), f"{name} mounts missing {source}"


def test_connections_point_at_the_dev_services(compose: dict[str, Any]) -> None:
    env = compose["services"]["airflow-worker"]["environment"]
    snowflake = json.loads(env["AIRFLOW_CONN_SNOWFLAKE_DEFAULT"])
    gong = json.loads(env["AIRFLOW_CONN_GONG_DEFAULT"])
    assert snowflake["host"] == "warehouse"
    assert str(snowflake["port"]) in compose["services"]["warehouse"]["command"]
    assert gong["conn_type"] == "gong"
    assert gong["host"].endswith(":8089")


@pytest.mark.parametrize("service", ["warehouse", "gong-simulator"])
def test_dev_service_entry_modules_exist(compose: dict[str, Any], service: str) -> None:
    entrypoint = compose["services"][service]["entrypoint"]
    assert entrypoint[:2] == ["python", "-m"]
    if importlib.util.find_spec(entrypoint[2].rsplit(".", 1)[0]) is None:
        pytest.fail(f"{entrypoint[2]} is not importable")
    assert importlib.util.find_spec(entrypoint[2]) is not None, entrypoint[2]
