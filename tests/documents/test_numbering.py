"""Numbering of the papers on the real PostgreSQL: one gapless sequence per issuing body, year and series, even when
transactions race and some roll back (Decree 30/2020/NĐ-CP Art. 15)."""

import asyncio

from sqlalchemy import select

from services.cases.documents import next_number
from services.cases.models import DocumentSequence
from services.common.db import Database


async def test_numbers_are_gapless_when_steps_race_and_some_fail(cases_database: Database) -> None:
    committed: list[int] = []

    async def step(index: int) -> None:
        async with cases_database.sessionmaker() as session:
            number = await next_number(session, "00070", 2026, "QĐ")
            await asyncio.sleep(0.01)  # hold the series' row while the others queue behind it
            if index % 3 == 0:  # the step fails after taking its number: the number goes back
                await session.rollback()
                return
            await session.commit()
            committed.append(number)

    await asyncio.gather(*(step(i) for i in range(12)))
    assert sorted(committed) == list(range(1, 9))  # 8 committed steps: 1..8, none twice, none skipped
    async with cases_database.sessionmaker() as session:
        row = (await session.execute(select(DocumentSequence))).scalar_one()
        assert (row.issuer, row.year, row.series, row.last_number) == ("00070", 2026, "QĐ", 8)


async def test_each_body_year_and_series_counts_on_its_own(cases_database: Database) -> None:
    async with cases_database.sessionmaker() as session:
        taken = [await next_number(session, issuer, year, series) for issuer, year, series in (
            ("00070", 2026, "QĐ"), ("00070", 2026, "QĐ"), ("00070", 2026, "BC"), ("00073", 2026, "QĐ"),
            ("00070", 2027, "QĐ"), ("hotline", 2026, "BC"), ("00070", 2026, "QĐ"))]
        await session.commit()
    assert taken == [1, 2, 1, 1, 1, 1, 3]
