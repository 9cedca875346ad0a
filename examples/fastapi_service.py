"""POST /notes stores a note and its NoteAdded event in one commit; the service's consumer
then marks the note seen, once. As a service's app/main.py: ``uvicorn app.main:app``."""

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import ClassVar

from fastapi import FastAPI
from sqlalchemy import Column, MetaData, String, Table, Uuid, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

import cloudcrm_outbox as outbox

engine = outbox.make_engine("sqlite+aiosqlite:///notes.db")
sessions = outbox.make_sessionmaker(engine)
notes = Table("notes", MetaData(), Column("id", Uuid, primary_key=True), Column("state", String))


class NoteAdded(outbox.IntegrationEvent):
    event_name: ClassVar[str] = "NoteAdded"
    note_id: uuid.UUID


async def mark_seen(session: AsyncSession, events: Sequence[NoteAdded]) -> list[str]:
    seen = notes.c.id.in_([event.note_id for event in events])  # in the inbox's transaction
    await session.execute(update(notes).where(seen).values(state="seen"))
    return [outbox.APPLIED] * len(events)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as connection:  # a real service runs its Alembic history
        await connection.run_sync(outbox.outbox_metadata.create_all)
        await connection.run_sync(notes.metadata.create_all)
    service = outbox.MessagingService("notes", engine, [outbox.Subscription(NoteAdded, mark_seen)])
    async with outbox.in_process(outbox.broker_for("memory://"), [service]):
        yield


app = FastAPI(lifespan=lifespan)


@app.post("/notes", status_code=201)
async def add_note() -> dict[str, str]:
    note_id = uuid.uuid4()
    async with sessions() as session, session.begin():  # the note and its event: one commit
        await session.execute(insert(notes).values(id=note_id, state="new"))
        outbox.add_event(session, NoteAdded(note_id=note_id))
    return {"id": str(note_id)}


@app.get("/notes/{note_id}")
async def show_note(note_id: uuid.UUID) -> dict[str, str | None]:
    async with sessions() as session:
        return {"state": await session.scalar(select(notes.c.state).where(notes.c.id == note_id))}
