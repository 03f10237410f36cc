"""A producer-shaped event feed on a real local HTTP server, and event builders following docs/events.md.

The server answers `POST /auth/token` (client credentials) and `GET /internal/v1/events?after=&limit=` with the
bearer token it issued, exactly like the registry and cases services seen from a consumer.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

TOKEN = "feed-test-token"


@dataclass
class ProducerFeed:
    """One producer's outbox: events appended in order get sequence numbers 1, 2, 3..."""

    source: str
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    # Serve no event past this position until it is raised (None: all of them): a test can hold a consumer
    # mid-feed deterministically instead of racing it.
    available: int | None = None

    def emit(self, type: str, payload: dict[str, Any], occurred_at: datetime) -> dict[str, Any]:
        event = {"seq": len(self.events) + 1, "id": str(uuid.uuid4()), "type": type, "version": 1,
                 "occurred_at": occurred_at.isoformat(), "agency": "peoples_committee", "source": self.source,
                 "payload": payload}
        self.events.append(event)
        return event

    def page(self, after: int, limit: int) -> dict[str, Any]:
        end = len(self.events) if self.available is None else min(self.available, len(self.events))
        chunk = self.events[after:min(after + limit, end)]
        return {"events": chunk, "next_cursor": chunk[-1]["seq"] if chunk else after,
                "has_more": after + limit < end}


class FeedServer:
    """Serves several feeds at /{source}/internal/v1/events on 127.0.0.1 and a random port."""

    def __init__(self, *feeds: ProducerFeed):
        self.feeds = {feed.source: feed for feed in feeds}
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> "FeedServer":
        app = web.Application()
        app.router.add_post("/auth/token", self._token)
        app.router.add_get("/{source}/internal/v1/events", self._events)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def url(self, source: str) -> str:
        return f"http://127.0.0.1:{self.port}/{source}/internal/v1/events"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth/token"

    async def _token(self, request: web.Request) -> web.Response:
        return web.json_response({"access_token": TOKEN, "token_type": "bearer", "expires_in": 300})

    async def _events(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"title": "Not authenticated"}, status=401)
        feed = self.feeds[request.match_info["source"]]
        feed.requests += 1
        after = int(request.query.get("after", "0"))
        limit = min(int(request.query.get("limit", "500")), 1000)
        return web.json_response(feed.page(after, limit))
