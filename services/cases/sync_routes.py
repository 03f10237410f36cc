"""The cases sync feed's route (docs/clients.md, Offline sync): HTTP only, the logic is in `sync.py`."""

from typing import Annotated

from fastapi import APIRouter, Query

from services.cases import service, sync
from services.cases.routes import CaseReader, Settings, case_read
from services.cases.schemas import CaseChange, CaseChangePage, CaseReplica, NoteRead
from services.common.db import DbSession
from services.common.errors import problem_responses
from services.common.pagination import MAX_CURSOR_LENGTH
from services.common.sync import MAX_SYNC_PAGE

router = APIRouter(prefix="/v1", tags=["sync"])


@router.get("/sync/cases", response_model=CaseChangePage,
            responses=problem_responses(400, 401, 403, 410, 422, 503,
                                        s410="The cursor is another identity's (user, role, place): sync from the "
                                             "start"),
            summary="Offline sync: the cases you can see that changed since the cursor, or their tombstones")
async def sync_cases(
    session: DbSession, subject: CaseReader, settings: Settings,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH,
                                        description="`next_cursor` of the last page applied; none for a first sync")]
    = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SYNC_PAGE, description="Changes read at most")] = 50,
) -> CaseChangePage:
    """Apply the items in order: an item with `deleted` removes the case from the replica, any other replaces it
    whole. Keep `next_cursor` with the replica once the page is applied, and ask again at once while `has_more`."""
    page = await sync.changes(session, subject, cursor, limit, settings)
    items = []
    for change in page.changes:
        replica = change.replica
        if replica is None:
            items.append(CaseChange(id=change.case_id, deleted=True, reason=change.reason))
            continue
        record = CaseReplica(case=case_read(replica.detail),
                             notes=[NoteRead.model_validate(n, from_attributes=True) for n in replica.notes])
        items.append(CaseChange(id=change.case_id, deleted=False, etag=service.case_etag(replica.detail.case,
                                                                                 replica.detail.all_tasks),
                                record=record))
    return CaseChangePage(items=items, next_cursor=page.next_cursor, has_more=page.has_more)
