"""The registry's one question to the cases service: does the case or task named by `purpose` make this caller's
reading of this child need-to-know? (Decree 56 Art. 33; contract in docs/registry.md.)

- another agency: the case (or task) is about the child and has a task or referral assigned to that agency;
- a commune's People's Committee (`commune=`): the case is about the child and that commune leads it now (Law on
  Children Art. 52(2)).
"""

import uuid

import httpx

from services.common.clients import ServiceTokenProvider
from services.common.errors import ServiceUnavailable
from services.common.logging import get_logger

logger = get_logger("registry.cases")


class CasesClient:
    def __init__(self, base_url: str, tokens: ServiceTokenProvider, timeout: float = 5.0):
        self.base_url, self.tokens, self.timeout = base_url.rstrip("/"), tokens, timeout

    async def involves(self, purpose: str, agency: str, child_id: uuid.UUID, *, commune: str | None = None) -> bool:
        params = {"purpose": purpose, "agency": agency, "child_id": str(child_id)}
        if commune is not None:
            params["commune"] = commune
        try:
            response = await self.tokens.request("GET", f"{self.base_url}/internal/v1/involvement", params=params,
                                                 timeout=self.timeout)
        except httpx.HTTPError as exc:
            logger.warning("cases service unavailable", extra={"error_type": type(exc).__name__})
            raise ServiceUnavailable("the cases service is unavailable; try again shortly",
                                     headers={"Retry-After": "5"}) from exc
        if response.status_code != 200:
            logger.warning("cases service refused", extra={"status": response.status_code})
            raise ServiceUnavailable("the cases service could not confirm the purpose", headers={"Retry-After": "5"})
        try:
            return response.json()["involved"] is True
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceUnavailable("the cases service answered in an unexpected shape") from exc
