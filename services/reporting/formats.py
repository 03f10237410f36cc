"""A report in the shapes pollers import: JSON, CSV and XLSX with Vietnamese headers, and a DHIS2 dataValueSet."""

import csv
import io
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from services.common.locations import communes, provinces
from services.reporting.indicators import BREAKDOWN_NAMES, BY_CODE, LABELS_VI, LOCALITY
from services.reporting.service import Place, ValueRow

UNITS_VI = {"children": "trẻ em", "cases": "vụ việc", "steps": "bước", "percent": "%"}
HEADERS_VI = ["Mã chỉ tiêu", "Tên chỉ tiêu", "Kỳ báo cáo", "Mã địa bàn", "Tên địa bàn", "Phân tổ", "Mã nhóm",
              "Nhóm", "Giá trị", "Tử số", "Mẫu số", "Đơn vị tính", "Ghi chú"]
SUPPRESSED_NOTE_VI = {"primary": "Số nhỏ, không công bố", "complementary": "Ẩn để bảo vệ số nhỏ"}
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def category_label(breakdown: str | None, category: str | None) -> str:
    if breakdown is None or category is None:
        return "Tổng số"
    if breakdown == LOCALITY:
        found = provinces().get(category) or communes().get(category)
        return found.name if found else category
    return LABELS_VI.get(breakdown, {}).get(category, category)


def json_report(rows: list[ValueRow], period: dict[str, Any], where: Place, freshness: dict[str, Any],
                suppression: dict[str, Any]) -> dict[str, Any]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row.indicator, []).append(
            {"breakdown": row.breakdown, "category": row.category, "value": row.value, "display": row.display,
             "numerator": row.numerator, "denominator": row.denominator, "suppressed": row.suppressed})
    return {
        "period": period,
        "location": {"code": where.code, "level": where.level, "name": where.name},
        "freshness": freshness,
        "suppression": suppression,
        "indicators": [
            {"code": code, "name_vi": BY_CODE[code].name_vi, "name_en": BY_CODE[code].name_en,
             "unit": BY_CODE[code].unit, "values": values}
            for code, values in grouped.items()
        ],
    }


def _table(rows: list[ValueRow], period_id: str, where: Place) -> list[list[Any]]:
    table: list[list[Any]] = []
    for row in rows:
        indicator = BY_CODE[row.indicator]
        table.append([
            row.indicator, indicator.name_vi, period_id, where.code, where.name,
            BREAKDOWN_NAMES[row.breakdown][0] if row.breakdown else "", row.category or "",
            category_label(row.breakdown, row.category), row.display, row.numerator, row.denominator,
            UNITS_VI[indicator.unit], SUPPRESSED_NOTE_VI.get(row.suppressed or "", ""),
        ])
    return table


def csv_report(rows: list[ValueRow], period_id: str, where: Place) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS_VI)
    for line in _table(rows, period_id, where):
        writer.writerow(["" if cell is None else cell for cell in line])
    # A byte-order mark so spreadsheet programs read the Vietnamese text as UTF-8.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def xlsx_report(rows: list[ValueRow], period_id: str, where: Place, title: str) -> bytes:
    """Blocking (builds a workbook): call it from a worker thread."""
    workbook = Workbook(write_only=False)
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Báo cáo"
    sheet.append([title])
    sheet["A1"].font = Font(bold=True)
    sheet.append([])
    sheet.append(HEADERS_VI)
    for cell in sheet[3]:
        cell.font = Font(bold=True)
    for line in _table(rows, period_id, where):
        value_cell = line[8]
        # Published numbers as numbers, suppression labels as text.
        try:
            line[8] = float(value_cell) if "." in value_cell else int(value_cell)
        except ValueError:
            line[8] = value_cell
        sheet.append(line)
    for column, width in zip("ABCDEFGHIJKLM", (10, 60, 10, 10, 24, 24, 14, 40, 10, 10, 10, 10, 24), strict=True):
        sheet.column_dimensions[column].width = width
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def dhis2_data_value_set(rows: list[ValueRow], period_id: str, where: Place, complete_date: str) -> dict[str, Any]:
    """DHIS2 `dataValueSet` (import with idScheme=CODE): data element = indicator code, category option combo =
    `breakdown_category` or `default`. Suppressed cells are left out: DHIS2 stores numbers only."""
    values = []
    for row in rows:
        if row.value is None:
            continue
        org_unit = where.code
        combo = "default"
        if row.breakdown == LOCALITY and row.category:
            org_unit = row.category
        elif row.breakdown:
            combo = f"{row.breakdown}_{row.category}"
        values.append({"dataElement": row.indicator, "period": period_id, "orgUnit": org_unit,
                       "categoryOptionCombo": combo, "value": str(row.value)})
    return {"dataSet": "BVTE_REPORT", "period": period_id, "orgUnit": where.code, "completeDate": complete_date,
            "dataValues": values}
