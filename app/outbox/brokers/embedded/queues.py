"""The embedded broker's queues: delivery order, unacked deliveries, returns, dead letters.

Every change is recorded in the queue file (``brokers.embedded.queue_file``) before it is
applied to the deques here, which are only the fast path: after a restart the file is the truth.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cloudcrm_outbox.brokers.connection import Delivery
from cloudcrm_outbox.brokers.dead_letters import now_iso
from cloudcrm_outbox.brokers.embedded.queue_file import Envelope, Move, QueueFile

DELIVERY_COUNT = "x-delivery-count"  # the quorum queue's header: earlier deliveries returned


class MemoryDelivery:
    """One delivery of an envelope; acks and nacks go back to its queue."""

    def __init__(self, envelope: Envelope, queue: MemoryQueue, tag: int) -> None:
        self._envelope, self._queue, self.delivery_tag = envelope, queue, tag

    def __getattr__(self, name: str) -> Any:  # body, message_id, type, routing_key, …
        return getattr(self._envelope, name)

    @property
    def headers(self) -> Mapping[str, Any]:
        return {**self._envelope.headers, DELIVERY_COUNT: self._envelope.returned}

    async def ack(self, multiple: bool = False) -> None:
        self._queue.settle(self.delivery_tag, multiple=multiple)

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        self._queue.give_back(self.delivery_tag, dead_letter=not requeue)


class MemoryQueue:
    """One queue: ``ready`` in order, ``unacked`` by delivery tag; every change is
    recorded in the queue file before it is applied here."""

    def __init__(
        self,
        name: str,
        *,
        store: QueueFile,
        delivery_limit: int,
        dead_letters: MemoryQueue | None,
    ) -> None:
        self.name = name
        self.ready: deque[Envelope] = deque()
        self.unacked: dict[int, Envelope] = {}
        self._store = store
        self._delivery_limit = delivery_limit
        self._dead_letters = dead_letters
        self._consumer: asyncio.Queue[Delivery] | None = None
        self._tags = 0
        recovered = store.load(name)
        self.ready.extend(envelope for envelope, outstanding in recovered if not outstanding)
        # Delivered when the process died: returned, and counted, as RabbitMQ counts the
        # deliveries of a consumer whose connection died (so a message that kills the
        # process every time still reaches the delivery limit).
        self._return([envelope for envelope, outstanding in recovered if outstanding])

    @property
    def has_consumer(self) -> bool:
        """Whether a consumer is attached (and not paused)."""
        return self._consumer is not None

    def put(self, envelope: Envelope) -> None:
        """Store a new envelope (committed on return), then queue it."""
        self.enqueue(self._store.insert([(self.name, envelope)]))

    def enqueue(self, envelopes: Sequence[Envelope]) -> None:
        """Envelopes already in the file join the back of the queue."""
        self.ready.extend(envelopes)
        self._deliver()

    def attach(self, inbound: asyncio.Queue[Delivery]) -> None:
        self._consumer = inbound
        self._deliver()

    def pause(self) -> None:
        """No new deliveries; those unacked stay with the consumer (as basic.cancel)."""
        self._consumer = None

    def detach(self) -> None:
        """The consumer went away: its unacked deliveries return, counted, in front."""
        self._consumer = None
        self._return([self.unacked[tag] for tag in sorted(self.unacked)])
        self.unacked.clear()

    def remove(self, envelopes: Sequence[Envelope]) -> None:
        """Delete ready envelopes (a dead letter replayed or purged), in one transaction."""
        rows = {envelope.row for envelope in envelopes}
        self._store.settled(sorted(rows))
        kept = [envelope for envelope in self.ready if envelope.row not in rows]
        self.ready.clear()
        self.ready.extend(kept)

    def settle(self, tag: int, *, multiple: bool) -> None:
        settled = [t for t in self.unacked if t == tag or (multiple and t < tag)]
        if settled:  # one transaction per ack, however many it settles
            self._store.settled([self.unacked[t].row for t in settled])
        for t in settled:
            del self.unacked[t]

    def give_back(self, tag: int, *, dead_letter: bool) -> None:
        envelope = self.unacked.get(tag)
        if envelope is None:
            return
        if dead_letter:
            self._move([], dead=[envelope], reason="rejected")
        else:
            self._return([envelope], front=False)
        del self.unacked[tag]
        self._deliver()

    def _return(self, envelopes: Sequence[Envelope], *, front: bool = True) -> None:
        counted = [replace(e, returned=e.returned + 1) for e in envelopes]
        # As a quorum queue's x-delivery-limit: dead-lettered once returned more often
        # than the limit. The consumer applies its own limit one delivery earlier, with
        # its reason; this is the backstop for a consumer that dies on every delivery.
        kept = [e for e in counted if e.returned <= self._delivery_limit]
        spent = [e for e in counted if e.returned > self._delivery_limit]
        self._move(kept, dead=spent, reason="delivery_limit", front=front)

    def _move(
        self, kept: list[Envelope], *, dead: list[Envelope], reason: str, front: bool = True
    ) -> None:
        """Requeue ``kept`` (``front``: in their old places) and dead-letter ``dead``:
        recorded in one transaction, then applied."""
        target = self._dead_letters
        dead = [
            replace(
                e,
                # As RabbitMQ's x-death says when, and why, a message first died.
                headers={"x-first-dead-lettered-at": now_iso(), **e.headers,
                         "x-first-death-reason": reason},
                returned=0,
            )
            for e in dead
        ]  # fmt: skip
        moves = [Move(e, self.name, to_back=not front) for e in kept]
        moves += [Move(e, target.name if target else None, to_back=True) for e in dead]
        if not moves:
            return
        self._store.moved(moves)
        if front:
            self.ready.extendleft(reversed(kept))
        else:
            self.ready.extend(kept)
        if target is not None and dead:
            target.enqueue(dead)

    def _deliver(self) -> None:
        if self._consumer is None or not self.ready:
            return
        # Recorded before the consumer sees them: a delivery cut short by a crash then
        # counts on restart. Recording it later could miss a message that kills the
        # process each time, which would then be redelivered forever.
        self._store.delivered([envelope.row for envelope in self.ready])
        while self.ready:
            self._tags += 1
            self.unacked[self._tags] = envelope = self.ready.popleft()
            self._consumer.put_nowait(MemoryDelivery(envelope, self, self._tags))
