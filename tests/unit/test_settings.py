from __future__ import annotations

import pytest

from app.core.settings import Settings


def test_defaults_are_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORDERING_DATABASE_URL", "CATALOG_DATABASE_URL", "BROKER_URL", "CATALOG_API_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.ordering_database_url == "sqlite+aiosqlite:///./var/ordering.db"
    assert settings.catalog_database_url == "sqlite+aiosqlite:///./var/catalog.db"
    assert settings.broker_url == "memory://"
    assert settings.catalog_api_url == "http://127.0.0.1:8002"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERING_DATABASE_URL", "postgresql+psycopg://u@h/o")
    monkeypatch.setenv("CATALOG_API_TIMEOUT_SECONDS", "0.5")
    settings = Settings()
    assert settings.database_url("ordering") == "postgresql+psycopg://u@h/o"
    assert settings.catalog_api_timeout_seconds == 0.5


def test_unknown_service_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown service 'billing'"):
        Settings().database_url("billing")


def test_invalid_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_API_TIMEOUT_SECONDS", "-1")
    with pytest.raises(ValueError, match="catalog_api_timeout_seconds"):
        Settings()


def test_reservations_may_not_be_deleted_before_the_inbox_forgets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INBOX_RETENTION_SECONDS", "100")
    monkeypatch.setenv("RESERVATION_RETENTION_SECONDS", "99")
    with pytest.raises(ValueError, match="RESERVATION_RETENTION_SECONDS must be at least"):
        Settings()


def test_reply_timeouts_must_end_while_the_inbox_remembers() -> None:
    from app.core.settings import Settings
    from app.ordering.reply_timeouts import ReplyTimeoutPolicy

    def last(timeout: float, retries: int, cap: float) -> float:
        return ReplyTimeoutPolicy(timeout, retries, cap).last_republish_seconds

    # The first wait is the timeout itself, never capped by the backoff's maximum.
    assert last(300, 5, 3600) == 300 + 600 + 1200 + 2400 + 3600
    assert last(604_800, 5, 3600) == 604_800 + 4 * 3600
    assert last(300, 0, 3600) == 0
    with pytest.raises(ValueError, match="INBOX_RETENTION_SECONDS"):
        Settings(order_reply_timeout_seconds=604_800)
    with pytest.raises(ValueError, match="INBOX_RETENTION_SECONDS"):
        Settings(
            inbox_retention_seconds=3600,
            reservation_retention_seconds=3600,
            order_reply_timeout_seconds=86_400,
            order_reply_backoff_max_seconds=1,
        )


@pytest.mark.parametrize("value", ["1e12", "inf", "nan", "-1"])
def test_retention_ages_are_bounded(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from app.core.settings import Settings

    monkeypatch.setenv("OUTBOX_RETENTION_SECONDS", value)
    with pytest.raises(ValueError, match="outbox_retention_seconds"):
        Settings()


def test_a_raw_at_sign_in_a_database_password_is_refused() -> None:
    from app.core.settings import Settings

    with pytest.raises(ValueError, match="percent-encode '@'"):
        Settings(ordering_database_url="postgresql+psycopg://u:pa@ss@127.0.0.1/x")
    assert Settings(ordering_database_url="postgresql+psycopg://u:pa%40ss@127.0.0.1/x")


@pytest.mark.parametrize("value", ["inf", "1e12"])
def test_the_retention_interval_is_bounded(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from app.core.settings import Settings

    monkeypatch.setenv("RETENTION_INTERVAL_SECONDS", value)
    with pytest.raises(ValueError, match="retention_interval_seconds"):
        Settings()


def test_the_relay_publish_path_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.messaging.wiring import relay_broker
    from cloudcrm_outbox.brokers.rabbitmq.broker import RabbitMQBroker

    assert Settings().relay_publish_path == "auto"
    monkeypatch.setenv("RELAY_PUBLISH_PATH", "public")
    monkeypatch.setenv("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
    broker = relay_broker(Settings())
    assert isinstance(broker, RabbitMQBroker) and broker.publish_path == "public"
    monkeypatch.setenv("RELAY_PUBLISH_PATH", "quick")
    with pytest.raises(ValueError, match="relay_publish_path"):
        Settings()


def test_trusted_proxies_are_addresses_or_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, read in (("", None), ("10.0.0.5, 10.1.0.0/16,::1", "10.0.0.5, 10.1.0.0/16,::1"),
                        ("*", "*")):  # fmt: skip
        monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
        assert Settings().forwarded_allow_ips == read
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.5,proxy.example")
    with pytest.raises(ValueError, match=r"'proxy\.example' is not an IP address or network"):
        Settings()
