"""Random action sequences against the real service layer and PostgreSQL: the stored case always matches the pure
state machine, illegal actions change nothing, and the history has exactly one entry per version."""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from scripts.stack import migrate
from services.cases import service, workflow
from services.cases.app import MIGRATIONS
from services.cases.models import CaseDeadline, CaseHistory, outbox
from services.cases.schemas import CaseCreate
from services.cases.settings import CasesSettings
from services.common.auth import Jurisdiction, Subject
from services.common.db import Database
from services.common.errors import InvalidTransition
from services.common.permissions import Agency, Role
from tests.cases.samples import FORMS, intake
from tests.helpers import DEMO_COMMUNE, OTHER_COMMUNE

NATIONAL = Jurisdiction(level="national")
OFFICER = Subject(id="officer-1", role=Role.CHILD_PROTECTION_OFFICER, agency=Agency.PEOPLES_COMMITTEE,
                  jurisdiction=NATIONAL, token_id="t1")
CHAIRMAN = Subject(id="chairman-1", role=Role.COMMUNE_CHAIRMAN, agency=Agency.PEOPLES_COMMITTEE,
                   jurisdiction=NATIONAL, token_id="t2")


@pytest.fixture(scope="module")
def database_url(fresh_database: Any) -> str:
    url: str = fresh_database("cases_property")
    migrate(url, MIGRATIONS)
    return url


def body_for(action: str, commune: str, turn: int) -> dict[str, Any]:
    match action:
        case "transfer":
            return {"to_commune_code": OTHER_COMMUNE if commune == DEMO_COMMUNE else DEMO_COMMUNE, "reason": "moved"}
        case "extend_separation":
            return FORMS[action] | {"until": (date.today() + timedelta(days=20 + 10 * turn)).isoformat()}
        case _:
            return FORMS[action]


async def drive(url: str, choices: list[tuple[bool, int]]) -> None:
    database = Database(url, pool_size=2, outbox=outbox)
    config = CasesSettings()
    try:
        async with database.sessionmaker() as session:
            created, _ = await service.create_case(session, OFFICER, CaseCreate.model_validate(intake()), None,
                                                   config)
            await database.commit(session)
        case = created.case
        position = workflow.initial_position()
        commune, version = DEMO_COMMUNE, 1
        for turn, (legal, index) in enumerate(choices):
            options = [s.action for s in workflow.allowed_steps(position)] if legal else sorted(workflow.STEPS)
            if not options:
                break
            action = options[index % len(options)]
            step = workflow.STEPS[action]
            subject = OFFICER if OFFICER.can(step.permission) else CHAIRMAN
            async with database.sessionmaker() as session:
                try:
                    detail = await service.take_action(session, subject, case.id, action,
                                                       body_for(action, commune, turn), service.etag(version), config)
                    await database.commit(session)
                except InvalidTransition:
                    await session.rollback()
                    with pytest.raises(workflow.IllegalTransition):
                        workflow.advance(position, action)
                    continue
            position = workflow.advance(position, action)
            version += 1
            commune = detail.case.commune_code
            assert detail.case.state == position.state.value and detail.case.version == version
            async with database.sessionmaker() as session:
                running = set((await session.execute(select(CaseDeadline.name).where(
                    CaseDeadline.case_id == case.id, CaseDeadline.met_at.is_(None),
                    CaseDeadline.cancelled_at.is_(None)))).scalars())
                versions = list((await session.execute(select(CaseHistory.version).where(
                    CaseHistory.case_id == case.id).order_by(CaseHistory.version))).scalars())
                events = (await session.execute(select(func.count()).select_from(outbox.table).where(
                    outbox.table.c.payload["case_id"].astext == str(case.id)))).scalar_one()
            assert running == {d.value for d in position.running}
            assert versions == list(range(1, version + 1))
            assert events == version
    finally:
        await database.dispose()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 4).map(lambda n: n != 0), st.integers(0, 50)),
                min_size=5, max_size=25))
def test_random_actions_on_stored_cases_follow_the_table(database_url: str,
                                                         choices: list[tuple[bool, int]]) -> None:
    # A thread of its own: this test's event loop must not disturb the session loop of the async tests.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, drive(database_url, choices)).result()
