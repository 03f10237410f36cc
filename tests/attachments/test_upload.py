"""Uploads through the gateway into the real SeaweedFS: a photo loses its GPS position and keeps every pixel, the
type is told by the content, files beyond the limit are refused with 413, the stored object is ciphertext, and every
upload and download is audited without personal data in events."""

import asyncio
import hashlib
import io
import os
import uuid

import httpx
from PIL import Image
from sqlalchemy import text

from services.cases.settings import CasesSettings
from services.common.db import Database
from tests.attachments.conftest import (
    Files,
    docx,
    heic_photo,
    pdf,
    photo,
    plain_zip,
    raw_object,
    stripped_exif,
)
from tests.helpers import Api

KILOBYTE = 1024


async def test_an_officer_attaches_an_injury_photo_which_loses_its_location_but_not_a_pixel(
        api: Api, files: Files, cases_database: Database, cases_settings_for_tests: CasesSettings) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    original = photo()
    response = await files.upload(officer, case_id, original, caption="Vết bầm ở tay trái", filename="IMG_0042.JPG")
    assert response.status_code == 201, response.text
    attachment = response.json()
    assert response.headers["location"] == f"/cases/v1/attachments/{attachment['id']}"
    assert response.headers["etag"] == '"1"'
    assert attachment["media_type"] == "image/jpeg" and attachment["kind"] == "evidence_photo"
    assert attachment["caption"] == "Vết bầm ở tay trái" and attachment["visibility"] == "managers"

    download = await files.content(officer, attachment["id"])
    assert download.status_code == 200
    stored = download.content
    assert download.headers["content-type"] == "image/jpeg"
    assert download.headers["cache-control"] == "no-store"
    assert "IMG_0042.jpg" in download.headers["content-disposition"]
    assert hashlib.sha256(stored).hexdigest() == attachment["sha256"] and len(stored) == attachment["size"]
    # No position, maker, owner or comment; only the orientation, so the photo still shows upright.
    assert stripped_exif(stored) == {274: 6}
    for secret in (b"PhoneMaker", b"Nguyen Van A", b"Nha so 12"):
        assert secret not in stored
    assert stored.count(b"\xff\xd8") == 1, "the second image phones append (with its own GPS) is gone"
    # The image itself is untouched: the same pixels as the original.
    assert Image.open(io.BytesIO(stored)).tobytes() == Image.open(io.BytesIO(original)).tobytes()

    # In the bucket: ciphertext, not the photo.
    async with cases_database.sessionmaker() as session:
        key = await session.scalar(text("SELECT object_key FROM attachment WHERE id = :id"), {"id": attachment["id"]})
    raw = await raw_object(cases_settings_for_tests, key)
    assert raw.startswith(b"CPE1") and stored[:4096] not in raw and b"\xff\xd8\xff" not in raw[:200]


async def test_other_photos_and_documents_are_told_by_their_content(api: Api, files: Files) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    png = await files.attach(officer, case_id, photo("PNG"), filename="scan.png")
    heic = await files.attach(officer, case_id, heic_photo(), filename="IMG_1.HEIC")
    word = docx()
    document = await files.attach(officer, case_id, word, kind="other", filename="bien-ban.docx")
    scan = await files.attach(officer, case_id, pdf(), kind="signed_decision", form_number="05",
                              filename="quyet-dinh.pdf")
    assert [a["media_type"] for a in (png, heic, document, scan)] == [
        "image/png", "image/heic", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/pdf"]
    for photo_attachment in (png, heic):
        content = (await files.content(officer, photo_attachment["id"])).content
        assert stripped_exif(content) == {}, photo_attachment["media_type"]
        assert b"Nguyen Van A" not in content and b"PhoneMaker" not in content
    assert scan["form_number"] == "05"
    # A document is stored as it came.
    assert (await files.content(officer, document["id"])).content == word


async def test_types_outside_the_list_are_refused_whatever_their_name(api: Api, files: Files) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    for content, name in [(b"MZ\x90\x00" + os.urandom(5000), "photo.jpg"), (plain_zip(), "report.docx"),
                          (docx(macro=True), "report.docx"), (b"<html><script>alert(1)</script>", "a.pdf"),
                          (b"GIF89a" + os.urandom(100), "a.gif")]:
        response = await files.upload(officer, case_id, content, kind="other", filename=name)
        assert response.status_code == 415, (name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    broken = photo()[:3000]
    response = await files.upload(officer, case_id, broken)
    assert response.status_code == 422, response.text
    listed = await api.client.get(f"/cases/v1/cases/{case_id}/attachments", headers=officer)
    assert listed.json()["items"] == []


async def test_fields_are_validated(api: Api, files: Files) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    for fields in ({"kind": "signed_decision"}, {"kind": "evidence_photo", "form_number": "05"},
                   {"kind": "holiday_snap"}, {"kind": "other", "visibility": "everyone"},
                   {"kind": "other", "caption": "x" * 1001}, {"kind": "other", "caption": "a\x00b"},
                   {"kind": "other", "owner": "me"}):
        response = await api.client.post(f"/cases/v1/cases/{case_id}/attachments", headers=officer, data=fields,
                                         files={"file": ("a.pdf", pdf(), "application/pdf")})
        assert response.status_code == 422, (fields, response.text)
        assert "x" * 100 not in response.text
    no_file = await api.client.post(f"/cases/v1/cases/{case_id}/attachments", headers=officer,
                                    data={"kind": "other"}, files={"note": ("n", b"", "text/plain")})
    assert no_file.status_code in (400, 422), no_file.text
    as_json = await api.client.post(f"/cases/v1/cases/{case_id}/attachments", headers=officer,
                                    json={"kind": "other"})
    assert as_json.status_code == 415
    elsewhere = await files.upload(officer, str(uuid.uuid4()), pdf(), kind="other")
    assert elsewhere.status_code == 404


async def test_a_file_beyond_the_limit_is_refused_with_413_and_leaves_nothing(
        api: Api, files: Files, cases_database: Database, cases_settings_for_tests: CasesSettings) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    limit = cases_settings_for_tests.attachment_max_bytes
    # Over the service's file limit, within the gateway's body limit: refused by the cases service.
    response = await files.upload(officer, case_id, pdf(limit + 100 * KILOBYTE), kind="other")
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")

    # Over the gateway's limit, declared: refused before a byte is forwarded; undeclared (chunked): cut off.
    huge = pdf(22 * 1024 * KILOBYTE)
    response = await files.upload(officer, case_id, huge, kind="other")
    assert response.status_code == 413, response.text

    async def chunked() -> object:
        boundary = "cpboundary"
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nother\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n"
               "Content-Type: application/pdf\r\n\r\n").encode()
        for start in range(0, len(huge), 1024 * KILOBYTE):
            yield huge[start:start + 1024 * KILOBYTE]
            await asyncio.sleep(0)
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        response = await api.client.post(
            f"/cases/v1/cases/{case_id}/attachments", content=chunked(),
            headers=officer | {"content-type": "multipart/form-data; boundary=cpboundary"})
        assert response.status_code == 413, response.text
    except httpx.TransportError:
        pass  # the gateway may close the connection while the client still sends: refused all the same
    async with cases_database.sessionmaker() as session:
        count = await session.scalar(text("SELECT count(*) FROM attachment WHERE case_id = :id"), {"id": case_id})
    assert count == 0
