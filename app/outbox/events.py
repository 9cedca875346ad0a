"""The base of every event contract: frozen, past-tense, versioned, carrying its id."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any, ClassVar, Self, TypeGuard

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# The message header naming the contract version of its body (the writer sets it to
# ``str(event_version)`` on every outbox row; the relay sends row headers as AMQP headers).
VERSION_HEADER = "event_version"
# The headers of a keyed event's message: its key, and its place in the key's order
# (1, 2, …; the order the writing transactions committed in).
KEY_HEADER = "x-message-key"
SEQUENCE_HEADER = "x-key-sequence"
# And, per event type of the key, the last sequence of that type before this message
# ({"OrderPlaced": 1}): a consumer of some of the types waits only for its own.
PREVIOUS_HEADER = "x-key-previous"
_SEQUENCE_TEXT = re.compile(r"[0-9]{1,18}")  # ASCII digits (isdecimal takes other scripts')


def key_sequence_of(value: object) -> int | None:
    """An ``x-key-sequence`` header's value as a sequence (an integer >= 1, sent as an AMQP
    integer or as a decimal string), None when it is not one."""
    if isinstance(value, str) and _SEQUENCE_TEXT.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return None


def readable_previous(previous: object, sequence: int) -> TypeGuard[Mapping[str, int]]:
    """Whether ``previous`` is an ``x-key-previous`` table for ``sequence``: a mapping of
    event types to integers between 1 and ``sequence`` - 1."""
    return isinstance(previous, Mapping) and all(
        isinstance(place, int) and not isinstance(place, bool) and 0 < place < sequence
        for place in previous.values()
    )


def predecessor_of(
    previous: Mapping[str, object] | None, sequence: int, event_names: Iterable[str]
) -> int:
    """The sequence a consumer of ``event_names`` applies just before ``sequence`` of a
    key: the latest of ``previous`` (``x-key-previous``: per event type, the key's last
    sequence before this one) among its types, 0 for none. When ``previous`` is missing or
    not ``readable_previous``, every earlier sequence is waited for: ``sequence - 1``."""
    if previous is None or not readable_previous(previous, sequence):
        return sequence - 1
    return max((previous.get(name, 0) for name in event_names), default=0)


# The largest body a message may have (64 KiB): the publisher refuses a bigger event, the
# consumer dead-letters one.
MAX_BODY_BYTES = 64 * 1024

# The id of the message being read, while from_body validates its body: the event takes it
# instead of a fresh uuid4 (os.urandom, a system call: 8% of the consumer's CPU when every
# delivery made a random id only to replace it).
_READING: ContextVar[uuid.UUID | None] = ContextVar("reading_event_id", default=None)


def _new_event_id() -> uuid.UUID:
    return _READING.get() or uuid.uuid4()


class IntegrationEvent(BaseModel):
    """An event that crosses a service boundary.

    The body on the wire holds the declared fields in camelCase. The event's id is not in
    the body: it travels as the AMQP ``message_id`` and is the outbox row's primary key and
    the inbox's deduplication key, so the three can never disagree. ``event_version`` is
    bumped only by a breaking change (docs/use-the-library.md, "Evolving an event contract").
    """

    model_config = ConfigDict(
        frozen=True,
        # Building an event in code: an unknown keyword is a publisher's typo, so it fails at
        # once instead of the field vanishing from the message. Reading is tolerant: from_body.
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=False,
    )

    # Subclasses set these; the name is the routing key and the AMQP ``type`` property.
    event_name: ClassVar[str]
    event_version: ClassVar[int] = 1
    # The field whose value is the event's message key (the aggregate it is about, e.g.
    # "order_id"), when ``add_event`` and ``write_events`` are given none: events of one
    # key are applied in the order their transactions committed. None: unkeyed.
    key_field: ClassVar[str | None] = None

    event_id: uuid.UUID = Field(default_factory=_new_event_id, exclude=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse, when the class is defined, a ``key_field`` naming no field of it
        (TypeError): a typo would otherwise fail only at the first ``add_event``."""
        super().__pydantic_init_subclass__(**kwargs)
        if cls.key_field is not None and cls.key_field not in cls.model_fields:
            raise TypeError(
                f"{cls.__name__}.key_field names no field of it: {cls.key_field!r} "
                f"(its fields: {', '.join(sorted(cls.model_fields))})"
            )

    def body(self) -> dict[str, Any]:
        """The JSON-ready message body (camelCase, without the id)."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_body(cls, body: bytes | str, event_id: uuid.UUID | None = None) -> Self:
        """Read a message body (a JSON object, camelCase keys) of this event's version,
        as the event ``event_id`` (the AMQP message_id, whatever the body says; when None,
        the body's ``eventId`` if it has one, else a new id).

        The tolerant reader: body fields this contract does not declare are ignored, so a
        newer publisher may add an optional field without its messages being dead-lettered.
        Declared fields keep every check (types, limits, strict ints, required).
        Raises ``pydantic.ValidationError`` for invalid JSON, a non-object or a failed check.
        """
        reading = _READING.set(event_id)
        try:
            # A per-call override rather than a second config (pydantic >= 2.12): the same
            # model, validated in JSON mode exactly as before, only unknown keys dropped.
            event = cls.model_validate_json(body, extra="ignore")
        finally:
            _READING.reset(reading)
        if event_id is not None and event.event_id != event_id:
            # The body named an id of its own ("eventId"): the message's id wins.
            event = event.model_copy(update={"event_id": event_id})
        return event
