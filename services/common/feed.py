"""The authenticated, cursor-paged event feed every producing service serves."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.common.auth import Subject, require
from services.common.db import DbSession
from services.common.outbox import EventPage, FeedPosition, Outbox
from services.common.permissions import Action

EventReader = Annotated[Subject, Depends(require(Action.EVENTS_READ))]
MAX_POSITION = 2**63 - 1  # both parts are bigint in PostgreSQL; larger numbers are refused (422), never a 500


def events_router(outbox: Outbox) -> APIRouter:
    router = APIRouter(prefix="/internal/v1", tags=["internal"])

    @router.get("/events", response_model=EventPage, summary="Events after a position, in commit-safe order")
    async def list_events(
        session: DbSession,
        _: EventReader,
        after: Annotated[int, Query(ge=0, le=MAX_POSITION,
                                    description="`next_cursor` of the last page applied (the seq of its last event)")
                         ] = 0,
        after_xid: Annotated[int, Query(ge=0, le=MAX_POSITION,
                                        description="`next_xid` of the last page applied; 0 for a position kept "
                                                    "from before events carried an xid")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    ) -> EventPage:
        return await outbox.read(session, FeedPosition(after_xid, after), limit)

    return router
