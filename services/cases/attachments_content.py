"""What a file is, told by its bytes, and what it loses before it is stored.

The type comes from the content's signature against an allow-list, never from the file name or the declared media
type: JPEG, PNG, HEIC photos from phones, PDF scans, and Word documents (DOCX, checked down to its index: a ZIP
archive that is not a Word document, or one that carries macros, is refused).

Photos lose their metadata before storage: EXIF (the GPS position where the photo was taken above all, the camera,
the time, the owner's name), XMP, IPTC, comments, embedded thumbnails and the extra images phones append (MPF). A
photo may show where a child lives; its location must not travel with it.
- JPEG and PNG are cleaned at the level of their segments and chunks as they stream: the compressed image data is
  copied byte for byte (evidence keeps every pixel exactly as taken), memory stays at one segment (at most 64 KiB).
  A JPEG keeps one EXIF tag, its orientation, so that it still shows upright.
- HEIC keeps its metadata in item boxes with offsets into the file, so it is decoded and encoded again without them,
  with pillow-heif (Pillow's HEIF plugin), in a worker thread, one at a time per process.
"""

import asyncio
import io
import struct
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from enum import StrEnum

from PIL import Image, UnidentifiedImageError

from services.common.errors import AppError, PayloadTooLarge


class MediaType(StrEnum):
    JPEG = "image/jpeg"
    PNG = "image/png"
    HEIC = "image/heic"
    PDF = "application/pdf"
    DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


EXTENSIONS = {MediaType.JPEG: "jpg", MediaType.PNG: "png", MediaType.HEIC: "heic", MediaType.PDF: "pdf",
              MediaType.DOCX: "docx"}
HEVC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
SNIFF_BYTES = 64


class TypeRefused(AppError):
    status, title, type_suffix = 415, "File type not accepted", "file-type-refused"


class UnreadableFile(AppError):
    status, title, type_suffix = 422, "The file cannot be read", "file-unreadable"


def sniff(head: bytes) -> MediaType | None:
    """The allowed type whose signature `head` (the first bytes) carries, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return MediaType.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return MediaType.PNG
    if head.startswith(b"%PDF-"):
        return MediaType.PDF
    if head.startswith(b"PK\x03\x04"):
        return MediaType.DOCX  # a ZIP archive; `DocxCheck` confirms from its index at the end
    if len(head) >= 16 and head[4:8] == b"ftyp":
        box_end = min(struct.unpack(">I", head[:4])[0], len(head))
        brands = {head[8:12]} | {head[i:i + 4] for i in range(16, box_end - 3, 4)}
        if brands & HEVC_BRANDS:
            return MediaType.HEIC
    return None


class Cleaner:
    """Bytes in, the bytes to store out. `finish` raises when the file turned out not to be what it claimed."""

    def feed(self, piece: bytes) -> list[bytes]:
        return [piece]

    async def finish(self) -> list[bytes]:
        return []


# ---------------------------------------------------------------------------------------------------- JPEG

SOI, EOI, SOS, APP0, APP1, APP2, APP14, COM = 0xD8, 0xD9, 0xDA, 0xE0, 0xE1, 0xE2, 0xEE, 0xFE
STANDALONE = {0x01, *range(0xD0, 0xD8)}
ORIENTATION = 0x0112


def _orientation_only(exif_payload: bytes) -> bytes | None:
    """An APP1 segment holding only the orientation of `exif_payload`, or None when it is upright or unreadable."""
    try:
        exif = Image.Exif()
        exif.load(exif_payload)
        orientation = int(exif.get(ORIENTATION, 1))
    except Exception:  # a malformed EXIF block: Pillow raises many kinds; it is dropped either way
        return None
    if orientation == 1 or not 1 <= orientation <= 8:
        return None
    minimal = Image.Exif()
    minimal[ORIENTATION] = orientation
    data = minimal.tobytes()
    return b"\xff" + bytes([APP1]) + struct.pack(">H", len(data) + 2) + data


def _keep_segment(marker: int, payload: bytes) -> bool:
    if marker == APP0:
        return payload.startswith(b"JFIF\x00")  # JFXX and others carry thumbnails
    if marker == APP2:
        return payload.startswith(b"ICC_PROFILE\x00")  # colours; MPF (more images) and FPXR are dropped
    if marker == APP14:
        return True  # Adobe: the colour transform, needed to decode
    # EXIF, XMP, IPTC, maker notes and comments go; tables, frame and scan headers, restart intervals stay.
    return not (0xE0 <= marker <= 0xEF or marker == COM)


class JpegCleaner(Cleaner):
    """Walks the markers: metadata segments are dropped, everything the decoder needs is copied, and the file ends
    at the end of the first image (what phones append after it, MPF images with their own EXIF, is dropped)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.state = "start"
        self.marker = 0
        self.orientation_written = False

    def feed(self, piece: bytes) -> list[bytes]:
        self.buffer += piece
        out: list[bytes] = []
        while self._step(out):
            pass
        return out

    def _step(self, out: list[bytes]) -> bool:
        """Advance through the buffer; False when more bytes are needed."""
        buffer = self.buffer
        if self.state == "done":
            buffer.clear()
            return False
        if self.state == "start":
            if len(buffer) < 2:
                return False
            if buffer[:2] != b"\xff\xd8":
                raise UnreadableFile("not a JPEG image")
            out.append(b"\xff\xd8")
            del buffer[:2]
            self.state = "marker"
            return True
        if self.state == "marker":
            if not buffer:
                return False
            if buffer[0] != 0xFF:
                raise UnreadableFile("the JPEG image is damaged")
            index = 1
            while index < len(buffer) and buffer[index] == 0xFF:  # fill bytes
                index += 1
            if index == len(buffer):
                del buffer[:index - 1]
                return False
            marker = buffer[index]
            del buffer[:index + 1]
            if marker == EOI:
                out.append(b"\xff\xd9")
                self.state = "done"
            elif marker in STANDALONE:
                out.append(b"\xff" + bytes([marker]))
            elif marker in (SOI, 0x00):
                raise UnreadableFile("the JPEG image is damaged")
            else:
                self.marker, self.state = marker, "segment"
            return True
        if self.state == "segment":
            if len(buffer) < 2:
                return False
            length = struct.unpack(">H", buffer[:2])[0]
            if length < 2:
                raise UnreadableFile("the JPEG image is damaged")
            if len(buffer) < length:
                return False
            segment, payload = bytes(buffer[:length]), bytes(buffer[2:length])
            del buffer[:length]
            if self.marker == APP1 and payload.startswith(b"Exif\x00\x00") and not self.orientation_written:
                minimal = _orientation_only(payload)
                if minimal is not None:
                    out.append(minimal)
                    self.orientation_written = True
            elif _keep_segment(self.marker, payload):
                out.append(b"\xff" + bytes([self.marker]) + segment)
            self.state = "entropy" if self.marker == SOS else "marker"
            return True
        # Entropy-coded data: copied until a marker that is not a stuffed byte (FF 00) or a restart (FF D0-D7).
        position = 0
        while True:
            found = buffer.find(b"\xff", position)
            if found == -1:
                out.append(bytes(buffer))
                buffer.clear()
                return False
            if found == len(buffer) - 1:
                out.append(bytes(buffer[:found]))
                del buffer[:found]
                return False
            following = buffer[found + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:
                position = found + 2
                continue
            out.append(bytes(buffer[:found]))
            del buffer[:found]
            self.state = "marker"
            return True

    async def finish(self) -> list[bytes]:
        if self.state != "done":
            raise UnreadableFile("the JPEG image is incomplete")
        return []


# ---------------------------------------------------------------------------------------------------- PNG

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DROPPED = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME", b"dSIG"}


class PngCleaner(Cleaner):
    """Copies the image chunks and drops the text, EXIF and time chunks; ends at IEND."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.state = "signature"
        self.remaining = 0  # bytes of the current chunk still to copy or skip
        self.copying = False
        self.last_chunk = False

    def feed(self, piece: bytes) -> list[bytes]:
        self.buffer += piece
        out: list[bytes] = []
        buffer = self.buffer
        while True:
            if self.state == "done":
                buffer.clear()
                return out
            if self.state == "signature":
                if len(buffer) < 8:
                    return out
                if buffer[:8] != PNG_SIGNATURE:
                    raise UnreadableFile("not a PNG image")
                out.append(PNG_SIGNATURE)
                del buffer[:8]
                self.state = "header"
            elif self.state == "header":
                if len(buffer) < 8:
                    return out
                length, kind = struct.unpack(">I4s", buffer[:8])
                if length > 2**31 - 1 or not kind.isalpha():
                    raise UnreadableFile("the PNG image is damaged")
                self.copying = kind not in PNG_DROPPED
                self.last_chunk = kind == b"IEND"
                if self.copying:
                    out.append(bytes(buffer[:8]))
                del buffer[:8]
                self.remaining, self.state = length + 4, "body"  # data and CRC
            else:
                if not buffer:
                    return out
                taken = bytes(buffer[:self.remaining])
                del buffer[:len(taken)]
                self.remaining -= len(taken)
                if self.copying:
                    out.append(taken)
                if self.remaining == 0:
                    self.state = "done" if self.last_chunk else "header"

    async def finish(self) -> list[bytes]:
        if self.state != "done":
            raise UnreadableFile("the PNG image is incomplete")
        return []


# ---------------------------------------------------------------------------------------------------- HEIC

_heic_turn = asyncio.Semaphore(1)  # decoding holds the pixels: one at a time per process


def _reencode_heic(data: bytes, max_pixels: int) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()  # Pillow's HEIF plugin, for `save` (idempotent)
    try:
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        width, height = heif.size
        if width * height > max_pixels:
            raise UnreadableFile(f"the photo has more than {max_pixels} pixels")
        image = heif.to_pillow()  # the rotation and mirroring of the container are applied
        out = io.BytesIO()
        # Only the pixels and the colour profile are written: no EXIF, no XMP, no thumbnails, no depth images.
        image.save(out, format="HEIF", quality=92, exif=None, xmp=None,
                   icc_profile=image.info.get("icc_profile"))
    except UnreadableFile:
        raise
    except (ValueError, OSError, RuntimeError, UnidentifiedImageError) as exc:
        raise UnreadableFile("the HEIC photo cannot be read") from exc
    return out.getvalue()


class HeicCleaner(Cleaner):
    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self.parts: list[bytes] = []

    def feed(self, piece: bytes) -> list[bytes]:
        self.parts.append(piece)
        return []

    async def finish(self) -> list[bytes]:
        data = b"".join(self.parts)
        self.parts.clear()
        async with _heic_turn:
            return [await asyncio.to_thread(_reencode_heic, data, self.max_pixels)]


# ---------------------------------------------------------------------------------------------------- PDF, DOCX


class DocxCheck(Cleaner):
    """Passes the bytes on and keeps the end of the archive, where its index (central directory) lists the parts:
    a Word document has `[Content_Types].xml` and `word/document.xml`, and no macros (`word/vbaProject.bin`)."""

    TAIL = 512 * 1024

    def __init__(self) -> None:
        self.tail = bytearray()
        self.size = 0

    def feed(self, piece: bytes) -> list[bytes]:
        self.size += len(piece)
        self.tail += piece
        if len(self.tail) > 2 * self.TAIL:
            del self.tail[:-self.TAIL]
        return [piece]

    async def finish(self) -> list[bytes]:
        names = _zip_names(bytes(self.tail), self.size)
        if "[Content_Types].xml" not in names or "word/document.xml" not in names:
            raise TypeRefused("a ZIP archive that is not a Word document (DOCX)")
        if any(name.lower().endswith("vbaproject.bin") for name in names):
            raise TypeRefused("Word documents with macros are not accepted")
        return []


def _zip_names(tail: bytes, size: int) -> set[str]:
    end = tail.rfind(b"PK\x05\x06")
    if end == -1 or len(tail) - end < 22:
        raise TypeRefused("a damaged ZIP archive")
    entries, directory_size, directory_offset = struct.unpack("<HII", tail[end + 10:end + 20])
    start = directory_offset - (size - len(tail))
    if directory_offset == 0xFFFFFFFF or start < 0 or start + directory_size > end:
        raise TypeRefused("a ZIP archive whose index cannot be read")
    names, position = set(), start
    for _ in range(entries):
        if tail[position:position + 4] != b"PK\x01\x02":
            raise TypeRefused("a damaged ZIP archive")
        name_length, extra_length, comment_length = struct.unpack("<HHH", tail[position + 28:position + 34])
        names.add(tail[position + 46:position + 46 + name_length].decode("utf-8", "replace"))
        position += 46 + name_length + extra_length + comment_length
    return names


# ---------------------------------------------------------------------------------------------------- the pipeline


@dataclass
class Detected:
    """Filled in as the stream is read: what the file is."""

    media_type: MediaType | None = None
    received: int = 0


def cleaner_for(media_type: MediaType, max_pixels: int) -> Cleaner:
    match media_type:
        case MediaType.JPEG:
            return JpegCleaner()
        case MediaType.PNG:
            return PngCleaner()
        case MediaType.HEIC:
            return HeicCleaner(max_pixels)
        case MediaType.DOCX:
            return DocxCheck()
        case _:
            return Cleaner()


async def cleaned(chunks: AsyncIterable[bytes], detected: Detected, *, max_bytes: int,
                  max_pixels: int) -> AsyncIterator[bytes]:
    """The bytes to store: the type told from the first bytes (415 outside the allow-list), at most `max_bytes`
    received (413), metadata removed from photos. Raising at any point leaves nothing stored (`ObjectStore.put`)."""
    head = bytearray()
    source = aiter(chunks)
    async for piece in source:
        head += piece
        if len(head) >= SNIFF_BYTES:
            break
    if not head:
        raise UnreadableFile("the file is empty")
    media_type = sniff(bytes(head[:SNIFF_BYTES]))
    if media_type is None:
        raise TypeRefused("accepted files are JPEG, PNG and HEIC photos, PDF and Word (DOCX) documents")
    detected.media_type = media_type
    cleaner = cleaner_for(media_type, max_pixels)

    def take(piece: bytes) -> list[bytes]:
        detected.received += len(piece)
        if detected.received > max_bytes:
            raise PayloadTooLarge(f"a file may be at most {max_bytes} bytes")
        return cleaner.feed(piece)

    for out in take(bytes(head)):
        yield out
    async for piece in source:
        for out in take(piece):
            yield out
    for out in await cleaner.finish():
        yield out
