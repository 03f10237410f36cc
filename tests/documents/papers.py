"""Reading generated papers back as a person or a program would: their text (pypdf, python-docx), their fonts, and
a picture of page 1 (poppler's pdftoppm)."""

import io
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import docx
from PIL import Image
from pypdf import PdfReader


def normalized(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return normalized(" ".join(page.extract_text() or "" for page in reader.pages))


def docx_text(data: bytes) -> str:
    document = docx.Document(io.BytesIO(data))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            seen: set[int] = set()
            for cell in row.cells:  # a merged cell appears once per column it spans
                if id(cell._tc) not in seen:
                    seen.add(id(cell._tc))
                    parts.append(cell.text)
    return normalized(" ".join(parts))


def unembedded_fonts(data: bytes) -> list[str]:
    """Fonts a PDF uses without carrying their glyphs (a reader would substitute them, and the diacritics with them)."""
    reader = PdfReader(io.BytesIO(data))
    missing = []
    for page in reader.pages:
        fonts = page["/Resources"].get_object().get("/Font", {})
        for font in fonts.get_object().values():
            font = font.get_object()
            descendants = [d.get_object() for d in font.get("/DescendantFonts", [])] or [font]
            for face in descendants:
                descriptor = face.get("/FontDescriptor")
                descriptor = descriptor.get_object() if descriptor is not None else {}
                if not any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")):
                    missing.append(str(font.get("/BaseFont")))
    return missing


def page_one_png(data: bytes, target: Path, dpi: int = 60) -> Path:
    """Page 1 as a PNG, drawn by pdftoppm (poppler-utils; deploy/ci-prereqs.sh installs it)."""
    tool = shutil.which("pdftoppm")
    assert tool, "pdftoppm is missing: run deploy/ci-prereqs.sh (poppler-utils)"
    source = target.with_suffix(".pdf")
    source.write_bytes(data)
    subprocess.run([tool, "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile", str(source),
                    str(target.with_suffix(""))], check=True, timeout=120)
    source.unlink()
    return target


def ink(png: Path) -> float:
    """The share of the page that is not white: a blank page has none."""
    image = Image.open(png).convert("L")
    histogram = image.histogram()
    dark = sum(histogram[:200])
    return dark / (image.width * image.height)


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)
