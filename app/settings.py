"""The one place that reads the environment (STYLE rule 7)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = str  # "ordering" | "catalog"
SERVICES: tuple[str, ...] = ("ordering", "catalog")


class Settings(BaseSettings):
    """Every setting of every process; names are part of the contract (ARCHITECTURE.md)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    ordering_database_url: str = "sqlite+aiosqlite:///./var/ordering.db"
    catalog_database_url: str = "sqlite+aiosqlite:///./var/catalog.db"
    broker_url: str = "memory://"
    catalog_api_url: str = "http://127.0.0.1:8002"

    # How long ordering waits for catalog's integration API before answering without names.
    catalog_api_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # Connection pool per service database (PostgreSQL only; SQLite uses its own pool).
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # Largest accepted HTTP request body; the contract fixes 64 KiB.
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024)

    def database_url(self, service: ServiceName) -> str:
        """The database URL of one service."""
        if service == "ordering":
            return self.ordering_database_url
        if service == "catalog":
            return self.catalog_database_url
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
