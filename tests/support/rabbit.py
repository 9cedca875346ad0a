"""Throwaway RabbitMQ vhosts and a way to read what reached a queue."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from app.messaging.broker_accounts import accounts, definitions
from cloudcrm_outbox.names import DEFAULT_NAMES
from tests.support.config import SERVERS

START_HINT = "start it with: rabbitmq-server -detached && rabbitmqctl await_startup"


def _ctl(*args: str) -> None:
    done = subprocess.run(
        [SERVERS.rabbitmqctl, "-q", *args], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        pytest.fail(
            f"rabbitmqctl {' '.join(args)} failed ({done.stderr.strip()}); {START_HINT}",
            pytrace=False,
        )


def vhost_url(vhost: str) -> str:
    parts = urlsplit(SERVERS.rabbitmq_url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


class _VhostPool:
    """Fresh vhosts made and deleted in batches: each ``rabbitmqctl`` call starts an Erlang
    VM (0.5 to 2.5 s of a 2-core machine), and a vhost a test took three of them. Made
    ``MADE_AT_ONCE`` at a time by one ``import_definitions`` (the vhosts and the test
    account's permissions on them); deleted, with all their queues, ``DELETED_AT_ONCE`` at
    a time by one ``eval`` once their tests are done, and the rest when the test session
    ends. Each
    vhost serves one test: none sees another's queues."""

    MADE_AT_ONCE = 12
    # Deleted sooner than made: a used vhost keeps its quorum queues until then.
    DELETED_AT_ONCE = 6

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fresh: list[str] = []
        self._used: list[str] = []

    def take(self) -> str:
        with self._lock:
            if not self._fresh:
                self._fresh = self._make(self.MADE_AT_ONCE)
            return self._fresh.pop()

    def give_back(self, vhost: str) -> None:
        with self._lock:
            self._used.append(vhost)
            if len(self._used) >= self.DELETED_AT_ONCE:
                self._delete(self._used)
                self._used = []

    def close(self) -> None:
        with self._lock:
            leftover, self._fresh, self._used = self._fresh + self._used, [], []
        if leftover:
            self._delete(leftover)

    @staticmethod
    def _make(count: int) -> list[str]:
        vhosts = [f"cc_test_{uuid.uuid4().hex[:12]}" for _ in range(count)]
        user = urlsplit(SERVERS.rabbitmq_url).username or "guest"
        _import(json.dumps({
            "vhosts": [{"name": vhost} for vhost in vhosts],
            "permissions": [{"user": user, "vhost": vhost, "configure": ".*", "write": ".*",
                             "read": ".*"} for vhost in vhosts],
        }))  # fmt: skip
        return vhosts

    @staticmethod
    def _delete(vhosts: list[str]) -> None:
        # rabbit_vhost:delete/2 is what `rabbitmqctl delete_vhost` calls (RabbitMQ 3.8+).
        names = ",".join(f'<<"{vhost}">>' for vhost in vhosts)
        _ctl("eval", f'[rabbit_vhost:delete(V, <<"cc-tests">>) || V <- [{names}]], ok.')


_POOL = _VhostPool()


def close_vhost_pool() -> None:
    """Delete the vhosts still made or in use (at the end of the test session)."""
    _POOL.close()


@asynccontextmanager
async def throwaway_vhost() -> AsyncIterator[str]:
    """A fresh vhost (its AMQP URL) that is deleted, with all its queues, afterwards."""
    vhost = await asyncio.to_thread(_POOL.take)
    try:
        url = vhost_url(vhost)
        try:
            connection = await aio_pika.connect(url, timeout=5)
        except (OSError, aio_pika.exceptions.AMQPError) as exc:
            pytest.fail(f"RabbitMQ is unreachable at {url} ({exc!r}); {START_HINT}", pytrace=False)
        await connection.close()
        yield url
    finally:
        await asyncio.to_thread(_POOL.give_back, vhost)


async def operator_policy(url: str, name: str, pattern: str, definition: str) -> None:
    """An operator's policy on the queues of ``url``'s vhost, which must be a test's own
    (``throwaway_vhost``: its policies go with it); ``definition`` is its JSON."""
    vhost = unquote(urlsplit(url).path.removeprefix("/"))
    assert vhost.startswith("cc_test_"), f"policies only on a test's own vhost, not {vhost!r}"
    await asyncio.to_thread(
        _ctl, "set_policy", "-p", vhost, name, pattern, definition, "--apply-to", "queues"
    )


async def bind_queue(url: str, queue: str, *routing_keys: str) -> None:
    """Declare the contract's exchange and a durable queue bound to ``routing_keys``."""
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            DEFAULT_NAMES.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        declared = await channel.declare_queue(queue, durable=True)
        for key in routing_keys:
            await declared.bind(exchange, key)


async def read_queue(
    url: str, queue: str | Sequence[str], *, expected: int, timeout: float = 30.0
) -> list[AbstractIncomingMessage]:
    """Consume ``queue`` (or several: a service's queue and its partition queues) until
    ``expected`` messages arrived, then a short quiet period (to catch extra ones: a
    duplicate must be seen, not missed)."""
    received: list[AbstractIncomingMessage] = []
    arrived = asyncio.Event()

    async def take(message: AbstractIncomingMessage) -> None:
        await message.ack()
        received.append(message)
        arrived.set()

    names = [queue] if isinstance(queue, str) else list(queue)
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        for name in names:
            declared = await channel.declare_queue(name, durable=True, passive=True)
            await declared.consume(take)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(received) < expected and loop.time() < deadline:
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), timeout=deadline - loop.time())
            except TimeoutError:
                break
        if len(received) >= expected:
            await asyncio.sleep(0.5)  # the quiet period
    return list(received)


async def queue_depth(url: str, queue: str) -> int:
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True, passive=True)
        return declared.declaration_result.message_count or 0


@asynccontextmanager
async def least_privilege_accounts() -> AsyncIterator[Callable[[str], str]]:
    """A fresh vhost with the system's accounts (app/messaging/broker_accounts.py) under a unique
    prefix, imported as a definitions file; yields ``url(role)`` for a role such as
    ``"ordering-relay"`` or ``"admin"``. Users and vhost are deleted afterwards."""
    prefix = f"cc-test-{uuid.uuid4().hex[:10]}"
    vhost = f"{prefix}-vhost"
    chosen = accounts(prefix)
    passwords = {account.name: f"pw-{uuid.uuid4().hex}" for account in chosen}
    document = json.dumps(definitions(passwords, vhost=vhost, prefix=prefix))
    await asyncio.to_thread(_import, document)
    parts = urlsplit(SERVERS.rabbitmq_url)
    host = f"{parts.hostname}:{parts.port or 5672}"

    def url(role: str) -> str:
        name = f"{prefix}-{role}"
        return f"amqp://{name}:{passwords[name]}@{host}/{quote(vhost, safe='')}"

    try:
        for account in chosen:
            await _await_account(url(account.name.removeprefix(f"{prefix}-")))
        yield url
    finally:
        for account in chosen:
            await asyncio.to_thread(_ctl, "delete_user", account.name)
        await asyncio.to_thread(_ctl, "delete_vhost", vhost)


def _import(document: str) -> None:
    # Through standard input: the broker's own user cannot read the test's files.
    done = subprocess.run(
        [SERVERS.rabbitmqctl, "-q", "import_definitions", "--format", "json"],
        input=document,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.fail(f"rabbitmqctl import_definitions failed: {done.stderr.strip()}")


async def _await_account(url: str) -> None:
    # The import is asynchronous: wait until the account can connect.
    for _ in range(100):
        try:
            connection = await aio_pika.connect(url, timeout=5)
        except (OSError, aio_pika.exceptions.AMQPError):
            await asyncio.sleep(0.1)
            continue
        await connection.close()
        return
    pytest.fail("the imported accounts never became usable")
