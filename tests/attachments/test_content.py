"""Type by content and metadata removal (`services/cases/attachments_content.py`) on files made here, fed in pieces
of every size (a network cuts a stream anywhere): the pixels stay, the location goes."""

import io
import os
from collections.abc import AsyncIterator

import pytest
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

from services.cases.attachments_content import (
    Detected,
    MediaType,
    TypeRefused,
    UnreadableFile,
    cleaned,
    sniff,
)
from services.common.errors import PayloadTooLarge
from tests.attachments.conftest import docx, exif_with_gps, plain_zip

PIECES = [1, 7, 1000, 65_536, 10**7]


async def run(data: bytes, piece: int = 4096, max_bytes: int = 10**8) -> tuple[Detected, bytes]:
    async def source() -> AsyncIterator[bytes]:
        for start in range(0, len(data), piece):
            yield data[start:start + piece]

    detected = Detected()
    out = b"".join([chunk async for chunk in cleaned(source(), detected, max_bytes=max_bytes, max_pixels=10**8)])
    return detected, out


def jpeg(**options: object) -> bytes:
    image = Image.effect_noise((320, 240), 50).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", **options)
    return out.getvalue()


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).tobytes()


def exif_of(data: bytes) -> dict[object, object]:
    exif = Image.open(io.BytesIO(data)).getexif()
    return {**dict(exif), **exif.get_ifd(ExifTags.IFD.GPSInfo)}


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize("variant", ["baseline", "progressive", "restart markers", "no exif", "upright"])
async def test_jpeg_keeps_its_pixels_and_loses_its_metadata(variant: str, piece: int) -> None:
    options: dict[str, object] = {"exif": exif_with_gps(), "comment": b"Nguyen Van A, Hoan Kiem",
                                  "icc_profile": b"\x00" * 200}
    if variant == "progressive":
        options["progressive"] = True
    if variant == "restart markers":
        options["restart_marker_blocks"] = 4
    if variant == "no exif":
        del options["exif"]
    if variant == "upright":
        options["exif"] = exif_with_gps(orientation=1)
    original = jpeg(**options)
    detected, out = await run(original + b"trailing bytes a phone appended", piece)
    assert detected.media_type == MediaType.JPEG
    assert pixels(out) == pixels(original)
    assert exif_of(out) == ({274: 6} if variant not in ("no exif", "upright") else {})
    assert b"Nguyen" not in out and b"PhoneMaker" not in out and b"trailing" not in out
    assert Image.open(io.BytesIO(out)).info.get("icc_profile") == b"\x00" * 200  # colours are kept


@pytest.mark.parametrize("piece", PIECES)
async def test_png_keeps_its_pixels_and_loses_text_and_exif(piece: int) -> None:
    info = PngInfo()
    info.add_text("Author", "Nguyen Van A")
    info.add_itxt("Location", "Hoàn Kiếm, Hà Nội")
    image = Image.effect_noise((200, 100), 50).convert("RGBA")
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, exif=exif_with_gps())
    original = out.getvalue()
    detected, cleaned_bytes = await run(original, piece)
    assert detected.media_type == MediaType.PNG
    assert pixels(cleaned_bytes) == pixels(original)
    assert exif_of(cleaned_bytes) == {}
    assert b"Nguyen" not in cleaned_bytes and b"Location" not in cleaned_bytes


def test_signatures() -> None:
    assert sniff(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic") == MediaType.HEIC
    assert sniff(b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1miafhevc") == MediaType.HEIC
    assert sniff(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf") is None  # AV1: not decodable here
    assert sniff(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00isommp42") is None  # a video
    assert sniff(b"GIF89a") is None and sniff(b"MZ\x90\x00") is None and sniff(b"<svg") is None


async def test_documents_are_checked_and_passed_on_unchanged() -> None:
    document = docx()
    assert await run(document, 100) == (Detected(MediaType.DOCX, len(document)), document)
    for refused in (plain_zip(), docx(macro=True)):
        with pytest.raises(TypeRefused):
            await run(refused)
    pdf = b"%PDF-1.4\n" + os.urandom(1000)
    assert (await run(pdf))[1] == pdf


async def test_broken_empty_and_large_files_are_refused() -> None:
    with pytest.raises(UnreadableFile):
        await run(jpeg()[:2000])
    with pytest.raises(UnreadableFile):
        await run(b"")
    with pytest.raises(UnreadableFile):
        await run(b"\xff\xd8\xff\xe0\x00\x01")  # a segment length below its own size
    with pytest.raises(PayloadTooLarge):
        await run(b"%PDF-1.4\n" + b"x" * 5000, max_bytes=4000)
