"""Forwarding to the services: streaming, with timeouts, stripped headers, and a quick 503 when one is down."""

import httpx
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from services.common.errors import PayloadTooLarge, ServiceUnavailable
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
BUFFERED_RESPONSE_BYTES = 256_000
STRIPPED_RESPONSE_HEADERS = {
    "connection", "keep-alive", "proxy-authenticate", "te", "trailer", "trailers", "transfer-encoding",
    "upgrade", "content-length", "server", "date",
}


class Proxy:
    def __init__(self, client: httpx.AsyncClient, upstreams: dict[str, str], timeout: float):
        self.client, self.upstreams, self.timeout = client, upstreams, timeout

    async def forward(self, request: Request, service: str, path: str, max_body: int) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise PayloadTooLarge(f"the body may be at most {max_body} bytes")
        body = await _read_limited(request, max_body)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in STRIPPED_REQUEST_HEADERS}
        headers.update(outgoing_headers())
        if request.client is not None:
            headers["x-forwarded-for"] = request.client.host
        headers["x-forwarded-proto"] = request.url.scheme
        upstream = self.client.build_request(
            request.method, f"{self.upstreams[service]}/{path}", params=request.query_params.multi_items(),
            headers=headers, content=body, timeout=httpx.Timeout(self.timeout, connect=1.0),
        )
        try:
            response = await self.client.send(upstream, stream=True)
        except httpx.TimeoutException as exc:
            logger.warning("upstream timeout", extra={"upstream": service})
            raise ServiceUnavailable(f"the {service} service did not answer in time",
                                     headers={"Retry-After": "5"}) from exc
        except httpx.HTTPError as exc:
            logger.warning("upstream unavailable", extra={"upstream": service, "error_type": type(exc).__name__})
            raise ServiceUnavailable(f"the {service} service is unavailable", headers={"Retry-After": "5"}) from exc
        response_headers = {
            k: v for k, v in response.headers.items() if k.lower() not in STRIPPED_RESPONSE_HEADERS
        }
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) <= BUFFERED_RESPONSE_BYTES:
            # Small answers (nearly all JSON) are cheaper to pass on whole than as a stream.
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            return Response(content, status_code=response.status_code, headers=response_headers)
        return StreamingResponse(response.aiter_raw(), status_code=response.status_code, headers=response_headers,
                                 background=BackgroundTask(response.aclose))


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
