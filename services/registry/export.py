"""Export of a commune's children to CSV and XLSX (xuat danh sach), safe to open in a spreadsheet.

A cell that starts with = + - @ (or a tab or carriage return) would run as a formula in Excel or LibreOffice
(CSV/formula injection), so such cells are written with a leading single quote.
"""

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from services.registry.models import Child

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
COLUMNS: tuple[str, ...] = (
    "id", "full_name", "sex", "date_of_birth", "date_of_birth_estimated", "ethnicity", "nationality", "personal_id",
    "commune_code", "address", "birth_registered", "birth_registered_on", "birth_registration_commune_code",
    "birth_certificate_number", "guardians", "school_name", "school_level", "school_grade", "school_status",
    "health_insurance_number", "health_insurance_valid_from", "health_insurance_valid_until", "disability",
    "disability_level", "special_groups", "at_risk_flags", "status", "status_date", "revision",
)


def neutralise(value: Any) -> str:
    """A cell as text that a spreadsheet shows as text and never evaluates."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def cells(child: Child) -> list[str]:
    values: dict[str, Any] = {name: getattr(child, name) for name in COLUMNS}
    values["guardians"] = "; ".join(
        f"{g['full_name']} ({g['relationship']}{', ' + g['phone'] if g.get('phone') else ''})" for g in child.guardians)
    values["special_groups"] = "; ".join(
        f"{g['group']} {g['start']}..{g.get('end') or ''}{' supported' if g.get('supported') else ''}"
        for g in child.special_groups)
    values["at_risk_flags"] = "; ".join(child.at_risk_flags)
    return [neutralise(values[name]) for name in COLUMNS]


def to_csv(rows: Iterable[Sequence[str]], header: Sequence[str]) -> bytes:
    """UTF-8 with a byte-order mark, so Excel opens Vietnamese text correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([neutralise(h) for h in header])
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(rows: Iterable[Sequence[str]], header: Sequence[str]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("children")
    sheet.append([neutralise(h) for h in header])
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def export_children(children: list[Child], file_format: str) -> bytes:
    """Blocking: run in a worker thread."""
    rows = [cells(child) for child in children]
    return to_xlsx(rows, COLUMNS) if file_format == "xlsx" else to_csv(rows, COLUMNS)
