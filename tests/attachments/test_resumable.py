"""A phone on a broken connection: an upload session in parts, interrupted and resumed, finished by one call; and
only its creator can continue it."""

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.attachments.conftest import Files, pdf, photo, stripped_exif
from tests.helpers import Api

MIB = 1024 * 1024


async def start(api: Api, headers: dict[str, str], case_id: str, size: int, **fields: Any) -> httpx.Response:
    return await api.client.post(f"/cases/v1/cases/{case_id}/attachment-uploads", headers=headers,
                                 json={"kind": "other", "size": size} | fields)


async def send_part(api: Api, headers: dict[str, str], upload_id: str, number: int, data: bytes) -> httpx.Response:
    return await api.client.put(f"/cases/v1/attachment-uploads/{upload_id}/parts/{number}", headers=headers,
                                content=data)


async def broken_after(data: bytes, sent: int) -> AsyncIterator[bytes]:
    for start in range(0, sent, 256 * 1024):
        yield data[start:min(start + 256 * 1024, sent)]
    raise ConnectionResetError("the network dropped")


async def test_an_upload_interrupted_mid_part_resumes_and_finishes_with_one_call(api: Api, files: Files) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    content = pdf(2 * 5 * MIB + 300_000)
    created = await start(api, officer, case_id, len(content), caption="Giấy chứng nhận thương tích",
                          kind="medical", filename="giay-chung-nhan.pdf", visibility="participants")
    assert created.status_code == 201, created.text
    session = created.json()
    assert (session["part_size"], session["part_count"], session["received_parts"]) == (5 * MIB, 3, [])
    upload_id = session["id"]
    part = {n: content[(n - 1) * 5 * MIB: n * 5 * MIB] for n in (1, 2, 3)}

    assert (await send_part(api, officer, upload_id, 3, part[3])).status_code == 204
    # The connection drops in the middle of part 1.
    with pytest.raises((httpx.TransportError, ConnectionResetError)):
        await api.client.put(f"/cases/v1/attachment-uploads/{upload_id}/parts/1", headers=officer,
                             content=broken_after(part[1], 3 * MIB))
    # After the break, the phone asks what arrived, and finishing too early names what is missing.
    status = (await api.client.get(f"/cases/v1/attachment-uploads/{upload_id}", headers=officer)).json()
    assert status["received_parts"] == [3]
    early = await api.client.post(f"/cases/v1/attachment-uploads/{upload_id}/complete", headers=officer)
    assert early.status_code == 409 and early.json()["missing_parts"] == [1, 2]
    # A part of the wrong size is refused.
    assert (await send_part(api, officer, upload_id, 2, part[2][:-1])).status_code == 400
    for number in (1, 2):
        assert (await send_part(api, officer, upload_id, number, part[number])).status_code == 204
    assert (await send_part(api, officer, upload_id, 4, b"x")).status_code == 404

    done = await api.client.post(f"/cases/v1/attachment-uploads/{upload_id}/complete", headers=officer)
    assert done.status_code == 201, done.text
    attachment = done.json()
    assert (attachment["kind"], attachment["caption"], attachment["visibility"], attachment["size"]) == (
        "medical", "Giấy chứng nhận thương tích", "participants", len(content))
    assert attachment["sha256"] == hashlib.sha256(content).hexdigest()
    assert (await files.content(officer, attachment["id"])).content == content
    # The session is gone once finished.
    again = await api.client.post(f"/cases/v1/attachment-uploads/{upload_id}/complete", headers=officer)
    assert again.status_code == 404


async def test_a_resumable_photo_loses_its_location_too(api: Api, files: Files) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    content = photo()
    session = (await start(api, officer, case_id, len(content), kind="evidence_photo")).json()
    assert session["part_count"] == 1
    assert (await send_part(api, officer, session["id"], 1, content)).status_code == 204
    done = await api.client.post(f"/cases/v1/attachment-uploads/{session['id']}/complete", headers=officer)
    assert done.status_code == 201, done.text
    stored = (await files.content(officer, done.json()["id"])).content
    assert stripped_exif(stored) == {274: 6}


async def test_a_session_is_its_creators_and_can_be_given_up(api: Api, files: Files) -> None:
    officer = await api.as_demo("child_protection_officer")
    colleague = await api.commune_user("child_protection_officer")
    case_id = await files.case(officer)
    session = (await start(api, officer, case_id, 1000)).json()
    assert (await send_part(api, colleague, session["id"], 1, b"%PDF-" + b"x" * 995)).status_code == 404
    assert (await api.client.get(f"/cases/v1/attachment-uploads/{session['id']}", headers=colleague)).status_code \
        == 404
    too_big = await start(api, officer, case_id, 20 * MIB + 1)
    assert too_big.status_code == 413
    signed = await start(api, officer, case_id, 1000, kind="signed_decision")
    assert signed.status_code == 422
    gone = await api.client.delete(f"/cases/v1/attachment-uploads/{session['id']}", headers=officer)
    assert gone.status_code == 204
    assert (await send_part(api, officer, session["id"], 1, b"%PDF-" + b"x" * 995)).status_code == 404


async def test_a_finished_file_is_checked_like_any_other(api: Api, files: Files) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    content = b"#!/bin/sh\nrm -rf /\n" * 100
    session = (await start(api, officer, case_id, len(content))).json()
    assert (await send_part(api, officer, session["id"], 1, content)).status_code == 204
    refused = await api.client.post(f"/cases/v1/attachment-uploads/{session['id']}/complete", headers=officer)
    assert refused.status_code == 415
    listed = await api.client.get(f"/cases/v1/cases/{case_id}/attachments", headers=officer)
    assert listed.json()["items"] == []


async def test_parts_arrive_at_once_from_several_connections(api: Api, files: Files) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    content = pdf(3 * 5 * MIB)
    session = (await start(api, officer, case_id, len(content))).json()
    answers = await asyncio.gather(*(send_part(api, officer, session["id"], n, content[(n - 1) * 5 * MIB:n * 5 * MIB])
                                     for n in (1, 2, 3)))
    assert [a.status_code for a in answers] == [204, 204, 204]
    done = await api.client.post(f"/cases/v1/attachment-uploads/{session['id']}/complete", headers=officer)
    assert done.status_code == 201, done.text
    assert json.loads(done.text)["size"] == len(content)
