"""Errors the outbox raises that a caller may catch, whichever broker or database is behind."""

from __future__ import annotations

from cloudcrm_outbox.logs import library_logger

logger = library_logger(__name__)


class BrokerUnavailableError(Exception):
    """The broker cannot be reached; the caller backs off and retries."""


class TopologyConflictError(Exception):
    """The broker refused a declaration (an existing entity differs, or no permission).

    Not a passing fault: retrying cannot help, so processes exit 1 with this message.
    """


class TopologyAccessRefusedError(TopologyConflictError):
    """The account may not configure (RabbitMQ's 403 ACCESS_REFUSED): a least-privilege relay
    or consumer, which uses the topology ``broker declare`` made instead."""


class FatalError(SystemExit):
    """A process cannot go on and must not retry: the message is logged as one ERROR
    line, and the process exits 1 (a supervisor restarts it; a person reads the line)."""

    def __init__(self, message: str) -> None:
        logger.error(message)
        self.message = message
        super().__init__(1)


# Exceptions that mean a dependency failed (the database, the broker, the network), by the
# class that defines them, matched anywhere in the exception's class hierarchy: this module
# imports none of their libraries, each of which is an optional extra. SQLAlchemy's own
# errors other than DBAPIError (a wrong argument, a misuse) are the code's, not expected.
_DEPENDENCY_FAULTS = frozenset(
    {
        ("sqlalchemy.exc", "DBAPIError"),
        ("psycopg", "Error"),
        ("sqlite3", "Error"),
        ("aiormq.exceptions", "AMQPError"),
    }
)


def is_expected_fault(exc: BaseException) -> bool:
    """A fault of a dependency that retry loops expect (the broker or the database away,
    the network): logged in one line. Anything else is logged with its traceback too."""
    if isinstance(exc, BrokerUnavailableError | OSError):
        return True
    return any(
        (cls.__module__, cls.__qualname__) in _DEPENDENCY_FAULTS for cls in type(exc).__mro__
    )
