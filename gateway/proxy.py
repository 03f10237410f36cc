"""Forwarding to the services: timeouts, stripped headers, streaming of large answers, and a quick 503 when a
service is down.

The forwarding client is aiohttp's own session: on this machine it carries twice the requests of httpx on the
aiohttp transport and ten times those of httpx's default transport (../shared/performance.md), and the proxy is
on every call.
"""

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from opentelemetry.propagate import inject
from starlette.background import BackgroundTask
from yarl import URL

from services.common.errors import NotFound, PayloadTooLarge, ServiceUnavailable
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


class Proxy:
    def __init__(self, upstreams: dict[str, str], timeout: float):
        self.upstreams, self.timeout = upstreams, timeout
        self.session: aiohttp.ClientSession | None = None

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
        if any(s in (".", "..") for s in segments) or (segments and segments[0] in ("internal", "metrics")):
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
        try:
            upstream = await self.session.request(
                request.method, url, headers=headers, data=body or None, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None, connect=1.0, sock_read=self.timeout),
            )
        except TimeoutError as exc:
            limit.check()
            logger.warning("upstream timeout", extra={"upstream": service})
            raise ServiceUnavailable(f"the {service} service did not answer in time",
                                     headers={"Retry-After": "5"}) from exc
        except aiohttp.ClientError as exc:
            limit.check()
            logger.warning("upstream unavailable", extra={"upstream": service, "error_type": type(exc).__name__})
            raise ServiceUnavailable(f"the {service} service is unavailable", headers={"Retry-After": "5"}) from exc
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
