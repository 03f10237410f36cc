"""The authenticated, cursor-paged event feed every producing service serves."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.common.auth import Subject, require
from services.common.db import DbSession
from services.common.errors import problem_responses
from services.common.outbox import EventPage, Outbox
from services.common.permissions import Action

EventReader = Annotated[Subject, Depends(require(Action.EVENTS_READ))]


def events_router(outbox: Outbox) -> APIRouter:
    router = APIRouter(prefix="/internal/v1", tags=["internal"])

    @router.get("/events", response_model=EventPage, summary="Events after a cursor, in an order no reader can skip",
                responses=problem_responses(400, 401, 403, 422, 503,
                                            s400="`after` names no event of this feed"))
    async def list_events(
        session: DbSession,
        _: EventReader,
        after: Annotated[int, Query(ge=0, le=2**63 - 1, description="`next_cursor` of the last page applied (0: from "
                                                                       "the start)")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    ) -> EventPage:
        return await outbox.read(session, after, limit)

    return router
