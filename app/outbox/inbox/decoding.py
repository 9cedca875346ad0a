"""Turning a delivery into an event, or into the reason it is poison.

A consumer validates with the same event model (same limits) the publisher used, as a
tolerant reader: fields it does not know are ignored. The ``event_version`` header picks
how the body is read; a version the subscription cannot read is poison. Every rejection
names its reason; the consumer dead-letters the message with it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from cloudcrm_outbox.events import (
    KEY_HEADER,
    MAX_BODY_BYTES,
    PREVIOUS_HEADER,
    SEQUENCE_HEADER,
    VERSION_HEADER,
    IntegrationEvent,
    key_sequence_of,
    predecessor_of,
    readable_previous,
)
from cloudcrm_outbox.names import UNREADABLE_HEADERS
from cloudcrm_outbox.storage.tables import MAX_KEY_LENGTH
from cloudcrm_outbox.subscriptions import Subscription, Upcaster

__all__ = [
    "MAX_BODY_BYTES",
    "UNREADABLE_HEADERS",
    "Decoded",
    "MessageKey",
    "Poison",
    "decode",
    "message_key",
]

# The writer sends the version as a decimal string; another client may send an AMQP int.
# No more digits than an AMQP long long holds, so a huge string never reaches int().
_DECIMAL = re.compile(r"-?[0-9]{1,18}")


@dataclass(frozen=True)
class Decoded:
    """A message read as its event: ``key`` and ``sequence`` are its message key and place
    in the key's order (1, 2, …) when it is keyed, both None when not; ``predecessor``:
    the sequence of the key's message this consumer must have applied first (0: none)."""

    message_id: uuid.UUID
    event: IntegrationEvent
    traceparent: str | None = None  # the W3C trace context the message came with
    key: str | None = None
    sequence: int | None = None
    predecessor: int | None = None


@dataclass(frozen=True)
class MessageKey:
    """A keyed message's key and sequence, read from its headers, and ``previous``: per
    event type, the key's last sequence of that type before it (None: not sent, as by a
    producer before the per-type map; then every earlier sequence is waited for)."""

    key: str
    sequence: int
    previous: Mapping[str, int] | None = None

    def predecessor(self, event_names: Iterable[str]) -> int:
        """The sequence a consumer of ``event_names`` applies just before this one: the
        latest earlier message of one of its types (0: none; ``events.predecessor_of``)."""
        return predecessor_of(self.previous, self.sequence, event_names)


def message_key(headers: Mapping[str, Any] | None) -> MessageKey | Poison | None:
    """The ``x-message-key`` and ``x-key-sequence`` headers read: None when the message
    is unkeyed (neither is set), Poison saying why when they cannot be read (one without
    the other; a key that is not 1 to 200 characters of text; a sequence that is not an
    integer ≥ 1, as an AMQP integer or a decimal string)."""
    if not headers or (KEY_HEADER not in headers and SEQUENCE_HEADER not in headers):
        return None
    key, sequence = headers.get(KEY_HEADER), headers.get(SEQUENCE_HEADER)
    if key is None or sequence is None:
        missing = KEY_HEADER if key is None else SEQUENCE_HEADER
        return Poison(f"invalid message key headers: {missing} is missing")
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= MAX_KEY_LENGTH
        or any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in key)
    ):
        return Poison(
            f"invalid message key headers: {KEY_HEADER} {repr(key)[:100]} is not "
            f"1 to {MAX_KEY_LENGTH} characters of text without control characters"
        )
    place = key_sequence_of(sequence)
    if place is None:
        return Poison(
            f"invalid message key headers: {SEQUENCE_HEADER} {repr(sequence)[:100]} "
            "is not an integer >= 1"
        )
    previous = headers.get(PREVIOUS_HEADER)
    if previous is None:
        return MessageKey(key, place)
    if not readable_previous(previous, place):
        return Poison(
            f"invalid message key headers: {PREVIOUS_HEADER} {repr(previous)[:100]} is not "
            f"a table of sequences below {place}"
        )
    return MessageKey(key, place, {str(name): value for name, value in previous.items()})


@dataclass(frozen=True)
class Poison:
    reason: str


def decode(
    *,
    message_id: str | None,
    event_type: str | None,
    content_type: str | None,
    body: bytes,
    subscriptions: Mapping[str, Subscription],
    headers: Mapping[str, Any] | None = None,
    user_id: str | None = None,
    publishers: Mapping[str, str] | None = None,
) -> Decoded | Poison:
    """Validate one delivery's properties, version and body against its event contract.

    ``subscriptions`` is keyed by event name (the AMQP ``type``); ``headers`` are the AMQP
    headers, whose ``event_version`` (an int or a decimal string; absent = the current
    version) selects the current model or one of the subscription's upcasters. Returns
    ``Decoded`` or ``Poison`` with a reason of at most ~700 characters; a bad delivery never
    raises. A version with no way to read it gives ``unsupported version N of Event (this
    consumer reads …)``. ``publishers`` maps an event name to the only broker account
    (``user_id``, which RabbitMQ validates against the publishing connection's user) it may
    come from; any other gives ``unexpected publisher: …``.
    """
    if len(body) > MAX_BODY_BYTES:
        return Poison(f"body of {len(body)} bytes is over the {MAX_BODY_BYTES}-byte limit")
    if headers and UNREADABLE_HEADERS in headers:
        why = str(headers[UNREADABLE_HEADERS])[:200]
        return Poison(f"headers unreadable by the consumer's AMQP client: {why}")
    if not message_id:
        return Poison("missing message_id (the inbox key)")
    try:
        parsed_id = uuid.UUID(message_id)
    except ValueError:
        return Poison(f"message_id {message_id[:100]!r} is not a UUID")
    if not content_type:  # said as missing, not as the type 'None'
        return Poison("content type missing (must be application/json)")
    if content_type != "application/json":
        return Poison(f"content type {str(content_type)[:100]!r} is not application/json")
    if not event_type:
        return Poison("no type: the message has no type property (the event's name)")
    subscription = subscriptions.get(event_type)
    if subscription is None:
        return Poison(f"unknown event type {str(event_type)[:100]!r}")
    expected = (publishers or {}).get(subscription.name)
    if expected is not None and user_id != expected:
        return Poison(
            f"unexpected publisher: {subscription.name} from user_id {str(user_id)[:100]!r}, "
            f"not {expected!r}"
        )
    version = _version(headers, subscription)
    if isinstance(version, Poison):
        return version
    keyed = message_key(headers)
    if isinstance(keyed, Poison):
        return keyed
    current = subscription.event.event_version
    if version != current:
        upcaster = subscription.upcasters.get(version)
        if upcaster is None:
            readable = ", ".join(str(v) for v in sorted({current, *subscription.upcasters}))
            return Poison(
                f"unsupported version {version} of {subscription.name} "
                f"(this consumer reads {readable})"
            )
        upcast = _upcast(body, version, upcaster, subscription)
        if isinstance(upcast, Poison):
            return upcast
        body = upcast
    try:
        event = subscription.event.from_body(body, parsed_id)
    except ValidationError as exc:
        return Poison(f"invalid {subscription.name}: {_summary(exc)}")
    traceparent = (headers or {}).get("traceparent")
    return Decoded(
        parsed_id,
        event,
        traceparent if isinstance(traceparent, str) else None,
        keyed.key if keyed else None,
        keyed.sequence if keyed else None,
        keyed.predecessor(subscriptions) if keyed else None,
    )


def _version(headers: Mapping[str, Any] | None, subscription: Subscription) -> int | Poison:
    if headers is None or VERSION_HEADER not in headers:
        # Every publisher of this project sends it; another client may not, and then the
        # body can only be read as the version this consumer knows.
        return subscription.event.event_version
    value = headers[VERSION_HEADER]
    # bool is an int subclass, and True is not a version.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return int(value)
    return Poison(f"invalid {VERSION_HEADER} {repr(value)[:100]} (an integer is expected)")


def _upcast(
    body: bytes, version: int, upcaster: Upcaster, subscription: Subscription
) -> bytes | Poison:
    where = f"{subscription.name} version {version}"
    try:
        old = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        return Poison(f"invalid {where}: not JSON ({str(exc)[:200]})")
    except RecursionError:  # deeper than Python's reader recurses: 64 KiB of "[" reach it
        return Poison(f"invalid {where}: nested too deeply")
    if not isinstance(old, dict):
        return Poison(f"invalid {where}: the body is not a JSON object")
    try:
        # Back to JSON, so the current model validates in JSON mode exactly as it does a
        # current-version body (python mode differs for strict non-JSON types).
        return json.dumps(upcaster(old)).encode()
    except Exception as exc:
        # An upcaster is a pure function of the body: what it raises on this body it raises
        # on every redelivery, so dead-letter now (replayable once it is fixed) rather than
        # spend the delivery limit, or let one message stop the consumer.
        return Poison(f"invalid {where}: its upcaster failed ({repr(exc)[:200]})")


def _summary(error: ValidationError) -> str:
    # Location and reason only: the offending input may be huge or binary.
    parts = [
        f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
        for item in error.errors()[:5]
    ]
    return "; ".join(parts)[:500]
