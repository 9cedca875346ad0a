"""Where the tests find the shared servers (overridable for another machine)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class TestServers(BaseSettings):
    """``TEST_POSTGRES_ADMIN_URL``: a superuser DSN; tests create and drop their own databases."""

    __test__ = False  # not a test class, despite the name
    model_config = SettingsConfigDict(env_prefix="TEST_", frozen=True)

    postgres_admin_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"


SERVERS = TestServers()
