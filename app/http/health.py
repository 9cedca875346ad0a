"""Health probes of an API process (Kubernetes-style): live while it serves; ready while
every database it holds answers and is at the Alembic head this code expects."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.migrations import revision_problem
from cloudcrm_outbox.observability.redaction import mask_secrets

PROBE_TIMEOUT_SECONDS = 3.0

router = APIRouter(prefix="/health", tags=["health"])


class Health(BaseModel):
    status: str
    reasons: list[str] = []


async def database_problems(engines: dict[str, AsyncEngine]) -> list[str]:
    """What keeps these databases from serving: unreachable, or not at the head."""
    problems: list[str] = []
    for service, engine in engines.items():
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                problem = await revision_problem(service, engine, allow_ahead=True)
        except Exception as exc:  # any failure to answer is "not ready", with its words
            problem = f"the {service} database does not answer: {exc!r:.300}"
        if problem is not None:
            problems.append(mask_secrets(problem))
    return problems


@router.get("/live", response_model=Health)
async def live() -> dict[str, Any]:
    """200 while the process serves requests."""
    return {"status": "live"}


@router.get(
    "/ready",
    response_model=Health,
    responses={503: {"model": Health, "description": "a database is unreachable or not migrated"}},
)
async def ready(request: Request) -> Any:
    """200 when every database this process holds answers and is at the Alembic head; 503
    with the reasons otherwise."""
    problems = await database_problems(request.app.state.engines)
    if problems:
        return JSONResponse(status_code=503, content={"status": "unavailable", "reasons": problems})
    return {"status": "ready"}
