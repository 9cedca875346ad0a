"""``python -m app outbox|dlq|inbox …``: the operators' commands (exit 0 done, 1 failed,
2 usage), on the operations ``app.admin`` shares with the admin API. Listings print a
table, or one JSON object with ``--json``. Their arguments are in ``app.cli.parser``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.admin import operations
from app.admin.operations import Actor
from app.admin.printing import (
    print_dead_letters,
    print_events,
    print_failed,
    print_inbox,
    print_status,
)
from app.cli.operations import at_head
from app.core.settings import SERVICES, Settings
from app.messaging.registry import published_by
from app.ordering.reply_timeouts import STATUS_FIGURES
from cloudcrm_outbox.brokers import broker_for, is_amqp
from cloudcrm_outbox.brokers.base import Broker
from cloudcrm_outbox.brokers.dead_letters import DeadLetterSelection
from cloudcrm_outbox.errors import BrokerUnavailableError
from cloudcrm_outbox.ops.repair import FailedSelection
from cloudcrm_outbox.ops.republish import PublishedSelection
from cloudcrm_outbox.storage.engine import make_engine

logger = logging.getLogger("app")


class OperationError(Exception):
    """The operation cannot be done; its message is the one line the command prints."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run an ``outbox``, ``dlq`` or ``inbox`` command; its exit status."""
    if args.command == "dlq" and args.verb == "purge" and not args.yes and not _confirmed(args):
        return 2
    # Alembic's "Context impl" lines (the head check) would bury the answer, and aiormq
    # logs a failed connect itself: the command says it once, in its own words.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
    handler = _HANDLERS[(args.command, args.verb)]
    try:
        result = asyncio.run(handler(args, settings))
    except OperationError as exc:
        logger.error("%s", exc)
        return 1
    except DBAPIError as exc:  # reachable, but not an outbox (not migrated?)
        logger.error("the database refused: %s", str(exc.orig).splitlines()[0])
        return 1
    except BrokerUnavailableError as exc:
        logger.error("%s", exc)
        return 1
    except (OSError, TimeoutError, ConnectionError) as exc:
        logger.error("cannot reach RabbitMQ: %r", exc)
        return 1
    return result


def _confirmed(args: argparse.Namespace) -> bool:
    if args.ids:
        what = f"{len(args.ids)} dead letter(s) of {args.service}"
    elif args.all:
        what = f"every dead letter of {args.service}"
    else:
        what = f"the dead letters of key {args.key!r} of {args.service}"
    if args.key is not None and (args.ids or args.all):
        what += f" of key {args.key!r}"
    if args.reason is not None:  # the filter narrows the selection: say which was given
        what += f" whose reason contains {args.reason!r}"
    if not sys.stdin.isatty():
        logger.error("refusing to purge %s without --yes", what)
        return False
    try:
        answer = input(f"Delete {what} for good? [y/N] ")
    except (EOFError, KeyboardInterrupt):
        print()
        return False
    return answer.strip().lower() in {"y", "yes"}


def _actor() -> Actor:
    return Actor(f"cli:{getpass.getuser()}")


@asynccontextmanager
async def _engine(settings: Settings, service: str) -> AsyncIterator[AsyncEngine]:
    await at_head(settings, service)
    engine = make_engine(settings.database_url(service), pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()


def _broker(settings: Settings, *, required: bool = True) -> Broker | None:
    if is_amqp(settings.broker_url):
        return broker_for(settings.broker_url, connect_timeout=10)
    if not required:
        return None
    raise OperationError(
        "dead letters of the embedded broker (memory://) live inside `python -m app dev`: "
        "while dev runs, use its admin API (GET /admin/api/SERVICE/dlq on dev's port); "
        "for RabbitMQ, set BROKER_URL=amqp://USER:PASSWORD@HOST:5672/"
    )


def _output(args: argparse.Namespace, data: Any, printer: Callable[[Any], None]) -> None:
    if args.json:
        print(json.dumps(data))
    else:
        printer(data)


async def _status(args: argparse.Namespace, settings: Settings) -> int:
    found: dict[str, Any] = {}
    broker = _broker(settings, required=False)
    for service in [args.service] if args.service else SERVICES:
        async with _engine(settings, service) as engine:
            figures = STATUS_FIGURES if service == "ordering" else None
            found[service] = await operations.outbox_status(
                engine,
                broker,
                service,
                figures=figures,
                gap_alert_seconds=settings.inbox_gap_alert_seconds,
            )
    _output(args, found, partial(print_status, embedded=broker is None))
    return 0


async def _failed(args: argparse.Namespace, settings: Settings) -> int:
    async with _engine(settings, args.service) as engine:
        rows = await operations.outbox_failed(engine, event_type=args.event_type, limit=args.limit)
    _output(args, {"failed": rows}, print_failed)
    return 0


async def _events(args: argparse.Namespace, settings: Settings) -> int:
    async with _engine(settings, args.service) as engine:
        found = await operations.outbox_events_of_order(engine, args.order, limit=args.limit)
    _output(args, {"events": found}, print_events)
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    selection = FailedSelection(args.ids, args.event_type, args.error_contains)
    async with _engine(settings, args.service) as engine:
        done = await operations.outbox_replay(
            engine, args.service, selection, dry_run=args.dry_run, actor=_actor()
        )
    verb = "would replay" if args.dry_run else "replayed"
    none = " (no failed row matched: `outbox failed` lists them)" if not done["replayed"] else ""
    _output(
        args, done, lambda d: print(f"{verb} {d['replayed']} failed row(s) of {args.service}{none}")
    )
    return 0


async def _republish(args: argparse.Namespace, settings: Settings) -> int:
    events = published_by(args.service)
    if args.event_type is not None and args.event_type not in events:
        raise OperationError(
            f"{args.service} publishes no {args.event_type!r}: its events are "
            f"{', '.join(sorted(events))}"
        )
    try:
        selection = PublishedSelection(args.since, args.until, args.event_type, args.key)
    except ValueError as exc:
        raise OperationError(f"outbox republish: {exc}") from None
    async with _engine(settings, args.service) as engine:
        done = await operations.outbox_republish(
            engine, args.service, selection, dry_run=args.dry_run, actor=_actor()
        )
    verb = "would put" if args.dry_run else "put"
    _output(args, done, lambda d: print(
        f"{verb} {d['republished']} published row(s) of {args.service} back to pending"
        + ("" if args.dry_run or not d["republished"] else
           " (consumers skip the copies their inbox has seen)")
    ))  # fmt: skip
    return 0


async def _dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    broker = _broker(settings)
    assert broker is not None
    _output(args, await operations.dlq_list(broker, args.service, limit=args.limit),
            print_dead_letters)  # fmt: skip
    return 0


async def _dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    broker = _broker(settings)
    assert broker is not None
    selection = DeadLetterSelection(args.ids, args.reason, args.key)
    done = await operations.dlq_replay(
        broker, args.service, selection, dry_run=args.dry_run, actor=_actor()
    )
    verb = "would replay" if args.dry_run else "replayed"
    _output(args, done, lambda d: print(
        f"{verb} {d['replayed']} dead letter(s) of {args.service}"
        + (f"; {len(d['left'])} left in the queue: {d['left']}" if d["left"] else "")
        + _afterwards(d)
    ))  # fmt: skip
    return 1 if done["left"] or done.get("not_found") else 0


async def _dlq_purge(args: argparse.Namespace, settings: Settings) -> int:
    broker = _broker(settings)
    assert broker is not None
    selection = DeadLetterSelection(args.ids, args.reason, args.key)
    if args.key is None:
        done = await operations.dlq_purge(broker, args.service, selection, actor=_actor())
    else:
        async with _engine(settings, args.service) as engine:
            done = await operations.dlq_purge(
                broker, args.service, selection, actor=_actor(), engine=engine
            )
    released = (
        f"; key {args.key!r} moves past {done['released_places']} place(s), its parked "
        "messages applied in order by the consumer"
        if args.key is not None and done["released_places"]
        else ""
    )
    _output(args, done, lambda d: print(
        f"purged {d['purged']} dead letter(s) of {args.service}" + released + _afterwards(d)
    ))  # fmt: skip
    return 1 if done["not_found"] else 0


def _afterwards(done: dict[str, Any]) -> str:
    said = ""
    if done.get("not_found"):
        said += f"; not found: {' '.join(done['not_found'][:20])}"
    if done.get("remaining"):
        said += (
            f"; {done['remaining']} still in the dead-letter queue (not selected, held by "
            "another command while this ran, new, or acks RabbitMQ ignored: "
            "rabbitmq-server#10327; run it again to finish)"
        )
    return said


async def _inbox_show(args: argparse.Namespace, settings: Settings) -> int:
    async with _engine(settings, args.service) as engine:
        entry = await operations.inbox_show(engine, args.service, args.message_id)
    if entry is None:
        raise OperationError(
            f"{args.service} has no inbox row for message {args.message_id}: not received "
            f"yet (in its queue, or dead-lettered: `dlq list {args.service}`), parked "
            f"behind an earlier message of its key (`outbox status {args.service}`), older than "
            "the inbox retention, or not a message id (an order's message ids: "
            "`outbox events ordering --order ORDER_ID`)"
        )
    _output(args, entry, print_inbox)
    return 0


Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]
_HANDLERS: dict[tuple[str, str], Handler] = {
    ("outbox", "status"): _status,
    ("outbox", "failed"): _failed,
    ("outbox", "events"): _events,
    ("outbox", "replay"): _replay,
    ("outbox", "republish"): _republish,
    ("dlq", "list"): _dlq_list,
    ("dlq", "replay"): _dlq_replay,
    ("dlq", "purge"): _dlq_purge,
    ("inbox", "show"): _inbox_show,
}
