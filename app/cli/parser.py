"""The command line's grammar: every command, its arguments and its help.

Imports nothing beyond the standard library and constants, so ``python -m app --help``
(and any ``COMMAND --help``) answers without loading the web framework, the broker client,
the database drivers or the settings; each command loads those when it runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.arguments import (
    limit_argument,
    message_id_argument,
    message_key_argument,
    moment_argument,
    port_argument,
    text_argument,
    uuid_argument,
)
from app.core.services import SERVICES

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


class Parser(argparse.ArgumentParser):
    """argparse, but an argument a command does not take is refused with that command's
    own usage (``dev --prot 1``: dev's), not the top level's. Subcommands are made of the
    parent's class (argparse's ``add_subparsers``), so every level refuses its own."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; ``parse_args`` gives ``command`` (and ``verb`` or
    ``broker_command`` for the commands that have them) beside each command's options."""
    parser: argparse.ArgumentParser = Parser(
        prog="python -m app",
        description="CloudCrm: the ordering and catalog services, their relays and "
        "consumers, and the operators' tools. `python -m app COMMAND --help` for one.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_processes(commands)
    _add_outbox(commands)
    _add_dlq(commands)
    _add_inbox(commands)
    _add_token(commands)
    _add_broker(commands)
    return parser


def check_choices(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The rules argparse cannot say: ``dlq replay|purge`` select by ``--id``, ``--all``
    or ``--key``; ``outbox republish`` needs ``--since`` or ``--key``. A usage error
    (``parser.error``: the message, exit 2) otherwise."""
    selecting = args.command == "dlq" and args.verb in {"replay", "purge"}
    if selecting and not args.ids and not args.all and args.key is None:
        parser.error(f"dlq {args.verb}: one of the arguments --id --all --key is required")
    republishing = args.command == "outbox" and args.verb == "republish"
    if republishing and args.since is None and args.key is None:
        parser.error("outbox republish: one of the arguments --since --key is required")


def _add_processes(commands: Commands) -> None:
    dev = commands.add_parser("dev", help="both APIs on one port, embedded defaults")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=port_argument, default=8000)

    api = commands.add_parser("api", help="one service's HTTP API")
    api.add_argument("service", choices=SERVICES)
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument(
        "--port", type=port_argument, default=None, help="default: ordering 8001, catalog 8002"
    )

    relay = commands.add_parser("relay", help="publish a service's outbox to RabbitMQ")
    relay.add_argument("service", choices=SERVICES)
    consume = commands.add_parser("consume", help="apply a service's events through its inbox")
    consume.add_argument("service", choices=SERVICES)
    for worker in (relay, consume):
        worker.add_argument(
            "--metrics-port",
            type=port_argument,
            default=None,
            help="serve probes and /metrics here",
        )

    web = commands.add_parser("web", help="the web pages, calling the two APIs")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=port_argument, default=8000)

    upgrade = commands.add_parser("migrate", help="Alembic upgrade to head")
    upgrade.add_argument("service", nargs="?", choices=SERVICES, help="default: both")


def _service(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _which(
    parser: argparse.ArgumentParser,
    id_type: Callable[[str], Any],
    what: str,
    *,
    required: bool = True,
) -> None:
    """``--id …`` or ``--all`` (one of them unless ``required`` is False: ``--key`` may
    select instead, checked when the command runs)."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--id", dest="ids", nargs="+", type=id_type, metavar="ID", help=what)
    group.add_argument("--all", action="store_true", help="every one the filters select")


def _add_outbox(commands: Commands) -> None:
    outbox = commands.add_parser("outbox", help="a service's outbox: status, failed rows, replay")
    verbs = outbox.add_subparsers(dest="verb", required=True)
    status = verbs.add_parser("status", help="pending, failed, oldest pending age, dead letters")
    status.add_argument("service", nargs="?", choices=SERVICES, help="default: both")
    status.add_argument("--json", action="store_true", help="one JSON object, keyed by service")
    failed = verbs.add_parser("failed", help="rows the relay gave up on")
    _service(failed)
    failed.add_argument("--event-type", type=text_argument)
    failed.add_argument("--limit", type=limit_argument, default=100)
    events = verbs.add_parser("events", help="an order's outbox rows: their message ids, fate")
    _service(events)
    events.add_argument("--order", type=uuid_argument, required=True, metavar="ORDER_ID")
    events.add_argument("--limit", type=limit_argument, default=100)
    replay = verbs.add_parser("replay", help="failed rows back to pending")
    _service(replay)
    _which(replay, uuid_argument, "outbox row ids")
    replay.add_argument("--event-type", type=text_argument)
    replay.add_argument("--error-contains", type=text_argument)
    replay.add_argument("--dry-run", action="store_true", help="say which, change nothing")
    again = verbs.add_parser(
        "republish", help="published rows back to pending (the broker lost them)"
    )
    _service(again)
    moment = "ISO 8601, e.g. 2026-11-30T09:00:00Z (no zone: UTC)"
    again.add_argument("--since", type=moment_argument, help=f"published at or after; {moment}")
    again.add_argument("--until", type=moment_argument, help="published before; default: no bound")
    again.add_argument("--event-type", type=text_argument)
    again.add_argument(
        "--key",
        type=message_key_argument,
        help="only this message key's rows, sent again in the key's order (--since optional)",
    )
    again.add_argument("--dry-run", action="store_true", help="count them, change nothing")


def _add_dlq(commands: Commands) -> None:
    dlq = commands.add_parser("dlq", help="a service's dead-letter queue: list, replay, purge")
    verbs = dlq.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="dead letters and a summary by reason")
    _service(listing)
    listing.add_argument("--limit", type=limit_argument, default=1_000)
    replay = verbs.add_parser("replay", help="back to the service's queue (confirmed)")
    _service(replay)
    _which(replay, message_id_argument, "message ids", required=False)
    replay.add_argument(
        "--reason", type=text_argument, help="only those whose reason contains this"
    )
    replay.add_argument("--dry-run", action="store_true", help="say which, change nothing")
    _key_option(replay, "and, by the inbox, the key's parked messages after them, in order")
    purge = verbs.add_parser("purge", help="delete dead letters for good")
    _service(purge)
    _which(purge, message_id_argument, "message ids", required=False)
    purge.add_argument("--reason", type=text_argument, help="only those whose reason contains this")
    purge.add_argument("--yes", action="store_true", help="do not ask")
    _key_option(purge, "and the key's parked messages after them released, in order")


def _key_option(parser: argparse.ArgumentParser, then: str) -> None:
    """``--key K``: the dead letters of one message key (with --id/--all optional)."""
    parser.add_argument(
        "--key", type=message_key_argument, help=f"the dead letters of this message key, {then}"
    )


def _add_inbox(commands: Commands) -> None:
    inbox = commands.add_parser("inbox", help="what a service's consumer did with a message")
    verbs = inbox.add_subparsers(dest="verb", required=True)
    show = verbs.add_parser("show", help="processed at, outcome")
    _service(show)
    show.add_argument("message_id", type=uuid_argument)


def _add_token(commands: Commands) -> None:
    token = commands.add_parser(
        "token", help="print a development token signed with AUTH_JWT_SECRET"
    )
    token.add_argument(
        "--scope", required=True, help='space-separated scopes, e.g. "orders:read orders:write"'
    )
    token.add_argument(
        "--subject", default="developer", help="the token's sub (default: developer)"
    )
    token.add_argument(
        "--ttl", type=int, default=3600, help="seconds until it expires (default 3600)"
    )


def _add_broker(commands: Commands) -> None:
    broker = commands.add_parser("broker", help="RabbitMQ topology")
    broker_commands = broker.add_subparsers(dest="broker_command", required=True)
    broker_commands.add_parser(
        "declare", help="declare the exchange, every service's queues, dead letters, bindings"
    )
    accounts = broker_commands.add_parser(
        "accounts", help="print a RabbitMQ definitions file: one least-privilege user per role"
    )
    accounts.add_argument(
        "--passwords-dir",
        type=Path,
        required=True,
        help="a file per account holding its password (compose mounts them in /run/secrets)",
    )
    accounts.add_argument(
        "--output", type=Path, default=None, help="write it to this file (default: print it)"
    )
    accounts.add_argument("--vhost", default="/")
    accounts.add_argument("--prefix", default="cloudcrm", help="account names' prefix")
