"""The serif fonts every generated paper embeds: Liberation Serif, metric-compatible with Times New Roman (the face
Decree 30/2020/NĐ-CP asks of administrative documents), with every Vietnamese diacritic (README.md, OFL.txt)."""

from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

FONT_DIR = Path(__file__).parent
SERIF, SERIF_BOLD, SERIF_ITALIC = "LiberationSerif", "LiberationSerif-Bold", "LiberationSerif-Italic"
# The name a word processor looks for: Liberation Serif has its metrics, so a DOCX lays out as its PDF does.
WORD_FONT = "Times New Roman"


def register_serif() -> str:
    """Register the family with reportlab once (bold italic falls back to bold: no such face is shipped)."""
    if SERIF not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(SERIF, str(FONT_DIR / "LiberationSerif-Regular.ttf")))
        pdfmetrics.registerFont(TTFont(SERIF_BOLD, str(FONT_DIR / "LiberationSerif-Bold.ttf")))
        pdfmetrics.registerFont(TTFont(SERIF_ITALIC, str(FONT_DIR / "LiberationSerif-Italic.ttf")))
        pdfmetrics.registerFontFamily(SERIF, normal=SERIF, bold=SERIF_BOLD, italic=SERIF_ITALIC,
                                      boldItalic=SERIF_BOLD)
    return SERIF
