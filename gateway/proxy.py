"""Forwarding to the services: a time budget per service, a circuit breaker, stripped headers, streaming of large
answers, and a quick 503 when a service is down or hangs.

Nothing of a service's own addressing reaches a client: a redirect from a service (a trailing slash, say) would
carry its internal address, so the gateway answers 404 instead; a service's own `/openapi.json`, `/docs` and
`/redoc` (which list internal routes) are not reachable through the gateway, only the combined document is.

The forwarding client is aiohttp's own session: on this machine it carries twice the requests of httpx on the
aiohttp transport and ten times those of httpx's default transport (../shared/performance.md), and the proxy is
on every call.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass

import aiohttp
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from opentelemetry.propagate import inject
from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Receive, Scope, Send
from yarl import URL

from services.common.errors import AppError, NotFound, PayloadTooLarge, ServiceUnavailable, app_error_response
from services.common.http import outgoing_headers
from services.common.logging import get_logger

logger = get_logger("proxy")

# Hop-by-hop headers (RFC 9110 7.6.1) and headers through which a client could pose as someone else.
STRIPPED_REQUEST_HEADERS = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length", "forwarded", "x-forwarded-for",
    "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip", "x-client-ip", "x-user-id",
    "x-user", "x-subject", "x-role", "x-agency", "x-jurisdiction", "x-remote-user", "x-authenticated-user",
    "x-original-url", "x-rewrite-url", "x-request-id", "cookie",
}
STRIPPED_RESPONSE_HEADERS = {
    b"connection", b"keep-alive", b"proxy-authenticate", b"te", b"trailer", b"trailers", b"transfer-encoding",
    b"upgrade", b"content-length", b"server", b"date",
}
BUFFERED_RESPONSE_BYTES = 256_000
# Paths of a service that the gateway never forwards (after the service prefix, compared in lower case).
PRIVATE_FIRST_SEGMENTS = {"internal", "metrics", "openapi.json", "docs", "redoc"}
STREAM_READ_TIMEOUT = 60.0  # between chunks of a long answer already under way (exports)


@dataclass
class CircuitBreaker:
    """Per service: after `threshold` timeouts in a row, calls are refused at once for `open_seconds`; then one call
    goes through, and its success closes the breaker again. A refused connection is not counted: it fails at once
    anyway, and counting it would keep a restarted service unreachable for `open_seconds` more."""

    threshold: int
    open_seconds: float
    failures: int = 0
    open_until: float = 0.0
    probe_started: float | None = None

    def allow(self) -> float:
        """0 when a call may go, else the seconds until the next try."""
        if self.failures < self.threshold:
            return 0.0
        now = time.monotonic()
        if now < self.open_until:
            return self.open_until - now
        if self.probe_started is not None and now < self.probe_started + self.open_seconds:
            return 1.0  # half open, and a probe is under way (a probe that never ends is retried after a while)
        self.probe_started = now
        return 0.0

    def succeeded(self) -> None:
        self.failures, self.probe_started = 0, None

    def failed(self) -> None:
        self.failures += 1
        self.probe_started = None
        if self.failures >= self.threshold:
            self.open_until = time.monotonic() + self.open_seconds


class Proxy:
    def __init__(self, upstreams: dict[str, str], timeouts: dict[str, float], breaker_failures: int = 5,
                 breaker_open_seconds: float = 10.0):
        self.upstreams, self.timeouts = upstreams, timeouts
        self.breakers = {name: CircuitBreaker(breaker_failures, breaker_open_seconds) for name in upstreams}
        self.session: aiohttp.ClientSession | None = None

    def budget(self, service: str, path: str) -> float:
        """The time budget of this route: its longest configured prefix (`service/...`), else its service's."""
        route = path.strip("/")
        matches = [key for key in self.timeouts if route == key or route.startswith(key + "/")]
        return self.timeouts[max(matches, key=len)] if matches else self.timeouts[service]

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=500, limit_per_host=200, keepalive_timeout=30),
            auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def upstream_url(self, request: Request, service: str) -> URL:
        """The service URL for this request, from the raw (still percent-encoded) path, refusing dot segments
        and the internal routes that only services may call."""
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        rest = raw_path.decode("latin-1").split("/", 2)[2] if raw_path.count(b"/") >= 2 else ""
        segments = [s.lower() for s in request.url.path.split("/")[2:]]
        if any(s in (".", "..") for s in segments) or (segments and segments[0] in PRIVATE_FIRST_SEGMENTS):
            raise NotFound("no such route")
        query = request.scope.get("query_string", b"").decode("latin-1")
        return URL(f"{self.upstreams[service]}/{rest}" + (f"?{query}" if query else ""), encoded=True)

    async def forward(self, request: Request, url: URL, service: str, max_body: int, *,
                      streamed: bool = False) -> Response:
        """Forward the request; `streamed` passes the body on as it arrives (file uploads) instead of reading it
        first, so the gateway never holds a whole file."""
        assert self.session is not None, "the proxy is started with the application"
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise PayloadTooLarge(f"the body may be at most {max_body} bytes")
        limit = _StreamLimit(request, max_body)
        body = limit.chunks() if streamed else await _read_limited(request, max_body)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in STRIPPED_REQUEST_HEADERS}
        headers.update(outgoing_headers())
        if request.client is not None:
            headers["x-forwarded-for"] = request.client.host
        headers["x-forwarded-proto"] = request.url.scheme
        inject(headers)  # the trace continues in the service when tracing is on; a no-op otherwise
        breaker = self.breakers[service]
        wait = breaker.allow()
        if wait:
            raise ServiceUnavailable(f"the {service} service is not answering; retry shortly",
                                     headers={"Retry-After": str(int(wait) + 1)})
        # The budget runs until the answer starts; a long answer then streams with its own read timeout. A streamed
        # upload has no budget: on a phone's network the file itself can take minutes to arrive.
        budget = None if streamed else self.budget(service, request.url.path)
        try:
            async with asyncio.timeout(budget):
                upstream = await self.session.request(
                    request.method, url, headers=headers, data=body or None, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=None, connect=min(1.0, budget or 1.0),
                                                  sock_read=STREAM_READ_TIMEOUT),
                )
        except TimeoutError as exc:
            limit.check()
            if not streamed:  # a slow upload is the client's network, not a hung service
                breaker.failed()
            logger.warning("upstream timeout", extra={"upstream": service, "budget_seconds": budget})
            raise ServiceUnavailable(f"the {service} service did not answer in time",
                                     headers={"Retry-After": "5"}) from exc
        except aiohttp.ClientError as exc:
            limit.check()
            logger.warning("upstream unavailable", extra={"upstream": service, "error_type": type(exc).__name__})
            raise ServiceUnavailable(f"the {service} service is unavailable", headers={"Retry-After": "5"}) from exc
        breaker.succeeded()
        if 300 <= upstream.status < 400 and upstream.status != 304:
            # A service's redirect names its internal address (and a Host it was given): never pass one on.
            upstream.release()
            raise NotFound("no such route")
        raw_headers = [(k.lower(), v) for k, v in upstream.raw_headers if k.lower() not in STRIPPED_RESPONSE_HEADERS]
        if upstream.content_length is not None and upstream.content_length <= BUFFERED_RESPONSE_BYTES:
            # Small answers (nearly all JSON) are cheaper to pass on whole than as a stream.
            try:
                content = await upstream.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise ServiceUnavailable(f"the {service} service did not answer in time",
                                         headers={"Retry-After": "5"}) from exc
            finally:
                upstream.release()
            response = Response(content, status_code=upstream.status)
            response.raw_headers = [*raw_headers, (b"content-length", str(len(content)).encode())]
            return response
        streamed = StreamingResponse(upstream.content.iter_chunked(65_536), status_code=upstream.status,
                                     background=BackgroundTask(_release, upstream))
        streamed.raw_headers = raw_headers
        return streamed


Endpoint = Callable[[Request, str, str], Awaitable[Response]]


class DirectForwarding:
    """Pure ASGI: a request under a service's prefix goes straight to the forwarding endpoint, which needs no
    dependency injection, instead of through the router (which tries every gateway route first) and the framework's
    exception and exit-stack layers. Those cost a third of the gateway's CPU on an intake; the answer is the same,
    errors included (`app_error_response`), and the access log and metrics still name the forwarding route.

    `route` is the forwarding route itself: a request it would not match (another method, no path after the prefix)
    goes on to the router, which answers as before."""

    def __init__(self, app: ASGIApp, *, services: Collection[str], methods: Collection[str], endpoint: Endpoint,
                 route: object):
        self.app, self.services, self.methods = app, frozenset(services), frozenset(methods)
        self.endpoint, self.route = endpoint, route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in self.methods:
            service, slash, path = scope["path"][1:].partition("/")
            if slash and service in self.services:
                scope["route"] = self.route
                request = Request(scope, receive)
                try:
                    response = await self.endpoint(request, service, path)
                except AppError as exc:
                    response = app_error_response(exc, scope["path"])
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _release(response: aiohttp.ClientResponse) -> None:
    response.release()
    await asyncio.sleep(0)


class _StreamLimit:
    """The request body passed on as it arrives, cut off past the limit (the upstream sees an incomplete body and
    stores nothing; the client gets 413)."""

    def __init__(self, request: Request, max_body: int):
        self.request, self.max_body = request, max_body
        self.exceeded = False

    async def chunks(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > self.max_body:
                self.exceeded = True
                raise PayloadTooLarge(f"the body may be at most {self.max_body} bytes")
            if chunk:
                yield chunk

    def check(self) -> None:
        if self.exceeded:
            raise PayloadTooLarge(f"the body may be at most {self.max_body} bytes")


async def _read_limited(request: Request, max_body: int) -> bytes:
    """Read the body, refusing it as soon as it passes the limit (a chunked body declares no length)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise PayloadTooLarge(f"the body may be at most {max_body} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
