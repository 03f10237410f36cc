"""Registry logic. Every read goes through `readable()`: the one place that filters by jurisdiction."""

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Subject
from services.common.errors import NotFound
from services.common.locations import province_of
from services.common.permissions import Action, Scope
from services.registry.models import Child, audit, outbox
from services.registry.schemas import ChildCreate


def readable(subject: Subject, action: Action = Action.CHILD_READ) -> Select[tuple[Child]]:
    scope = subject.scope(action)
    query = select(Child)
    if scope == Scope.JURISDICTION:
        return query.where(subject.jurisdiction.filter(Child.province_code, Child.commune_code))
    return query.where(False)


def statistics_payload(child: Child) -> dict[str, object]:
    """What reporting needs, and nothing that identifies the child."""
    return {"child_id": str(child.id), "sex": child.sex, "birth_year_month": child.date_of_birth.strftime("%Y-%m"),
            "province_code": child.province_code, "commune_code": child.commune_code}


async def create_child(session: AsyncSession, subject: Subject, data: ChildCreate) -> Child:
    province = province_of(data.commune_code)
    assert province is not None
    if not subject.jurisdiction.contains(province, data.commune_code):
        raise NotFound("no such commune in your jurisdiction")
    child = Child(**data.model_dump(), province_code=province, created_by=subject.id)
    session.add(child)
    await session.flush()
    outbox.emit(session, "child.registered", statistics_payload(child), agency=subject.agency.value)
    await audit.record(session, subject, "create", "child", str(child.id))
    return child


async def get_child(session: AsyncSession, subject: Subject, child_id: uuid.UUID) -> Child:
    child = (await session.execute(readable(subject).where(Child.id == child_id))).scalar_one_or_none()
    if child is None:
        raise NotFound("no such child")
    await audit.record(session, subject, "read", "child", str(child.id))
    return child
