"""Which way the relay's publisher writes a batch: its own frames, or aiormq's public API.

The fast path (``amqp_frames.publish_frames``) marshals a whole batch and registers its
delivery tags in ``aiormq.Channel``'s private bookkeeping (``lock``, ``delivery_tag``,
``confirmations``, ``message_id_delivery_tag``, ``write_queue``), as ``basic_publish`` does
for one message. Those internals are not aiormq's API and changed between its releases
(6.9.2 → 7.2.4: the cancellation handling around the write queue), so the fast path runs
only on the aiormq versions it was tested on; on any other, the public path: one
``Channel.basic_publish(wait=False)`` per message, still pipelined, confirms awaited
together. Same frames on the wire, same confirms, returns and nacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cloudcrm_outbox.brokers.rabbitmq.tested_versions import described, installed, within

PublishPath = Literal["auto", "fast", "public"]
PATHS: tuple[PublishPath, ...] = ("auto", "fast", "public")

# The aiormq releases the fast path was tested on (inclusive): the relay's integration
# tests pass on them with RELAY_PUBLISH_PATH=fast. Widen only after running them on a new
# release: a patch release may change the bookkeeping too (7.2.4 did).
FAST_PATH_AIORMQ = ("7.2.4", "7.2.4")


@dataclass(frozen=True)
class PublishPathChoice:
    """The path the publisher takes, and why (its start-up log line says both).
    ``untested``: the fast path forced on an aiormq it was not tested on."""

    path: Literal["fast", "public"]
    reason: str
    untested: bool = False


def installed_aiormq() -> str:
    """The installed aiormq's version ("unknown" when its metadata is missing)."""
    return installed("aiormq")


def chosen_publish_path(requested: PublishPath, aiormq_version: str) -> PublishPathChoice:
    """The path for ``requested`` (``auto``: fast on a tested aiormq, else public) on
    ``aiormq_version``. Raises ValueError for another ``requested``."""
    if requested not in PATHS:
        raise ValueError(f"publish path must be auto, fast or public, not {requested!r}")
    tested = within(aiormq_version, FAST_PATH_AIORMQ)
    tested_range = described(FAST_PATH_AIORMQ)
    if requested == "public":
        return PublishPathChoice("public", "asked for (RELAY_PUBLISH_PATH=public)")
    if requested == "fast":
        why = "asked for (RELAY_PUBLISH_PATH=fast)"
        if not tested:
            why += f"; aiormq {aiormq_version} is not among the tested ({tested_range})"
        return PublishPathChoice("fast", why, untested=not tested)
    if tested:
        return PublishPathChoice("fast", f"aiormq {aiormq_version} is tested with it")
    return PublishPathChoice(
        "public",
        f"aiormq {aiormq_version} is not among the versions the fast path was tested on "
        f"({tested_range})",
    )
