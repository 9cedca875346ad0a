"""Dead letters as an operator sees them, and what a replay sends, for any broker.

A dead letter reaches ``S.events.dlq`` two ways: the consumer put it there with its reason
(``x-poison-reason``: undecodable, invalid, delivery limit, …), or RabbitMQ did (an
operator's ``delivery-limit`` policy, a rejection), saying why in ``x-death`` /
``x-first-death-reason`` (RabbitMQ's dead-lettering guide,
https://www.rabbitmq.com/docs/dlx). A replay publishes it again to the queue of the
service whose dead letter it is, and only there (through the default exchange: another
subscriber of the event already had its copy), with its ``message_id``, without the death
headers, with ``x-replay-count`` one higher; the inbox makes a replay of something already
applied a no-op. Headers are data any publisher may have set: whatever they hold, a dead
letter is still listed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudcrm_outbox.errors import BrokerUnavailableError
from cloudcrm_outbox.events import (
    KEY_HEADER,
    PREVIOUS_HEADER,
    SEQUENCE_HEADER,
    key_sequence_of,
    readable_previous,
)
from cloudcrm_outbox.times import as_utc, utc_text

DLQ_LIMIT = 10_000  # dead letters one operation looks at, at most
POISON_REASON = "x-poison-reason"
NO_MESSAGE_ID = "no message id: a second copy could not be recognised by the inbox"
REPLAY_COUNT = "x-replay-count"
# The publisher's AMQP user_id, kept by the consumer when it dead-letters a copy itself
# (it cannot set another account's user_id on the copy).
ORIGINAL_USER_ID = "x-original-user-id"
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
    }
)


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue.

    ``routing_key``: the one it was published with (its event name; a replay sends it to
    the consuming service's own queue, not through the exchange); ``reason``:
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
    # Who first published it (the AMQP user_id); a replay publishes it as them again, so
    # that the consumer's publisher check still passes (RabbitMQ lets only accounts with
    # the ``impersonator`` tag set another user's id).
    user_id: str | None = None

    @property
    def message_key(self) -> str | None:
        """Its message key (``x-message-key``), when it is a keyed event's."""
        key = self.headers.get(KEY_HEADER)
        return key if isinstance(key, str) else None

    @property
    def key_sequence(self) -> int | None:
        """Its place in its key's order (``x-key-sequence``), when it has a readable one."""
        return key_sequence_of(self.headers.get(SEQUENCE_HEADER))

    @property
    def key_previous(self) -> dict[str, int] | None:
        """Its ``x-key-previous`` table (per event type, the key's last sequence before
        it), when it has a readable one."""
        value, sequence = self.headers.get(PREVIOUS_HEADER), self.key_sequence
        if sequence is None or not readable_previous(value, sequence):
            return None
        return {str(name): place for name, place in value.items()}

    def as_dict(self) -> dict[str, Any]:
        """The operator's view as JSON-ready values (no body or headers)."""
        return {
            "message_id": self.message_id,
            "message_key": self.message_key,
            "key_sequence": self.key_sequence,
            "event_type": self.event_type,
            "routing_key": self.routing_key,
            "reason": self.reason,
            "deaths": self.deaths,
            "replays": self.replays,
            "first_death_at": utc_text(self.first_death_at) if self.first_death_at else None,
        }

    def replay_headers(self) -> dict[str, Any]:
        """The headers a replay carries: the message's own, the replay counted."""
        kept = {k: v for k, v in self.headers.items() if k not in _DEATH_HEADERS}
        kept[REPLAY_COUNT] = self.replays + 1
        if self.first_death_at is not None:
            kept[FIRST_DEAD_AT] = utc_text(self.first_death_at)
        return kept


@dataclass(frozen=True)
class DeadLetterSelection:
    """Which dead letters an operation takes: those whose ``message_id`` is in
    ``message_ids`` (None: all), whose reason contains ``reason`` and whose message key
    (the ``x-message-key`` header) is ``message_key``, when given."""

    message_ids: Collection[str] | None = None
    reason: str | None = None
    message_key: str | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.message_ids is not None and letter.message_id not in self.message_ids:
            return False
        if self.message_key is not None and letter.message_key != self.message_key:
            return False
        return self.reason is None or self.reason in letter.reason


class DeadLetterOperationError(BrokerUnavailableError):
    """The broker failed in the middle of a replay or purge: ``done`` holds the dead letters
    already replayed or removed (the others are still in the queue)."""

    def __init__(self, done: list[DeadLetter], cause: BaseException) -> None:
        super().__init__(f"the broker failed after {len(done)} dead letter(s): {cause!r:.300}")
        self.done = done


@dataclass(frozen=True)
class DeadLetterSummary:
    """A dead-letter queue at a glance: how many, and the oldest one's age (seconds; None
    when empty, or when the broker cannot tell without delivering them)."""

    depth: int
    oldest_age_seconds: float | None


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did: the dead letters republished (and removed from the queue), and
    the others it selected, each with why it was left in the queue."""

    replayed: list[DeadLetter]
    left: list[tuple[DeadLetter, str]]


def check_limit(limit: int) -> int:
    """``limit`` if it is a count of dead letters (ValueError otherwise)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be a whole number >= 0: {limit!r}")
    return limit


def in_death_order(letters: list[DeadLetter]) -> list[DeadLetter]:
    """Oldest death first (unknown last): a quorum queue does not keep the order of the
    messages a listing returned to it."""
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(letters, key=lambda letter: letter.first_death_at or far)


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
    user_id: str | None = None,
) -> DeadLetter:
    """Read a dead-lettered message's headers (RabbitMQ's or the consumer's)."""
    headers = dict(headers) if isinstance(headers, Mapping) else {}
    deaths = [d for d in _list(headers.get("x-death")) if isinstance(d, Mapping)]
    reason = headers.get(POISON_REASON) or headers.get("x-first-death-reason")
    if reason is None and deaths:
        reason = deaths[-1].get("reason")
    original = headers.get("x-original-routing-key")
    if not original and deaths:
        keys = _list(deaths[-1].get("routing-keys"))
        original = keys[0] if keys else None
    replays = _int(headers.get(REPLAY_COUNT))
    died = sum(_int(d.get("count", 1)) for d in deaths) or 1
    return DeadLetter(
        message_id=message_id,
        event_type=event_type,
        routing_key=(_text(original) or event_type or routing_key or "")[:255],
        reason=(_text(reason) or "unknown")[:2000],
        deaths=died + replays,
        replays=replays,
        first_death_at=_first_death(headers, deaths),
        body=body,
        headers=headers,
        content_type=content_type,
        correlation_id=correlation_id,
        timestamp=timestamp,
        user_id=user_id or _text(headers.get(ORIGINAL_USER_ID)) or None,
    )


def dead_letter_from(message: Any) -> DeadLetter:
    """``dead_letter_of`` a delivered message or a stored envelope: anything with AMQP's
    ``body``, ``headers``, ``message_id``, ``type``, ``routing_key``, ``content_type``,
    ``correlation_id`` and ``timestamp``."""
    return dead_letter_of(
        body=message.body,
        headers=message.headers,
        message_id=message.message_id,
        event_type=message.type,
        routing_key=message.routing_key,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        timestamp=message.timestamp,
        user_id=getattr(message, "user_id", None),
    )


def _first_death(headers: Mapping[str, Any], deaths: list[Mapping[str, Any]]) -> datetime | None:
    stamped = headers.get(FIRST_DEAD_AT)
    if isinstance(stamped, str):
        try:
            return as_utc(datetime.fromisoformat(stamped))
        except ValueError:
            pass
    times = [as_utc(d["time"]) for d in deaths if isinstance(d.get("time"), datetime)]
    return min(times) if times else None


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def now_iso() -> str:
    """The time a message is first dead-lettered, as ``FIRST_DEAD_AT`` holds it."""
    return utc_text(datetime.now(UTC))


def _int(value: Any) -> int:
    try:
        return min(max(int(value), 0), 1 << 31)
    except (TypeError, ValueError, OverflowError):
        return 0


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return None if value is None else str(value)
