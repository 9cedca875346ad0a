"""docker-compose.yml cannot run here (no Docker), so it is checked by reading it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app.cli.main import _parser
from app.core.settings import Settings
from cloudcrm_outbox.brokers.rabbitmq.publishing.path import chosen_publish_path

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
    assert SERVICES["rabbitmq"]["image"].startswith("rabbitmq:3")
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


def test_no_guest_and_no_default_password() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "guest" not in text
    passwords = re.findall(r"\$\{(\w*PASSWORD\w*)(:[?-][^}]*)?\}", text)
    assert passwords
    for variable, default in passwords:
        assert default.startswith(":?"), f"{variable} must be required, not defaulted"
    example = (ROOT / ".env.example").read_text()
    for variable, _ in passwords:
        assert re.search(rf"^{variable}=$", example, re.M), f"{variable} not in .env.example"


def test_the_servers_listen_on_loopback_only() -> None:
    for name in ("postgres", "rabbitmq"):
        for port in SERVICES[name].get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_every_process_uses_its_own_least_privilege_account() -> None:
    from app.messaging.broker_accounts import accounts

    names = {account.name for account in accounts()}
    roles = {"api": "api", "relay": "relay", "consume": "consumer"}
    for name, spec in APP_SERVICES.items():
        command = spec["command"][3:]
        url = spec.get("environment", {}).get("BROKER_URL")
        if command[0] in roles:
            expected = f"cloudcrm-{command[1]}-{roles[command[0]]}"
        elif command[:2] == ["broker", "declare"]:
            expected = "cloudcrm-admin"
        else:
            assert url is None, name  # migrate and broker-accounts never touch the broker
            continue
        assert url is not None and url.startswith(f"amqp://{expected}:"), (name, url)
        assert expected in names
    secrets = set(COMPOSE["secrets"])
    assert secrets == names
    assert set(SERVICES["broker-accounts"]["secrets"]) == names


def test_rabbitmq_loads_the_accounts_broker_accounts_writes() -> None:
    command = SERVICES["broker-accounts"]["command"]
    written = Path(command[command.index("--output") + 1])
    [shared] = [
        v for v in SERVICES["broker-accounts"]["volumes"] if v.endswith(str(written.parent))
    ]
    volume = shared.split(":")[0]
    [mounted] = [v.split(":")[1] for v in SERVICES["rabbitmq"]["volumes"] if v.startswith(volume)]
    conf = (ROOT / "docker" / "rabbitmq.conf").read_text()
    assert f"load_definitions = {mounted}/{written.name}" in conf
    assert SERVICES["rabbitmq"]["depends_on"]["broker-accounts"] == {
        "condition": "service_completed_successfully"
    }


def test_the_image_runs_as_an_unprivileged_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert users and users[-1] not in {"root", "0"}


def test_every_variable_is_a_real_setting() -> None:
    fields = {field.upper() for field in Settings.model_fields}
    for name, spec in APP_SERVICES.items():
        assert set(spec.get("environment", {})) <= fields, name


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

    import app.http.metrics  # noqa: F401 - registers the APIs' HTTP metrics
    import cloudcrm_outbox.observability.metrics  # noqa: F401 - registers the outbox's and inbox's

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


def test_the_image_installs_the_tested_versions() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    # The library (.) and the demo services (./demo), from this tree.
    [constraints] = re.findall(r"^RUN pip install .*-c (\S+) \. \./demo$", dockerfile, re.M)
    copied = re.search(rf"^COPY .*docker/{re.escape(constraints)} \./$", dockerfile, re.M)
    assert copied, "the constraints file must be copied in before the install"
    pins = dict(
        line.split("==")
        for line in (ROOT / "docker" / constraints).read_text().splitlines()
        if line and not line.startswith("#")
    )
    # The relay's fast path runs in the image: its aiormq is one the path was tested on.
    assert chosen_publish_path("auto", pins["aiormq"]).path == "fast"
    demo = tomllib.loads((ROOT / "demo" / "pyproject.toml").read_text())["project"]
    for text in demo["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name == "cloudcrm-outbox":
            continue  # built from this tree
        assert name in pins, f"{name} is not pinned in docker/{constraints}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (text, pins[name])


def test_the_readme_names_the_compose_version_the_file_needs() -> None:
    """A secret read from an environment variable (``secrets: NAME: environment: VAR``)
    is refused by older Compose releases, or mounted empty with Docker Engine 24
    (docker/compose#10663): the compose page of the docs says which release to use."""
    from_environment = [
        name for name, spec in COMPOSE.get("secrets", {}).items() if "environment" in spec
    ]
    page = (ROOT / "docs" / "postgres-rabbitmq.md").read_text()
    assert not from_environment or re.search(r"Docker Compose v2\.23 or later", page), (
        f"say which Compose the secrets {from_environment} need"
    )
