"""Cases tables."""

from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from services.common.audit import AuditLog
from services.common.db import new_metadata
from services.common.outbox import Outbox


class CasesTable(SQLModel, registry=registry(metadata=new_metadata())):
    pass


metadata = CasesTable.metadata
outbox = Outbox(metadata, source="cases")
audit = AuditLog(metadata)
