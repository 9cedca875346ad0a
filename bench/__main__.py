"""``make bench``: one run, one machine, every figure next to its ceiling.

Prints a table and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import psycopg

from bench import infra
from bench.consumer_drain import consumer_rate, naive_rate
from bench.publish_ceiling import aio_pika_ceiling, relay_publisher_ceiling
from bench.relay_drain import drain_rate
from bench.wakeup_latency import idle_wakeup_ms

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def _machine() -> dict[str, object]:
    with psycopg.connect(infra.PG_ADMIN) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    rabbit = subprocess.run(
        ["rabbitmqctl", "-q", "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "postgresql": row[0] if row else None,
        "rabbitmq": rabbit,
        "aio_pika": aio_pika.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--rows", type=int, default=50_000, help="relay backlog size")
    parser.add_argument("--ceiling-messages", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; medians kept")
    parser.add_argument("--consumer-messages", type=int, default=50_000)
    parser.add_argument(
        "--only",
        choices=["publish", "consume", "latency"],
        default=None,
        help="one part of the report",
    )
    args = parser.parse_args()

    results: dict[str, object] = {}
    if args.only is not None and RESULTS.exists():
        results = json.loads(RESULTS.read_text())  # keep the part not measured this time
    results.update(when=datetime.now(UTC).isoformat(), machine=_machine())
    if args.only in (None, "publish"):
        results["publish"] = _publish_part(args)
    if args.only in (None, "consume"):
        results["consume"] = _consume_part(args)
    if args.only in (None, "latency"):
        results["latency"] = _latency_part()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    print(f"machine: {results['machine']}")
    print(f"written: {RESULTS}")


def _publish_part(args: argparse.Namespace) -> dict[str, object]:
    samples: dict[str, list[float]] = {"ceiling": [], "frames": [], "one": [], "two": []}
    with infra.vhost() as broker, infra.service_database("ordering") as database:
        # Interleaved, so a slow minute of the machine weighs on every figure alike.
        for _ in range(args.repeat):
            samples["ceiling"].append(
                asyncio.run(aio_pika_ceiling(broker, messages=args.ceiling_messages))
            )
            samples["frames"].append(
                asyncio.run(relay_publisher_ceiling(broker, messages=args.ceiling_messages))
            )
            samples["one"].append(drain_rate(database, broker, rows=args.rows, relays=1))
            samples["two"].append(drain_rate(database, broker, rows=args.rows, relays=2))
    ceiling, frames, one, two = (statistics.median(samples[k]) for k in samples)
    print(f"publish: medians of {args.repeat} interleaved runs")
    print(f"{'measure':<52} {'msg/s':>8}  vs aio-pika ceiling")
    for label, rate in [
        ("aio-pika ceiling (500 in flight, confirms, no DB)", ceiling),
        ("relay's publisher alone (batch frames, no DB)", frames),
        (f"relay, 1 process, {args.rows:,}-row backlog", one),
        (f"relay, 2 processes, {args.rows:,}-row backlog", two),
    ]:
        print(f"{label:<52} {rate:>8,.0f}  {rate / ceiling:.2f}x")
    return {
        "aio_pika_ceiling_msg_s": round(ceiling),
        "relay_publisher_no_db_msg_s": round(frames),
        "relay_1_process_msg_s": round(one),
        "relay_2_processes_msg_s": round(two),
        "relay_1_vs_ceiling": round(one / ceiling, 2),
        "relay_2_vs_ceiling": round(two / ceiling, 2),
        "backlog_rows": args.rows,
        "samples_msg_s": {k: [round(v) for v in vs] for k, vs in samples.items()},
        "targets": {"relay_1_vs_ceiling": 0.85, "relay_2_vs_ceiling": 1.1},
    }


def _latency_part() -> dict[str, object]:
    with (
        infra.vhost() as broker,
        infra.service_database("ordering") as ordering,
        infra.service_database("catalog") as catalog,
    ):
        idle = idle_wakeup_ms(ordering, catalog, broker)
    print(
        f"idle wake-up, order commit -> catalog inbox row ({idle['samples']} orders, one at a "
        f"time): p50 {idle['p50_ms']} ms, p99 {idle['p99_ms']} ms, max {idle['max_ms']} ms"
    )
    return {"idle_wakeup": idle, "targets": {"idle_wakeup_p50_ms": 5}}


def _consume_part(args: argparse.Namespace) -> dict[str, object]:
    samples: dict[str, list[float]] = {"consumer": [], "naive": []}
    with infra.vhost() as broker, infra.service_database("catalog") as database:
        for _ in range(args.repeat):
            samples["consumer"].append(
                consumer_rate(database, broker, messages=args.consumer_messages)
            )
            samples["naive"].append(naive_rate(database, broker, messages=args.consumer_messages))
    consumer, naive = (statistics.median(samples[k]) for k in samples)
    print(f"consume: medians of {args.repeat} runs, {args.consumer_messages:,} queued OrderPlaced")
    print(f"{'catalog consumer (batched inbox transactions)':<52} {consumer:>8,.0f} msg/s")
    print(f"{'naive: one transaction per message':<52} {naive:>8,.0f} msg/s")
    print(f"{'ratio':<52} {consumer / naive:>8.2f}x")
    return {
        "consumer_msg_s": round(consumer),
        "naive_one_transaction_per_message_msg_s": round(naive),
        "consumer_vs_naive": round(consumer / naive, 2),
        "messages": args.consumer_messages,
        "samples_msg_s": {k: [round(v) for v in vs] for k, vs in samples.items()},
        "targets": {"consumer_msg_s": 5000, "consumer_vs_naive": 3.0},
    }


if __name__ == "__main__":
    main()
