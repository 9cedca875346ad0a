"""Wake-ups of the relay's workers: one idle worker per notification, or every busy one."""

from __future__ import annotations

import asyncio

from cloudcrm_outbox.relay.wakeup import Wakeup


async def _idle(wakeup: Wakeup, event: asyncio.Event, stop: asyncio.Event) -> asyncio.Task[None]:
    task = asyncio.create_task(wakeup.wait(event, stop))
    await asyncio.sleep(0)  # let it go idle
    return task


async def test_a_notification_wakes_one_idle_worker_first_idle_first() -> None:
    wakeup, stop = Wakeup(), asyncio.Event()
    first, second = wakeup.subscribe(), wakeup.subscribe()
    waiting_first = await _idle(wakeup, first, stop)
    waiting_second = await _idle(wakeup, second, stop)

    wakeup.notify()
    await asyncio.wait_for(waiting_first, timeout=1)
    assert first.is_set() and not second.is_set()
    assert not waiting_second.done()

    wakeup.notify()
    await asyncio.wait_for(waiting_second, timeout=1)
    assert second.is_set()


async def test_with_no_worker_idle_every_busy_worker_looks_again() -> None:
    wakeup, stop = Wakeup(), asyncio.Event()
    first, second = wakeup.subscribe(), wakeup.subscribe()
    wakeup.notify()  # both busy (neither waiting)
    assert first.is_set() and second.is_set()
    # A worker that was told to look again does not go idle: it returns at once.
    await asyncio.wait_for(wakeup.wait(first, stop), timeout=1)


async def test_stop_ends_the_wait_and_leaves_no_idle_worker_behind() -> None:
    wakeup, stop = Wakeup(), asyncio.Event()
    event = wakeup.subscribe()
    waiting = await _idle(wakeup, event, stop)
    stop.set()
    await asyncio.wait_for(waiting, timeout=1)
    other = wakeup.subscribe()
    wakeup.notify()  # nobody idle any more: every worker is told
    assert event.is_set() and other.is_set()
