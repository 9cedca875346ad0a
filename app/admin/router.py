"""The admin API, under ``/admin/api/{service}/``: the CLI's operations over HTTP (the same
code), JSON in and out, for the operations page. A process answers for the services whose
database it holds (``state.engines``); dead letters go through ``state.broker``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncEngine

from app.admin import operations
from app.admin.limits import MAX_LIMIT
from app.admin.operations import Actor
from app.admin.schemas import (
    FILTER_PATTERN,
    DeadLetterPurgeRequest,
    DeadLetterReplayedView,
    DeadLetterReplayRequest,
    DeadLettersView,
    FailedRowsView,
    InboxEntriesView,
    InboxEntryView,
    MessageKey,
    OutboxEventsView,
    OutboxReplayRequest,
    OutboxStatusView,
    PurgedView,
    ReplayedView,
    WaitingKeysView,
    selected_ids,
    selected_key,
)
from app.auth.dependencies import AUTH_ERRORS, require
from app.auth.scopes import ADMIN
from app.auth.tokens import Principal
from app.core.schemas import COMMON_ERRORS, ErrorBody
from app.http.exact_json import JsonRoute
from cloudcrm_outbox.brokers.base import Broker
from cloudcrm_outbox.brokers.dead_letters import DeadLetterSelection
from cloudcrm_outbox.ops.repair import FailedSelection

NO_BROKER: dict[int | str, dict[str, object]] = {
    409: {"model": ErrorBody, "description": "no broker reachable from this process"},
    502: {"model": ErrorBody, "description": "the broker refused this process's account"},
}


def actor(request: Request) -> Actor:
    """Who asks: the token's subject and the client's address, for the audit log."""
    client = request.client.host if request.client else "unknown"
    principal: Principal | None = getattr(request.state, "principal", None)
    subject = principal.subject if principal is not None else "unknown"
    return Actor(f"api:{subject}@{client}")


ServiceName = Annotated[
    Literal["ordering", "catalog"], Path(description="the service whose outbox, inbox or DLQ")
]


def engine(service: ServiceName, request: Request) -> AsyncEngine:
    """The service's engine, when this process serves it (404 otherwise)."""
    engines: dict[str, AsyncEngine] = request.app.state.engines
    if service not in engines:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"this process does not serve {service}")
    return engines[service]


def broker(service: ServiceName, request: Request) -> Broker:
    """The broker the dead letters are reached through: 404 when this process does not
    serve ``service`` (its dead letters are the other API's), 409 when none is reachable."""
    engines: dict[str, AsyncEngine] = request.app.state.engines
    if service not in engines:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"this process does not serve {service}")
    found: Broker | None = getattr(request.app.state, "broker", None)
    if found is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "no broker is reachable from this process: BROKER_URL=memory:// is the "
            "embedded broker of `python -m app dev`; use dev's admin API, or RabbitMQ",
        )
    return found


Engine = Annotated[AsyncEngine, Depends(engine)]
BrokerDep = Annotated[Broker, Depends(broker)]
ActorDep = Annotated[Actor, Depends(actor)]

NOT_SERVED: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "this process does not serve that service"}
}
router = APIRouter(
    prefix="/admin/api/{service}",
    tags=["admin"],
    responses={**COMMON_ERRORS, **AUTH_ERRORS, **NOT_SERVED},
    dependencies=[require(ADMIN)],
    route_class=JsonRoute,
)


@router.get("/outbox/status", response_model=OutboxStatusView)
async def outbox_status(service: ServiceName, db: Engine, request: Request) -> dict[str, Any]:
    """Pending, failed, oldest pending age (s), published in the last hour, rows
    waiting on "no route", and the dead-letter queue's depth and oldest age (s)."""
    reachable: Broker | None = getattr(request.app.state, "broker", None)
    # The service's own figures, handed in by the app that serves it (app.state).
    figures = getattr(request.app.state, "status_figures", {}).get(service)
    return await operations.outbox_status(db, reachable, service, figures=figures)


@router.get("/outbox/failed", response_model=FailedRowsView)
async def outbox_failed(
    service: ServiceName,
    db: Engine,
    event_type: Annotated[
        str | None, Query(alias="eventType", min_length=1, max_length=200, pattern=FILTER_PATTERN)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """Rows the relay gave up on, oldest failure first."""
    return {"failed": await operations.outbox_failed(db, event_type=event_type, limit=limit)}


@router.get("/outbox/events", response_model=OutboxEventsView)
async def outbox_events(
    service: ServiceName,
    db: Engine,
    order_id: Annotated[uuid.UUID, Query(alias="orderId")],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """The outbox rows about one order, oldest first: their ids are the messages' ids
    (for the inbox lookup and the dead-letter queue)."""
    return {"events": await operations.outbox_events_of_order(db, order_id, limit=limit)}


@router.post("/outbox/replay", response_model=ReplayedView)
async def outbox_replay(
    service: ServiceName, body: OutboxReplayRequest, db: Engine, who: ActorDep
) -> dict[str, Any]:
    """Failed rows back to pending (attempts reset, failure cleared, due now), in one
    transaction; ``dryRun`` says which without changing anything."""
    selection = FailedSelection(selected_ids(body), body.event_type, body.error_contains)
    return await operations.outbox_replay(db, service, selection, dry_run=body.dry_run, actor=who)


@router.get("/dlq", response_model=DeadLettersView, responses=NO_BROKER)
async def dlq_list(
    service: ServiceName,
    queue: BrokerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1_000,
) -> dict[str, Any]:
    """Dead letters, oldest death first, and how many per reason."""
    return await operations.dlq_list(queue, service, limit=limit)


@router.post("/dlq/replay", response_model=DeadLetterReplayedView, responses=NO_BROKER)
async def dlq_replay(
    service: ServiceName, body: DeadLetterReplayRequest, queue: BrokerDep, who: ActorDep
) -> dict[str, Any]:
    """Each selected dead letter back to this service's queue with its message id
    (confirmed by the broker before it leaves the dead-letter queue)."""
    selection = DeadLetterSelection(selected_ids(body), body.reason, selected_key(body))
    return await operations.dlq_replay(queue, service, selection, dry_run=body.dry_run, actor=who)


@router.post("/dlq/purge", response_model=PurgedView, responses=NO_BROKER)
async def dlq_purge(
    service: ServiceName,
    body: DeadLetterPurgeRequest,
    queue: BrokerDep,
    who: ActorDep,
    request: Request,
) -> dict[str, Any]:
    """Delete the selected dead letters for good; by ``key``, the key's places they held
    are given up and its parked messages after them applied, in order."""
    key = selected_key(body)
    selection = DeadLetterSelection(selected_ids(body), body.reason, key)
    db = engine(service, request) if key is not None else None
    return await operations.dlq_purge(queue, service, selection, actor=who, engine=db)


@router.get("/inbox/keys", response_model=WaitingKeysView)
async def inbox_waiting_keys(
    service: ServiceName,
    db: Engine,
    key: Annotated[MessageKey | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """Keys whose messages wait parked (a gap, or a dead letter they stop at), waiting
    longest first: ``dlq replay``/``dlq purge`` by ``key`` release those at a dead letter,
    the producer's ``outbox republish --key`` those at a gap."""
    return {"keys": await operations.inbox_waiting_keys(db, service, key=key, limit=limit)}


@router.get("/inbox", response_model=InboxEntriesView)
async def inbox_latest(
    service: ServiceName,
    db: Engine,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> dict[str, Any]:
    """This service's consumer's most recent outcomes, newest first."""
    return {"entries": await operations.inbox_latest(db, service, limit=limit)}


@router.get(
    "/inbox/{message_id}",
    response_model=InboxEntryView,
    responses={404: {"model": ErrorBody, "description": "not served here, or no inbox row for it"}},
)
async def inbox_show(service: ServiceName, message_id: uuid.UUID, db: Engine) -> dict[str, Any]:
    """What this service's consumer did with a message: when, and the outcome."""
    entry = await operations.inbox_show(db, service, message_id)
    if entry is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{service} has no inbox row for message {message_id}: not received yet (in "
            f"its queue, or dead-lettered: GET /admin/api/{service}/dlq; or parked behind an "
            f"earlier message of its key: GET /admin/api/{service}/inbox/keys), older than the "
            "inbox retention, or not a message id (an order's message ids: GET "
            "/admin/api/ordering/outbox/events?orderId=…)",
        )
    return entry
