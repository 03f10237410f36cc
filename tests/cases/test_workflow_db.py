"""Random action sequences against the real service layer and PostgreSQL: the stored case always matches the pure
state machine, illegal actions change nothing, and the history has exactly one entry per version."""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from scripts.stack import migrate
from services.cases import service, workflow
from services.cases.app import MIGRATIONS
from services.cases.models import CaseDeadline, CaseHistory, CaseTask, outbox
from services.cases.schemas import CaseCreate, TaskUpdate
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


def body_for(action: str, commune: str) -> dict[str, Any]:
    other = OTHER_COMMUNE if commune == DEMO_COMMUNE else DEMO_COMMUNE
    match action:
        case "transfer":
            return {"to_commune_code": other, "reason": "moved"}
        case "hand_over":
            return {"residence_commune_code": other}
        case "separate_child":  # a ground that holds in any state (Decree 56 Art. 32(1))
            return FORMS[action] | {"ground": "continued_risk_from_parents"}
        case "extend_separation":  # repeated extensions pass 15 days: a court asked for them
            return FORMS[action] | {"competent_authority": {"name": "Tòa án nhân dân khu vực 1",
                                                            "document_number": "05/2026/QĐ-TA"}}
        case _:
            return FORMS[action]


async def finish_cycle_tasks(database: Database, case_id: Any) -> None:
    """The review waits for the cycle's tasks: the officer waives those still open."""
    async with database.sessionmaker() as session:
        tasks = list((await session.execute(select(CaseTask).where(CaseTask.case_id == case_id))).scalars())
    for task in tasks:
        if task.status in ("open", "in_progress", "cannot_be_done"):
            async with database.sessionmaker() as session:
                await service.update_task(session, OFFICER, task.id,
                                          TaskUpdate(status="waived", reason="not needed any more"),
                                          service.etag(task.version))
                await database.commit(session)


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
        for legal, index in choices:
            options = [s.action for s in workflow.allowed_steps(position)] if legal else sorted(workflow.STEPS)
            if not options:
                break
            action = options[index % len(options)]
            step = workflow.STEPS[action]
            subject = OFFICER if OFFICER.can(step.permission) else CHAIRMAN
            if action == "start_review" and position.state == workflow.State.IMPLEMENTING:
                await finish_cycle_tasks(database, case.id)
            async with database.sessionmaker() as session:
                try:
                    detail = await service.take_action(session, subject, case.id, action,
                                                       body_for(action, commune), service.etag(version), config)
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
                min_size=5, max_size=40))
def test_random_actions_on_stored_cases_follow_the_table(database_url: str,
                                                         choices: list[tuple[bool, int]]) -> None:
    # A thread of its own: this test's event loop must not disturb the session loop of the async tests.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, drive(database_url, choices)).result()
