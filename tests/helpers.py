"""Helpers for tests that call the running system through the gateway with real tokens."""

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from scripts.stack import Stack

DEMO_COMMUNE = "00070"  # Phuong Hoan Kiem, Ha Noi (province 01)
DEMO_PROVINCE = "01"
OTHER_COMMUNE = "07210"  # Phuong Bac Giang, Bac Ninh (province 24)
OTHER_PROVINCE = "24"
# Names hold letters only (a registry name with a digit is refused: "H0a" would pose as "Hoa"); random suffixes of
# test names use letters for digits.
DIGITS_AS_LETTERS = str.maketrans("0123456789", "ghklmnpqrs")


def letters(count: int = 6) -> str:
    """A random suffix for a person's name in a test: letters only."""
    return uuid.uuid4().hex[:count].translate(DIGITS_AS_LETTERS)


# A token this close to its expiry is replaced: on a loaded machine the suite outlasts a 15-minute access token.
RENEW_BEFORE_SECONDS = 120.0


@dataclass
class Issued:
    username: str
    password: str
    expires_at: float  # time.monotonic()


@dataclass
class Api:
    """The gateway, with a cache of tokens per user, renewed before they expire."""

    client: httpx.AsyncClient
    stack: Stack
    tokens: dict[str, str] = field(default_factory=dict)
    issued: dict[str, Issued] = field(default_factory=dict)  # token -> whose it is and until when

    def __post_init__(self) -> None:
        # Headers a test keeps (fixtures that last a module or the session) carry a token that may expire meanwhile:
        # requests through this client get the same user's current token instead.
        self.client.auth = RenewingAuth(self)

    async def login(self, username: str, password: str = "demo") -> str:
        token = self.tokens.get(username)
        if token is None or self.expiring(token):
            response = await self.client.post("/auth/token", data={"grant_type": "password", "username": username,
                                                                   "password": password})
            assert response.status_code == 200, response.text
            body = response.json()
            token = str(body["access_token"])
            self.tokens[username] = token
            self.issued[token] = Issued(username, password, time.monotonic() + float(body["expires_in"]))
        return token

    def expiring(self, token: str) -> bool:
        issued = self.issued.get(token)
        return issued is not None and time.monotonic() > issued.expires_at - RENEW_BEFORE_SECONDS

    async def current(self, token: str) -> str:
        """The token to send in place of `token`: a new one of the same user when it is about to expire."""
        issued = self.issued.get(token)
        if issued is None or not self.expiring(token):
            return token
        return await self.login(issued.username, issued.password)

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


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0, interval: float = 0.1) -> None:
    """Wait until `check()` holds; `timeout` only bounds a failure (a loaded machine makes things slow, not wrong)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


class RenewingAuth(httpx.Auth):
    """Sends the current token of the user whose (possibly expired) token a request carries."""

    def __init__(self, api: Api):
        self.api = api

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            fresh = await self.api.current(token)
            if fresh != token:
                request.headers["Authorization"] = f"Bearer {fresh}"
        yield request
