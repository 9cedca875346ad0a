"""The library's face is lazy (PEP 562): importing it, or picking the embedded broker, loads
no broker client, web server, scheduler, tracing SDK or metrics library; every public name
resolves on first use."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import cloudcrm_outbox

HEAVY = (
    "aio_pika",
    "aiormq",
    "uvicorn",
    "starlette",
    "apscheduler",
    "opentelemetry.sdk",
    "prometheus_client",
)
AMQP_CLIENTS = ("aio_pika", "aiormq")


def _loaded_after(code: str, watched: tuple[str, ...], cwd: Path) -> list[str]:
    """The modules of ``watched`` (or under them) that a fresh interpreter holds once it
    has run ``code``."""
    probe = (
        f"{code}\n"
        "import json, sys\n"
        f"watched = {watched!r}\n"
        "print(json.dumps(sorted({w for w in watched for m in sys.modules\n"
        "                         if m == w or m.startswith(w + '.')})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_importing_the_library_loads_nothing_heavy(tmp_path: Path) -> None:
    assert _loaded_after("import cloudcrm_outbox", HEAVY, tmp_path) == []


def test_the_embedded_broker_loads_no_amqp_client(tmp_path: Path) -> None:
    code = (
        "import cloudcrm_outbox\n"
        "broker = cloudcrm_outbox.broker_for('memory://')\n"
        "assert type(broker).__name__ == 'EmbeddedBroker', type(broker)\n"
    )
    assert _loaded_after(code, AMQP_CLIENTS, tmp_path) == []


def test_the_probe_sees_a_module_that_is_loaded(tmp_path: Path) -> None:
    # The two tests above would pass on a probe that never finds anything.
    assert _loaded_after("import aio_pika", AMQP_CLIENTS, tmp_path) == ["aio_pika", "aiormq"]


@pytest.mark.parametrize("name", cloudcrm_outbox.__all__)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(cloudcrm_outbox, name)
    assert value is not None
    assert name in dir(cloudcrm_outbox)
    if inspect.isclass(value) or inspect.isfunction(value):  # defined by the library
        assert value.__module__.startswith("cloudcrm_outbox"), value.__module__


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = cloudcrm_outbox.no_such_name  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        from cloudcrm_outbox import no_such_name  # type: ignore[attr-defined]  # noqa: F401
