"""The names the outbox gives what it makes: the exchange, the queues, the tables, the
PostgreSQL notification channel. Today's values are the defaults; a service sharing a
broker or a database with others may choose its own, once, in one ``MessagingNames``
handed to every part (broker, relay, consumer, writer, migrations).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

# PostgreSQL identifiers (unquoted, so that no quoting rule differs between the DDL, the
# trigger's pg_notify and LISTEN): lower case, at most NAMEDATALEN - 1 = 63 bytes, and
# short enough that the derived index names ("ix_<table>_next_attempt_at") fit too.
_SQL_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")
# AMQP 0-9-1 names are short strings (at most 255 bytes); RabbitMQ reserves "amq." for
# its own entities (a declaration of one is refused with 403 ACCESS_REFUSED).
_AMQP_NAME_MAX = 255 - len(".events.dlq")
SERVICE_PLACEHOLDER = "{service}"
# Names the SQL would read as keywords (PostgreSQL's reserved key words, SQL Key Words
# appendix, https://www.postgresql.org/docs/current/sql-keywords-appendix.html), so the
# unquoted DDL, trigger, LISTEN and array inserts would fail; SQLite reserves "sqlite_".
_SQL_RESERVED = frozenset(
    """all analyse analyze and any array as asc asymmetric authorization binary both case
    cast check collate collation column concurrently constraint create cross
    current_catalog current_date current_role current_schema current_time
    current_timestamp current_user default deferrable desc distinct do else end except
    false fetch for foreign freeze from full grant group having ilike in initially inner
    intersect into is isnull join lateral leading left like limit localtime localtimestamp
    natural not notnull null offset on only or order outer overlaps placing primary
    references returning right select session_user similar some symmetric system_user
    table tablesample then to trailing true union unique user using variadic verbose when
    where window with""".split()  # noqa: SIM905 - a list of words reads as one
)

# The one header of a message whose header table the broker client could not read (saying
# why; ``brokers.rabbitmq.reading``): its headers are lost, so it is poison.
UNREADABLE_HEADERS = "x-unreadable-headers"


@dataclass(frozen=True, slots=True)
class MessagingNames:
    """Names of the broker entities and database objects (ValueError when one is invalid).

    - ``exchange``: the durable topic exchange every service publishes to; the routing
      key of a message is its event name.
    - ``queue_pattern``: a consuming service's queue, ``{service}`` replaced by its name;
      its dead-letter exchange and queue are the queue's name + ``.dlx`` / ``.dlq``.
    - ``outbox_table`` / ``inbox_table``: the tables in each service's database.
    - ``notify_channel``: the PostgreSQL channel the outbox trigger notifies on commit.
    - ``partitions``: keyed events travel in this many partition queues per consuming
      service (``{queue}.p0`` …), a key's always in the same one (``partition_of``); every
      producer and consumer of a broker must agree on it (1 to 64).
    """

    exchange: str = "cloudcrm.events"
    queue_pattern: str = "{service}.events"
    outbox_table: str = "outbox"
    inbox_table: str = "inbox"
    notify_channel: str = "outbox_pending"
    partitions: int = 4

    def __post_init__(self) -> None:
        if (
            not isinstance(self.partitions, int)
            or isinstance(self.partitions, bool)
            or not 1 <= self.partitions <= MAX_PARTITIONS
        ):
            raise ValueError(f"partitions must be 1 to {MAX_PARTITIONS}: {self.partitions!r}")
        _check_amqp("exchange", self.exchange)
        if self.queue_pattern.count(SERVICE_PLACEHOLDER) != 1:
            raise ValueError(
                f"queue_pattern must contain {SERVICE_PLACEHOLDER} once: {self.queue_pattern!r}"
            )
        _check_amqp("queue_pattern", self.queue_pattern.replace(SERVICE_PLACEHOLDER, "s"))
        for field in ("outbox_table", "inbox_table", "notify_channel"):
            value = getattr(self, field)
            if not _SQL_NAME.fullmatch(value):
                raise ValueError(
                    f"{field} must be a lower-case SQL name of at most 40 characters "
                    f"(letters, digits, _; not starting with a digit): {value!r}"
                )
            if value in _SQL_RESERVED or value.startswith("sqlite_"):
                raise ValueError(f"{field} may not be an SQL key word or start sqlite_: {value!r}")
        if self.outbox_table == self.inbox_table:
            raise ValueError(f"outbox_table and inbox_table are both {self.outbox_table!r}")

    def routing_key(self, event_name: str, key: str | None = None) -> str:
        """The routing key of an event: its name, or for a keyed one its name and its
        key's partition, ``OrderPlaced.p2`` (a topic binding matches it word by word)."""
        if key is None:
            return event_name
        return f"{event_name}.p{partition_of(key, self.partitions)}"

    def queue(self, service: str) -> str:
        """The queue ``service`` consumes, e.g. ``catalog.events``."""
        name = self.queue_pattern.replace(SERVICE_PLACEHOLDER, service)
        _check_amqp("queue", name)
        return name


MAX_PARTITIONS = 64


def partition_of(key: str, partitions: int) -> int:
    """The partition (0 to ``partitions`` - 1) of message key ``key``: CRC-32 of its UTF-8
    bytes modulo ``partitions``, the same in every process, host and release (Python's
    ``hash`` is salted per process, so it would not do)."""
    return zlib.crc32(key.encode()) % partitions


def _check_amqp(what: str, name: str) -> None:
    if not name or len(name.encode()) > _AMQP_NAME_MAX:
        raise ValueError(f"{what} must be 1 to {_AMQP_NAME_MAX} bytes: {name!r}")
    if name.startswith("amq."):
        raise ValueError(f"{what} may not start with 'amq.' (reserved by RabbitMQ): {name!r}")
    if any(not char.isprintable() or char.isspace() for char in name):
        raise ValueError(f"{what} must be printable, without spaces: {name!r}")


DEFAULT_NAMES = MessagingNames()


@dataclass(frozen=True)
class ConsumerTopology:
    """The queue names of one consuming service."""

    queue: str  # S.events
    dead_letter_exchange: str  # S.events.dlx
    dead_letter_queue: str  # S.events.dlq
    partition_queues: tuple[str, ...] = ()  # S.events.p0 …: keyed events, by partition

    @classmethod
    def for_service(cls, service: str, names: MessagingNames = DEFAULT_NAMES) -> ConsumerTopology:
        """``service``'s queue by ``names.queue_pattern``, its ``.dlx`` and ``.dlq``, and
        its ``names.partitions`` partition queues ``.p0`` …"""
        queue = names.queue(service)
        partitions = tuple(f"{queue}.p{n}" for n in range(names.partitions))
        return cls(queue, f"{queue}.dlx", f"{queue}.dlq", partitions)

    @property
    def queues(self) -> tuple[str, ...]:
        """Every queue the service consumes: its own, then its partition queues."""
        return (self.queue, *self.partition_queues)


@dataclass(frozen=True)
class QueueBindings:
    """One service's queues and the event names (routing keys) bound to its queue."""

    topology: ConsumerTopology
    event_names: tuple[str, ...]

    @classmethod
    def of(
        cls, service: str, event_names: Iterable[str], names: MessagingNames = DEFAULT_NAMES
    ) -> QueueBindings:
        """``service``'s queues (named by ``names``) bound to ``event_names``."""
        return cls(ConsumerTopology.for_service(service, names), tuple(sorted(event_names)))
