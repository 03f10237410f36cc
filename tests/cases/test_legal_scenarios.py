"""Legal scenarios: cases walked on fixed dates through the real service and PostgreSQL with the clock frozen, each
expected due time WRITTEN OUT BY HAND from the articles, never computed by the code under test.

How the periods are counted (written here once, applied by hand below):
- Emergency protection: 12 hours from receiving the information (Decree 56 Art. 26(3), 31(2)), clock hours, through
  nights and holidays.
- The plan: 5 working days (Decree 56 Art. 28(1)) from the initial assessment (Form 02); the chairman's decision:
  2 working days from the submission (Art. 28(4)). A period in days starts the day after the event and ends at
  24:00 of its last day (Civil Code 2015 Arts. 147(1), 148(1)); working days skip Saturdays, Sundays and public
  holidays (Labour Code 2019 Art. 112) and count a Saturday the government declares worked.
- Separation: at most 15 days (Decree 56 Art. 32(3)), calendar days, counted like any period in days.

The 2026 calendar used (government notices; Ha Noi time, UTC+7): Tet holiday Monday 16 to Friday 20 February;
Saturday 22 August worked in exchange for Monday 31 August; National Day Tuesday 1 and Wednesday 2 September.
2027: Tet holiday Thursday 4 to Wednesday 10 February.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from scripts.stack import migrate
from services.cases import service
from services.cases.app import MIGRATIONS
from services.cases.models import outbox
from services.cases.schemas import CaseCreate
from services.cases.settings import CasesSettings
from services.common.auth import Jurisdiction, Subject
from services.common.clock import frozen_at
from services.common.db import Database
from services.common.errors import UnprocessableContent
from services.common.permissions import Agency, Role
from tests.cases.samples import FORMS, intake

ICT = timezone(timedelta(hours=7), "ICT")  # Vietnam time, written out: no zone database between law and test
NATIONAL = Jurisdiction(level="national")
OFFICER = Subject(id="officer-legal", role=Role.CHILD_PROTECTION_OFFICER, agency=Agency.PEOPLES_COMMITTEE,
                  jurisdiction=NATIONAL, token_id="t1")
CHAIRMAN = Subject(id="chairman-legal", role=Role.COMMUNE_CHAIRMAN, agency=Agency.PEOPLES_COMMITTEE,
                   jurisdiction=NATIONAL, token_id="t2")
POLICE = Subject(id="police-legal", role=Role.POLICE_OFFICER, agency=Agency.POLICE,
                 jurisdiction=Jurisdiction(level="province", province="01"), token_id="t3")


@pytest.fixture(scope="module")
def database_url(fresh_database: Any) -> str:
    url: str = fresh_database("cases_legal")
    migrate(url, MIGRATIONS)
    return url


class Walk:
    """One case walked step by step, each step at a moment of the calendar."""

    def __init__(self, database: Database, settings: CasesSettings):
        self.database, self.settings = database, settings
        self.case_id: uuid.UUID | None = None
        self.version = 0
        self.detail: service.CaseDetail | None = None

    async def receive(self, at: datetime, subject: Subject = OFFICER, **changes: Any) -> None:
        with frozen_at(at):
            async with self.database.sessionmaker() as session:
                report = CaseCreate.model_validate(intake(**({"incident_date": None} | changes)))
                detail, _ = await service.create_case(session, subject, report, None, self.settings)
                await self.database.commit(session)
        self.case_id, self.version, self.detail = detail.case.id, detail.case.version, detail

    async def act(self, at: datetime, action: str, body: dict[str, Any] | None = None,
                  subject: Subject | None = None) -> None:
        assert self.case_id is not None
        actor = subject or (OFFICER if OFFICER.can(service.workflow.STEPS[action].permission) else CHAIRMAN)
        with frozen_at(at):
            async with self.database.sessionmaker() as session:
                detail = await service.take_action(session, actor, self.case_id, action,
                                                   FORMS[action] if body is None else body,
                                                   service.etag(self.version), self.settings)
                await self.database.commit(session)
        self.version, self.detail = detail.case.version, detail

    def deadline(self, name: str) -> Any:
        assert self.detail is not None
        return max((d for d in self.detail.deadlines if d.name == name), key=lambda d: d.started_at)


def run(database_url: str, scenario: Callable[[Walk], Awaitable[None]], **settings: Any) -> None:
    async def main() -> None:
        database = Database(database_url, pool_size=2, outbox=outbox)
        try:
            await scenario(Walk(database, CasesSettings(**settings)))
        finally:
            await database.dispose()

    # A thread of its own: this test's event loop must not disturb the session loop of the async tests.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, main()).result()


def test_plan_and_decision_across_tet_2026(database_url: str) -> None:
    async def scenario(walk: Walk) -> None:
        await walk.receive(datetime(2026, 2, 12, 9, 0, tzinfo=ICT))  # Thursday
        await walk.act(datetime(2026, 2, 12, 9, 30, tzinfo=ICT), "begin_assessment")
        await walk.act(datetime(2026, 2, 12, 10, 0, tzinfo=ICT), "assess_no_emergency")
        # Form 02 on Thursday 12 Feb. Working days after it: Fri 13 (1); Sat 14 - Sun 22 Tet and weekends;
        # Mon 23 (2), Tue 24 (3), Wed 25 (4), Thu 26 (5): the plan is due by 24:00 on Thursday 26 February.
        assert walk.deadline("plan_drafted").due_at == datetime(2026, 2, 27, 0, 0, tzinfo=ICT)
        await walk.act(datetime(2026, 2, 13, 11, 0, tzinfo=ICT), "complete_specific_assessment")
        await walk.act(datetime(2026, 2, 13, 16, 0, tzinfo=ICT), "submit_plan")
        assert walk.deadline("plan_drafted").met_at == datetime(2026, 2, 13, 16, 0, tzinfo=ICT)
        assert not walk.deadline("plan_drafted").missed
        # Submitted Friday 13 Feb, 16:00: Mon 23 (1), Tue 24 (2): the chairman decides by 24:00 on Tue 24 Feb.
        assert walk.deadline("plan_approval").due_at == datetime(2026, 2, 25, 0, 0, tzinfo=ICT)

    run(database_url, scenario)


@pytest.mark.parametrize("target_days", [1, 10])
def test_the_internal_specific_assessment_target_never_moves_the_legal_plan_clock(database_url: str,
                                                                                  target_days: int) -> None:
    async def scenario(walk: Walk) -> None:
        await walk.receive(datetime(2026, 2, 12, 9, 0, tzinfo=ICT))
        await walk.act(datetime(2026, 2, 12, 9, 30, tzinfo=ICT), "begin_assessment")
        await walk.act(datetime(2026, 2, 12, 10, 0, tzinfo=ICT), "assess_no_emergency")
        assert walk.deadline("plan_drafted").due_at == datetime(2026, 2, 27, 0, 0, tzinfo=ICT)
        # The target itself: 1 working day = Fri 13 Feb; 10 = Fri 13 (1), Mon 23 - Fri 27 (2-6), Mon 2 (7),
        # Tue 3 (8), Wed 4 (9), Thu 5 March (10).
        expected = {1: datetime(2026, 2, 14, 0, 0, tzinfo=ICT), 10: datetime(2026, 3, 6, 0, 0, tzinfo=ICT)}
        assert walk.deadline("specific_assessment").due_at == expected[target_days]

    run(database_url, scenario, specific_assessment_working_days=target_days)


def test_emergency_on_tet_eve_met_by_the_police_at_the_hour_they_acted(database_url: str) -> None:
    async def scenario(walk: Walk) -> None:
        # The police receive the report themselves on Monday 16 February 2026 (Tet holiday), 20:30.
        await walk.receive(datetime(2026, 2, 16, 20, 30, tzinfo=ICT), subject=POLICE)
        await walk.act(datetime(2026, 2, 16, 21, 0, tzinfo=ICT), "begin_assessment")
        await walk.act(datetime(2026, 2, 16, 22, 0, tzinfo=ICT), "assess_emergency")
        # 12 clock hours from 20:30 on 16 February, holiday or not: 08:30 on Tuesday 17 February.
        assert walk.deadline("emergency_protection").due_at == datetime(2026, 2, 17, 8, 30, tzinfo=ICT)
        # Form 02 on Mon 16 Feb (a Tet holiday); Tue 17 - Fri 20 Tet, weekend; Mon 23 (1) ... Fri 27 (5).
        assert walk.deadline("plan_drafted").due_at == datetime(2026, 2, 28, 0, 0, tzinfo=ICT)
        # The police removed the abuser at 02:00 and record it at 09:00, after the due time: the clock was met
        # when they acted (Decree 56 Art. 26(3): "cơ quan ... có thẩm quyền").
        await walk.act(datetime(2026, 2, 17, 9, 0, tzinfo=ICT), "record_emergency_measure",
                       FORMS["record_emergency_measure"] | {
                           "taken_at": datetime(2026, 2, 17, 2, 0, tzinfo=ICT).isoformat()}, subject=POLICE)
        emergency = walk.deadline("emergency_protection")
        assert emergency.met_at == datetime(2026, 2, 17, 2, 0, tzinfo=ICT) and not emergency.missed
        assert walk.detail is not None and walk.detail.case.emergency_measure_agency == "police"
        assert walk.detail.case.state == "emergency_protection"
        # The police may record more; moving the case on is the commune's.
        assert walk.detail.allowed_actions == ["record_emergency_measure"]
        await walk.act(datetime(2026, 2, 17, 10, 0, tzinfo=ICT), "end_emergency_protection")
        assert walk.detail.case.state == "specific_assessment"

    run(database_url, scenario)


def test_plan_late_over_a_worked_saturday_and_a_decision_over_national_day(database_url: str) -> None:
    async def scenario(walk: Walk) -> None:
        await walk.receive(datetime(2026, 8, 20, 8, 0, tzinfo=ICT))  # Thursday
        await walk.act(datetime(2026, 8, 20, 8, 30, tzinfo=ICT), "begin_assessment")
        await walk.act(datetime(2026, 8, 20, 9, 0, tzinfo=ICT), "assess_no_emergency")
        # Fri 21 (1), Sat 22 worked in exchange (2), Mon 24 (3), Tue 25 (4), Wed 26 (5): by 24:00 Wed 26 August.
        assert walk.deadline("plan_drafted").due_at == datetime(2026, 8, 27, 0, 0, tzinfo=ICT)
        await walk.act(datetime(2026, 8, 27, 10, 0, tzinfo=ICT), "complete_specific_assessment")
        await walk.act(datetime(2026, 8, 28, 15, 0, tzinfo=ICT), "submit_plan")
        assert walk.deadline("plan_drafted").missed  # submitted on Friday 28: two days late
        # Submitted Fri 28 Aug: Sat 29, Sun 30; Mon 31 off in exchange; Tue 1 and Wed 2 Sep National Day;
        # Thu 3 (1), Fri 4 (2): the chairman decides by 24:00 on Friday 4 September.
        assert walk.deadline("plan_approval").due_at == datetime(2026, 9, 5, 0, 0, tzinfo=ICT)
        await walk.act(datetime(2026, 9, 3, 9, 0, tzinfo=ICT), "approve_plan")
        approval = walk.deadline("plan_approval")
        assert approval.met_at == datetime(2026, 9, 3, 9, 0, tzinfo=ICT) and not approval.missed
        assert walk.detail is not None
        assert walk.detail.case.plan_approved_at == datetime(2026, 9, 3, 9, 0, tzinfo=ICT)

    run(database_url, scenario)


def test_plan_deadline_across_tet_2027(database_url: str) -> None:
    async def scenario(walk: Walk) -> None:
        await walk.receive(datetime(2027, 2, 3, 14, 0, tzinfo=ICT))  # Wednesday, the day before the Tet holiday
        await walk.act(datetime(2027, 2, 3, 15, 0, tzinfo=ICT), "begin_assessment")
        await walk.act(datetime(2027, 2, 3, 16, 0, tzinfo=ICT), "assess_no_emergency")
        # Thu 4 - Wed 10 Feb Tet (with the weekend); Thu 11 (1), Fri 12 (2), Mon 15 (3), Tue 16 (4), Wed 17 (5).
        assert walk.deadline("plan_drafted").due_at == datetime(2027, 2, 18, 0, 0, tzinfo=ICT)

    run(database_url, scenario)


def test_separation_of_15_days_at_most_unless_a_competent_authority_requires_more(database_url: str) -> None:
    async def scenario(walk: Walk) -> None:
        await walk.receive(datetime(2026, 3, 2, 8, 0, tzinfo=ICT))  # Monday
        await walk.act(datetime(2026, 3, 2, 8, 30, tzinfo=ICT), "begin_assessment")
        await walk.act(datetime(2026, 3, 2, 9, 0, tzinfo=ICT), "assess_emergency")
        await walk.act(datetime(2026, 3, 2, 10, 0, tzinfo=ICT), "separate_child",  # 7 days
                       FORMS["separate_child"] | {"ground": "emergency"})
        # Decided Mon 2 March; 7 days: Tue 3 (1) ... Mon 9 (7): ends at 24:00 on Monday 9 March.
        assert walk.deadline("separation").due_at == datetime(2026, 3, 10, 0, 0, tzinfo=ICT)
        # The decision met the 12-hour clock (08:00 + 12 h = 20:00 on 2 March).
        emergency = walk.deadline("emergency_protection")
        assert emergency.due_at == datetime(2026, 3, 2, 20, 0, tzinfo=ICT) and not emergency.missed
        await walk.act(datetime(2026, 3, 9, 9, 0, tzinfo=ICT), "extend_separation")  # 5 more days: 12 in all
        assert walk.deadline("separation").due_at == datetime(2026, 3, 15, 0, 0, tzinfo=ICT)
        with pytest.raises(UnprocessableContent, match="at most 15 days"):  # 4 more would make 16
            await walk.act(datetime(2026, 3, 14, 9, 0, tzinfo=ICT), "extend_separation",
                           {"decision_number": "15/QĐ-UBND", "days": 4})
        await walk.act(datetime(2026, 3, 14, 9, 0, tzinfo=ICT), "extend_separation", {
            "decision_number": "15/QĐ-UBND", "days": 4,
            "competent_authority": {"name": "Tòa án nhân dân khu vực 1 - Hà Nội", "document_number": "07/2026/QĐ-TA"}})
        # 12 + 4 = 16 days from Mon 2 March: ends at 24:00 on Wednesday 18 March.
        assert walk.deadline("separation").due_at == datetime(2026, 3, 19, 0, 0, tzinfo=ICT)
        assert walk.detail is not None
        separation = walk.detail.separations[0]
        assert (separation.extended_days, separation.authority_document) == (9, "07/2026/QĐ-TA")
        assert walk.detail.case.emergency_measure_at == datetime(2026, 3, 2, 10, 0, tzinfo=ICT)

    run(database_url, scenario)
