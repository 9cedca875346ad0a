"""``dev``, ``api`` and ``web``: the processes that serve HTTP (uvicorn), until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging

from app.cli.operations import at_head
from app.cli.signing import signing_keys
from app.core.settings import Settings
from app.http.serving import serve

DEFAULT_PORTS = {"ordering": 8001, "catalog": 8002}

logger = logging.getLogger("app")


def dev(args: argparse.Namespace, settings: Settings) -> int:
    """``dev``: both APIs, relays and consumers and the pages on one port."""
    from app.cli.dev import create_dev_app
    from cloudcrm_outbox.brokers import is_amqp

    if not is_amqp(settings.broker_url):
        # The embedded broker's file, opened once before serving: one that cannot be is
        # a line naming the setting, not a traceback out of the server's start.
        from cloudcrm_outbox.brokers.embedded.queue_file import QueueFileError, check_queue_file

        try:
            check_queue_file(settings.embedded_broker_path)
        except QueueFileError as exc:
            logger.error("EMBEDDED_BROKER_PATH: %s", exc)
            return 1
    app = create_dev_app(settings, base_url=f"http://{args.host}:{args.port}")
    return serve(app, args.host, args.port, settings)


def api(args: argparse.Namespace, settings: Settings) -> int:
    """``api SERVICE``: one service's HTTP API, once its database is at head."""
    # One service's application only: the other's modules stay unloaded.
    if args.service == "ordering":
        from app.ordering.app import create_app
    else:
        from app.catalog.app import create_app
    # Refuses a configuration nobody can authenticate to; never the development secret.
    app = create_app(settings, signing_keys(settings, development=False))
    asyncio.run(at_head(settings, args.service))
    return serve(app, args.host, args.port or DEFAULT_PORTS[args.service], settings)


def web(args: argparse.Namespace, settings: Settings) -> int:
    """``web``: the web pages, calling the two APIs."""
    from app.pages.serving import create_web_app

    app = create_web_app(settings, signing_keys(settings, development=False))
    return serve(app, args.host, args.port, settings)
