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
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.infra import ROOT, started_process
from bench.orders import product_id

CLIENTS = 32


def _request(port: int) -> bytes:
    body = json.dumps(
        {"customerName": "bench", "productId": str(product_id(1)), "quantity": 1}
    ).encode()
    head = (
        f"POST /api/ordering/order HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(port: int, deadline: float, counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = _request(port)
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


async def _load(port: int, seconds: float) -> float:
    counts: dict[str, int] = {}
    started = time.monotonic()
    await asyncio.gather(*(_client(port, started + seconds, counts) for _ in range(CLIENTS)))
    elapsed = time.monotonic() - started
    if set(counts) != {"201"}:
        raise RuntimeError(f"POST /api/ordering/order answered {counts}")
    return counts["201"] / elapsed


@contextmanager
def _api(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[None]:
    with started_process(
        [sys.executable, *command, "--port", str(port)],
        env=env,
        log=log,
        ready=f"Uvicorn running on http://127.0.0.1:{port}",
    ):
        yield


def post_rates(ordering_db: str, *, seconds: float = 10, rounds: int = 2) -> dict[str, list[float]]:
    """requests/s of each variant, ``rounds`` alternating runs of ``seconds`` each."""
    env = dict(os.environ, ORDERING_DATABASE_URL=ordering_db)
    logs = ROOT / "bench" / "results"
    variants = {
        "with_outbox": (["-m", "app", "api", "ordering"], 8411),
        "order_only": (["-m", "bench.order_only_api"], 8412),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    with (
        _api(variants["with_outbox"][0], env, 8411, logs / "api-with-outbox.log"),
        _api(variants["order_only"][0], env, 8412, logs / "api-order-only.log"),
    ):
        for _, port in variants.values():
            asyncio.run(_load(port, 2))  # warm-up: connections, prepared statements
        for _ in range(rounds):
            for name, (_, port) in variants.items():
                rates[name].append(asyncio.run(_load(port, seconds)))
    return rates


def overhead(rates: dict[str, list[float]]) -> dict[str, object]:
    with_outbox = statistics.median(rates["with_outbox"])
    order_only = statistics.median(rates["order_only"])
    return {
        "clients": CLIENTS,
        "with_outbox_req_s": round(with_outbox),
        "order_only_req_s": round(order_only),
        "outbox_overhead_percent": round((1 - with_outbox / order_only) * 100, 1),
        "samples_req_s": {k: [round(v) for v in vs] for k, vs in rates.items()},
    }
