"""Calls between services with a service account (OAuth2 client credentials against the gateway)."""

import asyncio
import time
from typing import Any

import httpx

from services.common.errors import ServiceUnavailable
from services.common.http import outgoing_headers


class ServiceTokenProvider:
    """Gets and caches this service's access token; renews it a minute before it expires."""

    def __init__(self, client: httpx.AsyncClient, token_url: str, client_id: str, client_secret: str,
                 scopes: list[str]):
        self.client, self.token_url = client, token_url
        self.client_id, self.client_secret, self.scopes = client_id, client_secret, scopes
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if self._token and time.monotonic() < self._expires_at - 60:
            return self._token
        async with self._lock:
            if self._token and time.monotonic() < self._expires_at - 60:
                return self._token
            try:
                response = await self.client.post(
                    self.token_url,
                    data={"grant_type": "client_credentials", "scope": " ".join(self.scopes)},
                    auth=(self.client_id, self.client_secret),
                    headers=outgoing_headers(),
                    timeout=5.0,
                )
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise ServiceUnavailable("the identity service is unavailable") from exc
            body: dict[str, Any] = response.json()
            self._token = str(body["access_token"])
            self._expires_at = time.monotonic() + float(body.get("expires_in", 300))
            return self._token

    def invalidate(self) -> None:
        self._token = None

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token()}", **outgoing_headers()}

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Call another service with this service's token; on a 401 (the token expired, or the signing key rotated)
        fetch a new token once and retry. Network errors are the caller's to turn into a 503."""
        response = await self.client.request(method, url, headers=await self.headers(), **kwargs)
        if response.status_code == 401:
            self.invalidate()
            response = await self.client.request(method, url, headers=await self.headers(), **kwargs)
        return response
