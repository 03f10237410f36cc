"""The registry's one question to the cases service: does the case or task an agency names involve it and this
child? Another agency sees a child record only then (need-to-know, Decree 56 Art. 33)."""

import uuid

import httpx

from services.common.clients import ServiceTokenProvider
from services.common.errors import ServiceUnavailable
from services.common.http import outgoing_headers


class CasesClient:
    def __init__(self, client: httpx.AsyncClient, base_url: str, tokens: ServiceTokenProvider):
        self.client, self.base_url, self.tokens = client, base_url.rstrip("/"), tokens

    async def involves(self, purpose: str, agency: str, child_id: uuid.UUID) -> bool:
        params = {"purpose": purpose, "agency": agency, "child_id": str(child_id)}
        for _ in range(2):
            try:
                response = await self.client.get(
                    f"{self.base_url}/internal/v1/involvement", params=params, timeout=5.0,
                    headers={"Authorization": f"Bearer {await self.tokens.token()}", **outgoing_headers()},
                )
            except httpx.HTTPError as exc:
                raise ServiceUnavailable("the cases service is unavailable; try again shortly",
                                         headers={"Retry-After": "5"}) from exc
            if response.status_code == 401:
                self.tokens.invalidate()  # a key rotation or an expired token: fetch a new one once
                continue
            if response.status_code != 200:
                raise ServiceUnavailable("the cases service could not confirm the purpose",
                                         headers={"Retry-After": "5"})
            return bool(response.json()["involved"])
        raise ServiceUnavailable("the cases service refused this service's token")
