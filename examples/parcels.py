"""A third service, built on the outbox library's public API only: parcels.

``POST /parcels`` records a parcel and its ``ParcelShipped`` event in one transaction; the
relay publishes the event, and this service's own consumer applies it once through the
inbox (it marks the parcel ``notified``). Run it on the embedded defaults with
``python -m examples.parcels`` (SQLite file and embedded broker under ./var/parcels/), or
set ``PARCELS_DATABASE_URL`` and ``PARCELS_BROKER_URL`` for PostgreSQL and RabbitMQ.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, ClassVar

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, StringConstraints
from sqlalchemy import String, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cloudcrm_outbox import (
    APPLIED,
    IntegrationEvent,
    MessagingService,
    Subscription,
    add_event,
    broker_for,
    in_process,
    make_engine,
    make_sessionmaker,
    outbox_metadata,
)


class ParcelShipped(IntegrationEvent):
    """A parcel left the warehouse (the contract other services may import)."""

    event_name: ClassVar[str] = "ParcelShipped"
    parcel_id: uuid.UUID
    address: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Base(DeclarativeBase):
    pass


class Parcel(Base):
    __tablename__ = "parcels"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))  # shipped -> notified


class ParcelIn(BaseModel):
    address: Annotated[str, StringConstraints(min_length=1, max_length=200)]


async def notify(session: AsyncSession, events: Sequence[ParcelShipped]) -> list[str]:
    """The consumer's handler: in the inbox's transaction, once per event."""
    ids = [event.parcel_id for event in events]
    await session.execute(update(Parcel).where(Parcel.id.in_(ids)).values(state="notified"))
    return [APPLIED] * len(events)


SUBSCRIPTIONS = (Subscription(event=ParcelShipped, handle=notify),)


def create_app(database_url: str, broker_url: str, *, broker_path: str | None = None) -> FastAPI:
    """The parcels service: its database at ``database_url``, its broker at
    ``broker_url`` (``memory://``: the embedded one, its queues at ``broker_path``)."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as connection:  # a real service runs Alembic here
            await connection.run_sync(outbox_metadata.create_all)
            await connection.run_sync(Base.metadata.create_all)
        broker = broker_for(broker_url, embedded_path=broker_path)
        service = MessagingService("parcels", engine, SUBSCRIPTIONS)
        try:
            async with in_process(broker, [service]):
                yield
        finally:
            await broker.close()
            await engine.dispose()

    app = FastAPI(title="parcels", lifespan=lifespan)

    @app.post("/parcels", status_code=201)
    async def ship(parcel: ParcelIn) -> dict[str, str]:
        async with sessions() as session, session.begin():  # the event commits with it
            row = Parcel(id=uuid.uuid4(), address=parcel.address, state="shipped")
            session.add(row)
            add_event(session, ParcelShipped(parcel_id=row.id, address=row.address))
        return {"id": str(row.id), "state": row.state}

    @app.get("/parcels/{parcel_id}")
    async def show(parcel_id: uuid.UUID) -> dict[str, str]:
        async with sessions() as session:
            row = await session.get(Parcel, parcel_id)
        if row is None:
            raise HTTPException(404, detail=f"parcel {parcel_id} not found")
        return {"id": str(row.id), "state": row.state}

    return app


if __name__ == "__main__":  # pragma: no cover - the command line of the example
    import os

    import uvicorn

    uvicorn.run(
        create_app(
            os.environ.get("PARCELS_DATABASE_URL", "sqlite+aiosqlite:///./var/parcels/parcels.db"),
            os.environ.get("PARCELS_BROKER_URL", "memory://"),
            broker_path="./var/parcels/broker.db",
        ),
        port=int(os.environ.get("PARCELS_PORT", "8003")),
    )
