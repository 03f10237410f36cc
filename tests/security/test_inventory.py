"""OWASP API9 (improper inventory management) and API5 (function level authorization) at the edge: the routes only
services call (event feeds, metrics) are not reachable through the gateway, whatever spelling of the path is tried,
even with a service account's token that may read the feeds."""

import asyncio

import pytest

from tests.helpers import Api

# Sent as written, without the client library normalising dot segments or percent-encoding.
PATHS = ["/{s}/internal/v1/events", "/{s}/%69nternal/v1/events", "/{s}/Internal/v1/events",
         "/{s}//internal/v1/events", "/{s}/./internal/v1/events", "/{s}/v1/../internal/v1/events",
         "/{s}/v1/%2e%2e/internal/v1/events", "/{s}/v1%2f..%2finternal/v1/events", "/{s}/internal%2fv1/events",
         "/{s}/v1/children/..%2f..%2finternal/v1/events", "/{s}/metrics", "/{s}/%6detrics", "/{s}/./metrics"]


async def raw_get(api: Api, path: str, token: str) -> tuple[int, bytes]:
    host, port = api.stack.url("gateway").removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                 "Connection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("service", ["registry", "cases", "reporting"])
async def test_internal_routes_are_not_reachable_through_the_gateway(api: Api, service: str) -> None:
    tokens = [await api.login("demo-child_protection_officer"), await api.service_token("reporting", "events:read")]
    for token in tokens:
        for template in PATHS:
            path = template.format(s=service)
            status, body = await raw_get(api, path, token)
            assert status == 404, (path, status)
            assert b'"events"' not in body and b"# HELP" not in body, path
