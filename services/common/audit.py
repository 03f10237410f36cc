"""The access log of records: every read and write of a child or case record, who, when, why.

Written in the request's own transaction (with its commit), so an audited read or write and its audit line land
together or not at all. The `purpose` is what the access served (a case id, a task id, an import), never free text
with personal data.
"""

import uuid
from typing import Any

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Subject
from services.common.clock import utcnow
from services.common.db import add_pending_rows


def audit_table(metadata: MetaData) -> Table:
    return Table(
        "audit_entry",
        metadata,
        Column("id", UUID(as_uuid=True), primary_key=True),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("actor_id", String(100), nullable=False),
        Column("actor_role", String(50), nullable=False),
        Column("actor_agency", String(50), nullable=False),
        Column("action", String(50), nullable=False),
        Column("object_type", String(50), nullable=False),
        Column("object_id", String(100), nullable=True),
        Column("purpose", String(200), nullable=True),
        Column("request_id", String(64), nullable=True),
        Column("detail", JSONB, nullable=True),
        Index("ix_audit_entry_object", "object_type", "object_id", "at"),
        Index("ix_audit_entry_actor", "actor_id", "at"),
    )


class AuditLog:
    def __init__(self, metadata: MetaData):
        self.table = audit_table(metadata)

    async def record(self, session: AsyncSession, subject: Subject, action: str, object_type: str,
                     object_ids: list[str] | str | None, *, purpose: str | None = None,
                     detail: dict[str, Any] | None = None) -> None:
        from services.common.logging import request_id_var

        ids = object_ids if isinstance(object_ids, list) else [object_ids]
        now = utcnow()
        # Written with the commit, in the same transaction as what it records (see `db.add_pending_rows`).
        add_pending_rows(session, self.table, [
            {"id": uuid.uuid4(), "at": now, "actor_id": subject.id, "actor_role": subject.role.value,
             "actor_agency": subject.agency.value, "action": action, "object_type": object_type,
             "object_id": object_id, "purpose": purpose, "request_id": request_id_var.get(), "detail": detail}
            for object_id in ids
        ])
