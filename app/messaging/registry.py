"""What each service consumes and publishes: the one place that maps a service to its
subscriptions, and so to the RabbitMQ queues and bindings of the whole system."""

from __future__ import annotations

from app.core.settings import SERVICES
from cloudcrm_outbox.names import DEFAULT_NAMES, MessagingNames, QueueBindings
from cloudcrm_outbox.subscriptions import Subscription


def subscriptions_of(service: str) -> tuple[Subscription, ...]:
    """``service``'s subscriptions (imported on demand: a relay or an API never loads the
    other service's handlers)."""
    if service == "catalog":
        from app.catalog.handlers import SUBSCRIPTIONS as CATALOG

        return CATALOG
    if service == "ordering":
        from app.ordering.handlers import SUBSCRIPTIONS as ORDERING

        return ORDERING
    raise ValueError(f"unknown service {service!r}")


def published_by(service: str) -> frozenset[str]:
    """The names (routing keys) of the events ``service`` publishes."""
    if service == "catalog":
        from app.catalog.contracts import PUBLISHED
    elif service == "ordering":
        from app.ordering.contracts import PUBLISHED
    else:
        raise ValueError(f"unknown service {service!r}")
    return frozenset(event.event_name for event in PUBLISHED)


def bindings_of(service: str, names: MessagingNames = DEFAULT_NAMES) -> QueueBindings:
    """``service``'s queues (its own and its partition queues, named by ``names``), dead
    letters and the events bound to them."""
    return QueueBindings.of(service, (s.name for s in subscriptions_of(service)), names)


def all_bindings(names: MessagingNames = DEFAULT_NAMES) -> list[QueueBindings]:
    """Every service's queues: what ``python -m app broker declare`` declares."""
    return [bindings_of(service, names) for service in SERVICES]


def bindings_fed_by(service: str, names: MessagingNames = DEFAULT_NAMES) -> list[QueueBindings]:
    """The queues that ``service``'s events are routed to: what its relay declares."""
    published = published_by(service)
    return [item for item in all_bindings(names) if published & set(item.event_names)]
