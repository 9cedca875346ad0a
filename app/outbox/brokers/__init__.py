"""Message brokers behind one interface (``Broker``): RabbitMQ and the embedded one.

``broker_for(url)`` picks the broker by the URL's scheme from ``BROKER_FACTORIES``, a table of
``"module:function"`` names imported on first use (as kombu's transport aliases do), so that
``memory://`` never imports aio-pika and a missing extra is named in the error.
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING

from cloudcrm_outbox.brokers.base import BrokerOptions, UnsupportedBrokerError
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames

if TYPE_CHECKING:
    from cloudcrm_outbox.brokers.base import Broker

__all__ = [
    "AMQP_SCHEMES",
    "BROKER_FACTORIES",
    "BrokerOptions",
    "UnsupportedBrokerError",
    "broker_for",
    "is_amqp",
]

AMQP_SCHEMES = ("amqp://", "amqps://")


def is_amqp(url: str) -> bool:
    """Whether ``url`` names RabbitMQ (``amqp://`` or ``amqps://``, in any case: RFC 3986
    schemes are case-insensitive)."""
    return url.lstrip().lower().startswith(AMQP_SCHEMES)


# scheme → "module:function(url, BrokerOptions) -> Broker"
BROKER_FACTORIES: dict[str, str] = {
    "amqp": "cloudcrm_outbox.brokers.rabbitmq.broker:from_url",
    "amqps": "cloudcrm_outbox.brokers.rabbitmq.broker:from_url",
    "memory": "cloudcrm_outbox.brokers.embedded.broker:from_url",
}
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,30}")
# scheme → the distribution extra that installs its client library
_EXTRAS = {"amqp": "rabbitmq", "amqps": "rabbitmq"}


def broker_for(
    url: str,
    *,
    embedded_path: str | None = None,
    publish_timeout: float = 10.0,
    connect_timeout: float = 10.0,
    names: MessagingNames = DEFAULT_NAMES,
    publish_path: str = "auto",
) -> Broker:
    """The broker a URL names: RabbitMQ for ``amqp(s)://`` (timeouts in seconds; its
    publishers writing batches by ``publish_path``: ``auto``, ``fast`` or ``public``), the
    embedded one (its queues in the SQLite file ``embedded_path``, or in memory when None)
    for ``memory://``. No connection is made here.

    Raises UnsupportedBrokerError for another scheme, or when the scheme's extra
    (``cloudcrm-outbox[rabbitmq]``) is not installed."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    target = BROKER_FACTORIES.get(scheme)
    if target is None:
        # Only a scheme's own characters are shown: a mangled URL's text may hold a password.
        shown = repr(scheme) if _SCHEME.fullmatch(scheme) else "a malformed URL"
        shown = shown if scheme else "no scheme"
        raise UnsupportedBrokerError(
            f"no broker for {shown}: use amqp://USER:PASSWORD@HOST:5672/VHOST (RabbitMQ) "
            "or memory:// (the embedded broker, inside `python -m app dev`)"
        )
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        extra = _EXTRAS.get(scheme)
        if extra is None or missing.startswith("cloudcrm_outbox"):
            raise
        raise UnsupportedBrokerError(
            f"{scheme}:// needs the {extra!r} extra ({missing} is not installed): "
            f"pip install 'cloudcrm-outbox[{extra}]'"
        ) from error
    options = BrokerOptions(
        embedded_path=embedded_path,
        publish_timeout=publish_timeout,
        connect_timeout=connect_timeout,
        names=names,
        publish_path=publish_path,
    )
    broker: Broker = getattr(module, function)(url, options)
    return broker
