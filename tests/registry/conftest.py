"""Helpers for the registry tests: each test works in communes of its own, so tests never see each other's data."""

import random
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scripts.stack import Stack
from services.common.locations import communes
from tests.helpers import DEMO_COMMUNE, DEMO_PROVINCE, Api

# Communes of Ha Noi (province 01, where the province-level test users sit), never the demo commune.
_HANOI = sorted(code for code, c in communes().items() if c.province_code == DEMO_PROVINCE and code != DEMO_COMMUNE)
_unused: Iterator[str] = iter(random.Random().sample(_HANOI, len(_HANOI)))


def next_commune() -> str:
    return next(_unused)


def id_number(sex: str, born: str, province_id_code: str = "001") -> str:
    """A personal ID number that agrees with the record (Circular 07/2016): province, century/sex, year."""
    year = int(born[:4])
    digit = (year - 1900) // 100 * 2 + (1 if sex == "female" else 0)
    return f"{province_id_code}{digit}{year % 100:02d}{random.randrange(10**6):06d}"


def unique_name(prefix: str = "Nguyễn Thị") -> str:
    letters = "".join(random.choice("bcdghklmnpqrstvx") for _ in range(7))
    return f"{prefix} {letters.capitalize()}"


def child_body(commune: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"full_name": unique_name(), "sex": "female", "date_of_birth": "2016-05-01",
                            "commune_code": commune}
    body.update(overrides)
    return body


class Registry:
    """The registry through the gateway, as one commune's officer, plus a direct client for the event feed."""

    def __init__(self, api: Api, commune: str, officer: dict[str, str]):
        self.api, self.commune, self.officer = api, commune, officer
        self.client = api.client

    async def create(self, headers: dict[str, str] | None = None, **overrides: Any) -> httpx.Response:
        return await self.client.post("/registry/v1/children", json=child_body(self.commune, **overrides),
                                      headers=headers or self.officer)

    async def created(self, **overrides: Any) -> dict[str, Any]:
        response = await self.create(**overrides)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def get(self, child_id: str, headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
        return await self.client.get(f"/registry/v1/children/{child_id}", params=params,
                                     headers=headers or self.officer)

    async def search(self, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
        return await self.client.get("/registry/v1/children", params=params, headers=headers or self.officer)

    async def events(self) -> list[dict[str, Any]]:
        token = await self.api.service_token("reporting", "events:read")
        found: list[dict[str, Any]] = []
        after = 0
        async with httpx.AsyncClient(base_url=self.api.stack.url("registry")) as direct:
            while True:
                page = (await direct.get("/internal/v1/events", params={"after": after, "limit": 1000},
                                         headers={"Authorization": f"Bearer {token}"})).json()
                found += page["events"]
                after = page["next_cursor"]
                if not page["has_more"]:
                    return found


_users: dict[tuple[str, str], dict[str, str]] = {}


async def province_user(api: Api, role: str, province: str = DEMO_PROVINCE) -> dict[str, str]:
    """A province-level user, made once per run (creating users hashes passwords, which takes time)."""
    if (role, province) not in _users:
        _users[role, province] = await api.province_user(role, province)
    return _users[role, province]


@pytest.fixture
async def registry(api: Api) -> Registry:
    commune = next_commune()
    return Registry(api, commune, await api.commune_user("child_protection_officer", commune))


def new_uuid() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def stack_db(stack: Stack) -> str:
    """The registry's database of the running stack, as an asyncpg DSN."""
    return stack.database_url("registry").replace("postgresql+asyncpg://", "postgresql://")
