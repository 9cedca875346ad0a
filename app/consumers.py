"""What each service consumes: the one place that maps a service to its subscriptions."""

from __future__ import annotations

from app.outbox.subscriptions import Subscription


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
