"""The one place that reads the environment: nothing else reads ``os.environ``, so every
setting is named, typed and checked here."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.services import SERVICES, ServiceName
from cloudcrm_outbox.urls import node_urls

__all__ = ["SERVICES", "TEN_YEARS", "ServiceName", "Settings", "publishers_of"]


# Retention ages beyond this are a typo (and PostgreSQL's interval arithmetic overflows).
TEN_YEARS = 10 * 365 * 24 * 3600.0


class Settings(BaseSettings):
    """Every setting of every process; names are part of the contract (deployments set
    them: never renamed)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    ordering_database_url: str = "sqlite+aiosqlite:///./var/ordering.db"
    catalog_database_url: str = "sqlite+aiosqlite:///./var/catalog.db"
    broker_url: str = "memory://"
    # Where the embedded broker (BROKER_URL=memory://, `dev` only) keeps its queues, so a
    # message confirmed to the relay survives a crash of the process until it is acked.
    embedded_broker_path: str = "./var/broker.db"
    catalog_api_url: str = "http://127.0.0.1:8002"
    # Where `python -m app web` reaches ordering's API (and catalog's at CATALOG_API_URL).
    ordering_api_url: str = "http://127.0.0.1:8001"

    # How long ordering waits for catalog's integration API before answering without names.
    catalog_api_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # Connection pool per service database (PostgreSQL only; SQLite uses its own pool).
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # The proxies (comma-separated addresses or networks, "*" for any) whose
    # X-Forwarded-Proto and X-Forwarded-For the APIs and pages believe (uvicorn's
    # forwarded_allow_ips): behind a TLS-terminating proxy the pages then see https, and set
    # their session cookie __Host- and Secure. Unset: those headers are never believed.
    forwarded_allow_ips: str | None = None
    # Largest accepted HTTP request body; the contract fixes 64 KiB.
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024)

    # Every process waits this long for its database and broker at start, then exits
    # with a clear message (compose starts everything at once).
    startup_timeout_seconds: float = Field(default=60.0, ge=0, le=3_600)

    # Every process's logs: the lowest level written, and text (key=value) or JSON lines.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    # Relays and consumers serve /health/live, /health/ready and /metrics on this port
    # (none when unset; `--metrics-port` on the command); the APIs serve them on theirs.
    metrics_port: int | None = Field(default=None, ge=1, le=65_535)
    metrics_host: str = "127.0.0.1"

    # Bearer tokens (JWT) on every API route. Production: an identity provider's keys
    # (AUTH_JWKS_URL, RS256/ES256) with AUTH_ISSUER and AUTH_AUDIENCE. Development and
    # tests: a shared HS256 secret of at least 32 characters (RFC 7518 §3.2: no shorter
    # than the hash). AUTH_DISABLED=true opens every route (local experiments only).
    auth_jwt_secret: SecretStr | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_jwks_url: str | None = None
    auth_disabled: bool = False
    # Ordering's own token for catalog's integration API, from the identity provider by
    # the client credentials grant (RFC 6749 §4.4); with AUTH_JWT_SECRET it signs its own.
    auth_token_url: str | None = None
    auth_client_id: str | None = None
    auth_client_secret: SecretStr | None = None
    # The web pages' sign-in at the identity provider (authorization code + PKCE, a public
    # client): its authorization endpoint and the pages' client id; tokens come from
    # AUTH_TOKEN_URL.
    auth_authorize_url: str | None = None
    auth_web_client_id: str | None = None
    # The RabbitMQ account each service's relay publishes as, "service=user,…": a consumer
    # dead-letters an event whose user_id (validated by RabbitMQ) is not its owner's.
    # Empty: not checked (a WARNING at every consumer start on RabbitMQ).
    broker_publishers: str = ""

    # `python -m app dev`: add a few demo products to an empty catalog at start.
    seed_demo_products: bool = True

    # The relay (python -m app relay SERVICE).
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Concurrent claim-publish-mark loops per relay process: while one waits for
    # confirms, another claims, so the database and the broker work at the same time.
    relay_concurrency: int = Field(default=2, ge=1, le=32)
    relay_publish_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    relay_max_attempts: int = Field(default=10, ge=1, le=1_000)
    relay_retry_base_seconds: float = Field(default=1.0, ge=0, le=3_600)
    relay_retry_max_seconds: float = Field(default=300.0, ge=0, le=86_400)
    relay_poll_interval_seconds: float = Field(default=1.0, gt=0, le=3_600)
    # How the relay writes a batch to RabbitMQ: "fast" (its own frames, through aiormq's
    # private channel bookkeeping), "public" (aiormq's basic_publish per message, still
    # pipelined with confirms), or "auto": fast only on the aiormq versions it was tested
    # on (app/outbox/brokers/rabbitmq/publishing/path.py), public otherwise. Its start-up
    # line says which.
    relay_publish_path: Literal["auto", "fast", "public"] = "auto"
    # A row RabbitMQ returns as unroutable (no queue bound to its event yet) is not at
    # fault: it is retried with capped backoff for this long before it is failed.
    relay_unroutable_give_up_seconds: float = Field(
        default=7 * 24 * 3600, ge=0, le=TEN_YEARS, allow_inf_nan=False
    )
    # Broker reconnect backoff (full jitter between 0 and the capped exponential).
    broker_reconnect_max_seconds: float = Field(default=30.0, gt=0, le=3_600)
    # Retention of published outbox rows (failed and pending rows are never deleted).
    outbox_retention_seconds: float = Field(
        default=7 * 24 * 3600, ge=0, le=TEN_YEARS, allow_inf_nan=False
    )
    retention_interval_seconds: float = Field(default=60.0, gt=0, le=7 * 24 * 3600)
    retention_batch_size: int = Field(default=1_000, ge=1, le=100_000)
    # The pause between two retention batches, and whether this process cleans at all: one
    # cleaner per table at a time anyway (an advisory lock), but an operator may keep the
    # work off a latency-sensitive instance.
    retention_pause_seconds: float = Field(default=0.1, ge=0, le=60)
    retention_enabled: bool = True
    # How long SIGTERM waits for the batch in flight before releasing it.
    shutdown_grace_seconds: float = Field(default=5.0, gt=0, le=300)

    # The consumer (python -m app consume SERVICE).
    consumer_prefetch: int = Field(default=500, ge=1, le=65_535)
    # A batch of messages shares one database transaction: up to this many, taken from
    # what has arrived. By default it does not wait for more (window 0): deliveries pile up
    # while the previous batch commits, so batches fill under load by themselves, and an
    # idle system answers one message without delay.
    consumer_batch_size: int = Field(default=200, ge=1, le=5_000)
    consumer_batch_window_seconds: float = Field(default=0.0, ge=0, le=5)
    # Deliveries after which the consumer dead-letters a message that keeps failing,
    # counted by the quorum queue (x-delivery-count), so consumer crashes and restarts
    # count too, hence generous. Not a queue argument: a new value applies at restart.
    consumer_delivery_limit: int = Field(default=20, ge=1, le=1_000)
    # A failed message is requeued after a pause that doubles from 0.1 s up to this.
    consumer_redelivery_max_seconds: float = Field(default=30.0, gt=0, le=3_600)
    # PostgreSQL lock_timeout and statement_timeout of the consumer's (and relay's)
    # transactions: a row locked elsewhere parks its message instead of stalling all.
    consumer_lock_timeout_seconds: float = Field(default=2.0, gt=0, le=3_600)
    consumer_statement_timeout_seconds: float = Field(default=10.0, gt=0, le=3_600)
    # While a row is known to be held for long (a message waited out the lock timeout for
    # it and is parked), the consumer tries messages with this shorter lock timeout: each
    # blocked message then holds the others up this long, not a whole lock timeout.
    consumer_blocked_lock_timeout_seconds: float = Field(default=0.1, gt=0, le=60)
    inbox_retention_seconds: float = Field(
        default=7 * 24 * 3600, ge=0, le=TEN_YEARS, allow_inf_nan=False
    )
    # Catalog's finished stock reservations (rejected, released, cancel tombstones) are
    # deleted this long after their last change; live ones never. At least the inbox's
    # retention: while a message may still be skipped as a duplicate, its order's
    # reservation must still say what was done (the rule: app/catalog/retention.py).
    reservation_retention_seconds: float = Field(
        default=30 * 24 * 3600, ge=0, le=TEN_YEARS, allow_inf_nan=False
    )
    database_reconnect_max_seconds: float = Field(default=30.0, gt=0, le=3_600)
    # Every PostgreSQL connection's TCP keepalives and user timeout (libpq's keepalives_idle,
    # keepalives_interval, keepalives_count and tcp_user_timeout): a database gone silent
    # (a failover, a killed container, a dropped NAT mapping) is noticed by the network.
    database_keepalives_idle_seconds: float = Field(default=10.0, ge=1, le=7_200)
    database_keepalives_interval_seconds: float = Field(default=5.0, ge=1, le=600)
    database_keepalives_count: int = Field(default=3, ge=1, le=100)
    database_tcp_user_timeout_seconds: float = Field(default=10.0, ge=0, le=3_600)
    # How long a relay's or consumer's batch, and an API request, wait for the database to
    # answer their work. Past it the connection is taken for one that stopped answering (a
    # peer that still takes the bytes: a proxy or balancer whose server is gone): dropped,
    # never reused, the work retried on a new one (a request answers 503). Above the
    # statement timeout, so that a slow statement is ended by the server, which answers.
    database_answer_timeout_seconds: float = Field(default=12.0, gt=0, le=3_600)
    # PostgreSQL ends a relay's session left idle in its transaction this long (its
    # idle_in_transaction_session_timeout): rows claimed by a relay cut off from its
    # database go back to the other relays. A batch is idle in its transaction while it
    # publishes: at least 3 x RELAY_PUBLISH_TIMEOUT_SECONDS (connect, then the confirms).
    relay_claim_timeout_seconds: float = Field(default=60.0, gt=0, le=3_600)
    # How long an Idempotency-Key is remembered at least (then housekeeping deletes it):
    # a POST retried with the same key within it answers the first result.
    idempotency_key_retention_seconds: float = Field(
        default=24 * 3600, ge=60, le=TEN_YEARS, allow_inf_nan=False
    )

    # The saga's reply timeout (app/ordering/reply_timeouts.py): an order still Placed this
    # long after it was placed has its OrderPlaced published again under the same
    # message_id; then again after a delay that doubles up to the backoff cap, at most
    # ORDER_REPLY_MAX_RETRIES times, after which the order is reported as unanswered.
    order_reply_timeout_seconds: float = Field(default=300.0, gt=0, le=7 * 24 * 3600)
    order_reply_max_retries: int = Field(default=5, ge=0, le=100)
    order_reply_backoff_max_seconds: float = Field(default=3600.0, gt=0, le=7 * 24 * 3600)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _case_insensitive(cls, value: object) -> object:
        # LOG_LEVEL=debug and LOG_FORMAT=JSON mean what they say.
        if not isinstance(value, str):
            return value
        return (
            value.upper()
            if value.lower() in {"debug", "info", "warning", "error"}
            else (value.lower())
        )

    @field_validator(
        "auth_jwt_secret",
        "auth_issuer",
        "auth_audience",
        "auth_jwks_url",
        "auth_token_url",
        "auth_client_id",
        "auth_client_secret",
        "auth_authorize_url",
        "auth_web_client_id",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # FOO= in a compose file or a shell means "not set", not "the empty string".
        return None if value == "" else value

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _trusted_proxies(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None  # FORWARDED_ALLOW_IPS= means unset
        if isinstance(value, str):
            for item in (part.strip() for part in value.split(",")):
                if item != "*":
                    try:
                        ipaddress.ip_network(item, strict=False)
                    except ValueError:
                        raise ValueError(
                            f"{item!r} is not an IP address or network (e.g. 10.0.0.5, "
                            "10.0.0.0/8, or * for any)"
                        ) from None
        return value

    @field_validator("auth_jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 32:
            raise ValueError(
                "must be at least 32 characters, not counting spaces (HS256 needs a 256-bit key)"
            )
        return value

    @field_validator("ordering_database_url", "catalog_database_url")
    @classmethod
    def _one_at_sign(cls, value: str) -> str:
        # SQLAlchemy splits user:password@host at the first '@', libpq and yarl at the last:
        # a raw '@' in a password would connect elsewhere and leak into error messages.
        authority = value.split("://", 1)[-1].split("/", 1)[0]
        if authority.count("@") > 1:
            raise ValueError("percent-encode '@' in the user or password as %40")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_nodes(cls, value: str) -> str:
        # Several RabbitMQ nodes: comma-separated AMQP URLs (app/outbox/urls.py).
        if "," in value or value.startswith(("amqp://", "amqps://")):
            node_urls(value)  # raises ValueError with the reason
        return value

    @field_validator("broker_publishers")
    @classmethod
    def _publishers(cls, value: str) -> str:
        publishers_of(value)  # raises ValueError with the reason
        return value

    @model_validator(mode="after")
    def _complete_auth(self) -> Settings:
        if self.auth_jwks_url and not (self.auth_issuer and self.auth_audience):
            raise ValueError("AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE too")
        if (self.auth_client_id or self.auth_client_secret) and not (
            self.auth_token_url and self.auth_client_id and self.auth_client_secret
        ):
            raise ValueError(
                "AUTH_CLIENT_ID and AUTH_CLIENT_SECRET go together, with AUTH_TOKEN_URL"
            )
        if self.auth_authorize_url and not (self.auth_web_client_id and self.auth_token_url):
            raise ValueError("AUTH_AUTHORIZE_URL needs AUTH_WEB_CLIENT_ID and AUTH_TOKEN_URL too")
        return self

    @property
    def event_publishers(self) -> dict[str, str]:
        """BROKER_PUBLISHERS as {service: broker user}."""
        return publishers_of(self.broker_publishers)

    @model_validator(mode="after")
    def _database_timeouts_in_order(self) -> Settings:
        if self.database_answer_timeout_seconds <= self.consumer_statement_timeout_seconds:
            raise ValueError(
                "DATABASE_ANSWER_TIMEOUT_SECONDS must exceed CONSUMER_STATEMENT_TIMEOUT_SECONDS "
                f"({self.database_answer_timeout_seconds:g} <= "
                f"{self.consumer_statement_timeout_seconds:g}): a slow statement must be ended "
                "by the server, not taken for a silent connection"
            )
        if self.relay_claim_timeout_seconds < 3 * self.relay_publish_timeout_seconds:
            raise ValueError(
                "RELAY_CLAIM_TIMEOUT_SECONDS must be at least 3 x RELAY_PUBLISH_TIMEOUT_SECONDS "
                f"({self.relay_claim_timeout_seconds:g} < 3 x "
                f"{self.relay_publish_timeout_seconds:g}): a batch's claim lasts while it "
                "connects to RabbitMQ and waits for the confirms"
            )
        return self

    @model_validator(mode="after")
    def _blocked_lock_timeout_is_shorter(self) -> Settings:
        if self.consumer_blocked_lock_timeout_seconds > self.consumer_lock_timeout_seconds:
            raise ValueError(
                "CONSUMER_BLOCKED_LOCK_TIMEOUT_SECONDS must not exceed "
                f"CONSUMER_LOCK_TIMEOUT_SECONDS ({self.consumer_blocked_lock_timeout_seconds:g}"
                f" > {self.consumer_lock_timeout_seconds:g})"
            )
        return self

    @model_validator(mode="after")
    def _reservations_outlive_the_inbox(self) -> Settings:
        if self.reservation_retention_seconds < self.inbox_retention_seconds:
            raise ValueError(
                "RESERVATION_RETENTION_SECONDS must be at least INBOX_RETENTION_SECONDS "
                f"({self.reservation_retention_seconds:g} < {self.inbox_retention_seconds:g})"
            )
        return self

    @model_validator(mode="after")
    def _republish_while_the_inbox_remembers(self) -> Settings:
        # A copy republished after catalog's inbox forgot the first would be new to it
        # (the reservation still stops a second reservation, but the inbox is the rule).
        from app.ordering.reply_timeouts import ReplyTimeoutPolicy  # the sweep's own rule

        last = ReplyTimeoutPolicy(
            timeout_seconds=self.order_reply_timeout_seconds,
            max_retries=self.order_reply_max_retries,
            backoff_max_seconds=self.order_reply_backoff_max_seconds,
        ).last_republish_seconds
        if last >= self.inbox_retention_seconds:
            raise ValueError(
                "the last reply-timeout republish (ORDER_REPLY_TIMEOUT_SECONDS, doubled up "
                "to ORDER_REPLY_BACKOFF_MAX_SECONDS, ORDER_REPLY_MAX_RETRIES times) would "
                f"come {last:g} s after the order, not before INBOX_RETENTION_SECONDS "
                f"({self.inbox_retention_seconds:g})"
            )
        return self

    def database_url(self, service: ServiceName) -> str:
        """The database URL of one service."""
        if service == "ordering":
            return self.ordering_database_url
        if service == "catalog":
            return self.catalog_database_url
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")


def publishers_of(text: str) -> dict[str, str]:
    """``"ordering=u1,catalog=u2"`` as ``{"ordering": "u1", "catalog": "u2"}``.

    Raises ValueError for an unknown service, a missing user or a service named twice.
    """
    publishers: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        service, _, user = (side.strip() for side in item.partition("="))
        if service not in SERVICES or not user:
            raise ValueError(
                f"{item!r} is not service=user with a service among {', '.join(SERVICES)}"
            )
        if service in publishers:
            raise ValueError(f"{service} is named twice")
        publishers[service] = user
    return publishers
