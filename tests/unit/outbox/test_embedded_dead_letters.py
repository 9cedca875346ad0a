"""The embedded broker's dead letters: one without a message id is left where it is (the
inbox could not recognise a second copy); a negative limit is refused."""

from __future__ import annotations

import pytest

from app.outbox import DeadLetterSelection, QueueBindings
from app.outbox.dead_letters import NO_MESSAGE_ID
from app.outbox.queue_file import Envelope
from app.outbox.testing import embedded_broker


async def test_a_dead_letter_without_a_message_id_stays() -> None:
    broker = embedded_broker()
    await broker.declare([QueueBindings.of("store", ["ItemStored"])])
    dlq = broker._memory.queues["store.events.dlq"]
    dlq.put(Envelope(body=b"{}", message_id=None, type="ItemStored", routing_key="store.events",
                     headers={"x-poison-reason": "invalid ItemStored"}))  # fmt: skip
    result = await broker.replay_dead_letters("store", DeadLetterSelection())
    assert result.replayed == [] and [why for _, why in result.left] == [NO_MESSAGE_ID]
    assert len(await broker.dead_letters("store")) == 1
    summary = await broker.dead_letter_summary("store")
    assert summary.depth == 1
    with pytest.raises(ValueError, match="limit"):
        await broker.purge_dead_letters("store", DeadLetterSelection(), limit=-1)
    await broker.close()
