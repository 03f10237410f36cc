"""The registry's sync feed for offline phones (docs/clients.md): each child the caller can list that changed since
the cursor, as the caller may see it, or a tombstone when the record left the caller's reach (the child moved to
another commune) or was merged into another record.

The log is written by a trigger (services/common/sync.py); what each caller sees is decided here through
`service.readable`, the same filter as the list of children. Every record sent is audited as read.
"""

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Subject
from services.common.errors import Forbidden
from services.common.permissions import Action, Scope
from services.common.sync import TombstoneReason
from services.registry import service
from services.registry.models import Child, audit, sync_log


@dataclass
class Change:
    child_id: uuid.UUID
    view: dict[str, Any] | None = None
    etag: str | None = None
    reason: TombstoneReason | None = None
    merged_into: uuid.UUID | None = None


@dataclass
class ChangePage:
    changes: list[Change] = field(default_factory=list)
    next_cursor: str = ""
    has_more: bool = False


async def changes(session: AsyncSession, subject: Subject, cursor: str | None, limit: int) -> ChangePage:
    # The phone of an officer who keeps the commune's children: the callers who may list them.
    scope = service.access_scope(subject, Action.CHILD_SEARCH)
    if scope != Scope.JURISDICTION:
        raise Forbidden("your role may not keep a replica of the children")
    page = await sync_log.changes(session, subject, cursor, limit)
    found: dict[uuid.UUID, Child] = {}
    if page.record_ids:
        query = service.readable(subject, Action.CHILD_SEARCH).where(Child.id.in_(page.record_ids))
        found = {child.id: child for child in (await session.execute(query)).scalars()}
    day = service.today()
    result = []
    for child_id in page.record_ids:
        child = found.get(child_id)
        if child is None:
            result.append(Change(child_id, reason="out_of_reach"))
        elif child.merged_into_id is not None:
            result.append(Change(child_id, reason="merged", merged_into=child.merged_into_id))
        else:
            result.append(Change(child_id, view=service.project(child, subject, scope, day=day),
                                 etag=service.etag(child)))
    sent = [str(change.child_id) for change in result if change.view is not None]
    if sent:
        await audit.record(session, subject, "read", "child", sent, purpose="sync")
    return ChangePage(result, page.next_cursor, page.has_more)
