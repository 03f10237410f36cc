"""The cases sync feed through the gateway, with phones as an app keeps them (docs/clients.md): offline writes
replayed with Idempotency-Key and If-Match, a conflict merged after its 412, and a transfer that removes the case
from the old commune's phones and brings it to the new commune's."""

import uuid

from sqlalchemy import text

from services.cases.settings import CasesSettings
from services.cases.sync import expire_closed
from services.common.db import Database
from tests.cases.conftest import Cases
from tests.cases.samples import FORMS, intake
from tests.helpers import DEMO_COMMUNE, OTHER_COMMUNE, Api
from tests.replica import Replica

FEED = "/cases/v1/sync/cases"


async def test_two_phones_edit_one_case_and_the_second_merges_after_its_412(api: Api, cases: Cases) -> None:
    officer = await api.commune_user("child_protection_officer", DEMO_COMMUNE)
    first, second = Replica(api, FEED, officer), Replica(api, FEED, officer)

    # Recorded offline on the first phone: sent three times on a flaky network, one case.
    key = f"phone-1-{uuid.uuid4()}"
    answers = [await cases.create(officer, intake(), key) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 200, 200]
    case_id = answers[0].json()["id"]
    assert len({a.json()["id"] for a in answers}) == 1

    await first.sync_until(lambda r: case_id in r.records)
    await second.sync_until(lambda r: case_id in r.records)
    assert first.etags[case_id] == second.etags[case_id]
    held = second.etags[case_id]

    # Both phones take the case up, each on the version it holds; the first to reach the server wins.
    won = await cases.act(officer, case_id, "begin_assessment", etag=first.etags[case_id])
    assert won.status_code == 200, won.text
    lost = await cases.act(officer, case_id, "begin_assessment", etag=held)
    assert lost.status_code == 412, lost.text
    problem = lost.json()
    assert problem["current_etag"] == won.headers["etag"] != held
    assert problem["current"] == f"/cases/v1/cases/{case_id}"

    # The second phone reads the current version where the problem points: the case is taken up already, so it
    # drops its own step and sends the assessment it recorded offline, with the new ETag.
    current = await api.client.get(problem["current"], headers=officer)
    assert current.status_code == 200 and current.headers["etag"] == problem["current_etag"]
    assert current.json()["state"] == "assessing" and "assess_no_emergency" in current.json()["allowed_actions"]
    merged = await cases.act(officer, case_id, "assess_no_emergency", etag=current.headers["etag"])
    assert merged.status_code == 200, merged.text

    # Both replicas converge on the assessed case.
    for phone in (first, second):
        await phone.sync_until(
            lambda r: r.records.get(case_id, {}).get("case", {}).get("state") == "specific_assessment")
        assert phone.etags[case_id] == merged.headers["etag"]
    assert first.records[case_id] == second.records[case_id]


async def test_notes_and_tasks_travel_with_their_case(api: Api, cases: Cases) -> None:
    officer = await api.commune_user("child_protection_officer", DEMO_COMMUNE)
    phone = Replica(api, FEED, officer)
    created = await cases.create(officer, intake(abuse_forms=["sexual_abuse"]))
    case_id = created.json()["id"]
    await phone.sync_until(lambda r: case_id in r.records)
    assert [t["agency"] for t in phone.records[case_id]["case"]["tasks"]] == ["police"]  # the referral
    note = await api.client.post(f"/cases/v1/cases/{case_id}/notes", headers=officer,
                                 json={"text": "Visited the family.", "visibility": "managers"})
    assert note.status_code == 201, note.text
    await phone.sync_until(lambda r: [n["text"] for n in r.records.get(case_id, {}).get("notes", [])]
                           == ["Visited the family."])


async def test_a_transfer_removes_the_case_from_the_old_communes_phones(api: Api, cases: Cases) -> None:
    officer = await api.commune_user("child_protection_officer", DEMO_COMMUNE)
    newcomer = await api.commune_user("child_protection_officer", OTHER_COMMUNE)
    old_phone, new_phone = Replica(api, FEED, officer), Replica(api, FEED, newcomer)
    case_id = (await cases.create(officer, intake())).json()["id"]
    stays = (await cases.create(officer, intake())).json()["id"]
    await old_phone.sync_until(lambda r: {case_id, stays} <= set(r.records))
    await new_phone.sync()
    assert case_id not in new_phone.records

    await cases.step(officer, case_id, "transfer", FORMS["transfer"] | {"to_commune_code": OTHER_COMMUNE})

    await old_phone.sync_until(lambda r: case_id in r.removed)
    assert case_id not in old_phone.records and stays in old_phone.records
    assert old_phone.removed[case_id]["reason"] == "out_of_reach" and old_phone.removed[case_id]["record"] is None
    await new_phone.sync_until(lambda r: case_id in r.records)
    assert new_phone.records[case_id]["case"]["commune_code"] == OTHER_COMMUNE
    # The province's police, with no task in the case, never held it: their phone is not told it left.
    police = Replica(api, FEED, await api.as_demo("police_officer"))
    await police.sync(limit=200)
    assert case_id not in police.records and case_id not in police.removed


async def test_a_case_closed_longer_than_the_retention_leaves_the_phones(api: Api, cases: Cases,
                                                                          cases_db: Database) -> None:
    officer = await api.commune_user("child_protection_officer", DEMO_COMMUNE)
    chairman = await api.commune_user("commune_chairman", DEMO_COMMUNE)
    phone = Replica(api, FEED, officer)
    case_id = (await cases.create(officer, intake())).json()["id"]
    await cases.step(chairman, case_id, "close_early")
    await phone.sync_until(lambda r: r.records.get(case_id, {}).get("case", {}).get("state") == "closed")
    settings = CasesSettings()
    async with cases_db.unit_of_work() as session:  # closed a day longer ago than the window
        await session.execute(text("UPDATE case_record SET closed_at = closed_at - make_interval(days => :days) "
                                   "WHERE id = :id"),
                              {"days": settings.sync_closed_retention_days + 1, "id": uuid.UUID(case_id)})
    # The service's periodic round logs the expiry once per case, for the phones that synced before it.
    assert await expire_closed(cases_db, settings) >= 1
    assert await expire_closed(cases_db, settings) == 0
    await phone.sync_until(lambda r: case_id in r.removed)
    assert phone.removed[case_id]["reason"] == "expired" and case_id not in phone.records


async def test_cursors_are_opaque_bounded_and_belong_to_their_user(api: Api, cases: Cases) -> None:
    officer = await api.commune_user("child_protection_officer", DEMO_COMMUNE)
    chairman = await api.commune_user("commune_chairman", DEMO_COMMUNE)
    for _ in range(3):
        assert (await cases.create(officer, intake())).status_code == 201
    page = (await api.client.get(FEED, params={"limit": 2}, headers=officer)).json()
    assert len(page["items"]) <= 2 and page["has_more"] is True
    again = (await api.client.get(FEED, params={"limit": 2}, headers=officer)).json()
    assert again["next_cursor"] == page["next_cursor"]  # stable: the same position gives the same cursor
    foreign = await api.client.get(FEED, params={"cursor": page["next_cursor"]}, headers=chairman)
    assert foreign.status_code == 410 and foreign.json()["type"].endswith("/sync-reset")
    for crafted in ("not-a-cursor", "W1siYSJdXQ", "x" * 1001):
        response = await api.client.get(FEED, params={"cursor": crafted}, headers=officer)
        assert response.status_code in (400, 422), (crafted, response.text)
    outsider = await api.as_demo("admin")
    assert (await api.client.get(FEED, headers=outsider)).status_code == 403
