"""Least-privilege RabbitMQ accounts, one per process role and service, as a RabbitMQ
definitions file (https://www.rabbitmq.com/docs/definitions) loaded at the broker's boot
or with ``rabbitmqctl import_definitions``.

| account | may |
|---|---|
| ``P-admin`` | everything in the vhost: ``broker declare``, the CLI's dead-letter commands |
| ``P-S-relay`` | write to the events exchange, only S's own events (topic permissions) |
| ``P-S-consumer`` | read ``S.events``; write its dead letters to ``S.events.dlx`` |
| ``P-S-api`` | the admin API: list and purge ``S.events.dlq`` (read only) |

Nobody but ``P-admin`` configures (declares or deletes). Only ``P-admin`` replays dead
letters: a replay is a publish that keeps the first publisher's ``user_id`` (RabbitMQ's
``impersonator`` tag), and whoever may do that may put any event in any queue — so not an
account that lives in an internet-facing API process.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.settings import SERVICES
from app.messaging.registry import published_by
from cloudcrm_outbox.names import DEFAULT_NAMES, ConsumerTopology, MessagingNames

NOTHING = "^$"


@dataclass(frozen=True)
class Account:
    """One broker user: its permission patterns (regular expressions on resource names)
    and, for a relay, the routing keys it may publish to the events exchange."""

    name: str
    configure: str = NOTHING
    write: str = NOTHING
    read: str = NOTHING
    topic_write: str | None = None
    tags: tuple[str, ...] = ()


def _exactly(*names: str) -> str:
    return "^(" + "|".join(re.escape(name) for name in sorted(names)) + ")$"


def accounts(prefix: str = "cloudcrm", names: MessagingNames = DEFAULT_NAMES) -> list[Account]:
    """Every account of the system, least privilege each (the table above)."""
    found = [Account(f"{prefix}-admin", ".*", ".*", ".*", tags=("impersonator",))]
    for service in SERVICES:
        topology = ConsumerTopology.for_service(service, names)
        dead_letter_exchange = topology.dead_letter_exchange
        dead_letter_queue = topology.dead_letter_queue
        found += [
            Account(
                f"{prefix}-{service}-relay",
                write=_exactly(names.exchange),
                # An event's name, or for a keyed event its name and partition (.pN).
                topic_write=_exactly(*published_by(service))[:-1] + r"(\.p[0-9]+)?$",
            ),
            Account(
                f"{prefix}-{service}-consumer",
                write=_exactly(dead_letter_exchange),
                read=_exactly(*topology.queues),
            ),
            Account(f"{prefix}-{service}-api", read=_exactly(dead_letter_queue)),
        ]
    return found


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt ‖ SHA-256(salt ‖ password)),
    with a random 4-byte salt (https://www.rabbitmq.com/docs/passwords#computing-password-hash)."""
    salt = os.urandom(4) if salt is None else salt
    digest = hashlib.sha256(salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def definitions(
    passwords: Mapping[str, str],
    *,
    vhost: str = "/",
    prefix: str = "cloudcrm",
    names: MessagingNames = DEFAULT_NAMES,
) -> dict[str, Any]:
    """The definitions document: the vhost, every account with its password's hash
    (``passwords``: account name → password), permissions and topic permissions.

    Raises ValueError naming the accounts without a password.
    """
    chosen = accounts(prefix, names)
    missing = [account.name for account in chosen if not passwords.get(account.name)]
    if missing:
        raise ValueError(f"no password for {', '.join(missing)}")
    return {
        "vhosts": [{"name": vhost}],
        "users": [
            {
                "name": account.name,
                "password_hash": password_hash(passwords[account.name]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": list(account.tags),
            }
            for account in chosen
        ],
        "permissions": [
            {
                "user": account.name,
                "vhost": vhost,
                "configure": account.configure,
                "write": account.write,
                "read": account.read,
            }
            for account in chosen
        ],
        "topic_permissions": [
            {
                "user": account.name,
                "vhost": vhost,
                "exchange": names.exchange,
                "write": account.topic_write,
                "read": NOTHING,
            }
            for account in chosen
            if account.topic_write is not None
        ],
    }


def passwords_in(directory: Path, prefix: str = "cloudcrm") -> dict[str, str]:
    """Each account's password from the file named after it in ``directory`` (as compose
    mounts secrets under /run/secrets); a missing file is left out."""
    found: dict[str, str] = {}
    for account in accounts(prefix):
        path = directory / account.name
        if path.is_file():
            found[account.name] = path.read_text(encoding="utf-8").strip()
    return found
