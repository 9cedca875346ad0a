"""Serving an API with uvicorn: a clean exit 0 on SIGTERM, exit 1 when it cannot start."""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Iterator
from signal import SIGINT, SIGTERM

import uvicorn
from fastapi import FastAPI

from app.core.settings import Settings

logger = logging.getLogger("app")


class _Server(uvicorn.Server):
    """uvicorn, but SIGTERM and SIGINT end it cleanly with exit 0: uvicorn re-raises the
    signal once shut down, so the process would die of it (exit 143)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (SIGINT, SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def stop_app(app: FastAPI, reason: str) -> None:
    """End the serving of ``app`` as SIGTERM would (its lifespan shuts down), and make
    ``serve`` return 1: for work the app runs beside its API that cannot go on (``dev``'s
    relays and consumers). ``reason``: one line, already logged. Outside ``serve`` (a test
    client) only ``app.state.fatal_error`` is set."""
    if not getattr(app.state, "fatal_error", None):  # the first reason: the others follow it
        app.state.fatal_error = reason
    server = getattr(app.state, "server", None)
    if isinstance(server, uvicorn.Server):
        server.should_exit = True


def uvicorn_config(app: FastAPI, host: str, port: int, settings: Settings) -> uvicorn.Config:
    """How ``serve`` runs ``app`` on ``host``:``port`` with uvicorn. X-Forwarded-Proto and
    X-Forwarded-For are believed only from the proxies FORWARDED_ALLOW_IPS names (none by
    default: uvicorn would otherwise trust any process on 127.0.0.1)."""
    trusted = settings.forwarded_allow_ips
    return uvicorn.Config(app, host=host, port=port, log_config=None,
                          proxy_headers=trusted is not None,
                          forwarded_allow_ips=trusted or "")  # fmt: skip


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (IPv4 or IPv6, as ``host`` resolves first),
    with SO_REUSEADDR as uvicorn binds its own; asyncio listens on it when serving starts.

    Raises OSError (EADDRINUSE: the port is taken; EADDRNOTAVAIL: no such local address)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def serve(app: FastAPI, host: str, port: int, settings: Settings) -> int:
    """Serve ``app`` until SIGTERM/SIGINT (0), or 1 when it could not start (the port is
    taken, or its lifespan failed, saying why) or stopped itself (``stop_app``)."""
    # The port is bound before the lifespan runs: `dev` prints a token and a curl for its
    # port at start, which must not happen when another process answers on that port.
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
            # The host, not the port: a name that resolves to nothing, or an address
            # this machine does not have.
            logger.error(
                "cannot listen on %s:%d (%s): --host must name an address of this machine "
                "(127.0.0.1, or 0.0.0.0 for every one)", host, port, exc.strerror or exc,
            )  # fmt: skip
            return 1
        logger.error(
            "cannot listen on %s:%d (%s): another process holds it? choose another port "
            "with --port (make run PORT=8010)", host, port, exc.strerror or exc,
        )  # fmt: skip
        return 1
    server = _Server(uvicorn_config(app, host, port, settings))
    app.state.server = server
    with sock, contextlib.suppress(SystemExit):  # uvicorn exits when it cannot start
        server.run(sockets=[sock])
    if not server.started:
        logger.error("the API did not start (see the line above); exiting")
        return 1
    if getattr(app.state, "fatal_error", None):
        logger.error("stopped: %s", app.state.fatal_error)
        return 1
    return 0
