"""Errors the outbox raises that a caller may catch, whichever broker or database is behind."""

from __future__ import annotations


class TopologyConflictError(Exception):
    """The broker refused a declaration (an existing entity differs, or no permission).

    Not a passing fault: retrying cannot help, so processes exit 1 with this message.
    """


class TopologyAccessRefusedError(TopologyConflictError):
    """The account may not configure (RabbitMQ's 403 ACCESS_REFUSED): a least-privilege relay
    or consumer, which uses the topology ``broker declare`` made instead."""
