"""A dead-letter replay that dies between the broker taking the copy and the dead letter's
removal loses nothing: the copy is applied once, the dead letter stays (or comes back) and
a second replay is absorbed by the inbox."""

from __future__ import annotations

import uuid

import aio_pika
import pytest

from cloudcrm_outbox import DeadLetterSelection, add_event, make_sessionmaker
from cloudcrm_outbox.brokers.dead_letters import DeadLetterOperationError
from cloudcrm_outbox.brokers.embedded.queues import MemoryQueue
from tests.contract.conftest import SERVICE, Backend, ItemStored, eventually


class KilledError(Exception):
    """The replaying process dies here."""


def kill_between_copy_and_removal(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    if backend.pair == "postgresql+rabbitmq":
        # The copy was confirmed; the ack that removes the dead letter never goes out. The
        # connection then closes, as it would when the process dies.
        async def ack(*_: object, **__: object) -> None:
            raise KilledError

        monkeypatch.setattr(aio_pika.IncomingMessage, "ack", ack)
    else:
        # The copy was stored in the service's queue; the removal never happens.
        def remove(*_: object) -> None:
            raise KilledError

        monkeypatch.setattr(MemoryQueue, "remove", remove)


async def test_a_replay_killed_before_the_removal_loses_nothing(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = ItemStored(item_id=uuid.uuid4(), note="bug")
    backend.handler.failing.add("bug")
    async with make_sessionmaker(backend.engine)() as session, session.begin():
        add_event(session, item)
    async with backend.running():

        async def dead() -> bool:
            return len(await backend.broker.dead_letters(SERVICE)) == 1

        await eventually(dead, what="the failing message dead-lettered")
        backend.handler.failing.clear()
        with monkeypatch.context() as patch:
            kill_between_copy_and_removal(backend, patch)
            # RabbitMQ's side reports what it had done before it died (nothing, here).
            with pytest.raises((KilledError, DeadLetterOperationError)) as died:
                await backend.broker.replay_dead_letters(SERVICE, DeadLetterSelection())
            if isinstance(died.value, DeadLetterOperationError):
                assert died.value.done == []

        async def applied() -> bool:
            return await backend.received() == {item.item_id: 1}

        await eventually(applied, what="the copy applied")
        [still] = await backend.broker.dead_letters(SERVICE)  # not lost, not removed
        assert still.message_id == str(item.event_id)
        again = await backend.broker.replay_dead_letters(SERVICE, DeadLetterSelection())
        assert len(again.replayed) == 1
        await eventually(lambda: _empty(backend), what="the dead-letter queue empty")
    assert await backend.received() == {item.item_id: 1}  # the second copy was a duplicate


async def _empty(backend: Backend) -> bool:
    return await backend.broker.dead_letters(SERVICE) == []
