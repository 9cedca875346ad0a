"""Small waiting helpers shared by the relay and the consumer."""

from __future__ import annotations

import asyncio
import contextlib
import random


def backoff_delay(failures: int, cap: float) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, 0.1 s x 2^failures)]."""
    return random.uniform(0, min(cap, 0.1 * 2 ** min(failures, 32)))


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
