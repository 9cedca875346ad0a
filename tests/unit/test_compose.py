"""docker-compose.yml cannot run here (no Docker), so it is checked by reading it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from app.__main__ import _parser
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = {name: spec for name, spec in SERVICES.items() if spec.get("build")}


def test_the_whole_system_is_there() -> None:
    assert {"postgres", "rabbitmq", "migrate"} <= set(SERVICES)
    commands = {tuple(spec["command"][3:5]) for spec in APP_SERVICES.values()}
    assert {
        ("migrate",),
        ("api", "ordering"),
        ("api", "catalog"),
        ("relay", "ordering"),
        ("consume", "catalog"),
        ("relay", "catalog"),
        ("consume", "ordering"),
    } <= {c[:1] if c[0] == "migrate" else c for c in commands}
    assert "management" in SERVICES["rabbitmq"]["image"]
    assert (ROOT / "Dockerfile").exists()


def test_the_topology_is_declared_before_any_process_starts() -> None:
    assert SERVICES["broker-declare"]["command"][3:] == ["broker", "declare"]
    assert SERVICES["broker-declare"]["restart"] == "no"
    for name, spec in APP_SERVICES.items():
        if spec["command"][3] in ("api", "relay", "consume"):
            assert spec["depends_on"]["broker-declare"] == {
                "condition": "service_completed_successfully"
            }, name
            assert spec["depends_on"]["migrate"] == {
                "condition": "service_completed_successfully"
            }, name


def test_every_command_is_a_real_cli_command() -> None:
    for name, spec in APP_SERVICES.items():
        command = spec["command"]
        assert command[:3] == ["python", "-m", "app"], name
        _parser().parse_args(command[3:])  # exits on an unknown command or option


def test_every_variable_is_a_real_setting() -> None:
    fields = {field.upper() for field in Settings.model_fields}
    for name, spec in APP_SERVICES.items():
        assert set(spec["environment"]) <= fields, name


def test_every_dependency_exists_and_waits_for_health() -> None:
    for name, spec in SERVICES.items():
        for dependency, condition in spec.get("depends_on", {}).items():
            assert dependency in SERVICES, (name, dependency)
            assert condition["condition"] in {"service_healthy", "service_completed_successfully"}
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], dependency


def test_the_init_script_creates_both_databases() -> None:
    script = (ROOT / "docker" / "postgres-init.sql").read_text()
    urls = APP_SERVICES["migrate"]["environment"]
    for variable in ("ORDERING_DATABASE_URL", "CATALOG_DATABASE_URL"):
        database = urls[variable].rsplit("/", 1)[1]
        assert f"CREATE DATABASE {database};" in script


def test_every_process_has_a_readiness_health_check() -> None:
    services = COMPOSE["services"]
    roles = ("api", "relay", "consume")
    processes = [
        name for name, service in services.items()
        if any(role in service.get("command", []) for role in roles)
    ]  # fmt: skip
    assert len(processes) == 6
    for name in processes:
        check = " ".join(services[name]["healthcheck"]["test"])
        assert "/health/ready" in check, name
        if "api" not in services[name]["command"]:
            assert "--metrics-port" in services[name]["command"], name


def _exposed_samples() -> set[str]:
    """Every sample name the processes' /metrics can show (the app's registry)."""
    from prometheus_client import REGISTRY

    import app.api_metrics
    import app.outbox.metrics  # noqa: F401 - registers the outbox's and inbox's

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
    }
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def test_every_dashboard_query_names_an_exposed_metric() -> None:
    import json
    import re

    dashboard = json.loads(
        (ROOT / "observability/grafana/dashboards/cloudcrm-outbox.json").read_text()
    )
    exposed = _exposed_samples()
    ours = re.compile(r"\b((?:outbox|inbox|http)_[a-z_]+)\b")
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert queries
    named = {name for query in queries for name in ours.findall(query)}
    assert named and named <= exposed, named - exposed
    for metric in ("outbox_pending_messages", "inbox_lag_seconds_bucket",
                   "inbox_dead_lettered_total", "outbox_publish_errors_total"):  # fmt: skip
        assert metric in named, metric


def test_prometheus_scrapes_every_process() -> None:
    config = yaml.safe_load((ROOT / "observability/prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]}  # fmt: skip
    workers = {name for name, spec in APP_SERVICES.items()
               if "--metrics-port" in spec.get("command", [])}  # fmt: skip
    assert {f"{name}:9100" for name in workers} | {
        "ordering-api:8001",
        "catalog-api:8002",
    } == targets
    assert SERVICES["grafana"]["profiles"] == ["observability"]
    assert SERVICES["prometheus"]["profiles"] == ["observability"]
