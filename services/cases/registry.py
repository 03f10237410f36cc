"""Calls to the registry with this service's own token (OAuth2 client credentials through the gateway).

Only linking a case to a child, and naming which of its guardians is the alleged perpetrator, need the registry;
the intake never does, so a registry outage never loses a report.
"""

import uuid
from typing import Any

import httpx

from services.cases.schemas import ChildRegistration
from services.common.clients import ServiceTokenProvider
from services.common.errors import Conflict, NotFound, ServiceUnavailable, UnprocessableContent
from services.common.http import outgoing_headers
from services.common.logging import get_logger

logger = get_logger("cases.registry")
SCOPES = ["registry:service_read", "child:create"]


class RegistryClient:
    def __init__(self, client: httpx.AsyncClient, tokens: ServiceTokenProvider, base_url: str, timeout: float):
        self.client, self.tokens, self.base_url, self.timeout = client, tokens, base_url.rstrip("/"), timeout

    async def existing_child(self, child_id: uuid.UUID, case_id: uuid.UUID, authorization: str) -> uuid.UUID:
        """The child, read with the caller's own token (`authorization`): a commune links only a child it may read,
        so linking cannot be a way into another commune's records (trust finding 8). The registry audits the read
        with its purpose: this case."""
        response = await self._call("GET", f"/v1/children/{child_id}", params={"purpose": f"case:{case_id}"},
                                    authorization=authorization)
        if response.status_code == 404:
            raise NotFound("no such child in the registry")
        return self._child_id(response, expected=200)

    async def guardians(self, child_id: uuid.UUID, case_id: uuid.UUID) -> list[dict[str, Any]]:
        """The guardians of a linked child (the registry audits the read with its purpose: this case)."""
        response = await self._call("GET", f"/v1/children/{child_id}", params={"purpose": f"case:{case_id}"})
        if response.status_code == 404:
            raise NotFound("the linked child is no longer in the registry")
        if response.status_code != 200:
            logger.warning("registry refused", extra={"status": response.status_code})
            raise ServiceUnavailable("the registry could not answer; try again later", headers={"Retry-After": "30"})
        guardians = response.json().get("guardians")
        return [g for g in guardians if isinstance(g, dict)] if isinstance(guardians, list) else []

    async def register_child(self, registration: ChildRegistration) -> uuid.UUID:
        response = await self._call("POST", "/v1/children", json=registration.model_dump(mode="json"))
        if response.status_code == 409:
            body = response.json()
            raise Conflict("the registry holds a similar child; link it by id",
                           candidates=body.get("candidates", []))
        if response.status_code == 422:
            raise UnprocessableContent("the registry refused the child's details")
        return self._child_id(response, expected=201)

    async def _call(self, method: str, path: str, json: dict[str, Any] | None = None,
                    params: dict[str, str] | None = None, authorization: str | None = None) -> httpx.Response:
        try:
            if authorization is None:
                # The kit renews the service token once on a 401 (expired, or the signing key rotated).
                return await self.tokens.request(method, f"{self.base_url}{path}", json=json, params=params,
                                                 timeout=self.timeout)
            # The caller's own token: the registry decides what this person may read (no renewal: a 401 is theirs).
            return await self.client.request(method, f"{self.base_url}{path}", json=json, params=params,
                                             headers={"Authorization": authorization, **outgoing_headers()},
                                             timeout=self.timeout)
        except httpx.HTTPError as exc:
            logger.warning("registry unavailable", extra={"error_type": type(exc).__name__})
            raise ServiceUnavailable("the registry is unavailable; try again later",
                                     headers={"Retry-After": "30"}) from exc

    @staticmethod
    def _child_id(response: httpx.Response, expected: int) -> uuid.UUID:
        if response.status_code != expected:
            logger.warning("registry refused", extra={"status": response.status_code})
            raise ServiceUnavailable("the registry could not answer; try again later",
                                     headers={"Retry-After": "30"})
        try:
            return uuid.UUID(str(response.json()["id"]))
        except (KeyError, ValueError) as exc:
            raise ServiceUnavailable("the registry answered in an unexpected shape") from exc
