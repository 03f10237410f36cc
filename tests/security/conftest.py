"""A small world for the attack tests: two communes, each with its own officers, children, a case and an import.

Commune A is the demo commune (00070, Ha Noi), run by the demo users. Commune B is another commune of the same
province, so commune-level isolation is tested where province-level users could reach both. Everything is made
through the gateway with real tokens, once per session; tests that change data make their own records.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from services.common.locations import communes
from tests.cases.samples import FORMS, intake
from tests.helpers import DEMO_COMMUNE, DEMO_PROVINCE, OTHER_PROVINCE, Api, letters
from tests.registry.conftest import id_number

COMMUNE_A = DEMO_COMMUNE
# Another ward of Ha Noi: a commune officer there shares the province of commune A but nothing else.
COMMUNE_B = next(code for code, c in sorted(communes().items()) if c.province_code == DEMO_PROVINCE
                 and code != DEMO_COMMUNE)
SENTINEL_NAME = "Trần Thị Bảo Mật"  # a child's name that must never appear where personal data may not go
SENTINEL_REPORTER = "Lê Văn Người Báo"
MANAGER_NOTE = "Managers only: the mother asked us not to tell the school."
SHARED_NOTE = "Participants: interview on Monday."


def full_child(commune: str, **overrides: Any) -> dict[str, Any]:
    """A child record with every group of fields filled, so a view that leaks a group shows it."""
    body: dict[str, Any] = {
        "full_name": f"{SENTINEL_NAME} {letters()}", "sex": "female", "date_of_birth": "2015-03-04",
        "commune_code": commune, "ethnicity": "01", "personal_id": id_number("female", "2015-03-04"),
        "address": "Số 5 ngõ 12 phố Hàng Bạc", "birth_registered": True, "birth_registered_on": "2015-03-20",
        "birth_certificate_number": "123/2015", "school_name": "Trường Tiểu học Hoàn Kiếm",
        "school_level": "primary", "school_grade": 4, "school_status": "enrolled",
        "health_insurance_number": "TE1010123456789", "health_insurance_valid_from": "2025-01-01",
        "health_insurance_valid_until": "2030-12-31", "disability": True, "disability_level": "mild",
        "guardians": [{"full_name": "Trần Văn Cha", "relationship": "father", "phone": "0912345678"}],
        "special_groups": [{"group": "i", "start": "2025-01-01"}], "at_risk_flags": [],
        "confirm_not_duplicate": True,
    }
    body.update(overrides)
    return body


@dataclass
class Commune:
    """One commune's people and records."""

    code: str
    officer: dict[str, str]
    chairman: dict[str, str]
    child: dict[str, Any] = field(default_factory=dict)
    case: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    import_id: str = ""


@dataclass
class World:
    api: Api
    a: Commune
    b: Commune
    police: dict[str, str]  # police of province 01: involved in commune A's case through its task
    health: dict[str, str]  # health of province 01: oversees the province, has a task in the case
    other_police: dict[str, str]  # police of another province
    hotline: dict[str, str]
    statistician: dict[str, str]

    @property
    def client(self) -> httpx.AsyncClient:
        return self.api.client


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def _act(client: httpx.AsyncClient, headers: dict[str, str], case_id: str, action: str) -> dict[str, Any]:
    current = await client.get(f"/cases/v1/cases/{case_id}", headers=headers)
    return _ok(await client.post(f"/cases/v1/cases/{case_id}/actions/{action}", json=FORMS[action],
                                 headers=headers | {"If-Match": current.headers["etag"]}))


async def _populate(client: httpx.AsyncClient, commune: Commune, hotline: dict[str, str]) -> None:
    """A child, a case about it with an approved plan (police and health tasks), notes of both kinds, an import."""
    commune.child = _ok(await client.post("/registry/v1/children", json=full_child(commune.code),
                                          headers=commune.officer), 201)
    reported = intake(commune.code, reporter={"anonymous": False, "name": SENTINEL_REPORTER,
                                              "phone": "0987654321", "relationship": "neighbour"})
    case = _ok(await client.post("/cases/v1/cases", json=reported, headers=hotline), 201)
    for action in ("begin_assessment", "assess_no_emergency", "complete_specific_assessment", "submit_plan"):
        await _act(client, commune.officer, case["id"], action)
    approved = await _act(client, commune.chairman, case["id"], "approve_plan")
    # Linked to the registry child, so that the agencies of the case may read the child for it.
    commune.case = _ok(await client.post(f"/cases/v1/cases/{case['id']}/link-child", json={
        "child_id": commune.child["id"]}, headers=commune.officer | {"If-Match": f'"{approved["version"]}"'}))
    commune.tasks = {t["agency"]: t for t in commune.case["tasks"] if t["kind"] != "referral"}
    notes = f"/cases/v1/cases/{case['id']}/notes"
    _ok(await client.post(notes, json={"text": MANAGER_NOTE}, headers=commune.officer), 201)
    _ok(await client.post(notes, json={"text": SHARED_NOTE, "visibility": "participants"},
                          headers=commune.officer), 201)
    upload = f"full_name,sex,date_of_birth,commune_code\nNguyễn Văn Nhập,male,2017-01-02,{commune.code}\n"
    job = _ok(await client.post("/registry/v1/imports", files={"file": ("list.csv", upload.encode())},
                                headers=commune.officer), 202)
    commune.import_id = job["id"]


@pytest.fixture(scope="session")
async def world(api: Api) -> World:
    a = Commune(COMMUNE_A, await api.as_demo("child_protection_officer"), await api.as_demo("commune_chairman"))
    b = Commune(COMMUNE_B, await api.commune_user("child_protection_officer", COMMUNE_B),
                await api.commune_user("commune_chairman", COMMUNE_B))
    hotline = await api.as_demo("hotline_operator")
    await asyncio.gather(_populate(api.client, a, hotline), _populate(api.client, b, hotline))
    return World(api=api, a=a, b=b, police=await api.province_user("police_officer", DEMO_PROVINCE),
                 health=await api.province_user("health_officer", DEMO_PROVINCE),
                 other_police=await api.province_user("police_officer", OTHER_PROVINCE), hotline=hotline,
                 statistician=await api.as_demo("province_statistician"))
