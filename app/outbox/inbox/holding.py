"""Deliveries a consumer keeps unacked on purpose, for one broker session.

- **Parked**: the message could not be applied through no fault of its own (a row locked
  by another transaction, the database away). It stays unacked, so no delivery is spent,
  and is handed back to the consumer after a backoff.
- **Requeued later**: the message itself failed. It is nacked with requeue only after a
  spaced delay, so a message that fails every time is redelivered every few seconds,
  never in a hot loop (without the delay: 21 deliveries in 213 ms), until its delivery limit.

While any of them is held, a batch's ``ack(multiple=True)`` would settle them too, so the
consumer acks one by one then (``lowest_tag``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict

from cloudcrm_outbox.backoff import spaced_delay
from cloudcrm_outbox.brokers.connection import Delivery
from cloudcrm_outbox.logs import library_logger

logger = library_logger(__name__)

# Messages whose last error a consumer remembers (a few hundred bytes each).
FAILURES_KEPT = 10_000


class Holding:
    """Parked and to-be-requeued deliveries of one session (both unacked)."""

    def __init__(self) -> None:
        self._parked: list[tuple[float, int, Delivery]] = []  # a heap by due time
        self._order = itertools.count()
        self._parks: dict[int, int] = {}  # times each delivery (by tag) was parked
        self._blocked: set[int] = set()  # parked ones that met a row locked for long
        self._requeues: dict[int, asyncio.TimerHandle] = {}  # by delivery tag
        self._tasks: set[asyncio.Task[None]] = set()
        # Tags whose nack is on its way: still held, or a multiple ack sent meanwhile
        # could settle (lose) the message before the broker sees the nack.
        self._nacking: set[int] = set()
        # The last error of each message that failed (by message id, the newest kept),
        # so that a message dead-lettered at its delivery limit says why it failed.
        self._failures: OrderedDict[str, str] = OrderedDict()

    def remember_failure(self, message_id: str, error: str) -> None:
        """Keep ``error`` as the last failure of ``message_id`` (at most
        ``FAILURES_KEPT`` messages' errors, the oldest forgotten first)."""
        self._failures[message_id] = error
        self._failures.move_to_end(message_id)
        while len(self._failures) > FAILURES_KEPT:
            self._failures.popitem(last=False)

    def last_failure(self, message_id: str) -> str | None:
        """The last error remembered for ``message_id``, if any."""
        return self._failures.get(message_id)

    def park(self, message: Delivery, *, base: float, cap: float, blocked: bool = False) -> float:
        """Hand ``message`` back by ``due()`` after a spaced delay that doubles each time
        this delivery is parked (from ``base`` up to ``cap`` seconds); returns the delay.
        ``blocked``: it met a row another transaction holds (see ``blocked``)."""
        tag = message.delivery_tag or 0
        parks = self._parks.get(tag, 0)
        self._parks[tag] = parks + 1
        if blocked:
            self._blocked.add(tag)
        delay = spaced_delay(parks, base=base, cap=cap)
        due = asyncio.get_running_loop().time() + delay
        heapq.heappush(self._parked, (due, next(self._order), message))
        return delay

    def due(self, limit: int) -> list[Delivery]:
        """Up to ``limit`` parked deliveries whose time has come, earliest first."""
        now = asyncio.get_running_loop().time()
        taken: list[Delivery] = []
        while self._parked and self._parked[0][0] <= now and len(taken) < limit:
            taken.append(heapq.heappop(self._parked)[2])
            self._blocked.discard(taken[-1].delivery_tag or 0)
        return taken

    @property
    def blocked(self) -> bool:
        """Whether a delivery is parked because a row it needs is held for long (another
        transaction kept it past the lock timeout): while one is, such a lock is known."""
        return bool(self._blocked)

    def was_parked(self, message: Delivery) -> bool:
        """Whether ``message`` (this delivery of it) has been parked before."""
        return (message.delivery_tag or 0) in self._parks

    def seconds_to_next(self) -> float | None:
        """Seconds until the next parked delivery is due (None when none is parked)."""
        if not self._parked:
            return None
        return max(0.0, self._parked[0][0] - asyncio.get_running_loop().time())

    def requeue_later(self, message: Delivery, delay: float) -> None:
        """``nack(requeue=True)`` ``message`` after ``delay`` seconds."""
        tag = message.delivery_tag or 0
        loop = asyncio.get_running_loop()
        self._requeues[tag] = loop.call_later(delay, self._start_requeue, message, tag)

    def _start_requeue(self, message: Delivery, tag: int) -> None:
        self._requeues.pop(tag, None)
        self._nacking.add(tag)
        task = asyncio.ensure_future(self._requeue(message, tag))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _requeue(self, message: Delivery, tag: int) -> None:
        try:
            async with asyncio.timeout(10):
                await message.nack(requeue=True)
        except Exception as exc:  # the session is gone: the broker requeues it anyway
            logger.debug("requeue failed", extra={"error": repr(exc)[:200]})
        finally:
            self._nacking.discard(tag)

    def lowest_tag(self) -> int | None:
        """The smallest delivery tag held (parked or waiting to be requeued)."""
        tags = [message.delivery_tag or 0 for _, _, message in self._parked]
        tags += [*self._requeues, *self._nacking]
        return min(tags) if tags else None

    def __len__(self) -> int:
        return len(self._parked) + len(self._requeues) + len(self._nacking)

    def drop(self) -> None:
        """The session ended: its unacked deliveries go back to the queue by themselves."""
        for handle in self._requeues.values():
            handle.cancel()
        self._requeues.clear()
        self._parked.clear()
        self._parks.clear()
        self._blocked.clear()
        for task in self._tasks:
            task.cancel()
