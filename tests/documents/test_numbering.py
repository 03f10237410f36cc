"""Numbering of the papers on the real PostgreSQL: one gapless sequence per issuing body, year and series, even when
transactions race and some roll back (Decree 30/2020/NĐ-CP Art. 15)."""

import asyncio
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

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


async def test_a_kept_rendition_cannot_be_changed(cases_database: Database) -> None:
    async with cases_database.sessionmaker() as session:
        case_id = uuid.uuid4()
        await session.execute(text(
            "INSERT INTO case_record (id, state, version, province_code, commune_code, incident_commune_code, "
            "received_at, updated_at, intake_agency, created_by, reporter_anonymous, child_sex, child_age_group, "
            "abuse_forms, perpetrator_relationship, description, danger_indicators, plan_cycle) VALUES (:id, "
            "'received', 1, '01', '00070', '00070', now(), now(), 'hotline', 'h', true, 'female', '6-10', "
            "'{violence}', 'unknown', 'x', '{}', 0)"), {"id": case_id})
        document_id = uuid.uuid4()
        await session.execute(text(
            "INSERT INTO case_document (id, case_id, paper, step_version, action, issuer, issuer_agency, year, series, "
            "number, reference, issued_on, signer_name, registered_at) VALUES (:id, :case, '01', 1, 'receive', "
            "'hotline', 'hotline', 2026, 'BC', 1, '01/BC-TĐ111', '2026-03-02', '', now())"),
            {"id": document_id, "case": case_id})
        await session.execute(text(
            "INSERT INTO case_document_version (id, document_id, audience, case_version, pdf, pdf_sha256, docx, "
            "docx_sha256, created_at) VALUES (:id, :document, '', 1, 'a', 'x', 'b', 'y', now())"),
            {"id": uuid.uuid4(), "document": document_id})
        await session.commit()
        with pytest.raises(DBAPIError, match="cannot be changed"):
            await session.execute(text("UPDATE case_document_version SET pdf = 'forged'"))
