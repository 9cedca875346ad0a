"""HTTP: POST /api/ordering/order at 32 concurrent clients, with and without the outbox row.

The client is a minimal HTTP/1.1 keep-alive loop on raw asyncio streams: on a 2-core
machine, a heavier client (httpx) would take the CPU the server needs and measure itself.
Both variants run the same client, alternately, so a slow minute weighs on both alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.infra import BENCH_SECRET, ROOT, bench_token, process_cpu_seconds, started_process
from bench.orders import product_id

CLIENTS = 32


def post_request(port: int) -> bytes:
    body = json.dumps(
        {"customerName": "bench", "productId": str(product_id(1)), "quantity": 1}
    ).encode()
    head = (
        f"POST /api/ordering/order HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {bench_token()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(port: int, deadline: float, counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = post_request(port)
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12].decode()
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            counts[status] = counts.get(status, 0) + 1
    finally:
        writer.close()


async def _load(port: int, seconds: float) -> int:
    """Requests answered 201 by ``port`` in ``seconds`` from ``CLIENTS`` connections."""
    counts: dict[str, int] = {}
    started = time.monotonic()
    await asyncio.gather(*(_client(port, started + seconds, counts) for _ in range(CLIENTS)))
    if set(counts) != {"201"}:
        raise RuntimeError(f"POST /api/ordering/order answered {counts}")
    return counts["201"]


@contextmanager
def _api(
    command: list[str], env: dict[str, str], port: int, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with started_process(
        [sys.executable, *command, "--port", str(port)],
        env=env,
        log=log,
        ready=f"Uvicorn running on http://127.0.0.1:{port}",
    ) as process:
        yield process


@dataclass
class Samples:
    """Per run of one variant: requests/s, and the API process's CPU ms per request."""

    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


def post_rates(ordering_db: str, *, seconds: float = 3, rounds: int = 10) -> dict[str, Samples]:
    """Each variant ``rounds`` times for ``seconds``, in the order A B B A A B B A …, so a
    drift of the machine's speed weighs on both alike. CPU per request is recorded too: on
    a shared VM it moves less than requests/s do."""
    env = dict(os.environ, ORDERING_DATABASE_URL=ordering_db, AUTH_JWT_SECRET=BENCH_SECRET)
    logs = ROOT / "bench" / "results"
    commands = {
        "with_outbox": ["-m", "app", "api", "ordering"],
        "order_only": ["-m", "bench.order_only_api"],
    }
    ports = {"with_outbox": 8411, "order_only": 8412}
    samples = {name: Samples() for name in commands}
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(
                _api(command, env, ports[name], logs / f"api-{name.replace('_', '-')}.log")
            )
            for name, command in commands.items()
        }
        for port in ports.values():
            asyncio.run(_load(port, 2))  # warm-up: connections, prepared statements
        names = list(commands)
        for round_index in range(rounds):
            for name in names if round_index % 2 == 0 else reversed(names):
                cpu_before, started = process_cpu_seconds(servers[name]), time.monotonic()
                answered = asyncio.run(_load(ports[name], seconds))
                elapsed = time.monotonic() - started
                cpu = process_cpu_seconds(servers[name]) - cpu_before
                samples[name].rates.append(answered / elapsed)
                samples[name].cpu_ms.append(cpu * 1000 / answered)
    return samples


def overhead(samples: dict[str, Samples]) -> dict[str, object]:
    with_outbox, order_only = samples["with_outbox"], samples["order_only"]
    rate_with, rate_without = (statistics.median(s.rates) for s in (with_outbox, order_only))
    cpu_with, cpu_without = (statistics.median(s.cpu_ms) for s in (with_outbox, order_only))
    return {
        "clients": CLIENTS,
        "with_outbox_req_s": round(rate_with),
        "order_only_req_s": round(rate_without),
        "outbox_overhead_percent": round((1 - rate_with / rate_without) * 100, 1),
        "api_cpu_ms_per_request": {
            "with_outbox": round(cpu_with, 3),
            "order_only": round(cpu_without, 3),
        },
        "outbox_cpu_overhead_percent": round((cpu_with / cpu_without - 1) * 100, 1),
        "samples_req_s": {name: [round(v) for v in s.rates] for name, s in samples.items()},
    }
