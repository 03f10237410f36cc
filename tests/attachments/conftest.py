"""Helpers for the attachments tests: files of each kind made here (photos with a GPS position, a Word document, a
PDF), cases to attach them to, and the running system's object store and database."""

import asyncio
import io
import os
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

from scripts.stack import OBJECT_STORE_SERVICES, ObjectStoreAccess
from services.cases import attachments
from services.cases.settings import CasesSettings
from services.common.db import Database
from services.common.storage import ObjectStore, ObjectStoreSettings
from tests.helpers import DEMO_COMMUNE, Api

GPS = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (21.0, 1.0, 42.5),
       ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (105.0, 51.0, 7.2)}


def exif_with_gps(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Artist] = "Nguyen Van A"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.GPSInfo] = GPS
    return exif.tobytes()


def photo(fmt: str = "JPEG", size: tuple[int, int] = (800, 600), orientation: int = 6) -> bytes:
    """A photo as a phone takes it: with the place it was taken (GPS), the maker, the owner's name."""
    image = Image.effect_noise(size, 40).convert("RGB")
    out = io.BytesIO()
    options: dict[str, Any] = {"exif": exif_with_gps(orientation)}
    if fmt == "JPEG":
        options["comment"] = b"Nha so 12, ngo 5"
    if fmt == "PNG":
        info = PngInfo()
        info.add_text("Author", "Nguyen Van A")
        options["pnginfo"] = info
    image.save(out, format=fmt, **options)
    data = out.getvalue()
    if fmt == "JPEG":
        # What phones append after the image: a second JPEG (MPF) with its own EXIF and GPS.
        second = io.BytesIO()
        Image.new("RGB", (8, 8)).save(second, format="JPEG", exif=exif_with_gps())
        data += second.getvalue()
    return data


def heic_photo() -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return photo("HEIF", size=(320, 240))


def docx(macro: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", "<w:document>Biên bản họp</w:document>")
        archive.writestr("docProps/core.xml", "<cp:coreProperties/>")
        if macro:
            archive.writestr("word/vbaProject.bin", b"\x00" * 100)
    return out.getvalue()


def plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("evil.exe", b"MZ" + os.urandom(100))
    return out.getvalue()


def pdf(size: int = 50_000) -> bytes:
    body = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + os.urandom(max(0, size - 30))
    return body + b"\n%%EOF\n"


def stripped_exif(data: bytes) -> dict[int, Any]:
    image = Image.open(io.BytesIO(data))
    exif = image.getexif()
    return {**dict(exif), **{f"gps{k}": v for k, v in exif.get_ifd(ExifTags.IFD.GPSInfo).items()}}


@dataclass
class Files:
    """The attachments API through the gateway, as a frontend calls it."""

    api: Api

    async def case(self, headers: dict[str, str], commune: str = DEMO_COMMUNE,
                   abuse_forms: tuple[str, ...] = ("violence",)) -> str:
        response = await self.api.client.post("/cases/v1/cases", headers=headers, json={
            "incident_commune_code": commune, "abuse_forms": list(abuse_forms), "environment": "home",
            "description": "Attachments test report", "child": {"first_name": "Lan", "sex": "female"}})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def upload(self, headers: dict[str, str], case_id: str, content: bytes, *, kind: str = "evidence_photo",
                     filename: str = "photo.jpg", **fields: str) -> httpx.Response:
        data = {"kind": kind, **fields}
        if filename:
            data["filename"] = filename
        return await self.api.client.post(f"/cases/v1/cases/{case_id}/attachments", headers=headers, data=data,
                                          files={"file": (filename or "file", content, "application/octet-stream")})

    async def attach(self, headers: dict[str, str], case_id: str, content: bytes | None = None,
                     **fields: str) -> dict[str, Any]:
        response = await self.upload(headers, case_id, content if content is not None else photo(), **fields)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def content(self, headers: dict[str, str], attachment_id: str) -> httpx.Response:
        return await self.api.client.get(f"/cases/v1/attachments/{attachment_id}/content", headers=headers)


@pytest.fixture
def files(api: Api) -> Files:
    return Files(api)


@pytest.fixture(scope="session")
def cases_settings_for_tests(object_store_access: ObjectStoreAccess) -> CasesSettings:
    """The cases service's settings as the test stack gives them (same store, bucket and master keys)."""
    return CasesSettings(object_store_url=object_store_access.url, object_store_bucket=OBJECT_STORE_SERVICES["cases"],
                         object_store_access_key=object_store_access.access_key,
                         object_store_secret_key=object_store_access.secret_key,
                         master_keys_json=object_store_access.master_keys_json)


@pytest.fixture
async def store(cases_settings_for_tests: CasesSettings) -> AsyncIterator[ObjectStore]:
    """The cases service's object store, opened from the test process."""
    running = ObjectStore(cases_settings_for_tests)
    await running.start()
    yield running
    await running.close()


@pytest.fixture
async def cases_database(api: Api) -> AsyncIterator[Database]:
    database = Database(api.stack.database_url("cases"), pool_size=2)
    yield database
    await database.dispose()


async def raw_object(settings: ObjectStoreSettings, key: str) -> bytes:
    """The bytes in the bucket, as whoever got hold of it would see them."""
    from aiobotocore.session import get_session

    async with get_session().create_client("s3", endpoint_url=settings.object_store_url, region_name="us-east-1",
                                           aws_access_key_id=settings.object_store_access_key,
                                           aws_secret_access_key=settings.object_store_secret_key) as client:
        response = await client.get_object(Bucket=settings.object_store_bucket, Key=key)
        async with response["Body"] as body:
            return bytes(await body.read())


async def sweep_now(database: Database, store: ObjectStore, settings: CasesSettings,
                    now: datetime | None = None) -> attachments.SweepReport:
    """One sweeper round from the test; waits while the service's own round holds the lock."""
    deadline = time.monotonic() + 60
    while True:
        report = await attachments.sweep(database, store, settings, now)
        if not report.skipped:
            return report
        assert time.monotonic() < deadline, "the sweeper lock was never free"
        await asyncio.sleep(0.2)
