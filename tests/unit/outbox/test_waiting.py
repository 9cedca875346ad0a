"""The one retry helper: capped, jittered, doubling pauses that start over on success."""

from __future__ import annotations

import asyncio
import time

import pytest

from cloudcrm_outbox.backoff import Backoff


def test_pauses_double_up_to_the_cap_and_start_over_after_a_success() -> None:
    backoff = Backoff(cap=1.0, base=0.1)
    ceilings = [0.2, 0.4, 0.8, 1.0, 1.0]
    for ceiling in ceilings:
        delays = [Backoff(cap=1.0, base=0.1) for _ in range(200)]
        for delay in delays:
            delay.failures = backoff.failures
        drawn = [d.next_delay() for d in delays]
        assert all(0 <= x <= ceiling for x in drawn)
        assert max(drawn) > ceiling * 0.7  # jittered over the whole range, not fixed
        backoff.next_delay()
    assert backoff.failures == len(ceilings)
    backoff.succeeded()
    assert backoff.failures == 0 and backoff.next_delay() <= 0.2


async def test_a_pause_ends_early_when_stop_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cloudcrm_outbox.backoff.random.uniform", lambda _low, high: high)
    backoff = Backoff(cap=30.0, base=30.0)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    started = time.monotonic()
    assert await backoff.pause(stop) == 30.0
    assert time.monotonic() - started < 5
