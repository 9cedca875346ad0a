"""The demo's database connections: what Settings say of them for the library's engines."""

from __future__ import annotations

from app.core.settings import Settings
from cloudcrm_outbox.storage.liveness import TcpKeepalives


def tcp_keepalives(settings: Settings) -> TcpKeepalives:
    """libpq's TCP keepalives and user timeout for every PostgreSQL connection
    (DATABASE_KEEPALIVES_IDLE_SECONDS, _INTERVAL_SECONDS and _COUNT, and
    DATABASE_TCP_USER_TIMEOUT_SECONDS)."""
    return TcpKeepalives(
        idle_seconds=settings.database_keepalives_idle_seconds,
        interval_seconds=settings.database_keepalives_interval_seconds,
        count=settings.database_keepalives_count,
        user_timeout_seconds=settings.database_tcp_user_timeout_seconds,
    )
