"""Helpers for tests that call the running system through the gateway with real tokens."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from scripts.stack import Stack

DEMO_COMMUNE = "00070"  # Phuong Hoan Kiem, Ha Noi (province 01)
DEMO_PROVINCE = "01"
OTHER_COMMUNE = "07210"  # Phuong Bac Giang, Bac Ninh (province 24)
OTHER_PROVINCE = "24"


@dataclass
class Api:
    """The gateway, with a cache of tokens per user."""

    client: httpx.AsyncClient
    stack: Stack
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    async def login(self, username: str, password: str = "demo") -> str:
        """An access token for `username`, kept until two minutes before it expires: a whole suite on a loaded
        machine can outlast a token's 15 minutes."""
        cached = self.tokens.get(username)
        if cached is None or time.monotonic() > cached[1]:
            response = await self.client.post("/auth/token", data={"grant_type": "password", "username": username,
                                                                   "password": password})
            assert response.status_code == 200, response.text
            body = response.json()
            self.tokens[username] = (body["access_token"], time.monotonic() + float(body["expires_in"]) - 120)
        return self.tokens[username][0]

    async def headers(self, username: str, password: str = "demo") -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.login(username, password)}"}

    async def as_demo(self, role: str) -> dict[str, str]:
        return await self.headers(f"demo-{role}")

    async def user(self, role: str, jurisdiction: dict[str, Any], agency: str | None = None) -> dict[str, str]:
        """Create a user through the admin API and return auth headers for it."""
        username = f"u{uuid.uuid4().hex[:10]}"
        password = f"pw-{uuid.uuid4().hex}"
        body: dict[str, Any] = {"username": username, "password": password, "display_name": f"Test {role}",
                                "role": role, "jurisdiction": jurisdiction}
        if agency:
            body["agency"] = agency
        response = await self.client.post("/admin/v1/users", json=body, headers=await self.as_demo("admin"))
        assert response.status_code == 201, response.text
        return await self.headers(username, password)

    async def commune_user(self, role: str, commune: str = DEMO_COMMUNE) -> dict[str, str]:
        return await self.user(role, {"level": "commune", "commune": commune})

    async def province_user(self, role: str, province: str = DEMO_PROVINCE) -> dict[str, str]:
        return await self.user(role, {"level": "province", "province": province})

    async def service_token(self, name: str, scope: str = "") -> str:
        response = await self.client.post(
            "/auth/token", data={"grant_type": "client_credentials", "scope": scope},
            auth=(name, self.stack.client_secrets[name]),
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


async def report_about(api: Api, headers: dict[str, str], commune: str, child_id: str,
                       abuse_forms: tuple[str, ...] = ("neglect",)) -> str:
    """An intake about a registry child, made by `headers`' user: its agency is then involved in the case, and a
    sexual-abuse report involves the police of the province too (their referral)."""
    response = await api.client.post("/cases/v1/cases", headers=headers, json={
        "incident_commune_code": commune, "abuse_forms": list(abuse_forms), "environment": "home",
        "description": "Report made by a test", "child": {"child_id": child_id, "sex": "female"}})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
