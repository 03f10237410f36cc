"""Export of a commune's children to CSV and XLSX (xuất danh sách), safe to open in a spreadsheet.

By default the columns have Vietnamese headers and coded values their Vietnamese labels (what a commune officer
reads); `labels=codes` gives the field codes as headers and the codes as values (what a program reads). Guardians
are columns of their own (one group of columns per guardian). The import recognises both kinds of header, so an
exported list can be corrected and imported again.

A cell that starts with = + - @ (or a tab or carriage return) would run as a formula in Excel or LibreOffice
(CSV/formula injection), so such cells are written with a leading single quote.
"""

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any, Literal

from services.common.terms import GROUP_LETTER
from services.registry.models import Child
from services.registry.vocabulary import (
    AT_RISK_FLAG_VOCABULARY,
    DISABILITY_LEVELS,
    ETHNICITIES,
    RELATIONSHIPS,
    SCHOOL_LEVELS,
    SCHOOL_STATUSES,
    SEXES,
    STATUSES,
    Vocabulary,
)

Labels = Literal["vi", "codes"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Field code -> Vietnamese column header.
HEADERS: dict[str, str] = {
    "id": "Mã hồ sơ", "full_name": "Họ và tên", "sex": "Giới tính", "date_of_birth": "Ngày sinh",
    "date_of_birth_estimated": "Ngày sinh ước tính", "ethnicity": "Dân tộc", "nationality": "Quốc tịch",
    "personal_id": "Số định danh cá nhân", "province_code": "Mã tỉnh", "commune_code": "Mã xã",
    "address": "Địa chỉ", "birth_registered": "Đã đăng ký khai sinh",
    "birth_registered_on": "Ngày đăng ký khai sinh", "birth_registration_commune_code": "Mã xã đăng ký khai sinh",
    "birth_certificate_number": "Số giấy khai sinh", "school_name": "Trường", "school_level": "Cấp học",
    "school_grade": "Lớp", "school_status": "Tình trạng đi học", "health_insurance_number": "Số thẻ BHYT",
    "health_insurance_valid_from": "BHYT có giá trị từ ngày",
    "health_insurance_valid_until": "BHYT có giá trị đến ngày",
    "disability": "Khuyết tật", "disability_level": "Mức độ khuyết tật",
    "special_groups": "Nhóm hoàn cảnh đặc biệt (Điều 10 Luật Trẻ em)",
    "special_group_periods": "Thời gian thuộc nhóm", "at_risk_flags": "Yếu tố nguy cơ",
    "status": "Tình trạng hồ sơ", "status_date": "Ngày đổi tình trạng", "revision": "Phiên bản",
}
GUARDIAN_PARTS: dict[str, str] = {
    "name": "họ và tên", "relationship": "quan hệ với trẻ", "phone": "điện thoại", "personal_id": "số định danh",
    "lives_with_child": "sống cùng trẻ",
}
BEFORE_GUARDIANS = ("id", "full_name", "sex", "date_of_birth", "date_of_birth_estimated", "ethnicity", "nationality",
                    "personal_id", "province_code", "commune_code", "address", "birth_registered",
                    "birth_registered_on", "birth_registration_commune_code", "birth_certificate_number")
AFTER_GUARDIANS = ("school_name", "school_level", "school_grade", "school_status", "health_insurance_number",
                   "health_insurance_valid_from", "health_insurance_valid_until", "disability", "disability_level",
                   "special_groups", "special_group_periods", "at_risk_flags", "status", "status_date", "revision")
CODED: dict[str, Vocabulary] = {
    "sex": SEXES, "ethnicity": ETHNICITIES, "school_level": SCHOOL_LEVELS, "school_status": SCHOOL_STATUSES,
    "disability_level": DISABILITY_LEVELS, "status": STATUSES,
}


def guardian_field(number: int, part: str) -> str:
    return f"guardian_{number}_{part}"


def guardian_header(number: int, part: str) -> str:
    return f"Người chăm sóc {number}: {GUARDIAN_PARTS[part]}"


def columns(guardian_count: int) -> list[str]:
    guardians = [guardian_field(n, part) for n in range(1, guardian_count + 1) for part in GUARDIAN_PARTS]
    return [*BEFORE_GUARDIANS, *guardians, *AFTER_GUARDIANS]


def header(field: str) -> str:
    """The Vietnamese header of a column."""
    if field.startswith("guardian_"):
        _, number, part = field.split("_", 2)
        return guardian_header(int(number), part)
    return HEADERS[field]


def neutralise(value: Any) -> str:
    """A cell as text that a spreadsheet shows as text and never evaluates."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _day(value: date | None, labels: Labels) -> str | None:
    if value is None:
        return None
    return value.strftime("%d/%m/%Y") if labels == "vi" else value.isoformat()


def _yes(value: bool, labels: Labels) -> Any:
    return ("có" if value else "không") if labels == "vi" else value


def values_of(child: Child, guardian_count: int, labels: Labels, day: date) -> dict[str, Any]:
    label: Callable[[Vocabulary, str | None], str | None] = (
        (lambda vocabulary, code: vocabulary.label(code) if code else None) if labels == "vi"
        else (lambda vocabulary, code: code))
    values: dict[str, Any] = {name: getattr(child, name) for name in (*BEFORE_GUARDIANS, *AFTER_GUARDIANS)
                              if name not in ("special_groups", "special_group_periods")}
    for name, vocabulary in CODED.items():
        values[name] = label(vocabulary, values[name])
    for name in ("date_of_birth", "birth_registered_on", "health_insurance_valid_from", "health_insurance_valid_until",
                 "status_date"):
        values[name] = _day(values[name], labels)
    for name in ("date_of_birth_estimated", "birth_registered", "disability"):
        values[name] = _yes(values[name], labels)
    for number in range(1, guardian_count + 1):
        guardian = child.guardians[number - 1] if number <= len(child.guardians) else None
        values[guardian_field(number, "name")] = guardian and guardian["full_name"]
        values[guardian_field(number, "relationship")] = guardian and label(RELATIONSHIPS, guardian["relationship"])
        values[guardian_field(number, "phone")] = guardian and guardian.get("phone")
        values[guardian_field(number, "personal_id")] = guardian and guardian.get("personal_id")
        values[guardian_field(number, "lives_with_child")] = guardian and _yes(
            bool(guardian.get("lives_with_child", True)), labels)
    current = [g for g in child.special_groups if not g.get("end") or date.fromisoformat(g["end"]) >= day]
    letter = (lambda code: GROUP_LETTER[code]) if labels == "vi" else (lambda code: code)
    values["special_groups"] = "; ".join(dict.fromkeys(letter(g["group"]) for g in current))
    values["special_group_periods"] = "; ".join(
        f"{letter(g['group'])} {g['start']}..{g.get('end') or ''}{' (hỗ trợ)' if g.get('supported') else ''}"
        for g in child.special_groups)
    values["at_risk_flags"] = "; ".join(label(AT_RISK_FLAG_VOCABULARY, code) or code for code in child.at_risk_flags)
    return values


def to_csv(rows: Iterable[Sequence[str]], header_row: Sequence[str]) -> bytes:
    """UTF-8 with a byte-order mark, so Excel opens Vietnamese text correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([neutralise(h) for h in header_row])
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(rows: Iterable[Sequence[str]], header_row: Sequence[str]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("tre-em")
    sheet.append([neutralise(h) for h in header_row])
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def export_children(children: list[Child], file_format: str, labels: Labels, day: date) -> bytes:
    """Blocking: run in a worker thread. One group of guardian columns per guardian of the child that has most."""
    guardian_count = max([len(child.guardians) for child in children] + [1])
    fields = columns(guardian_count)
    rows = [[neutralise(values[name]) for name in fields]
            for values in (values_of(child, guardian_count, labels, day) for child in children)]
    header_row = [header(name) for name in fields] if labels == "vi" else fields
    return to_xlsx(rows, header_row) if file_format == "xlsx" else to_csv(rows, header_row)
