"""The one place that reads the environment: nothing else reads ``os.environ``, so every
setting is named, typed and checked here."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.doubling import last_retry_seconds
from app.core.services import SERVICES, ServiceName
from cloudcrm_outbox.brokers import is_amqp
from cloudcrm_outbox.brokers.rabbitmq.nodes import node_urls

__all__ = ["SERVICES", "TEN_YEARS", "ServiceName", "Settings", "publishers_of"]


# Retention ages beyond this are a typo (and PostgreSQL's interval arithmetic overflows).
TEN_YEARS = 10 * 365 * 24 * 3600.0


class Settings(BaseSettings):
    """Every setting of every process; names are part of the contract (deployments set
    them: never renamed)."""

    # Each field's docstring is its description: docs/reference/settings.md is made from them.
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    ordering_database_url: str = "sqlite+aiosqlite:///./var/ordering.db"
    """Ordering DB (`postgresql+psycopg://…` in production; percent-encode `@` in a password:
    `%40`)."""
    catalog_database_url: str = "sqlite+aiosqlite:///./var/catalog.db"
    """Catalog DB."""
    broker_url: str = "memory://"
    """`amqp://guest:guest@127.0.0.1:5672/` for RabbitMQ; a cluster's nodes comma-separated
    (`amqp://u:p@rabbit1:5672/,amqp://u:p@rabbit2:5672/`): every connection tries them in
    turn; connections ask for a 10 s AMQP heartbeat unless the URL names one
    (`?heartbeat=30`), so one gone silent is dropped within about half a minute."""
    # Where the embedded broker (BROKER_URL=memory://, `dev` only) keeps its queues, so a
    # message confirmed to the relay survives a crash of the process until it is acked.
    embedded_broker_path: str = "./var/broker.db"
    """The SQLite file where `dev`'s embedded broker (`memory://`) keeps its queues."""
    catalog_api_url: str = "http://127.0.0.1:8002"
    """Where ordering reaches catalog's integration API."""
    # Where `python -m app web` reaches ordering's API (and catalog's at CATALOG_API_URL).
    ordering_api_url: str = "http://127.0.0.1:8001"
    """Where `python -m app web` reaches ordering's API (catalog's: `CATALOG_API_URL`)."""

    # How long ordering waits for catalog's integration API before answering without names.
    catalog_api_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    """After this, orders are listed with `productName: null`."""
    # Connection pool per service database (PostgreSQL only; SQLite uses its own pool).
    database_pool_size: int = Field(default=10, ge=1, le=200)
    """Connections per service database (PostgreSQL)."""
    # The proxies (comma-separated addresses or networks, "*" for any) whose
    # X-Forwarded-Proto and X-Forwarded-For the APIs and pages believe (uvicorn's
    # forwarded_allow_ips): behind a TLS-terminating proxy the pages then see https, and set
    # their session cookie __Host- and Secure. Unset: those headers are never believed.
    forwarded_allow_ips: str | None = None
    """The proxies (addresses or networks, comma-separated; `*` any) whose `X-Forwarded-Proto`
    and `X-Forwarded-For` the APIs and pages believe: behind a TLS-terminating proxy named
    here the pages see `https` and their session cookie is `__Host-` and `Secure`; unset,
    those headers are believed from no one."""
    # Largest accepted HTTP request body; the contract fixes 64 KiB.
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024)
    """The largest HTTP request body the APIs accept (64 KiB); a larger one is a `413`."""

    # Every process waits this long for its database and broker at start, then exits
    # with a clear message (compose starts everything at once).
    startup_timeout_seconds: float = Field(default=60.0, ge=0, le=3_600)
    """Every process waits this long for its database and broker, then exits 1 saying which."""

    # Every process's logs: the lowest level written, and text (key=value) or JSON lines.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """The lowest level logged; `text` (`time LEVEL logger message key='value' …`) or `json`
    (one object per line)."""
    log_format: Literal["text", "json"] = "text"
    """The lowest level logged; `text` (`time LEVEL logger message key='value' …`) or `json`
    (one object per line)."""
    # Relays and consumers serve /health/live, /health/ready and /metrics on this port
    # (none when unset; `--metrics-port` on the command); the APIs serve them on theirs.
    metrics_port: int | None = Field(default=None, ge=1, le=65_535)
    """Relays and consumers serve `/health/live`, `/health/ready` and `/metrics` there
    (`--metrics-port` on the command); none when unset."""
    metrics_host: str = "127.0.0.1"
    """Relays and consumers serve `/health/live`, `/health/ready` and `/metrics` there
    (`--metrics-port` on the command); none when unset."""

    # Bearer tokens (JWT) on every API route. Production: an identity provider's keys
    # (AUTH_JWKS_URL, RS256/ES256) with AUTH_ISSUER and AUTH_AUDIENCE. Development and
    # tests: a shared HS256 secret of at least 32 characters (RFC 7518 §3.2: no shorter
    # than the hash). AUTH_DISABLED=true opens every route (local experiments only).
    auth_jwt_secret: SecretStr | None = None
    """An HS256 secret (≥ 32 characters) the APIs also accept, and `python -m app token` signs
    with; `dev` makes one under `./var` when nothing is set."""
    auth_issuer: str | None = None
    """The identity provider whose tokens (RS256/ES256) the APIs accept: its keys, its `iss`,
    your API's `aud` (all three together)."""
    auth_audience: str | None = None
    """The identity provider whose tokens (RS256/ES256) the APIs accept: its keys, its `iss`,
    your API's `aud` (all three together)."""
    auth_jwks_url: str | None = None
    """The identity provider whose tokens (RS256/ES256) the APIs accept: its keys, its `iss`,
    your API's `aud` (all three together)."""
    auth_disabled: bool = False
    """`true` opens every route to anyone (local experiments; a warning at every start)."""
    # Ordering's own token for catalog's integration API, from the identity provider by
    # the client credentials grant (RFC 6749 §4.4); with AUTH_JWT_SECRET it signs its own.
    auth_token_url: str | None = None
    """Ordering's client credentials at the identity provider, for its own
    `catalog:integration` token (with `AUTH_JWT_SECRET` it signs its own)."""
    auth_client_id: str | None = None
    """Ordering's client credentials at the identity provider, for its own
    `catalog:integration` token (with `AUTH_JWT_SECRET` it signs its own)."""
    auth_client_secret: SecretStr | None = None
    """Ordering's client credentials at the identity provider, for its own
    `catalog:integration` token (with `AUTH_JWT_SECRET` it signs its own)."""
    # The web pages' sign-in at the identity provider (authorization code + PKCE, a public
    # client): its authorization endpoint and the pages' client id; tokens come from
    # AUTH_TOKEN_URL.
    auth_authorize_url: str | None = None
    """The web pages' sign-in at the identity provider (authorization code + PKCE, the pages a
    public client; tokens from `AUTH_TOKEN_URL`)."""
    auth_web_client_id: str | None = None
    """The web pages' sign-in at the identity provider (authorization code + PKCE, the pages a
    public client; tokens from `AUTH_TOKEN_URL`)."""
    # The RabbitMQ account each service's relay publishes as, "service=user,…": a consumer
    # dead-letters an event whose user_id (validated by RabbitMQ) is not its owner's.
    # Empty: not checked (a WARNING at every consumer start on RabbitMQ).
    broker_publishers: str = ""
    """`ordering=USER,catalog=USER`: the RabbitMQ account each service's relay publishes as; a
    consumer dead-letters an event whose validated `user_id` is not its owner's (`unexpected
    publisher`); unset: not checked, a warning at every consumer start on RabbitMQ."""

    # `python -m app dev`: add a few demo products to an empty catalog at start.
    seed_demo_products: bool = True
    """`dev` adds Product A/B/C to an empty catalog."""

    # The relay (python -m app relay SERVICE).
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    """Rows claimed and published per transaction."""
    # Concurrent claim-publish-mark loops per relay process: while one waits for
    # confirms, another claims, so the database and the broker work at the same time.
    relay_concurrency: int = Field(default=2, ge=1, le=32)
    """Claim-publish-mark loops per relay process."""
    relay_publish_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """A batch's confirms must arrive within this."""
    relay_max_attempts: int = Field(default=10, ge=1, le=1_000)
    """A row that fails this often for a reason of its own (refused, cannot be encoded) is
    marked failed (kept); at the defaults after about 8.5 minutes."""
    relay_retry_base_seconds: float = Field(default=1.0, ge=0, le=3_600)
    """A failed row's exponential backoff; the most an unroutable row waits for its routing
    key's probe."""
    relay_retry_max_seconds: float = Field(default=300.0, ge=0, le=86_400)
    """A failed row's exponential backoff; the most an unroutable row waits for its routing
    key's probe."""
    relay_poll_interval_seconds: float = Field(default=1.0, gt=0, le=3_600)
    """Fallback poll (LISTEN/NOTIFY wakes the relay on PostgreSQL); `dev` caps it at 0.2 s."""
    # How the relay writes a batch to RabbitMQ: "fast" (its own frames, through aiormq's
    # private channel bookkeeping), "public" (aiormq's basic_publish per message, still
    # pipelined with confirms), or "auto": fast only on the aiormq versions it was tested
    # on (app/outbox/brokers/rabbitmq/publishing/path.py), public otherwise. Its start-up
    # line says which.
    relay_publish_path: Literal["auto", "fast", "public"] = "auto"
    """`auto`: the relay's own batched frames on the aiormq versions they were tested on,
    aiormq's public `basic_publish` otherwise; `public` or `fast` to force one."""
    # A row RabbitMQ returns as unroutable (no queue bound to its event yet) is not at
    # fault: it is retried with capped backoff for this long before it is failed.
    relay_unroutable_give_up_seconds: float = Field(
        default=7 * 24 * 3600, ge=0, le=TEN_YEARS, allow_inf_nan=False
    )
    """A row RabbitMQ returns as unroutable (no queue bound) is retried this long (7 days),
    attempts not counted, then marked failed."""
    # Broker reconnect backoff (full jitter between 0 and the capped exponential).
    broker_reconnect_max_seconds: float = Field(default=30.0, gt=0, le=3_600)
    """Cap of the jittered backoff while RabbitMQ is down."""
    # Retention of published outbox rows (failed and pending rows are never deleted).
    outbox_retention_seconds: float = Field(
        default=7 * 24 * 3600, ge=0, le=TEN_YEARS, allow_inf_nan=False
    )
    """Published rows older than this (7 days) are deleted (at most 10 years, like every
    retention age)."""
    retention_interval_seconds: float = Field(default=60.0, gt=0, le=7 * 24 * 3600)
    """How often, and how many per transaction."""
    retention_batch_size: int = Field(default=1_000, ge=1, le=100_000)
    """How often, and how many per transaction."""
    # The pause between two retention batches, and whether this process cleans at all: one
    # cleaner per table at a time anyway (an advisory lock), but an operator may keep the
    # work off a latency-sensitive instance.
    retention_pause_seconds: float = Field(default=0.1, ge=0, le=60)
    """The pause between two retention transactions (a long backlog of old rows is deleted at a
    pace that leaves the database to the requests)."""
    retention_enabled: bool = True
    """`false`: this process does not clean (another must: relays clean their outbox, consumers
    their inbox, catalog's consumer its finished reservations; APIs never clean); one
    cleaner per table at a time anyway; the reply-timeout sweep is not affected."""
    # How long SIGTERM waits for the batch in flight before releasing it.
    shutdown_grace_seconds: float = Field(default=5.0, gt=0, le=300)
    """SIGTERM waits this long for the batch in flight."""

    # The consumer (python -m app consume SERVICE).
    consumer_prefetch: int = Field(default=500, ge=1, le=65_535)
    """Unacknowledged deliveries RabbitMQ sends the consumer."""
    # A batch of messages shares one database transaction: up to this many, taken from
    # what has arrived. By default it does not wait for more (window 0): deliveries pile up
    # while the previous batch commits, so batches fill under load by themselves, and an
    # idle system answers one message without delay.
    consumer_batch_size: int = Field(default=200, ge=1, le=5_000)
    """Messages per inbox transaction, and how long a batch waits to fill (0: take what has
    arrived; batches fill by themselves under load)."""
    consumer_batch_window_seconds: float = Field(default=0.0, ge=0, le=5)
    """Messages per inbox transaction, and how long a batch waits to fill (0: take what has
    arrived; batches fill by themselves under load)."""
    # Keyed events: a key's messages always travel in the same partition queue
    # (S.events.pN, by a hash of the key), each with a single active consumer.
    partitions: int = Field(default=4, ge=1, le=64)
    """Partition queues per consuming service (`S.events.p0` …) that keyed events travel in,
    a key's always in the same one; every relay and consumer on one broker must agree."""
    # A key waiting this long for a message that has not come is reported.
    inbox_gap_alert_seconds: float = Field(default=60.0, gt=0, le=86_400)
    """A key that has waited this long for a missing message (not a dead letter) is a gap:
    a warning, the `inbox_key_gaps` gauge and `outbox status` say so."""
    # A consumer bound after a key's first messages (or upgraded from before keys were
    # kept) would wait for them for ever: this starts such keys where it met them.
    inbox_start_keys_after_seconds: float | None = Field(default=None, gt=0, le=86_400)
    """Unset: a key this consumer has applied nothing of waits for its earlier messages (a gap,
    reported). Set: such a key waiting this long is started where this consumer met it (for a
    consumer added to a running system, or upgraded; its earlier messages are not awaited)."""
    # Deliveries after which the consumer dead-letters a message that keeps failing,
    # counted by the quorum queue (x-delivery-count), so consumer crashes and restarts
    # count too, hence generous. Not a queue argument: a new value applies at restart.
    consumer_delivery_limit: int = Field(default=20, ge=1, le=1_000)
    """Deliveries (the quorum queue's `x-delivery-count`) after which the consumer dead-letters
    a message that keeps failing; not a queue argument, so a new value applies at restart."""
    # A failed message is requeued after a pause that doubles from 0.1 s up to this.
    consumer_redelivery_max_seconds: float = Field(default=30.0, gt=0, le=3_600)
    """A failed message is requeued after a pause doubling from 0.1 s up to this: about 6
    minutes from first failure to dead letter at the defaults."""
    # PostgreSQL lock_timeout and statement_timeout of the consumer's (and relay's)
    # transactions: a row locked elsewhere parks its message instead of stalling all.
    consumer_lock_timeout_seconds: float = Field(default=2.0, gt=0, le=3_600)
    """PostgreSQL `lock_timeout` / `statement_timeout` of the consumers' (and relays')
    transactions; the statement timeout below `DATABASE_ANSWER_TIMEOUT_SECONDS` (else exit 1
    at start)."""
    consumer_statement_timeout_seconds: float = Field(default=10.0, gt=0, le=3_600)
    """PostgreSQL `lock_timeout` / `statement_timeout` of the consumers' (and relays')
    transactions; the statement timeout below `DATABASE_ANSWER_TIMEOUT_SECONDS` (else exit 1
    at start)."""
    # While a row is known to be held for long (a message waited out the lock timeout for
    # it and is parked), the consumer tries messages with this shorter lock timeout: each
    # blocked message then holds the others up this long, not a whole lock timeout.
    consumer_blocked_lock_timeout_seconds: float = Field(default=0.1, gt=0, le=60)
    """The consumer's `lock_timeout` while a message is parked because its row was held past
    `CONSUMER_LOCK_TIMEOUT_SECONDS` (at most that): each blocked message then holds the
    others up this long."""
    inbox_retention_seconds: float = Field(
        default=7 * 24 * 3600, ge=0, le=TEN_YEARS, allow_inf_nan=False
    )
    """Inbox rows older than this (7 days) are deleted."""
    # Catalog's finished stock reservations (rejected, released, cancel tombstones) are
    # deleted this long after their last change; live ones never. At least the inbox's
    # retention: while a message may still be skipped as a duplicate, its order's
    # reservation must still say what was done (the rule: app/catalog/retention.py).
    reservation_retention_seconds: float = Field(
        default=30 * 24 * 3600, ge=0, le=TEN_YEARS, allow_inf_nan=False
    )
    """Catalog's finished stock reservations (rejected, released, cancel tombstones) are
    deleted this long (30 days) after their last change; live ones never; at least
    `INBOX_RETENTION_SECONDS` (else exit 1 at start)."""
    database_reconnect_max_seconds: float = Field(default=30.0, gt=0, le=3_600)
    """Cap of the consumer's backoff while its database is down."""
    # Every PostgreSQL connection's TCP keepalives and user timeout (libpq's keepalives_idle,
    # keepalives_interval, keepalives_count and tcp_user_timeout): a database gone silent
    # (a failover, a killed container, a dropped NAT mapping) is noticed by the network.
    database_keepalives_idle_seconds: float = Field(default=10.0, ge=1, le=7_200)
    """TCP keepalives of every PostgreSQL connection (libpq's `keepalives_idle`,
    `keepalives_interval`, `keepalives_count`): a silent peer is dropped after about 25 s."""
    database_keepalives_interval_seconds: float = Field(default=5.0, ge=1, le=600)
    """TCP keepalives of every PostgreSQL connection (libpq's `keepalives_idle`,
    `keepalives_interval`, `keepalives_count`): a silent peer is dropped after about 25 s."""
    database_keepalives_count: int = Field(default=3, ge=1, le=100)
    """TCP keepalives of every PostgreSQL connection (libpq's `keepalives_idle`,
    `keepalives_interval`, `keepalives_count`): a silent peer is dropped after about 25 s."""
    database_tcp_user_timeout_seconds: float = Field(default=10.0, ge=0, le=3_600)
    """Libpq's `tcp_user_timeout`: a connection whose sent data stays unacknowledged this long
    is dropped (`0`: the system's default)."""
    # How long a relay's or consumer's batch, and an API request, wait for the database to
    # answer their work. Past it the connection is taken for one that stopped answering (a
    # peer that still takes the bytes: a proxy or balancer whose server is gone): dropped,
    # never reused, the work retried on a new one (a request answers 503). Above the
    # statement timeout, so that a slow statement is ended by the server, which answers.
    database_answer_timeout_seconds: float = Field(default=12.0, gt=0, le=3_600)
    """A relay's batch step, a consumer's batch transaction and an API request must be answered
    by the database within this; past it the connection is taken for one that stopped
    answering: shut down, never reused, the work retried on a new one (a request answers
    `503`)."""
    # PostgreSQL ends a relay's session left idle in its transaction this long (its
    # idle_in_transaction_session_timeout): rows claimed by a relay cut off from its
    # database go back to the other relays. A batch is idle in its transaction while it
    # publishes: at least 3 x RELAY_PUBLISH_TIMEOUT_SECONDS (connect, then the confirms).
    relay_claim_timeout_seconds: float = Field(default=60.0, gt=0, le=3_600)
    """PostgreSQL ends a relay's session left idle in its transaction this long
    (`idle_in_transaction_session_timeout`): rows claimed by a relay cut off from its
    database go to the others; at least 3 x `RELAY_PUBLISH_TIMEOUT_SECONDS` (else exit 1 at
    start)."""
    # How long an Idempotency-Key is remembered at least (then housekeeping deletes it):
    # a POST retried with the same key within it answers the first result.
    idempotency_key_retention_seconds: float = Field(
        default=24 * 3600, ge=60, le=TEN_YEARS, allow_inf_nan=False
    )
    """An `Idempotency-Key` is remembered at least this long (24 h; at least 60 s), then
    deleted by ordering's relay and catalog's consumer within `RETENTION_INTERVAL_SECONDS`;
    a retry after that is a new request."""

    # The saga's reply timeout (app/ordering/reply_timeouts.py): an order still Placed this
    # long after it was placed has its OrderPlaced published again under the same
    # message_id; then again after a delay that doubles up to the backoff cap, at most
    # ORDER_REPLY_MAX_RETRIES times, after which the order is reported as unanswered.
    order_reply_timeout_seconds: float = Field(default=300.0, gt=0, le=7 * 24 * 3600)
    """(at most 7 days) the saga's timeout: an order still `Placed` this long after it was
    placed has its `OrderPlaced` published again under the same message id (ordering's
    relay; the relay's setting counts)."""
    order_reply_max_retries: int = Field(default=5, ge=0, le=100)
    """Republishes before the order is reported as unanswered instead; each waits twice the
    previous, up to the cap (at the defaults the republishes come 5, 15, 35, 75 and 135
    minutes after the order, and the report 60 minutes after the last: about 3 h 15 min);
    the last republish must come before `INBOX_RETENTION_SECONDS` (else exit 1 at start)."""
    order_reply_backoff_max_seconds: float = Field(default=3600.0, gt=0, le=7 * 24 * 3600)
    """Republishes before the order is reported as unanswered instead; each waits twice the
    previous, up to the cap (at the defaults the republishes come 5, 15, 35, 75 and 135
    minutes after the order, and the report 60 minutes after the last: about 3 h 15 min);
    the last republish must come before `INBOX_RETENTION_SECONDS` (else exit 1 at start)."""

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
        # Several RabbitMQ nodes: comma-separated AMQP URLs (brokers/rabbitmq/nodes.py).
        if "," in value or is_amqp(value):
            node_urls(value)  # raises ValueError with the reason
        elif not value.lower().startswith("memory://"):
            # Only the scheme is shown: the rest of a mangled URL may hold a password.
            raise ValueError(
                "BROKER_URL must be amqp://USER:PASSWORD@HOST:5672/VHOST (RabbitMQ), several "
                "of them comma-separated, or memory:// (the embedded broker)"
            )
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
        # The reply-timeout sweep's own rule (ReplyTimeoutPolicy.last_republish_seconds).
        last = last_retry_seconds(
            self.order_reply_timeout_seconds,
            self.order_reply_max_retries,
            self.order_reply_backoff_max_seconds,
        )
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
