"""The periodic deadline check as it runs in the service, and links to registry children (also when the registry
is down)."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import text

from services.cases import service
from services.cases.app import create_app, watch_deadlines
from services.cases.settings import CasesSettings
from services.common.db import Database
from tests.cases.conftest import Cases
from tests.cases.samples import intake
from tests.helpers import DEMO_COMMUNE, Api, eventually


async def test_background_check_marks_a_missed_deadline_once(api: Api, cases: Cases, cases_db: Database,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    officer = await api.as_demo("child_protection_officer")
    case = (await cases.create(officer, intake())).json()
    async with cases_db.sessionmaker() as session:
        await session.execute(text("UPDATE case_deadline SET due_at = :due WHERE case_id = :id"),
                              {"due": datetime.now(UTC) - timedelta(minutes=1), "id": case["id"]})
        await session.commit()
    app = SimpleNamespace(state=SimpleNamespace(db=cases_db, settings=CasesSettings(deadline_check_seconds=0.05)))
    rounds = 0
    count_overdue = service.count_overdue

    async def counted(database: Database) -> int:  # each round of the loop ends with this count
        nonlocal rounds
        rounds += 1
        return await count_overdue(database)

    monkeypatch.setattr(service, "count_overdue", counted)
    stop = asyncio.Event()
    loop = asyncio.create_task(watch_deadlines(app, stop))  # type: ignore[arg-type]

    async def marked() -> bool:
        read = (await cases.get(officer, case["id"])).json()
        return bool(read["overdue"])

    try:
        await eventually(marked, timeout=30)
        seen = rounds

        async def three_more_rounds() -> bool:  # the deadline must not be marked again
            return rounds >= seen + 3

        await eventually(three_more_rounds, timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=30)
    history = (await api.client.get(f"/cases/v1/cases/{case['id']}/history", headers=officer)).json()["items"]
    assert [h["action"] for h in history] == ["receive", "deadline_missed"]
    assert history[1]["actor_id"] == "cases:deadline-check" and history[1]["data"] == {"deadline": "assessment"}
    # Meeting it late keeps it missed.
    met = await cases.step(officer, case["id"], "begin_assessment")
    assessed = await cases.step(officer, case["id"], "assess_no_emergency")
    assert met["overdue"] and not assessed["overdue"]
    assert next(d for d in assessed["deadlines"] if d["name"] == "assessment")["missed"] is True


async def test_link_to_an_existing_child_and_to_a_new_one(api: Api, cases: Cases) -> None:
    officer = await api.as_demo("child_protection_officer")
    created = await api.client.post("/registry/v1/children", headers=officer, json={
        "full_name": "Trần Thị Lan", "sex": "female", "date_of_birth": "2017-03-02", "commune_code": DEMO_COMMUNE})
    assert created.status_code == 201, created.text
    child_id = created.json()["id"]
    case = (await cases.create(officer, intake())).json()
    url = f"/cases/v1/cases/{case['id']}/link-child"

    assert (await api.client.post(url, json={"child_id": child_id}, headers=officer)).status_code == 428
    linked = await api.client.post(url, json={"child_id": child_id}, headers=officer | {"If-Match": '"1"'})
    assert linked.status_code == 200, linked.text
    assert linked.json()["child"]["child_id"] == child_id and linked.headers["etag"] == '"2.0.0"'
    missing = await api.client.post(url, json={"child_id": str(uuid.uuid4())}, headers=officer | {"If-Match": '"2"'})
    assert missing.status_code == 404

    other = (await cases.create(officer, intake())).json()
    registered = await api.client.post(
        f"/cases/v1/cases/{other['id']}/link-child", headers=officer | {"If-Match": '"1"'},
        json={"new_child": {"full_name": "Phạm Văn Minh", "sex": "male", "date_of_birth": "2015-09-09",
                            "commune_code": DEMO_COMMUNE}})
    assert registered.status_code == 200, registered.text
    assert registered.json()["child"]["child_id"] not in (None, child_id)


async def test_link_answers_503_and_leaves_the_case_alone_when_the_registry_is_down(api: Api, cases: Cases) -> None:
    officer = await api.as_demo("child_protection_officer")
    case = (await cases.create(officer, intake())).json()
    gateway = api.stack.url("gateway")
    settings = CasesSettings(
        database_url=api.stack.database_url("cases"), jwt_issuer=gateway, jwks_url=f"{gateway}/.well-known/jwks.json",
        gateway_url=gateway, registry_url="http://127.0.0.1:9", service_client_id="cases",
        service_client_secret=api.stack.client_secrets["cases"], registry_timeout_seconds=1.0)
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://cases") as client:
        response = await client.post(f"/v1/cases/{case['id']}/link-child", json={"child_id": str(uuid.uuid4())},
                                     headers=officer | {"If-Match": '"1"'})
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    after = (await cases.get(officer, case["id"])).json()
    assert after["version"] == 1 and after["child"]["child_id"] is None
    # The intake itself never needed the registry.
    assert case["state"] == "received"
