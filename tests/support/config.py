"""Where the tests find the shared servers (overridable for another machine)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class TestServers(BaseSettings):
    """``TEST_POSTGRES_ADMIN_URL``, ``TEST_RABBITMQ_URL``: tests make their own DBs and vhosts."""

    __test__ = False  # not a test class, despite the name
    model_config = SettingsConfigDict(env_prefix="TEST_", frozen=True)

    postgres_admin_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    # RabbitMQ: an AMQP base URL (the vhost is replaced by a throwaway one per test) and
    # the rabbitmqctl that creates and deletes those vhosts.
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    rabbitmqctl: str = "rabbitmqctl"
    # Orders per reliability scenario: small in `make test`, large in `make soak`.
    reliability_orders: int = 400


SERVERS = TestServers()
