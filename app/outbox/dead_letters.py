"""Dead letters as an operator sees them, and what a replay sends, for any broker.

A dead letter reaches ``S.events.dlq`` two ways: the consumer put it there with its reason
(``x-poison-reason``: undecodable, invalid, delivery limit, …), or RabbitMQ did (an
operator's ``delivery-limit`` policy, a rejection), saying why in ``x-death`` /
``x-first-death-reason`` (RabbitMQ's dead-lettering guide,
https://www.rabbitmq.com/docs/dlx). A replay publishes it again to the exchange under its
original routing key and ``message_id``, without the death headers, with
``x-replay-count`` one higher; consumers' inboxes make a replay of something already
applied a no-op.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DLQ_LIMIT = 10_000  # dead letters one operation looks at, at most
POISON_REASON = "x-poison-reason"
REPLAY_COUNT = "x-replay-count"
FIRST_DEAD_AT = "x-first-dead-lettered-at"  # ISO 8601, UTC; set once, kept across replays
# Headers that describe a death or a delivery, not the message: a replay drops them.
_DEATH_HEADERS = frozenset(
    {
        "x-death",
        "x-first-death-reason",
        "x-first-death-queue",
        "x-first-death-exchange",
        "x-last-death-reason",
        "x-last-death-queue",
        "x-last-death-exchange",
        "x-delivery-count",
        POISON_REASON,
        "x-poison-queue",
        "x-original-routing-key",
    }
)


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue.

    ``routing_key``: where a replay publishes it (its original event name); ``reason``:
    the consumer's ``x-poison-reason`` or the broker's death reason; ``deaths``: times it
    was dead-lettered, replays included; ``first_death_at``: UTC, None when unknown.
    """

    message_id: str | None
    event_type: str | None
    routing_key: str
    reason: str
    deaths: int
    replays: int
    first_death_at: datetime | None
    body: bytes
    headers: Mapping[str, Any]
    content_type: str | None = None
    correlation_id: str | None = None
    timestamp: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """The operator's view as JSON-ready values (no body or headers)."""
        return {
            "message_id": self.message_id,
            "event_type": self.event_type,
            "routing_key": self.routing_key,
            "reason": self.reason,
            "deaths": self.deaths,
            "replays": self.replays,
            "first_death_at": self.first_death_at.isoformat() if self.first_death_at else None,
        }

    def replay_headers(self) -> dict[str, Any]:
        """The headers a replay carries: the message's own, the replay counted."""
        kept = {k: v for k, v in self.headers.items() if k not in _DEATH_HEADERS}
        kept[REPLAY_COUNT] = self.replays + 1
        if self.first_death_at is not None:
            kept[FIRST_DEAD_AT] = self.first_death_at.isoformat()
        return kept


@dataclass(frozen=True)
class DeadLetterSelection:
    """Which dead letters an operation takes: those whose ``message_id`` is in
    ``message_ids`` (None: all), and whose reason contains ``reason`` when given."""

    message_ids: Collection[str] | None = None
    reason: str | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.message_ids is not None and letter.message_id not in self.message_ids:
            return False
        return self.reason is None or self.reason in letter.reason


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did: the dead letters republished (and removed from the queue), and,
    by message id, why others it selected were left in the queue."""

    replayed: list[DeadLetter]
    left: dict[str, str]


def dead_letter_of(
    *,
    body: bytes,
    headers: Mapping[str, Any] | None,
    message_id: str | None,
    event_type: str | None,
    routing_key: str | None,
    content_type: str | None = None,
    correlation_id: str | None = None,
    timestamp: datetime | None = None,
) -> DeadLetter:
    """Read a dead-lettered message's headers (RabbitMQ's or the consumer's)."""
    headers = dict(headers or {})
    deaths = [d for d in headers.get("x-death") or [] if isinstance(d, Mapping)]
    reason = headers.get(POISON_REASON) or headers.get("x-first-death-reason")
    if reason is None and deaths:
        reason = deaths[-1].get("reason")
    original = headers.get("x-original-routing-key")
    if not original and deaths:
        keys = deaths[-1].get("routing-keys") or []
        original = keys[0] if keys else None
    replays = _int(headers.get(REPLAY_COUNT))
    died = sum(_int(d.get("count", 1)) for d in deaths) or 1
    return DeadLetter(
        message_id=message_id,
        event_type=event_type,
        routing_key=_text(original) or event_type or routing_key or "",
        reason=_text(reason) or "unknown",
        deaths=died + replays,
        replays=replays,
        first_death_at=_first_death(headers, deaths),
        body=body,
        headers=headers,
        content_type=content_type,
        correlation_id=correlation_id,
        timestamp=timestamp,
    )


def _first_death(headers: Mapping[str, Any], deaths: list[Mapping[str, Any]]) -> datetime | None:
    stamped = headers.get(FIRST_DEAD_AT)
    if isinstance(stamped, str):
        try:
            return datetime.fromisoformat(stamped)
        except ValueError:
            pass
    times = [d["time"] for d in deaths if isinstance(d.get("time"), datetime)]
    if not times:
        return None
    oldest: datetime = min(times)
    return oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)


def now_iso() -> str:
    """The time a message is first dead-lettered, as ``FIRST_DEAD_AT`` holds it."""
    return datetime.now(UTC).isoformat()


def _int(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return None if value is None else str(value)
