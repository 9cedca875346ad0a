"""The scopes a token may carry, and what each lets its holder do (their names are part of
the HTTP contract: tokens issued elsewhere carry them)."""

from __future__ import annotations

ORDERS_READ = "orders:read"
ORDERS_WRITE = "orders:write"
PRODUCTS_READ = "products:read"
PRODUCTS_WRITE = "products:write"
CATALOG_INTEGRATION = "catalog:integration"
ADMIN = "admin"

SCOPES: dict[str, str] = {
    ORDERS_READ: "list and read orders",
    ORDERS_WRITE: "place and cancel orders",
    PRODUCTS_READ: "list and read products",
    PRODUCTS_WRITE: "create, replace and delete products",
    CATALOG_INTEGRATION: "catalog's integration API (ordering's own token)",
    ADMIN: "the admin API: outbox, inbox and dead letters",
}


def parse_scopes(text: str) -> tuple[str, ...]:
    """Scopes from a space- or comma-separated list, in order, without repeats.

    Raises ValueError naming any unknown scope and listing the known ones.
    """
    chosen = tuple(dict.fromkeys(part for part in text.replace(",", " ").split() if part))
    if not chosen:
        raise ValueError(f"no scope given; known scopes: {' '.join(SCOPES)}")
    unknown = [scope for scope in chosen if scope not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {', '.join(unknown)}; known scopes: {' '.join(SCOPES)}")
    return chosen
