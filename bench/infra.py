"""Throwaway PostgreSQL databases and RabbitMQ vhosts for one benchmark run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from app import migrate
from app.settings import Settings

PG_ADMIN = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_BASE = os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROOT = Path(__file__).resolve().parent.parent


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(statement)


@contextmanager
def service_database(service: str) -> Iterator[str]:
    """A migrated database of ``service``; yields its SQLAlchemy URL."""
    name = f"cc_bench_{uuid.uuid4().hex[:10]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    try:
        migrate.upgrade(service, settings=Settings(**{f"{service}_database_url": url}))
        yield url
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def vhost() -> Iterator[str]:
    """A throwaway RabbitMQ vhost; yields its AMQP URL."""
    name = f"cc_bench_{uuid.uuid4().hex[:10]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"], check=True
    )
    try:
        yield AMQP_BASE.rstrip("/") + "/" + quote(name, safe="")
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=True)


@contextmanager
def processes(count: int, *args: str, env: dict[str, str], ready: str) -> Iterator[None]:
    """``count`` times ``python -m app ARGS``, each waited for until its log shows ``ready``."""
    started = []
    try:
        for index in range(count):
            log = ROOT / "bench" / "results" / f"{args[0]}-{index}.log"
            handle = log.open("wb")
            process = subprocess.Popen(
                [sys.executable, "-m", "app", *args],
                env=env,
                cwd=ROOT,
                stdout=handle,
                stderr=handle,
            )
            started.append((process, handle, log))
        for process, _, log in started:
            deadline = time.monotonic() + 60
            while ready not in log.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args} did not start:\n{log.read_text()}")
                time.sleep(0.05)
        yield
    finally:
        for process, handle, _ in started:
            process.terminate()
            process.wait(timeout=30)
            handle.close()
