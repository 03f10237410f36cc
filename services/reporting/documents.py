"""The report a person hands up: an XLSX of official statistical tables and a PDF laid out as a Vietnamese
administrative document (Decree 30/2020/NĐ-CP: issuing body top left, national motto top right, number, place and
date, title, recipients, signature block; A4), with the same figures and two charts.

Blocking (builds a workbook or a PDF): call these from a worker thread.
"""

import io
from dataclasses import dataclass
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from services.common.fonts import SERIF, SERIF_BOLD, register_serif
from services.common.locations import communes, provinces
from services.reporting.figures import Counts
from services.reporting.formats import UNITS_VI, Marking
from services.reporting.indicators import GROUPS, INDICATORS, Indicator
from services.reporting.service import Place, PlaceFigures, _row
from services.reporting.settings import ReportingSettings
from services.reporting.suppression import Cell
from services.reporting.vocabulary import BREAKDOWNS, label

MOTTO = ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc")
TREND_INDICATORS = ("0101", "HT-VV01")


@dataclass(frozen=True)
class Report:
    """Everything a document shows."""

    where: Place
    period: dict[str, Any]
    figures: PlaceFigures
    own: bool
    marking: Marking
    settings: ReportingSettings
    trend: list[tuple[str, dict[str, int | None]]]  # (period id, indicator -> total or None when hidden)
    issued_on: date

    @property
    def title(self) -> str:
        return f"Số liệu bảo vệ trẻ em kỳ {self.period['id']} — {self.where.name}"


def _cell(report: Report, indicator: Indicator, counts: Counts, hidden: dict[Cell, str], cell: Cell) -> Any:
    """A published value: a number, or the suppression mark."""
    row = _row(indicator, counts, cell, cell in hidden and not report.own, report.settings)
    if row.suppressed:
        return report.settings.suppressed_label
    return row.value


def _place_rows(report: Report) -> list[tuple[str, str, Counts, dict[Cell, str]]]:
    """(code, name, counts, hidden) of each row of a table: the localities, then the place's total."""
    rows = []
    for code, counts, hidden in report.figures.localities:
        unit = communes().get(code) or provinces().get(code)
        rows.append((code, unit.name if unit else code, counts, hidden))
    total_name = "Tổng số" if rows else report.where.name
    rows.append((report.where.code, total_name, report.figures.counts, report.figures.hidden))
    return rows


def _columns(report: Report, indicator: Indicator) -> list[tuple[str, str, Cell]]:
    """(breakdown heading, category heading, cell) of each column of an indicator's table."""
    columns = [("", "Tổng số", (indicator.code, "", ""))]
    for cell in report.figures.layout.cells[indicator.code][1:]:
        columns.append((BREAKDOWNS.label(cell[1]), label(cell[1], cell[2]), cell))
    return columns


def _notes(indicator: Indicator) -> str:
    circular = indicator.circular
    cited = ""
    if circular is not None:
        code = circular.code or "mã chưa tìm thấy"
        cited = f" Thông tư 13/2021/TT-BLĐTBXH, phụ lục {circular.annex}, {circular.name} ({code})."
    return (f"Nguồn số liệu: {indicator.source}. Căn cứ: {indicator.legal}.{cited} "
            f"Định nghĩa: {indicator.definition}")


def xlsx_document(report: Report) -> bytes:
    """Official statistical tables: a cover sheet, then one sheet per group of indicators, each indicator a table
    with the localities as rows (communes of a province, provinces of the nation), the total last, the breakdowns
    as columns, Vietnamese headings, suppression marks and the source under the table."""
    workbook = Workbook()
    cover = workbook.active
    assert cover is not None
    cover.title = "Thông tin"
    bold, thin = Font(bold=True), Side(style="thin")
    for line in [[report.title], [], ["Kỳ báo cáo", report.period["id"]],
                 ["Từ ngày", report.period["start"]], ["Đến ngày", report.period["end"]],
                 ["Hạn báo cáo", report.period.get("due_date") or ""], ["Địa bàn", f"{report.where.name} "
                                                                                  f"({report.where.code})"],
                 ["Mức độ mật", report.marking.text_vi],
                 ["Số liệu cập nhật đến", report.marking.data_as_of or "chưa có"],
                 ["Lần sửa đổi", f"{report.marking.revision.number} "
                                 f"({report.marking.revision.revised_at.date().isoformat()})"],
                 ["Ký hiệu", f"{report.settings.suppressed_label}: không công bố để bảo vệ số nhỏ (dưới "
                             f"{report.settings.suppression_threshold}) hoặc để không suy ra được số nhỏ"],
                 ["Căn cứ", "Thông tư 13/2021/TT-BLĐTBXH; Nghị định 56/2017/NĐ-CP; Quyết định 06/QĐ-TTg (2019)"]]:
        cover.append(line)
    cover["A1"].font = Font(bold=True, size=14)
    cover.column_dimensions["A"].width, cover.column_dimensions["B"].width = 24, 100

    # One style object of each kind, shared by every cell (openpyxl compares styles to deduplicate them), and row
    # numbers counted here: `sheet.max_row` scans every cell of the sheet each time it is read.
    boxed = Border(top=thin, bottom=thin, left=thin, right=thin)
    heading = Alignment(wrap_text=True, horizontal="center", vertical="center")
    unwrapped = Alignment(wrap_text=False)
    number = 0
    for group, (group_vi, _) in GROUPS.items():
        sheet = workbook.create_sheet(group_vi[:31])
        sheet.column_dimensions["A"].width, sheet.column_dimensions["B"].width = 10, 34
        row = 0
        for indicator in (i for i in INDICATORS if i.group == group):
            number += 1
            columns = _columns(report, indicator)
            width = len(columns) + 2
            sheet.append([f"Biểu {number}. {indicator.code} — {indicator.name_vi} "
                          f"(đơn vị tính: {UNITS_VI[indicator.unit]})"])
            row += 1
            sheet.cell(row, 1).font = bold
            sheet.append(["Mã địa bàn", "Địa bàn", *(heading_text for heading_text, _, _ in columns)])
            sheet.append(["", "", *(category for _, category, _ in columns)])
            row += 2
            for header_row in (row - 1, row):
                for column in range(1, width + 1):
                    cell = sheet.cell(header_row, column)
                    cell.font, cell.border, cell.alignment = bold, boxed, heading
            for code, name, counts, hidden in _place_rows(report):
                sheet.append([code, name, *(_cell(report, indicator, counts, hidden, cell) for _, _, cell in columns)])
                row += 1
                for column in range(1, width + 1):
                    cell = sheet.cell(row, column)
                    cell.border = boxed
                    if indicator.is_ratio and column > 2:
                        cell.number_format = "0.0"
            sheet.cell(row, 2).font = bold
            sheet.append([_notes(indicator)])
            row += 1
            sheet.cell(row, 1).alignment = unwrapped
            sheet.append([])
            row += 1
        for column in range(3, 60):
            sheet.column_dimensions[get_column_letter(column)].width = 12
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _register_fonts() -> None:
    register_serif()


def _issuing_body(where: Place) -> tuple[str, str]:
    """(the superior body, the issuing body), upper case as Decree 30 sets them."""
    if where.level == "national":
        return "BỘ Y TẾ", "CỤC BÀ MẸ VÀ TRẺ EM"
    province = provinces()[where.province or where.code].name
    if where.level == "province":
        return f"ỦY BAN NHÂN DÂN {province.upper()}", "SỞ Y TẾ"
    return f"ỦY BAN NHÂN DÂN {province.upper()}", f"ỦY BAN NHÂN DÂN {where.name.upper()}"


def _place_name(where: Place) -> str:
    if where.level == "national":
        return "Hà Nội"
    province = provinces()[where.province or where.code].name
    return province.removeprefix("Thành phố ").removeprefix("Tỉnh ")


def _trend_chart(report: Report, width: float) -> Drawing:
    drawing = Drawing(width, 62 * mm)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 12 * mm, 12 * mm, width - 16 * mm, 42 * mm
    data = [[values.get(code) or 0 for _, values in report.trend] for code in TREND_INDICATORS]
    chart.data = data
    chart.categoryAxis.categoryNames = [period_id for period_id, _ in report.trend]
    chart.categoryAxis.labels.fontName, chart.categoryAxis.labels.fontSize = SERIF, 7
    chart.categoryAxis.labels.angle, chart.categoryAxis.labels.dy = 30, -6
    chart.valueAxis.labels.fontName, chart.valueAxis.labels.fontSize = SERIF, 7
    chart.valueAxis.valueMin = 0
    chart.bars[0].fillColor, chart.bars[1].fillColor = colors.HexColor("#b22222"), colors.HexColor("#4a6fa5")
    drawing.add(chart)
    drawing.add(String(12 * mm, 57 * mm, "Biểu đồ 1. Xu hướng 12 kỳ gần nhất: số trẻ em bị xâm hại (đỏ) và số "
                       "tin báo tiếp nhận (xanh)", fontName=SERIF_BOLD, fontSize=9))
    return drawing


def _locality_chart(report: Report, width: float) -> Drawing | None:
    shown = [(name, _cell(report, _by_code("0101"), counts, hidden, ("0101", "", "")))
             for code, name, counts, hidden in _place_rows(report)[:-1]]
    if not shown:
        return None
    shown.sort(key=lambda item: -(item[1] if isinstance(item[1], int | float) else -1))
    shown = shown[:25]
    height = (10 + 5 * len(shown)) * mm
    drawing = Drawing(width, height + 10 * mm)
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 55 * mm, 4 * mm, width - 60 * mm, height - 4 * mm
    chart.data = [[value if isinstance(value, int | float) else 0 for _, value in reversed(shown)]]
    chart.categoryAxis.categoryNames = [f"{name} ({value})" if not isinstance(value, int | float) else name
                                        for name, value in reversed(shown)]
    chart.categoryAxis.labels.fontName, chart.categoryAxis.labels.fontSize = SERIF, 7
    chart.valueAxis.labels.fontName, chart.valueAxis.labels.fontSize = SERIF, 7
    chart.valueAxis.valueMin = 0
    chart.bars[0].fillColor = colors.HexColor("#b22222")
    drawing.add(chart)
    drawing.add(String(0, height + 5 * mm, "Biểu đồ 2. Số trẻ em bị xâm hại theo địa bàn (các địa bàn có số "
                       f"lớn nhất; {report.settings.suppressed_label}: không công bố)", fontName=SERIF_BOLD,
                       fontSize=9))
    return drawing


def _by_code(code: str) -> Indicator:
    return next(indicator for indicator in INDICATORS if indicator.code == code)


def _display(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}".replace(".", ",")
    return "" if value is None else str(value)


def pdf_document(report: Report) -> bytes:
    _register_fonts()
    buffer = io.BytesIO()
    # Decree 30/2020, Appendix I: A4, margins top 20-25 mm, bottom 20-25 mm, left 30-35 mm, right 15-20 mm.
    document = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=30 * mm, rightMargin=15 * mm, topMargin=20 * mm,
                                 bottomMargin=20 * mm, title=report.title, author=_issuing_body(report.where)[1],
                                 subject="Báo cáo số liệu bảo vệ trẻ em")
    width = A4[0] - 45 * mm
    body = ParagraphStyle("body", fontName=SERIF, fontSize=13, leading=17, alignment=TA_JUSTIFY,
                          firstLineIndent=10 * mm)
    small = ParagraphStyle("small", fontName=SERIF, fontSize=8, leading=10)
    centre = ParagraphStyle("centre", fontName=SERIF, fontSize=13, leading=16, alignment=TA_CENTER)
    heading = ParagraphStyle("heading", fontName=SERIF_BOLD, fontSize=13, leading=17, spaceBefore=6)
    superior, issuer = _issuing_body(report.where)
    issued = report.issued_on
    header = Table([
        [Paragraph(f"{superior}<br/><b>{issuer}</b><br/>———", ParagraphStyle("l", parent=centre, fontSize=12)),
         Paragraph(f"<b>{MOTTO[0]}</b><br/><b>{MOTTO[1]}</b><br/>———————", ParagraphStyle("r", parent=centre,
                                                                                           fontSize=12))],
        [Paragraph("Số: ........../BC", centre),
         Paragraph(f"<i>{_place_name(report.where)}, ngày {issued.day:02d} tháng {issued.month:02d} năm "
                   f"{issued.year}</i>", centre)],
    ], colWidths=[width * 0.42, width * 0.58])
    header.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    marking = Paragraph(f"<b>{report.marking.text_vi}</b>", ParagraphStyle("m", parent=small, fontSize=9,
                                                                            textColor=colors.HexColor("#8b0000")))
    story: list[Any] = [header, Spacer(1, 4 * mm), marking, Spacer(1, 4 * mm),
                        Paragraph("<b>BÁO CÁO</b>", ParagraphStyle("t", parent=centre, fontSize=14)),
                        Paragraph(f"<b>{report.title}</b>", centre), Spacer(1, 5 * mm)]
    revision = report.marking.revision
    story.append(Paragraph(
        f"Kỳ báo cáo từ ngày {report.period['start']} đến ngày {report.period['end']}; hạn báo cáo "
        f"{report.period.get('due_date') or 'không quy định'}. Số liệu tổng hợp từ hệ thống thông tin bảo vệ trẻ "
        f"em, cập nhật đến {report.marking.data_as_of or 'chưa có dữ liệu'}; lần sửa đổi {revision.number} "
        f"(ngày {revision.revised_at.date().isoformat()}). Ký hiệu «{report.settings.suppressed_label}»: số liệu "
        "không công bố để bảo vệ thông tin cá nhân của trẻ em (số nhỏ, hoặc số có thể dùng để suy ra số nhỏ).",
        body))
    story += [Spacer(1, 4 * mm), _trend_chart(report, width)]
    locality = _locality_chart(report, width)
    if locality is not None:
        story += [Spacer(1, 3 * mm), locality]

    style = TableStyle([("FONTNAME", (0, 0), (-1, -1), SERIF), ("FONTSIZE", (0, 0), (-1, -1), 7.5),
                        ("FONTNAME", (0, 0), (-1, 0), SERIF_BOLD), ("GRID", (0, 0), (-1, -1), 0.4, colors.black),
                        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("ALIGN", (2, 1), (-1, -1), "RIGHT")])
    for group, (group_vi, _) in GROUPS.items():
        story.append(Paragraph(f"{list(GROUPS).index(group) + 1}. {group_vi}", heading))
        for indicator in (i for i in INDICATORS if i.group == group):
            lines = [["Phân tổ", "Nhóm", report.where.name[:30]]]
            for breakdown_heading, category, cell in _columns(report, indicator):
                value = _cell(report, indicator, report.figures.counts, report.figures.hidden, cell)
                lines.append([breakdown_heading or "Tổng số", category if breakdown_heading else "", _display(value)])
            table = Table(lines, colWidths=[width * 0.3, width * 0.5, width * 0.2], repeatRows=1)
            table.setStyle(style)
            story.append(KeepTogether([
                Paragraph(f"<b>{indicator.code}</b> — {indicator.name_vi} ({UNITS_VI[indicator.unit]})",
                          ParagraphStyle("i", parent=small, fontSize=9.5, leading=12, spaceBefore=4)),
                table, Paragraph(_notes(indicator), small)]))
    places = _place_rows(report)
    if len(places) > 1:
        story.append(Paragraph(f"{len(GROUPS) + 1}. Số liệu theo địa bàn (tổng số của từng chỉ tiêu)", heading))
        for start in range(0, len(INDICATORS), 6):
            chunk = INDICATORS[start:start + 6]
            lines = [["Mã", "Địa bàn", *(indicator.code for indicator in chunk)]]
            for code, name, counts, hidden in places:
                lines.append([code, name[:32], *(_display(_cell(report, indicator, counts, hidden,
                                                                 (indicator.code, "", ""))) for indicator in chunk)])
            table = Table(lines, colWidths=[width * 0.09, width * 0.31, *([width * 0.1] * len(chunk))],
                          repeatRows=1)
            table.setStyle(style)
            story += [table, Spacer(1, 3 * mm)]
    signer = "CHỦ TỊCH" if report.where.level == "commune" else "GIÁM ĐỐC" if report.where.level == "province" \
        else "CỤC TRƯỞNG"
    recipients = Paragraph("<b><i>Nơi nhận:</i></b><br/>- Cơ quan cấp trên (để báo cáo);<br/>- Lưu: VT.",
                           ParagraphStyle("n", parent=small, fontSize=11, leading=13))
    signature = Paragraph(f"<b>{signer}</b><br/><i>(Ký, ghi rõ họ tên, đóng dấu)</i>", centre)
    closing = Table([[recipients, signature]], colWidths=[width * 0.5, width * 0.5])
    closing.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [Spacer(1, 8 * mm), KeepTogether([closing])]

    def footer(canvas: Any, _: Any) -> None:
        canvas.saveState()
        canvas.setFont(SERIF, 8)
        canvas.drawString(30 * mm, 12 * mm, f"{report.marking.text_vi[:120]}")
        canvas.drawRightString(A4[0] - 15 * mm, 12 * mm, f"Trang {canvas.getPageNumber()}")
        canvas.restoreState()

    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
