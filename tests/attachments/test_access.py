"""Access by every role: each demo role reads, lists, downloads, links, uploads, deletes and holds files on cases
inside and outside its jurisdiction, with and without a task of its agency, shared with managers only or with the
participants. Every answer is what the permission table, the case's place and the file's visibility say: 403 when
the role may not take the action at all, 404 when the case or the file is outside its reach, success otherwise."""

from dataclasses import dataclass, field

import pytest

from services.common.permissions import PERMISSIONS, ROLE_AGENCY, Action, Agency, Role, Scope
from tests.attachments.conftest import Files, pdf
from tests.helpers import DEMO_COMMUNE, DEMO_PROVINCE, OTHER_COMMUNE, OTHER_PROVINCE, Api

ROLES = [role for role in Role if role != Role.SERVICE]


@dataclass
class CaseOf:
    id: str
    province: str
    commune: str
    involved: set[str] = field(default_factory=set)  # agencies with a task, or whose intake it was


@dataclass
class FileOn:
    id: str
    case: CaseOf
    visibility: str
    etag: str = '"1"'


@pytest.fixture(scope="module")
async def world(api: Api) -> dict[str, FileOn]:
    files = Files(api)
    here = await api.as_demo("child_protection_officer")
    there = await api.commune_user("child_protection_officer", OTHER_COMMUNE)
    health = await api.as_demo("health_officer")
    cases = {
        # A sexual-abuse report: the police of the province get a referral task (Joint Circular 01/2022).
        "police_task": CaseOf(await files.case(here, abuse_forms=("sexual_abuse",)), DEMO_PROVINCE, DEMO_COMMUNE,
                              {"peoples_committee", "police"}),
        "no_task": CaseOf(await files.case(here, abuse_forms=("neglect",)), DEMO_PROVINCE, DEMO_COMMUNE,
                          {"peoples_committee"}),
        "health_intake": CaseOf(await files.case(health, abuse_forms=("violence",)), DEMO_PROVINCE, DEMO_COMMUNE,
                                {"peoples_committee", "health"}),
        "outside": CaseOf(await files.case(there, OTHER_COMMUNE, ("sexual_abuse",)), OTHER_PROVINCE, OTHER_COMMUNE,
                          {"peoples_committee", "police"}),
    }
    world: dict[str, FileOn] = {}
    for label, case in cases.items():
        uploader = there if label == "outside" else here
        for visibility in ("managers", "participants"):
            made = await files.attach(uploader, case.id, pdf(2000), kind="other", visibility=visibility)
            world[f"{label}/{visibility}"] = FileOn(made["id"], case, visibility)
    return world


def within(role: Role, case: CaseOf) -> bool:
    from gateway.service import demo_jurisdiction

    place = demo_jurisdiction(role)
    return place.level == "national" or (place.level == "province" and place.province == case.province) or (
        place.level == "commune" and place.commune == case.commune)


def reaches_case(role: Role, action: Action, case: CaseOf) -> bool:
    match PERMISSIONS[role].get(action):
        case Scope.JURISDICTION:
            return within(role, case)
        case Scope.INVOLVED:
            return within(role, case) and ROLE_AGENCY[role].value in case.involved
        case _:
            return False


def manager(role: Role) -> bool:
    return ROLE_AGENCY[role] == Agency.PEOPLES_COMMITTEE and \
        PERMISSIONS[role].get(Action.ATTACHMENT_READ) == Scope.JURISDICTION


def expected(role: Role, action: Action, item: FileOn, success: int) -> int:
    if action not in PERMISSIONS[role]:
        return 403
    if not reaches_case(role, action, item.case):
        return 404
    if item.visibility == "managers" and not manager(role):
        return 404
    return success


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
async def test_reading_downloading_and_linking(api: Api, world: dict[str, FileOn], role: Role) -> None:
    headers = await api.as_demo(role.value)
    wrong = []
    for label, item in world.items():
        want = expected(role, Action.ATTACHMENT_READ, item, 200)
        got = [(await api.client.get(f"/cases/v1/attachments/{item.id}", headers=headers)).status_code,
               (await api.client.get(f"/cases/v1/attachments/{item.id}/content", headers=headers)).status_code,
               (await api.client.post(f"/cases/v1/attachments/{item.id}/link", headers=headers)).status_code]
        if got != [want] * 3:
            wrong.append(f"{label}: {got}, expected {want}")
    assert not wrong, f"{role.value}: " + "; ".join(wrong)


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
async def test_lists_show_exactly_the_visible_files(api: Api, world: dict[str, FileOn], role: Role) -> None:
    headers = await api.as_demo(role.value)
    for case in {item.case.id: item.case for item in world.values()}.values():
        response = await api.client.get(f"/cases/v1/cases/{case.id}/attachments", headers=headers)
        on_case = [item for item in world.values() if item.case is case]
        if Action.ATTACHMENT_READ not in PERMISSIONS[role]:
            assert response.status_code == 403
        elif not reaches_case(role, Action.ATTACHMENT_READ, case):
            assert response.status_code == 404, (role.value, response.text)
        else:
            assert response.status_code == 200
            visible = {item.id for item in on_case if expected(role, Action.ATTACHMENT_READ, item, 200) == 200}
            assert {a["id"] for a in response.json()["items"]} == visible, role.value


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
async def test_deleting_and_holding_need_their_own_permission(api: Api, world: dict[str, FileOn],
                                                              role: Role) -> None:
    headers = await api.as_demo(role.value)
    wrong = []
    for label, item in world.items():
        # Without If-Match a reachable file answers 428: nothing changes, and reach is still proven.
        deleted = await api.client.post(f"/cases/v1/attachments/{item.id}/delete", headers=headers,
                                        json={"reason": "matrix"})
        held = await api.client.put(f"/cases/v1/attachments/{item.id}/legal-hold", headers=headers,
                                    json={"hold": True, "reason": "matrix"})
        for action, response in ((Action.ATTACHMENT_DELETE, deleted), (Action.ATTACHMENT_HOLD, held)):
            want = expected(role, action, item, 428)
            if response.status_code != want:
                wrong.append(f"{action.value} {label}: {response.status_code}, expected {want}")
    assert not wrong, f"{role.value}: " + "; ".join(wrong)


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
async def test_uploading(api: Api, world: dict[str, FileOn], role: Role) -> None:
    headers = await api.as_demo(role.value)
    files = Files(api)
    for label in ("police_task", "health_intake", "outside"):
        item = world[f"{label}/participants"]
        want = expected(role, Action.ATTACHMENT_UPLOAD, item, 201)
        response = await files.upload(headers, item.case.id, pdf(1000), kind="police_record",
                                      visibility="participants")
        assert response.status_code == want, f"{role.value} uploading to {label}: {response.text}"
        if want == 201:
            # The uploader sees its own file even when it is shared with managers only.
            own = await files.upload(headers, item.case.id, pdf(1000), kind="other")
            assert (await api.client.get(f"/cases/v1/attachments/{own.json()['id']}",
                                         headers=headers)).status_code == 200
