"""The summary table: every figure of the run next to its target."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# (label, figure, unit, target text, met?) from the results; None when a part did not run.
Row = tuple[str, float, str, str, bool | None]


def _rows(results: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []

    def add(part: str, build: Callable[[Mapping[str, Any]], list[Row]]) -> None:
        if part in results:
            rows.extend(build(results[part]))

    add(
        "publish",
        lambda p: [
            ("aio-pika publish ceiling (confirms)", p["aio_pika_ceiling_msg_s"], "msg/s", "", None),
            ("relay, 1 process, vs ceiling", p["relay_1_vs_ceiling"], "x", ">= 0.85",
             p["relay_1_vs_ceiling"] >= 0.85),
            ("relay, 2 processes, vs ceiling", p["relay_2_vs_ceiling"], "x", ">= 1.1",
             p["relay_2_vs_ceiling"] >= 1.1),
            *([("relay, 1 process, fast publish path vs public", p["fast_vs_public_relay_1"],
                "x", ">= 1.15 (else drop the fast path)", p["fast_vs_public_relay_1"] >= 1.15),
               ("relay's publisher alone, fast vs public", p["fast_vs_public_publisher"], "x",
                "", None)] if "fast_vs_public_relay_1" in p else []),
        ],
    )  # fmt: skip
    add(
        "consume",
        lambda c: [
            ("catalog consumer drain", c["consumer_msg_s"], "msg/s", ">= 5,000",
             c["consumer_msg_s"] >= 5000),
            ("consumer vs one transaction per message", c["consumer_vs_naive"], "x", ">= 3",
             c["consumer_vs_naive"] >= 3),
            ("raw consume ceiling (batched acks, no database)",
             c.get("raw_consume_ceiling_msg_s", 0), "msg/s", "", None),
        ],
    )  # fmt: skip
    add(
        "write",
        lambda w: [
            ("PostgreSQL order + outbox txn ceiling", w["order_outbox_txn_per_s"], "txn/s", "",
             None),
            ("HTTP POST order, 32 clients", w["http"]["with_outbox_req_s"], "req/s", "", None),
            ("outbox overhead on POST", w["http"]["outbox_overhead_percent"], "%", "<= 10",
             w["http"]["outbox_overhead_percent"] <= 10),
        ],
    )  # fmt: skip
    add("latency", _latency_rows)
    add(
        "coldstart",
        lambda c: [
            ("cold start: POST -> stock falls (every process started at once)",
             c["post_to_stock_s"], "s", "<= 1.5", c["post_to_stock_s"] <= 1.5),
        ],
    )  # fmt: skip
    add("cli", _cli_rows)
    add(
        "installsize",
        lambda i: [
            ("virtualenv, runtime only (pip install . ./demo)", i["runtime_venv_mb"], "MB", "",
             None),
            ("virtualenv, development (.venv)", i["development_venv_mb"], "MB", "", None),
        ],
    )  # fmt: skip
    add(
        "memory",
        lambda m: [
            ("relay peak RSS, backlog drain", m["relay_peak_rss_mb"], "MiB", "<= 150",
             m["relay_peak_rss_mb"] <= 150),
            ("consumer peak RSS, backlog drain", m["consumer_peak_rss_mb"], "MiB", "<= 150",
             m["consumer_peak_rss_mb"] <= 150),
        ],
    )  # fmt: skip
    add(
        "scale",
        lambda s: [
            ("claim query, 1M retained vs empty", s["claim_ratio"], "x", "<= 1.2",
             s["claim_ratio"] <= 1.2 and s["retained"]["indexes"] == ["ix_outbox_pending"]),
            ("relay drain, 1M retained vs empty", s["drain_ratio"], "x", ">= 0.8",
             s["drain_ratio"] >= 0.8),
        ],
    )  # fmt: skip
    add(
        "growth",
        lambda g: [
            (f"claim, 1 due beside {g['claim']['waiting_rows']:,} waiting, vs empty",
             g["claim"]["claim_ratio"], "x", "<= 2",
             g["claim"]["claim_ratio"] <= 2 and g["claim"]["indexes"] == ["ix_outbox_pending"]),
            (f"retention run, {g['cleanup']['retained_rows']:,} retained, none due",
             g["cleanup"]["cleanup_run_ms"], "ms", "<= 5", g["cleanup"]["cleanup_run_ms"] <= 5),
            ("POST p99, three relays cleaning every second vs none",
             g["post_while_cleaning"]["p99_ratio"], "x", "<= 1.5",
             g["post_while_cleaning"]["p99_ratio"] <= 1.5),
        ],
    )  # fmt: skip
    add(
        "listing",
        lambda g: [
            (f"order list, first page, {g['orders']['large']:,} vs 1,000 orders",
             g["first_ratio"], "x", "<= 2", g["first_ratio"] <= 2),
            (f"order list, deep keyset page, {g['orders']['large']:,} vs 1,000",
             g["deep_keyset_ratio"], "x", "<= 2", g["deep_keyset_ratio"] <= 2),
            ("order list, the same deep page by skip (for comparison)",
             g["deep_skip_ratio"], "x", "", None),
        ],
    )  # fmt: skip
    add(
        "curve",
        lambda k: [
            (f"{kind} drain, {n} process{'es' if n != '1' else ''}", k[f"{kind}_msg_s"][n],
             "msg/s", "", None)
            for kind in ("relay", "consumer") for n in ("1", "2", "4")
        ],
    )  # fmt: skip
    add("keyed", _keyed_rows)
    return rows


def _keyed_rows(keyed: Mapping[str, Any]) -> list[Row]:
    """Keyed events: the keyed backlog drains at >= 0.8x the unordered one's rate; with 1%
    of keys poisoned, healthy keys' p99 stays within 1.2x of a poison-free run's."""
    drain, latency = keyed["drain"], keyed["healthy_latency"]
    rate = f"{latency['offered_per_s']:,.0f}/s"
    return [
        (f"drain, {drain['keys']:,} keys x 5 events, keyed (2 relays, 2 consumers)",
         drain["keyed_events_per_s"], "events/s", "", None),
        ("drain, the same events unordered", drain["unordered_events_per_s"], "events/s", "",
         None),
        ("keyed drain vs unordered", drain["keyed_vs_unordered"], "x", ">= 0.8",
         drain["keyed_vs_unordered"] >= 0.8),
        (f"healthy keys' e2e p99 at {rate}, no key poisoned", latency["poison_free_p99_ms"],
         "ms", "", None),
        (f"healthy keys' e2e p99 at {rate}, 1% of keys poisoned", latency["poisoned_p99_ms"],
         "ms", "", None),
        ("healthy keys' p99, 1% of keys poisoned vs none", latency["p99_ratio"], "x", "<= 1.2",
         latency["p99_ratio"] <= 1.2),
    ]  # fmt: skip


def _cli_rows(cli: Mapping[str, Any]) -> list[Row]:
    """The command line's wall times against their targets."""
    targets = cli["targets"]
    return [
        (f"python -m app {label}: median of {cli['runs']} runs", cli[key], "s",
         f"<= {targets[key]}", cli[key] <= targets[key])
        for label, key in (("--help", "help_s"), ("outbox status (SQLite)", "outbox_status_s"))
    ]  # fmt: skip


def _latency_rows(latency: Mapping[str, Any]) -> list[Row]:
    """Issue 19's targets for this machine: idle wake-up p50 within 2 ms of the sum of its
    floors (measured in the same run); at 250 orders/s offered p50 <= 15, p99 <= 50 ms; the
    highest flat rate >= 1,000 orders/s."""
    idle = latency["idle_wakeup"]
    floors = latency.get("idle_floors", {})
    floor_sum = None
    if floors:
        floor_sum = round(
            floors["quorum_queue_publish_to_delivery"]["p50_ms"]
            + floors["one_message_inbox_transaction"]["p50_ms"],
            2,
        )
    rows: list[Row] = [
        ("idle wake-up p50", idle["p50_ms"], "ms",
         "" if floor_sum is None else f"<= {floor_sum + 2:.2f}",
         None if floor_sum is None else idle["p50_ms"] <= floor_sum + 2),
        ("idle wake-up p99", idle["p99_ms"], "ms", "", None),
    ]  # fmt: skip
    if floors:
        broker = floors["quorum_queue_publish_to_delivery"]["p50_ms"]
        inbox = floors["one_message_inbox_transaction"]["p50_ms"]
        rows += [
            ("  of which floor: quorum queue publish -> delivery p50", broker, "ms", "", None),
            ("  of which floor: one-message inbox transaction p50", inbox, "ms", "", None),
        ]
    for rate, run in latency["open_loop"].items():
        target = rate == "250"
        each = run.get("each_run_p50_ms")
        pooled_note = f", {len(each)} runs pooled: p50s {each}" if each else ""
        rows.append(
            (
                f"e2e at {float(rate):,.0f}/s offered: p50 / p99 (p95 {run['p95_ms']}, "
                f"max {run['max_ms']}{pooled_note})",
                run["p50_ms"],
                f"/ {run['p99_ms']} ms",
                "<= 15 / <= 50" if target else "",
                (run["p50_ms"] <= 15 and run["p99_ms"] <= 50) if target else None,
            )
        )
    flat = latency["highest_flat_rate_per_s"]
    rows.append(("highest rate with a flat backlog", flat, "orders/s", ">= 1,000", flat >= 1000))
    return rows


def print_summary(results: Mapping[str, Any]) -> None:
    print(f"{'measure':<62} {'figure':>10} {'':<14} {'target':<13} met")
    for label, figure, unit, target, met in _rows(results):
        verdict = "" if met is None else ("yes" if met else "NO")
        shown = f"{figure:,.2f}" if isinstance(figure, float) and figure < 100 else f"{figure:,.0f}"
        print(f"{label:<62} {shown:>10} {unit:<14} {target:<13} {verdict}")
    calibrations = {
        part: results[part]["cpu_calibration_ms"]
        for part in (
            "publish",
            "consume",
            "write",
            "latency",
            "memory",
            "scale",
            "growth",
            "listing",
            "cli",
            "keyed",
        )
        if part in results and "cpu_calibration_ms" in results[part]
    }
    if calibrations:
        shown = ", ".join(f"{part} {ms}" for part, ms in calibrations.items())
        print(f"CPU calibration before each part (ms for a fixed loop; lower = faster): {shown}")
