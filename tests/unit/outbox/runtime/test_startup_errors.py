"""At start, a refusal no wait can change ends the process at once with one line; a
dependency still starting is waited for."""

from __future__ import annotations

import re

import pytest

from cloudcrm_outbox.runtime.startup import (
    DependencyUnavailableError,
    _wait,
    is_permanent,
    is_refusal,
)
from cloudcrm_outbox.storage.engine import UnsupportedDatabaseError, check_supported


class _PsycopgError(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class ProbableAuthenticationError(Exception):
    """Named as aiormq's."""


@pytest.mark.parametrize(
    "exc",
    [
        _PsycopgError("connection failed", sqlstate="28P01"),
        _PsycopgError("connection failed", sqlstate="3D000"),
        _PsycopgError('FATAL:  database "x" does not exist'),
        _PsycopgError('FATAL:  password authentication failed for user "app"'),
        ProbableAuthenticationError("ACCESS_REFUSED - Login was refused"),
    ],
)
def test_refusals_are_permanent(exc: Exception) -> None:
    assert is_permanent(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        _PsycopgError("connection failed: Connection refused", sqlstate=None),
        _PsycopgError("the database system is starting up", sqlstate="57P03"),
        TimeoutError(),
        # a vhost that may be starting: waited for REFUSAL_GRACE_SECONDS, then the end
        Exception("Expected one of ['Connection.OpenOk'], got <Connection.Close object at 0x1>"),
    ],
)
def test_a_dependency_still_starting_is_waited_for(exc: Exception) -> None:
    assert not is_permanent(exc)


def test_a_vhost_refusal_is_a_refusal_that_may_pass() -> None:
    closed = Exception("Expected one of ['Connection.OpenOk'], got <Connection.Close object>")
    assert is_refusal(closed) and not is_refusal(ConnectionRefusedError())


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://"),
        ("postgresql+asyncpg://u@h/db", "postgresql+psycopg://"),
        ("sqlite:///x.db", "sqlite+aiosqlite://"),
    ],
)
def test_a_url_without_the_driver_gets_a_hint(url: str, hint: str) -> None:
    with pytest.raises(UnsupportedDatabaseError, match=re.escape(f"write the URL as {hint}")):
        check_supported(url)


async def test_a_refusal_when_the_start_times_out_is_reported_as_a_refusal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # STARTUP_TIMEOUT_SECONDS shorter than the vhost's grace: the server answered, so the
    # end says "refused" and how to make the vhost, never "not reachable".
    async def refused() -> None:
        raise Exception("Expected one of ['Connection.OpenOk'], got <Connection.Close object>")

    with pytest.raises(DependencyUnavailableError):
        await _wait("RabbitMQ", "127.0.0.1:5672/nosuch", refused, within=0.3)
    [message] = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert "refused this process" in message and "not reachable" not in message
    assert "rabbitmqctl add_vhost" in message and "set_permissions" in message
    assert any("no such vhost" in record.getMessage() for record in caplog.records)
