"""Reporting HTTP routes."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.common.auth import Subject, require
from services.common.db import DbSession
from services.common.permissions import Action
from services.reporting import service

router = APIRouter(prefix="/v1", tags=["statistics"])
StatsReader = Annotated[Subject, Depends(require(Action.STATS_READ))]


@router.get("/children-followed")
async def children_followed(session: DbSession, subject: StatsReader,
                            location: Annotated[str | None, Query(pattern=r"^\d{2}(\d{3})?$")] = None) -> dict:
    return {"value": await service.children_followed(session, subject, location)}
