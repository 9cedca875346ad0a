"""Closing a publisher's connection only once no batch waits on it any more."""

from __future__ import annotations

import asyncio
from collections import Counter

from aio_pika.abc import AbstractConnection

from cloudcrm_outbox.logs import library_logger

logger = library_logger(__name__)


async def close_quietly(connection: AbstractConnection) -> None:
    """Close ``connection`` within 2 s, ignoring its errors (it may be broken already)."""
    try:
        await asyncio.wait_for(connection.close(), timeout=2)
    except Exception:  # already broken: only release it
        logger.debug("closing a broker connection failed", exc_info=True)


class Retiring:
    """The batches in flight on each connection, and the connections to close after them.

    Relay workers share one publisher: a connection one of them replaces (after a nack)
    may still carry another's batch waiting for its confirms. Closing it then would throw
    those confirms away and have every message of that batch published again.
    """

    def __init__(self) -> None:
        self._in_flight: Counter[AbstractConnection] = Counter()
        self._retired: set[AbstractConnection] = set()

    def begin(self, connection: AbstractConnection) -> None:
        """A batch starts publishing on ``connection``."""
        self._in_flight[connection] += 1

    async def end(self, connection: AbstractConnection) -> None:
        """That batch has its confirms (or gave up): a retired connection it was the last
        batch of is closed now."""
        self._in_flight[connection] -= 1
        if self._in_flight[connection] <= 0:
            del self._in_flight[connection]
            if connection in self._retired:
                self._retired.discard(connection)
                await close_quietly(connection)

    async def retire(self, connection: AbstractConnection) -> None:
        """No new batch goes on ``connection``: closed now if idle, else after its last."""
        if self._in_flight[connection] > 0:
            self._retired.add(connection)
        else:
            self._in_flight.pop(connection, None)
            await close_quietly(connection)
