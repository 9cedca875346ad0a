"""The saga's reply timeout: an order catalog never answered gets its OrderPlaced again.

The relay marks a row published once RabbitMQ confirmed it, but a confirmed message can
still be lost afterwards: its queue deleted and declared again, a broker restored from a
backup. The order then stays ``Placed`` with nobody waiting for anything. So a Placed
order is overdue ``ORDER_REPLY_TIMEOUT_SECONDS`` after it was placed; a sweep
in ordering's relay process finds the overdue ones through two partial indexes and
puts their OrderPlaced outbox row back to pending, **the same row, so the same
message_id**: if the first copy did arrive, catalog's inbox skips the second (and its
reservation, keyed by the order, would too). Each further retry waits twice as long, up to
a cap; after ``max_retries`` the order is reported as unanswered (an ERROR line, the
``saga_unanswered_orders`` gauge, ``outbox status``) instead of retried. The timeout of
NServiceBus's ``RequestTimeout`` and MassTransit's saga ``Schedule``, kept in the order's
own row, so it needs no scheduler of its own.

What it cannot repair: a *reply* the broker lost (catalog's inbox skips the republished
copy, so catalog does not reply again); ``python -m app outbox republish catalog`` does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.doubling import doubled_delay, last_retry_seconds
from app.ordering.contracts import OrderPlaced
from app.ordering.models import AWAITING_FIRST_REPLY, RETRIED, UNANSWERED, Order
from app.ordering.reply_destinations import Destinations, resend_is_pointless
from cloudcrm_outbox import write_events
from cloudcrm_outbox.ops.republish import back_to_pending
from cloudcrm_outbox.storage.clock import db_now_plus
from cloudcrm_outbox.storage.retention import cleaner_lock_key
from cloudcrm_outbox.storage.store import store_for
from cloudcrm_outbox.storage.tables import OUTBOX

logger = logging.getLogger(__name__)

# A pre-migration order whose OrderPlaced row retention already deleted gets a new row
# under this name-based id (RFC 4122 §4.3): the same for every sweep of that order.
REBUILT_ORDER_PLACED = uuid.UUID("6f1c2a5e-3b9d-4e27-9a41-0c8d5b7e2f13")


@dataclass(frozen=True)
class ReplyTimeoutPolicy:
    """``timeout_seconds``: an order's first due time after it is placed; after the k-th
    republish it is due ``min(timeout_seconds * 2**k, backoff_max_seconds)`` later;
    ``max_retries`` republishes, then reported; ``batch_size`` orders per transaction."""

    timeout_seconds: float = 300.0
    max_retries: int = 5
    backoff_max_seconds: float = 3600.0
    batch_size: int = 200

    def delay_after(self, retries: int) -> float:
        """Seconds until an order republished ``retries`` times is due again."""
        return doubled_delay(self.timeout_seconds, retries, self.backoff_max_seconds)

    @property
    def last_republish_seconds(self) -> float:
        """Seconds from an order's placement to its last republish: the first comes at
        ``timeout_seconds`` (never capped), each next one ``delay_after`` the previous
        (0 when there are no retries)."""
        return last_retry_seconds(self.timeout_seconds, self.max_retries, self.backoff_max_seconds)

    @property
    def sweep_interval_seconds(self) -> float:
        """How often the sweep runs: a tenth of the timeout, between 1 s and 60 s."""
        return min(max(self.timeout_seconds / 10, 1.0), 60.0)


@dataclass
class SweepReport:
    """What one sweep did: orders republished (``republished``: the OrderPlaced row back
    to pending; ``rebuilt``: written again, its row was gone; ``waiting``: the row had not
    been published yet, or had failed, so there was nothing to republish; ``deferred``:
    its copy still queued with no consumer, see ``reply_destinations``) and orders
    reported as unanswered (``reported``)."""

    republished: list[uuid.UUID] = field(default_factory=list)
    rebuilt: list[uuid.UUID] = field(default_factory=list)
    waiting: list[uuid.UUID] = field(default_factory=list)
    reported: list[uuid.UUID] = field(default_factory=list)
    retry: dict[uuid.UUID, int] = field(default_factory=dict)  # order → its retry number
    deferred: list[uuid.UUID] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(getattr(self, name)) for name in OUTCOMES)


SWEEP_LOCK = cleaner_lock_key("ordering.reply_timeouts")

REPLY_TIMEOUTS = Counter(
    "saga_reply_timeouts",
    "Placed orders found unanswered after the reply timeout, by what the sweep did: "
    "republished, rebuilt (its row was gone: written again), waiting (its row not yet "
    "published or failed), deferred (its copy still queued, no consumer), reported (no "
    "more retries).",
    ["outcome"],
)
UNANSWERED_ORDERS = Gauge(
    "saga_unanswered_orders",
    "Orders still Placed after every reply-timeout retry: reported, no longer retried.",
)
OUTCOMES = ("republished", "rebuilt", "waiting", "deferred", "reported")


async def sweep_and_count(
    engine: AsyncEngine, policy: ReplyTimeoutPolicy, *, destinations: Destinations | None = None
) -> SweepReport:
    """``sweep_overdue_orders``, then the metrics: ``saga_reply_timeouts_total{outcome}``
    counts what it did, ``saga_unanswered_orders`` is set to ``count_unanswered``."""
    report = await sweep_overdue_orders(engine, policy, destinations=destinations)
    for outcome in OUTCOMES:
        if done := len(getattr(report, outcome)):
            REPLY_TIMEOUTS.labels(outcome).inc(done)
    UNANSWERED_ORDERS.set(await count_unanswered(engine))
    return report


async def sweep_overdue_orders(
    engine: AsyncEngine, policy: ReplyTimeoutPolicy, *, destinations: Destinations | None = None
) -> SweepReport:
    """Republish or report every overdue Placed order, ``policy.batch_size`` per
    transaction; returns what was done. On PostgreSQL one process sweeps at a time (an
    advisory lock; another sweeping makes this one return at once) and orders locked by a
    reply being applied are skipped (SKIP LOCKED) until the next sweep.

    ``destinations`` reads the queues OrderPlaced goes to: while their copies wait there
    with no consumer, overdue orders are deferred instead (``reply_destinations``). It is
    asked before the transactions (no broker I/O while orders are locked), and only when
    some order is overdue."""
    total = SweepReport()
    defer = await _any_overdue(engine, policy) and await resend_is_pointless(destinations)
    while True:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            if not await _sweep_lock(session):
                return total
            report = await _sweep_batch(session, policy, defer=defer)
        _log(report, policy)
        for name in OUTCOMES:
            getattr(total, name).extend(getattr(report, name))
        total.retry.update(report.retry)
        if len(report) < policy.batch_size:
            return total


async def _any_overdue(engine: AsyncEngine, policy: ReplyTimeoutPolicy) -> bool:
    """Whether an order is due for a retry, or will be within a sweep interval (a read
    through the partial indexes, no lock): the batches' own selection comes a moment
    later, and an order falling due in between must not be resent unasked."""
    ahead = policy.sweep_interval_seconds
    async with engine.connect() as connection:
        for query in overdue_orders(policy, locked=False, ahead=ahead):
            if (await connection.execute(query.limit(1))).first() is not None:
                return True
    return False


async def count_unanswered(engine: AsyncEngine) -> int:
    """Orders still Placed that the sweep gave up on (through ``ix_orders_unanswered``)."""
    query = select(func.count()).select_from(Order).where(UNANSWERED)
    async with engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def _sweep_lock(session: AsyncSession) -> bool:
    if session.bind is None:
        return True
    return await store_for(session.bind.dialect).transaction_lock(session, SWEEP_LOCK)


def overdue_orders(
    policy: ReplyTimeoutPolicy, *, locked: bool = True, ahead: float = 0.0
) -> tuple[Select[Any], Select[Any]]:
    """The two selections of overdue orders, each served by its partial index: orders
    never republished, ``timeout_seconds`` after they were placed (``ix_orders_awaiting_
    reply``), and orders republished before, at their due time (``ix_orders_reply_due``).
    Oldest first, at most ``batch_size``, locked (unless not ``locked``), skipping orders a
    reply holds; with ``ahead``, also those due within that many seconds.

    The predicates are the indexes' own SQL text: PostgreSQL uses a partial index only
    when it can prove the query implies its predicate, which a bound parameter (a generic
    plan) would hide."""
    first = (
        select(Order)
        .where(
            AWAITING_FIRST_REPLY, Order.created_at <= db_now_plus(ahead - policy.timeout_seconds)
        )
        .order_by(Order.created_at)
    )
    again = (
        select(Order)
        .where(RETRIED, Order.reply_due_at <= db_now_plus(ahead))
        .order_by(Order.reply_due_at)
    )
    if not locked:
        return first.limit(policy.batch_size), again.limit(policy.batch_size)
    return (
        first.limit(policy.batch_size).with_for_update(skip_locked=True),
        again.limit(policy.batch_size).with_for_update(skip_locked=True),
    )


async def _sweep_batch(
    session: AsyncSession, policy: ReplyTimeoutPolicy, *, defer: bool
) -> SweepReport:
    orders: list[Order] = []
    for query in overdue_orders(policy):
        if room := policy.batch_size - len(orders):
            orders += (await session.scalars(query.limit(room))).all()
    report = SweepReport()
    spent = [order for order in orders if order.reply_retries >= policy.max_retries]
    if spent:
        await session.execute(
            update(Order)
            .where(Order.id.in_([order.id for order in spent]))
            .values(reply_due_at=None, unanswered_since=db_now_plus(0))
            .execution_options(synchronize_session=False)
        )
        report.reported = [order.id for order in spent]
    retry = [order for order in orders if order.reply_retries < policy.max_retries]
    if not retry:
        return report
    if defer:
        # Copies still queued with nobody to take them: nothing sent, no retry spent,
        # looked at again after the same wait (as for ``waiting`` below).
        report.deferred = [order.id for order in retry]
        await _due_again(session, policy, retry, cost=0)
        return report
    for order in retry:
        if order.placed_message_id is None:
            order.placed_message_id = uuid.uuid5(REBUILT_ORDER_PLACED, str(order.id))
    await _republish(session, retry, report)
    waiting = set(report.waiting)
    sent = [order for order in retry if order.id not in waiting]
    report.retry = {order.id: order.reply_retries + 1 for order in sent}
    # Republished: one retry spent, due again after a longer wait. Waiting (its row not
    # published yet, or failed): nothing was sent, so no retry is spent; looked at again
    # after the same wait (a long broker outage must not use up an order's retries).
    await _due_again(session, policy, sent, cost=1)
    await _due_again(session, policy, [o for o in retry if o.id in waiting], cost=0)
    return report


async def _due_again(
    session: AsyncSession, policy: ReplyTimeoutPolicy, orders: Sequence[Order], *, cost: int
) -> None:
    """``orders`` due again ``delay_after`` their retries plus ``cost`` (1: one spent)."""
    for retries in sorted({order.reply_retries for order in orders}):
        await session.execute(
            update(Order)
            .where(Order.id.in_([o.id for o in orders if o.reply_retries == retries]))
            .values(
                reply_retries=retries + cost,
                reply_due_at=db_now_plus(policy.delay_after(retries + cost)),
            )
            .execution_options(synchronize_session=False)
        )


async def _republish(session: AsyncSession, orders: Sequence[Order], report: SweepReport) -> None:
    """Each order's OrderPlaced row back to pending when it was published; written again
    when it is gone; left alone when still pending or failed (the relay, or an operator's
    ``outbox replay``, has it)."""
    by_message = {order.placed_message_id: order for order in orders}
    ids = list(by_message)
    pending_again = back_to_pending(OUTBOX, OUTBOX.c.id.in_(ids)).returning(OUTBOX.c.id)
    republished = set((await session.scalars(pending_again)).all())
    present = set((await session.scalars(select(OUTBOX.c.id).where(OUTBOX.c.id.in_(ids)))).all())
    gone = [by_message[message_id] for message_id in ids if message_id not in present]
    await write_events(session, [_order_placed(order) for order in gone])
    for message_id, order in by_message.items():
        if message_id in republished:
            report.republished.append(order.id)
        elif message_id in present:
            report.waiting.append(order.id)
        else:
            report.rebuilt.append(order.id)


def _order_placed(order: Order) -> OrderPlaced:
    assert order.placed_message_id is not None  # set by the caller
    return OrderPlaced(
        event_id=order.placed_message_id,
        order_id=order.id,
        product_id=order.product_id,
        customer_name=order.customer_name,
        quantity=order.quantity,
    )


def _log(report: SweepReport, policy: ReplyTimeoutPolicy) -> None:
    what: dict[str, Any] = {
        "republished": "its OrderPlaced is published again under the same message_id",
        "rebuilt": "its OrderPlaced row was gone: written again",
        "waiting": "its OrderPlaced is not published yet, or failed (outbox status): no retry "
        "spent, looked at again later",
    }
    for name, explanation in what.items():
        for order_id in getattr(report, name):
            logger.warning(
                f"order unanswered after the reply timeout: {explanation}",
                extra={
                    "order_id": str(order_id),
                    "retry": report.retry.get(order_id),
                    "max_retries": policy.max_retries,
                },
            )
    if report.deferred:
        # One line for the lot: an outage defers every waiting order at each sweep.
        logger.warning(
            "orders unanswered after the reply timeout: their OrderPlaced is still queued "
            "with no consumer attached, not resent (no retry spent)",
            extra={"orders": len(report.deferred), "first": str(report.deferred[0])},
        )
    for order_id in report.reported:
        logger.error(
            "order unanswered after every retry: reported, no longer retried (runbook: "
            "an order is stuck in Placed; outbox events ordering --order ORDER_ID)",
            extra={"order_id": str(order_id), "retries": policy.max_retries},
        )


# What ordering adds to its outbox's status (the admin API and ``outbox status``).
STATUS_FIGURES = {"unanswered_orders": count_unanswered}
