"""A report in the shapes pollers import: JSON (with the Vietnamese and English labels of every category) and CSV
with Vietnamese headers. Every output carries its confidentiality marking, the data's freshness and its revision
(Decree 56/2017 Art. 24(3)); the XLSX and PDF documents are in `documents.py`, the DHIS2 shapes in `dhis2.py`."""

import csv
import io
from dataclasses import dataclass
from typing import Any

from services.reporting.indicators import BY_CODE, GROUPS
from services.reporting.service import Place, PollState, Revision, ValueRow
from services.reporting.vocabulary import BREAKDOWNS

UNITS_VI = {"children": "trẻ em", "cases": "vụ việc", "steps": "bước", "separations": "lượt", "percent": "%",
            "days": "ngày"}
HEADERS_VI = ["Mã chỉ tiêu", "Tên chỉ tiêu", "Kỳ báo cáo", "Mã địa bàn", "Tên địa bàn", "Phân tổ", "Mã nhóm",
              "Nhóm", "Giá trị", "Tử số", "Mẫu số", "Đơn vị tính", "Ghi chú", "Mức độ mật", "Số liệu cập nhật đến",
              "Lần sửa đổi"]
SUPPRESSED_NOTE_VI = "Không công bố để bảo vệ số nhỏ"
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PDF_TYPE = "application/pdf"


@dataclass(frozen=True)
class Marking:
    """What every output says about itself: how confidential it is and to whom it may go (Decree 56/2017
    Art. 24(3)), how fresh its data are, and which revision of the period's figures it is."""

    level: str  # "restricted" (published, small counts hidden) or "commune_only" (a commune's own figures)
    text_vi: str
    data_as_of: str | None
    checked_at: str | None
    revision: Revision

    def describe(self) -> dict[str, Any]:
        return {"level": self.level, "text_vi": self.text_vi, "data_as_of": self.data_as_of,
                "checked_at": self.checked_at, "revision": self.revision.describe()}

    def headers(self) -> dict[str, str]:
        # Header values are Latin-1: the Vietnamese text is in the body.
        return {"Confidentiality": self.level, "Report-Revision": str(self.revision.number),
                "Report-Revised-At": self.revision.revised_at.isoformat()}


def marking_for(own: bool, state: PollState, revision: Revision, public_text: str, own_text: str) -> Marking:
    checked = [feed["checked_at"] for feed in state.freshness.values() if feed.get("checked_at")]
    return Marking("commune_only" if own else "restricted", own_text if own else public_text, state.data_as_of,
                   min(checked) if checked else None, revision)


def json_report(rows: list[ValueRow], period: dict[str, Any], where: Place, freshness: dict[str, Any],
                suppression: dict[str, Any], marking: Marking) -> dict[str, Any]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row.indicator, []).append(
            {"breakdown": row.breakdown, "category": row.category, **row.labels(), "value": row.value,
             "display": row.display, "numerator": row.numerator, "denominator": row.denominator,
             "suppressed": row.suppressed})
    return {
        "period": period,
        "location": {"code": where.code, "level": where.level, "name": where.name},
        "marking": marking.describe(),
        "freshness": freshness,
        "suppression": suppression,
        "indicators": [
            {"code": code, "group": BY_CODE[code].group, "group_vi": GROUPS[BY_CODE[code].group][0],
             "name_vi": BY_CODE[code].name_vi, "name_en": BY_CODE[code].name_en, "unit": BY_CODE[code].unit,
             "values": values}
            for code, values in grouped.items()
        ],
    }


def table(rows: list[ValueRow], period_id: str, where: Place, marking: Marking) -> list[list[Any]]:
    lines: list[list[Any]] = []
    for row in rows:
        indicator = BY_CODE[row.indicator]
        lines.append([
            row.indicator, indicator.name_vi, period_id, where.code, where.name,
            BREAKDOWNS.label(row.breakdown) if row.breakdown else "", row.category or "",
            row.labels()["category_vi"], row.display, row.numerator, row.denominator, UNITS_VI[indicator.unit],
            SUPPRESSED_NOTE_VI if row.suppressed else "", marking.text_vi, marking.data_as_of or "",
            marking.revision.number,
        ])
    return lines


def csv_report(rows: list[ValueRow], period_id: str, where: Place, marking: Marking) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS_VI)
    for line in table(rows, period_id, where, marking):
        writer.writerow(["" if cell is None else cell for cell in line])
    # A byte-order mark so spreadsheet programs read the Vietnamese text as UTF-8.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
