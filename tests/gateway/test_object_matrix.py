"""Object-level authorization: every demo role reads and changes records inside and outside its jurisdiction
and agency, and each answer is what the permission table and the record's place say: 403 when the role may not
take the action at all, 404 when the record is outside its reach, success otherwise."""

from dataclasses import dataclass, field

import pytest

from services.common.permissions import PERMISSIONS, Action, Role, Scope
from tests.helpers import DEMO_COMMUNE, DEMO_PROVINCE, OTHER_COMMUNE, Api

CHILD = {"sex": "female", "date_of_birth": "2015-06-01"}


@dataclass
class Record:
    id: str
    province: str
    commune: str
    created_by_role: str = "child_protection_officer"
    involved_agencies: set[str] = field(default_factory=set)


@dataclass
class World:
    children: dict[str, Record]
    cases: dict[str, Record]


@pytest.fixture(scope="module")
async def world(api: Api) -> World:
    here = await api.as_demo("child_protection_officer")
    there = await api.commune_user("child_protection_officer", OTHER_COMMUNE)

    async def child(headers: dict[str, str], commune: str, name: str) -> str:
        response = await api.client.post("/registry/v1/children", headers=headers, json=CHILD | {
            "full_name": name, "commune_code": commune})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def case(headers: dict[str, str], commune: str, forms: list[str], child_id: str | None = None) -> str:
        response = await api.client.post("/cases/v1/cases", headers=headers, json={
            "incident_commune_code": commune, "abuse_forms": forms, "environment": "home",
            "description": "Matrix test report", "child": {"first_name": "Lan", "sex": "female",
                                                           "child_id": child_id}})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    # The inside child is the subject of a sexual-abuse report: the police of the province get a referral (Joint
    # Circular 01/2022), so they may open its registry record for that case; no other agency may.
    children = {
        "inside": Record(await child(here, DEMO_COMMUNE, "Đỗ Thị Trong"), DEMO_PROVINCE, DEMO_COMMUNE,
                         involved_agencies={"police", "peoples_committee"}),
        "outside": Record(await child(there, OTHER_COMMUNE, "Đỗ Thị Ngoài"), "24", OTHER_COMMUNE),
    }
    cases = {
        "inside_police_referral": Record(await case(here, DEMO_COMMUNE, ["sexual_abuse"], children["inside"].id),
                                         DEMO_PROVINCE, DEMO_COMMUNE,
                                         involved_agencies={"police", "peoples_committee"}),
        "inside_no_referral": Record(await case(here, DEMO_COMMUNE, ["neglect"]), DEMO_PROVINCE, DEMO_COMMUNE,
                                     involved_agencies={"peoples_committee"}),
        "outside": Record(await case(there, OTHER_COMMUNE, ["sexual_abuse"]), "24", OTHER_COMMUNE,
                          involved_agencies={"police", "peoples_committee"}),
        "hotline_own": Record(await case(await api.as_demo("hotline_operator"), DEMO_COMMUNE, ["violence"]),
                              DEMO_PROVINCE, DEMO_COMMUNE, created_by_role="hotline_operator",
                              involved_agencies={"hotline"}),
    }
    return World(children, cases)


def demo_jurisdiction(role: Role) -> tuple[str, str | None, str | None]:
    from gateway.service import demo_jurisdiction as of

    place = of(role)
    return place.level, place.province, place.commune


def within(role: Role, record: Record) -> bool:
    level, province, commune = demo_jurisdiction(role)
    return level == "national" or (level == "province" and province == record.province) or \
        (level == "commune" and commune == record.commune)


def reaches(role: Role, action: Action, record: Record) -> bool:
    from services.common.permissions import ROLE_AGENCY

    match PERMISSIONS[role].get(action):
        case Scope.JURISDICTION:
            return within(role, record)
        case Scope.MATCH:
            return False  # the hotline finds a child only through the match search, never by browsing ids
        case Scope.INVOLVED:
            return within(role, record) and ROLE_AGENCY[role].value in record.involved_agencies
        case Scope.OWN:
            return record.created_by_role == role.value
        case _:
            return False


def expected(role: Role, action: Action, record: Record, success: int) -> int:
    if action not in PERMISSIONS[role]:
        return 403
    return success if reaches(role, action, record) else 404


ROLES = [role for role in Role if role != Role.SERVICE]


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
async def test_reading_children_inside_and_outside(api: Api, world: World, role: Role) -> None:
    headers = await api.as_demo(role.value)
    purpose = {"purpose": f"case:{world.cases['inside_police_referral'].id}"}
    for label, record in world.children.items():
        # Another agency names the case it acts on; the registry asks the cases service whether that case is
        # about this child and involves the agency.
        response = await api.client.get(f"/registry/v1/children/{record.id}", params=purpose, headers=headers)
        want = expected(role, Action.CHILD_READ, record, 200)
        assert response.status_code == want, f"{role.value} reading the {label} child: {response.text}"


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
async def test_changing_children_inside_and_outside(api: Api, world: World, role: Role) -> None:
    headers = await api.as_demo(role.value)
    for label, record in world.children.items():
        # Without If-Match a reachable record answers 428: nothing is written, and reach is still proven.
        response = await api.client.patch(f"/registry/v1/children/{record.id}", json={"school_grade": 3},
                                          headers=headers)
        want = expected(role, Action.CHILD_UPDATE, record, 428)
        assert response.status_code == want, f"{role.value} changing the {label} child: {response.text}"


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
async def test_reading_cases_inside_and_outside(api: Api, world: World, role: Role) -> None:
    headers = await api.as_demo(role.value)
    for label, record in world.cases.items():
        response = await api.client.get(f"/cases/v1/cases/{record.id}", headers=headers)
        want = expected(role, Action.CASE_READ, record, 200)
        assert response.status_code == want, f"{role.value} reading case {label}: {response.text}"


async def test_hotline_matches_a_child_with_minimal_fields(api: Api, world: World) -> None:
    hotline = await api.as_demo("hotline_operator")
    found = await api.client.get("/registry/v1/children", headers=hotline,
                                 params={"q": "do thi trong", "birth_year": 2015})
    assert found.status_code == 200, found.text
    match = next(item for item in found.json()["items"] if item["id"] == world.children["inside"].id)
    assert set(match) <= {"id", "full_name", "birth_year", "province_code", "commune_code"}
    browsing = await api.client.get("/registry/v1/children", headers=hotline, params={"commune_code": DEMO_COMMUNE})
    assert browsing.status_code in (400, 422)


async def test_statistics_stay_inside_the_jurisdiction(api: Api) -> None:
    statistician = await api.as_demo("province_statistician")
    own = await api.client.get("/reporting/v1/values", headers=statistician,
                               params={"indicator": "HT-TE01", "period": "2026", "location": "01"})
    other = await api.client.get("/reporting/v1/values", headers=statistician,
                                 params={"indicator": "HT-TE01", "period": "2026", "location": "24"})
    assert own.status_code == 200, own.text
    assert other.status_code == 404
