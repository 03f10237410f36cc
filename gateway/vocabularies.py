"""`GET /v1/vocabularies` at the gateway: every service's code lists with their Vietnamese and English labels, in
one public, cacheable answer, so that a frontend loads every label with one call and revalidates it with
`If-None-Match`.

Each service serves its own lists (`services/common/vocabulary.py`); the gateway asks each for them at most once a
minute, revalidating with the service's ETag, and answers from what it holds. A service that serves no lists answers
404 and adds none. While a service that was never reached stays unreachable the answer is 503, not a partial list
a client would cache as complete; once reached, its last lists are kept through its outages.
"""

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, Request, Response

from gateway.routes import limit_address
from services.common.errors import ServiceUnavailable, problem_responses
from services.common.logging import get_logger
from services.common.vocabulary import NOT_MODIFIED, Vocabularies, body_etag, vocabularies_response

logger = get_logger("vocabularies")
REFRESH_SECONDS = 60.0
RETRY_SECONDS = 5.0
FETCH_TIMEOUT_SECONDS = 3.0


@dataclass
class ServiceLists:
    vocabularies: list[dict[str, Any]]
    etag: str | None
    fetched_at: float


class MergedVocabularies:
    def __init__(self) -> None:
        self.lists: dict[str, ServiceLists] = {}
        self.retry_at: dict[str, float] = {}
        self.body, self.etag = b"", ""
        self.lock = asyncio.Lock()

    async def current(self, client: httpx.AsyncClient, upstreams: dict[str, str]) -> tuple[bytes, str]:
        async with self.lock:
            now = time.monotonic()
            due = [service for service in upstreams
                   if now >= self.retry_at.get(service, 0.0)
                   and (service not in self.lists or now - self.lists[service].fetched_at >= REFRESH_SECONDS)]
            if due:
                await asyncio.gather(*(self._refresh(client, service, upstreams[service]) for service in due))
                self._merge(upstreams)
            missing = [service for service in upstreams if service not in self.lists]
            if missing:
                raise ServiceUnavailable(f"the {', '.join(missing)} service(s) did not give their code lists",
                                         headers={"Retry-After": str(int(RETRY_SECONDS))})
            return self.body, self.etag

    async def _refresh(self, client: httpx.AsyncClient, service: str, url: str) -> None:
        held = self.lists.get(service)
        headers = {"If-None-Match": held.etag} if held and held.etag else {}
        try:
            response = await client.get(f"{url}/v1/vocabularies", headers=headers, timeout=FETCH_TIMEOUT_SECONDS)
            if response.status_code == 304 and held is not None:
                held.fetched_at = time.monotonic()
            elif response.status_code == 404:  # this service declares no code lists
                self.lists[service] = ServiceLists([], None, time.monotonic())
            else:
                response.raise_for_status()
                self.lists[service] = ServiceLists(response.json()["vocabularies"], response.headers.get("etag"),
                                                   time.monotonic())
            self.retry_at.pop(service, None)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            logger.warning("service vocabularies unavailable", extra={"upstream": service,
                                                                      "error_type": type(exc).__name__})
            self.retry_at[service] = time.monotonic() + RETRY_SECONDS

    def _merge(self, upstreams: dict[str, str]) -> None:
        merged: dict[str, dict[str, Any]] = {}
        for service in upstreams:
            for vocabulary in self.lists.get(service, ServiceLists([], None, 0.0)).vocabularies:
                name = vocabulary.get("name")
                if name in merged and merged[name] != vocabulary:
                    # Each list has one owner (docs/clients.md); the contract tests fail on a clash like this.
                    logger.warning("vocabulary declared twice", extra={"vocabulary": name, "upstream": service})
                merged.setdefault(name, vocabulary)
        self.body = orjson.dumps({"vocabularies": list(merged.values())})
        self.etag = body_etag(self.body)


def vocabularies_router() -> APIRouter:
    router = APIRouter(tags=["vocabularies"])
    merged = MergedVocabularies()

    @router.get("/v1/vocabularies", response_model=Vocabularies,
                responses={**NOT_MODIFIED, **problem_responses(429, 503)},
                summary="Every code list with its Vietnamese and English labels; public, cache with If-None-Match")
    async def list_vocabularies(request: Request) -> Response:
        limit_address(request)
        state = request.app.state
        body, current = await merged.current(state.http, state.settings.upstreams)
        return vocabularies_response(request, body, current)

    return router
