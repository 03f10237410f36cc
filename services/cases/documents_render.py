"""Papers from templates: one Jinja2 template per form renders a small HTML subset, which is laid out twice, as a PDF
(reportlab, fonts embedded) and as a DOCX (python-docx), so both carry the same words.

The templates (services/cases/templates/forms/, docs/forms/README.md) hold all the wording; this module knows only
the layout of a Vietnamese administrative document (Decree 30/2020/NĐ-CP, Appendix I: A4, margins 20-25 mm top and
bottom, 30-35 mm left, 15-20 mm right, a Times-compatible serif at 13-14 pt, page numbers from page 2).

The subset: `<h1>` (title), `<h2>` (heading), `<p align= size= indent= space=>`, `<b> <i> <u> <br>` inside text,
`<hr>` (the short rule under a header), `<table widths="40,60" grid="1">` with `<tr>` and `<td align=>`/`<th>`.
Anything else is refused, so a template's mistake fails its test instead of vanishing from the paper.

Both outputs are reproducible: the same input gives the same bytes (PDF `invariant`, fixed DOCX core properties and
zip entry times), which is what lets a stored paper be checked against its SHA-256.

Blocking (lays out a document): call `render_pdf` and `render_docx` from a worker thread.
"""

import io
import json
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache, partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar, Literal

import jinja2
from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY, TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.platypus import Flowable, HRFlowable, LongTable, SimpleDocTemplate, Table, TableStyle
from reportlab.platypus import Paragraph as PdfParagraph
from reportlab.platypus.doctemplate import LayoutError

from services.common.fonts import SERIF, WORD_FONT, register_serif

TEMPLATES = Path(__file__).parent / "templates" / "forms"
Align = Literal["left", "center", "right", "justify"]
BODY_PT, TITLE_PT = 13.0, 14.0
MARGINS_MM = {"top": 20, "bottom": 20, "left": 30, "right": 15}
BLANK = "…………………"


class TemplateError(ValueError):
    """A template uses markup outside the subset."""


# ---------------------------------------------------------------------------------------------------- the model


@dataclass
class Run:
    text: str  # "\n" is a line break
    bold: bool = False
    italic: bool = False
    underline: bool = False


@dataclass
class Para:
    runs: list[Run] = field(default_factory=list)
    align: Align = "left"
    size: float = BODY_PT
    indent_mm: float = 0.0  # first line
    space_pt: float = 3.0  # before
    rule: bool = False  # a short centred rule instead of text

    @property
    def text(self) -> str:
        return "".join(r.text for r in self.runs)


@dataclass
class Cell:
    paras: list[Para] = field(default_factory=list)


@dataclass
class Grid:
    widths: list[float]
    rows: list[list[Cell]] = field(default_factory=list)
    grid: bool = False
    size: float = BODY_PT  # of the text in its cells


Block = Para | Grid


@dataclass
class Paper:
    """A laid-out document: its title (PDF and DOCX metadata) and its blocks."""

    title: str
    blocks: list[Block]
    dated: date  # the metadata date of the DOCX (the paper's own date)


# ---------------------------------------------------------------------------------------------------- the subset


class _Parser(HTMLParser):
    INLINE: ClassVar[dict[str, str]] = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline"}
    BLOCK_STYLE: ClassVar[Mapping[str, dict[str, Any]]] = {
        "h1": {"align": "center", "size": TITLE_PT, "space_pt": 12.0, "bold": True},
        "h2": {"align": "left", "size": BODY_PT, "space_pt": 8.0, "bold": True},
        "p": {},
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.marks: list[str] = []
        self.para: Para | None = None
        self.block_bold = False
        self.table: Grid | None = None
        self.cell: Cell | None = None
        self.cell_align: Align | None = None
        self.cell_bold = False

    def _target(self) -> list[Para] | list[Block]:
        return self.cell.paras if self.cell is not None else self.blocks

    def _open_para(self, attrs: dict[str, str | None], defaults: Mapping[str, Any]) -> None:
        self._close_para()
        align = attrs.get("align") or defaults.get("align") or self.cell_align or "left"
        if align not in ("left", "center", "right", "justify"):
            raise TemplateError(f"align={align!r}")
        cell_size = self.table.size if self.table is not None and self.cell is not None else BODY_PT
        self.para = Para(align=align,  # type: ignore[arg-type]
                         size=float(attrs.get("size") or defaults.get("size", cell_size)),
                         indent_mm=float(attrs.get("indent") or 0), space_pt=float(attrs.get("space") or
                                                                                  defaults.get("space_pt", 3.0)))
        self.block_bold = bool(defaults.get("bold")) or self.cell_bold

    def _close_para(self) -> None:
        if self.para is not None:
            _trim(self.para)
            self._target().append(self.para)  # type: ignore[arg-type]
        self.para, self.block_bold = None, False

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = dict(attrs_list)
        if tag in self.INLINE:
            self.marks.append(self.INLINE[tag])
        elif tag == "br":
            self._ensure_para().runs.append(Run("\n"))
        elif tag in self.BLOCK_STYLE:
            self._open_para(attrs, self.BLOCK_STYLE[tag])
        elif tag == "hr":
            self._close_para()
            self._target().append(Para(rule=True, align="center", space_pt=0))  # type: ignore[arg-type]
        elif tag == "table":
            self._close_para()
            if self.table is not None:
                raise TemplateError("nested tables")
            widths = [float(w) for w in (attrs.get("widths") or "").split(",") if w.strip()]
            self.table = Grid(widths=widths, grid=attrs.get("grid") == "1", size=float(attrs.get("size") or BODY_PT))
        elif tag == "tr":
            self._need_table(tag).rows.append([])
        elif tag in ("td", "th"):
            table = self._need_table(tag)
            if not table.rows:
                raise TemplateError(f"<{tag}> outside <tr>")
            self.cell = Cell()
            self.cell_align = attrs.get("align") or ("center" if tag == "th" else "left")  # type: ignore[assignment]
            self.cell_bold = tag == "th"
            table.rows[-1].append(self.cell)
        else:
            raise TemplateError(f"<{tag}> is not part of the papers' markup")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.INLINE:
            if self.marks:
                self.marks.pop()
        elif tag in self.BLOCK_STYLE:
            self._close_para()
        elif tag in ("td", "th"):
            self._close_para()
            self.cell, self.cell_align, self.cell_bold = None, None, False
        elif tag == "table":
            table = self._need_table(tag)
            columns = max((len(r) for r in table.rows), default=0)
            if any(len(r) != columns for r in table.rows):
                raise TemplateError("every row of a table needs the same number of cells")
            if not table.widths:
                table.widths = [100 / columns] * columns if columns else []
            if len(table.widths) != columns:
                raise TemplateError("widths= must give one width per column")
            self.blocks.append(table)
            self.table = None

    def _need_table(self, tag: str) -> Grid:
        if self.table is None:
            raise TemplateError(f"<{tag}> outside <table>")
        return self.table

    def _ensure_para(self) -> Para:
        if self.para is None:
            if self.table is not None and self.cell is None:
                raise TemplateError("text inside a table must be in a cell")
            self._open_para({}, {})
        assert self.para is not None
        return self.para

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if data[:1].isspace():
            text = " " + text
        if data[-1:].isspace() and text.strip():
            text += " "
        if not text.strip():
            if self.para is None or not text:
                return
            text = " "
        para = self._ensure_para()
        marks = set(self.marks)
        para.runs.append(Run(text, bold=self.block_bold or "bold" in marks, italic="italic" in marks,
                             underline="underline" in marks))

    def close(self) -> None:
        super().close()
        self._close_para()
        if self.table is not None:
            raise TemplateError("a table is not closed")


def _trim(para: Para) -> None:
    """Collapse the spaces of HTML: none at the start or end of a line, never two in a row."""
    runs: list[Run] = []
    for run in para.runs:
        if runs and (runs[-1].text.endswith((" ", "\n")) or runs[-1].text == "") and run.text.startswith(" "):
            run.text = run.text.lstrip(" ")
        if run.text == "\n" and runs:
            runs[-1].text = runs[-1].text.rstrip(" ")
        if run.text:
            runs.append(run)
    while runs and runs[0].text.startswith(" "):
        runs[0].text = runs[0].text.lstrip(" ")
        if not runs[0].text:
            runs.pop(0)
    while runs and runs[-1].text.endswith(" "):
        runs[-1].text = runs[-1].text.rstrip(" ")
        if not runs[-1].text:
            runs.pop()
    para.runs = runs


@cache
def _covered() -> frozenset[int]:
    register_serif()
    font = pdfmetrics.getFont(SERIF)
    return frozenset(font.face.charToGlyph)


MISSING_GLYPH = "□"


def printable(text: str) -> str:
    """The text with every character the serif lacks (an emoji, a rare symbol) shown as a box, in both formats:
    the PDF would drop it silently, and a paper must not say less than its DOCX."""
    covered = _covered()
    return "".join(c if ord(c) in covered or c in "\n\t" else MISSING_GLYPH for c in text)


def parse(markup: str) -> list[Block]:
    parser = _Parser()
    parser.feed(printable(unicodedata.normalize("NFC", markup)))
    parser.close()
    return parser.blocks


# ---------------------------------------------------------------------------------------------------- templates


class Blanks:
    """The value of every field of a blank paper: prints as a dotted line, has any attribute, and iterates as three
    empty rows, so one template prints both the filled paper and the empty form."""

    def __getattr__(self, name: str) -> "Blanks":
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __getitem__(self, key: object) -> "Blanks":
        return self

    def __iter__(self) -> Iterator["Blanks"]:
        return iter((self, self, self))

    def __len__(self) -> int:
        return 3

    def __str__(self) -> str:
        return BLANK

    def __bool__(self) -> bool:
        return False


@cache
def labels(override: str | None = None) -> dict[str, Any]:
    """The Vietnamese words for the codes of the cases service (templates/forms/labels.json); a province's own
    labels.json, if it has one, replaces the lists it names."""
    loaded: dict[str, Any] = json.loads((TEMPLATES / "labels.json").read_text(encoding="utf-8"))
    own = Path(override) / "labels.json" if override else None
    if own is not None and own.is_file():
        loaded |= json.loads(own.read_text(encoding="utf-8"))
    return loaded


def _label(words: Mapping[str, Any], code: Any, vocabulary: str) -> str:
    if isinstance(code, Blanks) or code is None or (isinstance(code, str | dict) and not code):
        return BLANK
    return str(words.get(vocabulary, {}).get(str(code), str(code)))


def _labels(words: Mapping[str, Any], codes: Any, vocabulary: str, empty: str = "không") -> str:
    if isinstance(codes, Blanks):
        return BLANK
    found = [_label(words, code, vocabulary) for code in codes or ()]
    return "; ".join(found) if found else empty


def _value(value: Any, empty: str = BLANK) -> Any:
    """A field's value, or `empty` when it was not given."""
    if isinstance(value, Blanks) or value is None or (isinstance(value, str | list | dict) and not value):
        return empty
    return value


def _date_vi(value: Any) -> str:
    if isinstance(value, str) and value:
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        return "…/…/……"
    return f"{value.day:02d}/{value.month:02d}/{value.year}"


def _money(value: Any) -> str:
    """Đồng, with dots between thousands as Vietnamese papers write them."""
    if isinstance(value, bool) or not isinstance(value, int):
        return BLANK
    return f"{value:,}".replace(",", ".")


def _yes_no(value: Any) -> str:
    if isinstance(value, bool):
        return "Có" if value else "Không"
    return "Có □   Không □"


@cache
def environment(override: str | None = None) -> jinja2.Environment:
    """The templates: a province's own directory first (CASES_FORMS_TEMPLATE_DIR), then the shipped ones."""
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(TEMPLATES))]
    if override:
        loaders.insert(0, jinja2.FileSystemLoader(override))
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    words = labels(override)
    env.filters |= {"label": partial(_label, words), "labels": partial(_labels, words), "v": _value,
                    "date_vi": _date_vi, "yes_no": _yes_no, "money": _money}
    return env


def compose(template: str, context: Mapping[str, Any], *, title: str, dated: date,
            override: str | None = None) -> Paper:
    """Fill a form's template and lay it out (the same blocks go to the PDF and the DOCX)."""
    markup = environment(override).get_template(template).render(**context)
    return Paper(title=title, blocks=parse(markup), dated=dated)


# ---------------------------------------------------------------------------------------------------- PDF


def _pdf_markup(para: Para) -> str:
    parts = []
    for run in para.runs:
        if run.text == "\n":
            parts.append("<br/>")
            continue
        text = run.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        for flag, tag in ((run.underline, "u"), (run.italic, "i"), (run.bold, "b")):
            if flag:
                text = f"<{tag}>{text}</{tag}>"
        parts.append(text)
    return "".join(parts)


PDF_ALIGN = {"left": TA_LEFT, "center": TA_CENTER, "right": TA_RIGHT, "justify": TA_JUSTIFY}


def _pdf_para(para: Para, width: float) -> Flowable:
    if para.rule:
        return HRFlowable(width=width * 0.35, thickness=0.6, spaceBefore=1, spaceAfter=3, hAlign="CENTER")
    style = ParagraphStyle("p", fontName=SERIF, fontSize=para.size, leading=para.size * 1.25,
                           alignment=PDF_ALIGN[para.align], firstLineIndent=para.indent_mm * mm,
                           spaceBefore=para.space_pt)
    return PdfParagraph(_pdf_markup(para) or "&nbsp;", style)


def _pdf_blocks(blocks: list[Block], width: float) -> list[Flowable]:
    flowables: list[Flowable] = []
    for block in blocks:
        if isinstance(block, Para):
            flowables.append(_pdf_para(block, width))
            continue
        widths = [width * w / sum(block.widths) for w in block.widths]
        data = [[[_pdf_para(p, widths[i]) for p in cell.paras] or "" for i, cell in enumerate(row)]
                for row in block.rows]
        commands: list[tuple[Any, ...]] = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("FONTNAME", (0, 0), (-1, -1), SERIF),
                                           ("ALIGN", (0, 0), (-1, -1), "CENTER")]
        if block.grid:
            commands += [("GRID", (0, 0), (-1, -1), 0.5, (0, 0, 0)), ("TOPPADDING", (0, 0), (-1, -1), 1),
                         ("BOTTOMPADDING", (0, 0), (-1, -1), 4)]
        else:
            commands += [("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                         ("TOPPADDING", (0, 0), (-1, -1), 0), ("BOTTOMPADDING", (0, 0), (-1, -1), 0)]
        # LongTable: a plan of a hundred tasks splits over pages in linear time (Table re-measures every row).
        kind = LongTable if block.grid else Table
        table = kind(data, colWidths=widths, style=TableStyle(commands), repeatRows=1 if block.grid else 0,
                     spaceBefore=4, spaceAfter=2)
        flowables.append(table)
    return flowables


def _page_number(canvas: Any, document: Any) -> None:
    """Decree 30: page numbers from the second page, centred in the top margin."""
    canvas.saveState()
    canvas.setFont(SERIF, BODY_PT)
    canvas.drawCentredString(A4[0] / 2 + (MARGINS_MM["left"] - MARGINS_MM["right"]) * mm / 2,
                             A4[1] - 12 * mm, str(document.page))
    canvas.restoreState()


def render_pdf(paper: Paper) -> bytes:
    register_serif()
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer, pagesize=A4, title=paper.title, author="", subject="", creator="", producer="",
        leftMargin=MARGINS_MM["left"] * mm, rightMargin=MARGINS_MM["right"] * mm,
        topMargin=MARGINS_MM["top"] * mm, bottomMargin=MARGINS_MM["bottom"] * mm,
        invariant=1,  # fixed dates and ids: the same paper gives the same bytes
        initialFontName=SERIF, initialFontSize=BODY_PT,  # no unembedded Helvetica as the page's first font
    )
    try:
        document.build(_pdf_blocks(paper.blocks, document.width), onLaterPages=_page_number)
    except LayoutError as exc:  # a cell longer than a page: never a half-made paper
        raise TemplateError(f"the paper cannot be laid out: {exc}") from exc
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------- DOCX


DOCX_ALIGN = {"left": WD_ALIGN_PARAGRAPH.LEFT, "center": WD_ALIGN_PARAGRAPH.CENTER,
              "right": WD_ALIGN_PARAGRAPH.RIGHT, "justify": WD_ALIGN_PARAGRAPH.JUSTIFY}
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _docx_rule(paragraph: Any) -> None:
    """A short centred rule: a bottom border on a paragraph narrowed from both sides."""
    paragraph.paragraph_format.left_indent = Mm(22)
    paragraph.paragraph_format.right_indent = Mm(22)
    borders = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for key, value in (("w:val", "single"), ("w:sz", "6"), ("w:space", "1"), ("w:color", "000000")):
        bottom.set(qn(key), value)
    borders.append(bottom)
    paragraph._p.get_or_add_pPr().append(borders)
    paragraph.paragraph_format.space_after = Pt(4)


def _docx_para(paragraph: Any, para: Para) -> None:
    fmt = paragraph.paragraph_format
    fmt.space_before, fmt.space_after, fmt.line_spacing = Pt(para.space_pt), Pt(0), 1.1
    if para.rule:
        _docx_rule(paragraph)
        return
    paragraph.alignment = DOCX_ALIGN[para.align]
    if para.indent_mm:
        fmt.first_line_indent = Mm(para.indent_mm)
    for run in para.runs:
        if run.text == "\n":
            paragraph.add_run().add_break()
            continue
        added = paragraph.add_run(run.text)
        added.bold, added.italic, added.underline = run.bold or None, run.italic or None, run.underline or None
        added.font.size = Pt(para.size)


def _docx_cell_borders(table: Any) -> None:
    """Borders on every cell of a grid table (the default template's table style draws none)."""
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        element = OxmlElement(f"w:{edge}")
        for key, value in (("w:val", "single"), ("w:sz", "4"), ("w:space", "0"), ("w:color", "000000")):
            element.set(qn(key), value)
        borders.append(element)
    table._tbl.tblPr.append(borders)


def _stable_zip(data: bytes) -> bytes:
    """The same entries with fixed times, in the same order: python-docx stamps them with the clock."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            fixed.compress_type, fixed.external_attr = zipfile.ZIP_DEFLATED, 0o600 << 16
            target.writestr(fixed, source.read(info.filename))
    return out.getvalue()


def render_docx(paper: Paper) -> bytes:
    document = Document()
    section = document.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(MARGINS_MM["top"]), Mm(MARGINS_MM["bottom"])
    section.left_margin, section.right_margin = Mm(MARGINS_MM["left"]), Mm(MARGINS_MM["right"])
    # Decree 30: page numbers from the second page, centred at the top (a PAGE field in the header).
    section.different_first_page_header_footer = True
    number = section.header.paragraphs[0]
    number.alignment = WD_ALIGN_PARAGRAPH.CENTER
    field_element = OxmlElement("w:fldSimple")
    field_element.set(qn("w:instr"), "PAGE")
    number._p.append(field_element)
    normal = document.styles["Normal"]
    normal.font.name, normal.font.size = WORD_FONT, Pt(BODY_PT)
    normal.element.rPr.rFonts.set(qn("w:eastAsia"), WORD_FONT)
    width_mm = 210 - MARGINS_MM["left"] - MARGINS_MM["right"]
    body = document.element.body
    for paragraph in list(document.paragraphs):  # the default template's empty paragraph
        body.remove(paragraph._p)
    for block in paper.blocks:
        if isinstance(block, Para):
            _docx_para(document.add_paragraph(), block)
            continue
        table = document.add_table(rows=len(block.rows), cols=len(block.widths))
        table.alignment, table.autofit = WD_TABLE_ALIGNMENT.CENTER, False
        if block.grid:
            _docx_cell_borders(table)
        widths = [Mm(width_mm * w / sum(block.widths)) for w in block.widths]
        for r, row in enumerate(block.rows):
            cells = table.rows[r].cells  # once per row: `table.cell(r, c)` walks the whole grid each time
            for c, cell in enumerate(row):
                target = cells[c]
                target.width = widths[c]
                for i, para in enumerate(cell.paras):
                    _docx_para(target.paragraphs[0] if i == 0 else target.add_paragraph(), para)
    properties = document.core_properties
    stamp = datetime(paper.dated.year, paper.dated.month, paper.dated.day, tzinfo=UTC)
    properties.title, properties.author, properties.last_modified_by = paper.title, "", ""
    properties.created = properties.modified = properties.last_printed = stamp
    properties.revision, properties.comments, properties.keywords = 1, "", ""
    buffer = io.BytesIO()
    document.save(buffer)
    return _stable_zip(buffer.getvalue())


RENDERERS: dict[str, Callable[[Paper], bytes]] = {"pdf": render_pdf, "docx": render_docx}
MEDIA_TYPES = {"pdf": "application/pdf",
               "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
