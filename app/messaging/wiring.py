"""The one place where the application's Settings become the outbox library's policies
(cosmicpython's bootstrap: nothing in ``app/outbox`` reads settings)."""

from __future__ import annotations

import logging

from app.core.database import tcp_keepalives
from app.core.settings import Settings
from app.messaging.registry import published_by
from cloudcrm_outbox.brokers import broker_for, is_amqp
from cloudcrm_outbox.brokers.base import Broker
from cloudcrm_outbox.inbox.policy import ConsumerPolicy
from cloudcrm_outbox.names import MessagingNames
from cloudcrm_outbox.relay.policy import RelayPolicy
from cloudcrm_outbox.runtime.consumer_process import ConsumerProcessConfig
from cloudcrm_outbox.runtime.process import RetentionPolicy
from cloudcrm_outbox.runtime.relay_process import RelayProcessConfig

logger = logging.getLogger(__name__)


def messaging_names(settings: Settings) -> MessagingNames:
    """The names every part is handed: today's, with PARTITIONS partition queues."""
    return MessagingNames(partitions=settings.partitions)


def relay_config(settings: Settings) -> RelayProcessConfig:
    """A relay process's configuration from ``settings``."""
    return RelayProcessConfig(
        names=messaging_names(settings),
        relay=RelayPolicy(
            batch_size=settings.relay_batch_size,
            max_attempts=settings.relay_max_attempts,
            retry_base_seconds=settings.relay_retry_base_seconds,
            retry_max_seconds=settings.relay_retry_max_seconds,
            unroutable_give_up_seconds=settings.relay_unroutable_give_up_seconds,
        ),
        retention=retention_policy(settings, settings.outbox_retention_seconds),
        concurrency=settings.relay_concurrency,
        publish_timeout_seconds=settings.relay_publish_timeout_seconds,
        poll_interval_seconds=settings.relay_poll_interval_seconds,
        reconnect_max_seconds=settings.broker_reconnect_max_seconds,
        startup_timeout_seconds=settings.startup_timeout_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        statement_timeout_seconds=settings.consumer_statement_timeout_seconds,
        answer_timeout_seconds=settings.database_answer_timeout_seconds,
        claim_timeout_seconds=settings.relay_claim_timeout_seconds,
        keepalives=tcp_keepalives(settings),
        probe_port=settings.metrics_port,
        probe_host=settings.metrics_host,
    )


def relay_broker(settings: Settings) -> Broker:
    """The broker a relay process publishes to: BROKER_URL, its publishers writing batches
    by RELAY_PUBLISH_PATH within RELAY_PUBLISH_TIMEOUT_SECONDS."""
    return broker_for(
        settings.broker_url,
        publish_timeout=settings.relay_publish_timeout_seconds,
        publish_path=settings.relay_publish_path,
        names=messaging_names(settings),
    )


def consumer_broker(settings: Settings) -> Broker:
    """The broker a consumer process takes deliveries from: BROKER_URL."""
    return broker_for(settings.broker_url, names=messaging_names(settings))


def consumer_config(settings: Settings) -> ConsumerProcessConfig:
    """A consumer process's configuration from ``settings``."""
    return ConsumerProcessConfig(
        names=messaging_names(settings),
        consumer=ConsumerPolicy(
            prefetch=settings.consumer_prefetch,
            batch_size=settings.consumer_batch_size,
            batch_window_seconds=settings.consumer_batch_window_seconds,
            delivery_limit=settings.consumer_delivery_limit,
            reconnect_max_seconds=settings.broker_reconnect_max_seconds,
            database_reconnect_max_seconds=settings.database_reconnect_max_seconds,
            redelivery_max_seconds=settings.consumer_redelivery_max_seconds,
            blocked_lock_timeout_seconds=settings.consumer_blocked_lock_timeout_seconds,
            answer_timeout_seconds=settings.database_answer_timeout_seconds,
            publishers=event_publishers(settings),
            gap_alert_seconds=settings.inbox_gap_alert_seconds,
            start_keys_after_seconds=settings.inbox_start_keys_after_seconds,
        ),
        retention=retention_policy(settings, settings.inbox_retention_seconds),
        lock_timeout_seconds=settings.consumer_lock_timeout_seconds,
        statement_timeout_seconds=settings.consumer_statement_timeout_seconds,
        # A consumer's transaction is idle only between its statements.
        idle_in_transaction_timeout_seconds=settings.database_answer_timeout_seconds,
        keepalives=tcp_keepalives(settings),
        startup_timeout_seconds=settings.startup_timeout_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        probe_port=settings.metrics_port,
        probe_host=settings.metrics_host,
    )


def event_publishers(settings: Settings) -> dict[str, str]:
    """Event name → the broker account its owner's relay publishes as (BROKER_PUBLISHERS),
    on RabbitMQ only: the embedded broker has no accounts. Warns when unset on RabbitMQ."""
    if not is_amqp(settings.broker_url):
        return {}
    publishers = settings.event_publishers
    if not publishers:
        logger.warning(
            "BROKER_PUBLISHERS is not set: events are accepted from any broker account "
            "(set it to service=user pairs, e.g. ordering=cloudcrm-ordering-relay)"
        )
    return {event: user for service, user in publishers.items() for event in published_by(service)}


def retention_policy(settings: Settings, older_than_seconds: float) -> RetentionPolicy:
    """Retention of rows older than ``older_than_seconds``, paced and switched by
    ``settings`` (RETENTION_INTERVAL_SECONDS, _BATCH_SIZE, _PAUSE_SECONDS, _ENABLED)."""
    return RetentionPolicy(
        older_than_seconds=older_than_seconds,
        interval_seconds=settings.retention_interval_seconds,
        batch_size=settings.retention_batch_size,
        pause_seconds=settings.retention_pause_seconds,
        enabled=settings.retention_enabled,
    )
