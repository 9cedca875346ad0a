"""The base of every event contract: frozen, past-tense, versioned, carrying its id."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class IntegrationEvent(BaseModel):
    """An event that crosses a service boundary.

    The body on the wire holds the declared fields in camelCase. The event's id is not in
    the body: it travels as the AMQP ``message_id`` and is the outbox row's primary key and
    the inbox's deduplication key, so the three can never disagree.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",  # an unknown field is a contract violation, not noise to ignore
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=False,
    )

    # Subclasses set these; the name is the routing key and the AMQP ``type`` property.
    event_name: ClassVar[str]
    event_version: ClassVar[int] = 1

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, exclude=True)

    def body(self) -> dict[str, Any]:
        """The JSON-ready message body (camelCase, without the id)."""
        return self.model_dump(mode="json", by_alias=True)
