"""Applying events to aggregates, and reading figures."""

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Subject
from services.common.outbox import Event
from services.reporting.models import ChildCount


async def apply_registry_events(session: AsyncSession, events: list[Event]) -> None:
    for event in events:
        if event.type == "child.registered":
            p = event.payload
            statement = insert(ChildCount).values(commune_code=p["commune_code"], sex=p["sex"],
                                                  province_code=p["province_code"], count=1)
            await session.execute(statement.on_conflict_do_update(
                index_elements=["commune_code", "sex"], set_={"count": ChildCount.count + 1}
            ))


async def children_followed(session: AsyncSession, subject: Subject, location: str | None) -> int:
    query = select(func.coalesce(func.sum(ChildCount.count), 0)).where(
        subject.jurisdiction.filter(ChildCount.province_code, ChildCount.commune_code)
    )
    if location and len(location) == 2:
        query = query.where(ChildCount.province_code == location)
    elif location:
        query = query.where(ChildCount.commune_code == location)
    return int(await session.scalar(query) or 0)
