"""Helpers for the cases tests: a client that takes workflow actions with the ETag it last read."""

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.cases.settings import CasesSettings
from services.common.db import Database
from tests.cases.samples import FORMS
from tests.helpers import Api


@dataclass
class Cases:
    api: Api

    async def create(self, headers: dict[str, str], body: dict[str, Any], key: str | None = None) -> httpx.Response:
        extra = {"Idempotency-Key": key} if key else {}
        return await self.api.client.post("/cases/v1/cases", json=body, headers=headers | extra)

    async def get(self, headers: dict[str, str], case_id: str) -> httpx.Response:
        return await self.api.client.get(f"/cases/v1/cases/{case_id}", headers=headers)

    async def act(self, headers: dict[str, str], case_id: str, action: str, body: dict[str, Any] | None = None,
                  etag: str | None = None) -> httpx.Response:
        if etag is None:
            read = await self.get(headers, case_id)
            assert read.status_code == 200, read.text
            etag = read.headers["etag"]
        return await self.api.client.post(f"/cases/v1/cases/{case_id}/actions/{action}",
                                          json=FORMS[action] if body is None else body,
                                          headers=headers | {"If-Match": etag})

    async def step(self, headers: dict[str, str], case_id: str, action: str, body: dict[str, Any] | None = None,
                   ) -> dict[str, Any]:
        response = await self.act(headers, case_id, action, body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
def cases(api: Api) -> Cases:
    return Cases(api)


@pytest.fixture
async def cases_db(api: Api):  # type: ignore[no-untyped-def]
    """The running cases service's own database, for the deadline check and history checks."""
    database = Database(api.stack.database_url("cases"), pool_size=2)
    yield database
    await database.dispose()


@pytest.fixture
def cases_settings() -> CasesSettings:
    return CasesSettings()
