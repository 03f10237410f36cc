"""Liveness and readiness: `/healthz` answers while the process runs; `/readyz` when the database answers and its
schema is at this code's migration head."""

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.common.db import Database
from services.common.errors import problem_response
from services.common.migrate import current_revision, head_revision

# A stuck database must make the service not ready, not make the probe hang with it (probes time out themselves,
# and each hanging probe would hold a pool slot).
READY_TIMEOUT_SECONDS = 2.0


def health_router(migrations_dir: Path) -> APIRouter:
    router = APIRouter(tags=["health"])
    head = head_revision(migrations_dir)

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="The database answers and migrations are at head", response_model=None)
    async def readyz(request: Request) -> JSONResponse | dict[str, str | None]:
        database: Database = request.app.state.db
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                revision = await current_revision(database.engine)
        except Exception:
            return problem_response(503, "Service unavailable", "the database does not answer",
                                    type_suffix="not-ready")
        if revision != head:
            return problem_response(503, "Service unavailable", "database migrations are not at head",
                                    type_suffix="not-ready", current=revision, head=head)
        return {"status": "ready", "revision": revision}

    return router
