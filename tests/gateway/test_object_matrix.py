"""Object-level authorization: every demo role reads and changes records inside and outside its jurisdiction
and agency, and each answer is what the permission table and the record's place say: 403 when the role may not
take the action at all, 404 when the record is outside its reach, success otherwise. A successful read returns
exactly the fields the role may see (docs/registry.md, "Who reaches what"; for a case: the reporter only to the
commune that runs it and to the agency that took the report, the tasks of the caller's own agency only, the actions
the workflow table allows the role)."""

from dataclasses import dataclass, field
from typing import Any

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
            "description": "Matrix test report", "child": {"first_name": "Lan", "sex": "female"}})
        assert response.status_code == 201, response.text
        if child_id is not None:  # the commune that leads the case links the child (an intake only hints at it)
            linked = await api.client.post(f"/cases/v1/cases/{response.json()['id']}/link-child",
                                           json={"child_id": child_id},
                                           headers=headers | {"If-Match": response.headers["etag"]})
            assert linked.status_code == 200, linked.text
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


# What a reader of a child record sees, written out from docs/registry.md (not read from the service's own tables).
CHILD_CORE = {"id", "revision", "full_name", "sex", "date_of_birth", "date_of_birth_estimated", "age", "province_code",
              "commune_code", "status", "status_date"}
CHILD_GROUPS = {
    "identity": {"ethnicity", "nationality", "personal_id", "address"},
    "birth_registration": {"birth_registered", "birth_registered_on", "birth_registration_commune_code",
                           "birth_certificate_number"},
    "guardians": {"guardians"},
    "school": {"school_name", "school_level", "school_grade", "school_status"},
    "health": {"health_insurance_number", "health_insurance_valid_from", "health_insurance_valid_until",
               "health_insurance_entitled", "disability", "disability_level"},
    "protection": {"special_groups", "at_risk", "at_risk_flags"},
    "record": {"merged_ids", "created_at", "updated_at"},
}
# An agency working on a case sees the core and what its task needs (need-to-know, Decree 56 Art. 33).
AGENCY_GROUPS = {"health": ("health",), "education": ("school",), "justice": ("identity", "birth_registration"),
                 "police": ("identity", "guardians")}


def child_fields(role: Role) -> set[str]:
    from services.common.permissions import ROLE_AGENCY

    if PERMISSIONS[role].get(Action.CHILD_READ) == Scope.JURISDICTION:
        return CHILD_CORE.union(*CHILD_GROUPS.values())
    return CHILD_CORE.union(*(CHILD_GROUPS[g] for g in AGENCY_GROUPS.get(ROLE_AGENCY[role].value, ())))


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
        case Scope.JURISDICTION | Scope.SUMMARY:
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
        if want == 200:
            assert set(response.json()) == child_fields(role), f"{role.value} reading the {label} child"


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
        if want == 200:
            assert_case_view(role, record, response.json(), label)


def assert_case_view(role: Role, record: Record, case: dict[str, Any], label: str) -> None:
    from services.cases import workflow
    from services.common.permissions import ROLE_AGENCY

    agency = ROLE_AGENCY[role].value
    runs_it = agency == "peoples_committee" and PERMISSIONS[role].get(Action.CASE_READ) == Scope.JURISDICTION
    oversees = PERMISSIONS[role].get(Action.CASE_READ) == Scope.SUMMARY
    reported_it = agency == ROLE_AGENCY[Role(record.created_by_role)].value and not oversees
    what = f"{role.value} reading case {label}"
    assert (case["reporter"] is not None) == (runs_it or reported_it), what
    task_agencies = {task["agency"] for task in case["tasks"]}
    if runs_it:
        assert task_agencies == record.involved_agencies - {"peoples_committee", "hotline"}, what
    else:
        assert task_agencies <= ({agency} if not oversees else set()), what
    # Oversight reads summaries: no child's name or place, no free text (Law on Children Art. 21).
    assert (case["description"] is None) == oversees and (case["child"]["first_name"] is None) == oversees, what
    if not runs_it:
        assert case["plan"] is None, what
    position = workflow.Position(workflow.State(case["state"]),
                                 frozenset(workflow.Deadline(d["name"]) for d in case["deadlines"] if d["running"]))
    allowed = [s.action for s in workflow.allowed_steps(position) if s.permission in PERMISSIONS[role]]
    assert case["allowed_actions"] == allowed, what


async def test_hotline_matches_a_child_with_minimal_fields(api: Api, world: World) -> None:
    hotline = await api.as_demo("hotline_operator")
    found = await api.client.get("/registry/v1/children", headers=hotline,
                                 params={"first_name": "trong", "birth_year": 2015, "commune_code": DEMO_COMMUNE})
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
