"""The operators' commands' tables (``--json`` prints the same data as JSON). Times are
printed as the JSON has them: UTC, to the millisecond, ending in Z."""

from __future__ import annotations

from typing import Any

from app.core.logs import escape_controls


def _cell(value: Any, width: int = 10) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if isinstance(value, float):
        return f"{value:>{width}.1f}"
    return f"{value:>{width}}"


def print_status(statuses: dict[str, dict[str, Any]], *, embedded: bool = False) -> None:
    """One line per service: its outbox's figures and its dead-letter queue's.
    ``embedded``: BROKER_URL names no RabbitMQ (the dead letters live inside ``dev``)."""
    columns = (
        "pending",
        "oldest(s)",
        "unroutable",
        "failed",
        "last hour",
        "dead",
        "dead age",
        "unanswered",
        "parked",
        "key gaps",
    )
    keys = ("pending", "oldest_pending_age_seconds", "unroutable", "failed",
            "published_last_hour", "dead_letters", "oldest_dead_letter_age_seconds",
            "unanswered_orders", "parked", "key_gaps")  # fmt: skip
    print(f"{'service':<10} " + " ".join(f"{column:>10}" for column in columns))
    for name, status in statuses.items():
        print(f"{name:<10} " + " ".join(_cell(status[key]) for key in keys))
    stopped = {name: s["dead_lettered_keys"] for name, s in statuses.items()
               if s.get("dead_lettered_keys")}  # fmt: skip
    for name, count in stopped.items():
        print(f"({name}: {count} key(s) stop at a dead letter: `dlq list {name}`, then "
              f"`dlq replay {name} --key K` or `dlq purge {name} --key K --yes`)")  # fmt: skip
    if embedded:
        print("(dead letters -: the embedded broker's live inside `python -m app dev`: "
              "while it runs, GET /admin/api/SERVICE/dlq on its port)")  # fmt: skip
    elif any(status["dead_letters"] is None for status in statuses.values()):
        print("(dead letters -: not counted: RabbitMQ did not answer, or another reader "
              "held the dead-letter queue; logged above)")  # fmt: skip


def print_failed(data: dict[str, list[dict[str, Any]]]) -> None:
    """Failed rows: id, event type, attempts, failed at, last error."""
    rows = data["failed"]
    if not rows:
        print("no failed rows")
        return
    print(f"{'id':<36}  {'event type':<24} {'attempts':>8}  {'failed at':<24}  last error")
    for row in rows:  # the last error may quote a broker's or a database's words
        print(escape_controls(
            f"{row['id']:<36}  {row['event_type'][:24]:<24} {row['attempts']:>8}  "
            f"{row['failed_at']:<24}  {(row['last_error'] or '')[:120]}"
        ))  # fmt: skip


def print_events(data: dict[str, list[dict[str, Any]]]) -> None:
    """An order's outbox rows: message id, event type, written, published or failed."""
    rows = data["events"]
    if not rows:
        print("no outbox rows for this order (or older than the outbox retention)")
        return
    print(f"{'message id':<36}  {'event type':<24} {'written':<24}  fate")
    for row in rows:
        if row["published_at"]:
            fate = f"published {row['published_at']}"
        elif row["failed_at"]:
            fate = f"failed {row['failed_at']}: {(row['last_error'] or '')[:80]}"
        else:
            fate = f"pending ({row['attempts']} attempts)"
            if row["last_error"]:  # why it waits: nacked, unroutable, refused
                fate += f": {row['last_error'][:80]}"
        print(escape_controls(
            f"{row['id']:<36}  {row['event_type'][:24]:<24} {row['created_at']:<24}  {fate}"
        ))  # fmt: skip


def print_dead_letters(data: dict[str, Any]) -> None:
    """Dead letters, then how many per reason; their message ids, types and reasons come
    from whoever published them, so control characters are written escaped."""
    letters = data["dead_letters"]
    if not letters:
        print("no dead letters")
        return
    print(f"{'message id':<36}  {'type':<24} {'deaths':>6}  {'first death':<24}  reason")
    for letter in letters:
        print(escape_controls(
            f"{(letter['message_id'] or '-')[:36]:<36}  {(letter['event_type'] or '-')[:24]:<24} "
            f"{letter['deaths']:>6}  {letter['first_death_at'] or '-':<24}  "
            f"{letter['reason'][:120]}"
            + (f" [key {letter['message_key'][:60]}"
               + (f" #{letter['key_sequence']}]" if letter.get("key_sequence") else "]")
               if letter.get("message_key") else "")
        ))  # fmt: skip
    print("\nby reason:")
    for reason, count in data["summary"].items():
        print(escape_controls(f"{count:>8}  {reason[:150]}"))


def print_inbox(entry: dict[str, Any]) -> None:
    """One inbox row."""
    print(f"{entry['consumer']} processed {entry['message_id']} at {entry['processed_at']}: "
          f"{entry['outcome']}")  # fmt: skip
