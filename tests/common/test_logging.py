"""Logs are JSON, carry the request id, and never contain personal data from paths, queries, bodies or errors."""

import io
import json
import logging
from typing import Any
from urllib.parse import quote

import httpx

from tests.common.sample_app import NAME, PHONE, build_sample_app


def entries(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


async def test_no_personal_data_reaches_the_logs(json_logs: io.StringIO) -> None:
    transport = httpx.ASGITransport(app=build_sample_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = [
            await client.post("/people", params={"q": NAME, "phone": PHONE},
                              json={"full_name": NAME, "phone": PHONE, "age": 9}),
            await client.post("/people", params={"q": NAME}, json={"full_name": NAME, "phone": PHONE, "age": 99}),
            await client.get(f"/people/{PHONE}/explode", params={"q": NAME}),
            await client.get(f"/nowhere/{PHONE}", params={"q": NAME}),
        ]
    assert [response.status_code for response in responses] == [201, 422, 500, 404]

    text = json_logs.getvalue()
    for secret in (NAME, PHONE, quote(NAME), "Bích", "Nguy", "cannot read the record"):
        assert secret not in text, f"{secret!r} leaked into the logs"

    logged = entries(json_logs)
    access = [entry for entry in logged if entry["logger"] == "cp.access"]
    assert [(entry["method"], entry["route"], entry["status"]) for entry in access] == [
        ("POST", "/people", 201), ("POST", "/people", 422), ("GET", "/people/{phone}/explode", 500),
        ("GET", "unmatched", 404)]
    assert [entry["request_id"] for entry in access] == [response.headers["x-request-id"] for response in responses]

    errors = [entry for entry in logged if entry["level"] == "error"]
    assert len(errors) == 1
    # The error line can be found from the request id the client got, and says what failed, not with what data.
    assert errors[0]["request_id"] == responses[2].headers["x-request-id"]
    assert errors[0]["error_type"] == "RuntimeError"


async def test_console_logs_are_readable_without_personal_data_or_routine_polls(console_logs: io.StringIO) -> None:
    app = build_sample_app()
    app.add_api_route("/healthz", lambda: {"status": "ok"})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/people", params={"q": NAME}, json={"full_name": NAME, "phone": PHONE,
                                                                         "age": 9})).status_code == 201
        assert (await client.get("/healthz")).status_code == 200
    lines = console_logs.getvalue().splitlines()
    assert any(line.endswith("POST /people -> 201 " + line.rsplit(" ", 2)[-2] + " ms") for line in lines), lines
    assert not any("/healthz" in line for line in lines), "a routine probe filled the console"
    text = console_logs.getvalue()
    for secret in (NAME, PHONE, quote(NAME)):
        assert secret not in text
    assert not any(line.lstrip().startswith("{") for line in lines)


def test_uvicorn_messages_have_their_placeholders_filled(console_logs: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242,
                                            extra={"color_message": "Started server process [%d]"})
    line = console_logs.getvalue().strip()
    assert line.endswith("Started server process [4242]"), line
