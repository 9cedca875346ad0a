"""Waiting: the one retry helper every loop uses (``Backoff``), and small waits.

Every loop that retries (the relay's workers, the consumer's reconnects, its held batches
and conflict retries, the LISTEN connection, the start-up waits) takes its pauses from a
``Backoff``: capped exponential with jitter, so that processes restarted together do not
retry in step (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015).
"""

from __future__ import annotations

import asyncio
import contextlib
import random


def backoff_delay(failures: int, cap: float, *, base: float = 0.1) -> float:
    """Full-jitter exponential backoff (seconds): uniform in [0, min(cap, base x 2^failures)]."""
    return random.uniform(0, min(cap, base * 2.0 ** min(failures, 32)))


class Backoff:
    """Pauses between tries of one thing: each failure doubles the ceiling of the next
    (full jitter, from ``base`` up to ``cap`` seconds); a success starts over."""

    def __init__(self, cap: float, *, base: float = 0.1) -> None:
        self.cap = cap
        self.base = base
        self.failures = 0

    def next_delay(self) -> float:
        """Count a failure; the seconds to wait before the next try."""
        self.failures += 1
        return backoff_delay(self.failures, self.cap, base=self.base)

    def succeeded(self) -> None:
        """The thing worked: the next failure starts from the shortest pause."""
        self.failures = 0

    async def pause(self, stop: asyncio.Event | None = None) -> float:
        """Count a failure and wait the next delay (less if ``stop`` is set meanwhile);
        returns the delay."""
        delay = self.next_delay()
        if stop is None:
            await asyncio.sleep(delay)
        else:
            await sleep_unless(stop, delay)
        return delay


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def first_of(*events: asyncio.Event) -> None:
    """Return as soon as any of ``events`` is set."""
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()


def spaced_delay(attempt: int, *, base: float, cap: float) -> float:
    """Equal-jitter exponential backoff: half of min(cap, base x 2^attempt), plus up to as
    much again at random — never near zero, so retries of one thing are always spaced."""
    ceiling: float = min(cap, base * 2.0 ** min(attempt, 32))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
