"""Throwaway PostgreSQL databases and RabbitMQ vhosts for one benchmark run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from app.core import migrations as migrate
from app.core.settings import Settings

PG_ADMIN = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_BASE = os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROOT = Path(__file__).resolve().parent.parent
# The APIs the bench starts verify tokens signed with this; requests carry BENCH_TOKEN (the
# check is part of what a request costs).
BENCH_SECRET = "bench-only-secret-0123456789abcdef-0123456789"


def bench_token() -> str:
    """A token with every scope, signed with BENCH_SECRET, valid for a day."""
    from app.auth.scopes import SCOPES
    from app.auth.tokens import issue_token

    return issue_token(BENCH_SECRET, tuple(SCOPES), subject="bench", ttl_seconds=86_400)


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


def service_env(ordering_db: str, catalog_db: str, broker_url: str) -> dict[str, str]:
    """The environment of ``python -m app`` processes working on these databases and broker."""
    return dict(
        os.environ,
        AUTH_JWT_SECRET=BENCH_SECRET,
        ORDERING_DATABASE_URL=ordering_db,
        CATALOG_DATABASE_URL=catalog_db,
        BROKER_URL=broker_url,
    )


def inbox_rows(connection: psycopg.Connection) -> int:  # type: ignore[type-arg]
    row = connection.execute("SELECT count(*) FROM inbox").fetchone()
    return int(row[0]) if row else 0


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
def started_process(
    argv: list[str], *, env: dict[str, str], log: Path, ready: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` running, waited for until its log shows ``ready``; stopped with SIGTERM."""
    with log.open("wb") as handle:
        process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=handle, stderr=handle)
        try:
            deadline = time.monotonic() + 60
            while ready not in log.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{argv} did not start:\n{log.read_text()}")
                time.sleep(0.05)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def processes(
    count: int, *args: str, env: dict[str, str], ready: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` times ``python -m app ARGS``, each waited for until its log shows ``ready``."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                started_process(
                    [sys.executable, "-m", "app", *args],
                    env=env,
                    log=ROOT / "bench" / "results" / f"{'-'.join(args)}-{index}.log",
                    ready=ready,
                )
            )
            for index in range(count)
        ]


@contextmanager
def started_together(count: int, *args: str, env: dict[str, str], ready: str) -> Iterator[float]:
    """``count`` times ``python -m app ARGS`` started at once; yields the perf_counter time
    the first of them showed ``ready`` (after all have). A backlog waiting for them is
    drained from that moment: started one by one, the first would drain it alone."""
    logs = [ROOT / "bench" / "results" / f"{'-'.join(args)}-together-{i}.log" for i in range(count)]
    handles = [log.open("wb") for log in logs]
    started = [
        subprocess.Popen([sys.executable, "-m", "app", *args], env=env, cwd=ROOT,
                         stdout=handle, stderr=handle)
        for handle in handles
    ]  # fmt: skip
    try:
        first: float | None = None
        waiting = set(range(count))
        deadline = time.monotonic() + 60
        while waiting:
            for index in list(waiting):
                if ready in logs[index].read_text(errors="replace"):
                    waiting.discard(index)
                    first = first or time.perf_counter()
                elif started[index].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args} did not start:\n{logs[index].read_text()}")
            time.sleep(0.01)
        assert first is not None
        yield first
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for handle in handles:
            handle.close()


def _cpu_seconds(proc: Path) -> float:
    """User + system CPU seconds of the process at ``/proc/PID`` so far (Linux)."""
    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    return _cpu_seconds(Path(f"/proc/{process.pid}"))


def peak_rss_mb(process: subprocess.Popen[bytes]) -> float:
    """The process's peak resident set so far (Linux: VmHWM), in MiB."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc: peak RSS is measured on Linux only")


# What each group of processes is, by its command line.
_CPU_GROUPS = (
    ("relay ordering", "-m app relay ordering"),
    ("consumer catalog", "-m app consume catalog"),
    ("relay catalog", "-m app relay catalog"),
    ("consumer ordering", "-m app consume ordering"),
    ("load generator (pgbench)", "pgbench"),
    ("bench clocks", "multiprocessing"),
    ("rabbitmq", "beam.smp"),
    ("postgresql", "postgres"),
)


def _cpu_by_process() -> dict[int, tuple[str, float]]:
    """pid -> (group, CPU seconds so far) for every process on this machine (Linux /proc)."""
    seen: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            used = _cpu_seconds(entry)
        except OSError:  # the process ended while being read
            continue
        group = next((name for name, marker in _CPU_GROUPS if marker in command), "other")
        seen[int(entry.name)] = (group, used)
    return seen


@contextmanager
def cpu_by_group() -> Iterator[dict[str, float]]:
    """Yields a dict filled on exit with the cores each group used meanwhile.

    Sampled every 0.5 s, so processes that start and end inside the window (pgbench's
    database backends) are counted too, to within half a second each."""
    first: dict[int, tuple[str, float]] = {}
    last: dict[int, tuple[str, float]] = {}
    stop = threading.Event()

    def sample() -> None:
        while True:
            now = _cpu_by_process()
            for pid, value in now.items():
                first.setdefault(pid, (value[0], 0.0) if first else value)
            last.update(now)
            if stop.wait(0.5):
                return

    first.update(_cpu_by_process())
    started = time.monotonic()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cores: dict[str, float] = {}
    try:
        yield cores
    finally:
        stop.set()
        sampler.join()
        elapsed = time.monotonic() - started
        for pid, (group, used) in last.items():
            cores[group] = cores.get(group, 0.0) + (used - first[pid][1]) / elapsed


def cpu_calibration_ms() -> float:
    """Milliseconds for a fixed pure-Python loop (best of 3): lower is a faster machine."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for value in range(1_000_000):
            total += value
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def wait_for_inbox(database_url: str, message_ids: list[str], *, timeout: float, what: str) -> None:
    """Until every one of ``message_ids`` has its inbox row in ``database_url``'s inbox;
    RuntimeError naming ``what`` (the things counted) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        while True:
            row = connection.execute(
                "SELECT count(*) FROM inbox WHERE message_id = ANY(%s::uuid[])", (message_ids,)
            ).fetchone()
            if row is not None and row[0] >= len(message_ids):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {row} of {len(message_ids)} {what} reached the inbox")
            time.sleep(0.2)
