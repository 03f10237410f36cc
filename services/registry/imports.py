"""Bulk import of a commune's list of children from CSV or XLSX (nhập danh sách trẻ em), as a background job.

The file is read in a worker thread, in batches: every row is converted and validated exactly like an API create,
valid rows are staged with COPY in `import_row`, problems go to `import_row_error` naming the row and the field.
Then one transaction applies the staged rows, skipping children already registered (same ID number, or same name,
date of birth and commune), so re-importing a file creates no duplicates. In all-or-nothing mode a single bad row
means nothing is applied; in row-by-row mode the valid rows are applied and the bad ones reported. Either way the
apply is one transaction: nothing is ever half-written.

No job can hold the registry: each has a time budget and limits on rows, columns and (XLSX) expansion, so a small
crafted file fails fast; jobs run side by side up to a number of workers, one at a time per jurisdiction, taking
turns between jurisdictions, so one commune's files never make another commune's wait behind them.
"""

import asyncio
import csv
import hashlib
import time
import uuid
import zipfile
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import orjson
from pydantic import ValidationError
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Jurisdiction, Subject
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import AppError, FieldError, PayloadTooLarge, UnprocessableContent
from services.common.locations import province_of
from services.common.logging import get_logger
from services.common.permissions import Agency, Role
from services.registry.export import GUARDIAN_PARTS, HEADERS, guardian_field, guardian_header
from services.registry.models import ImportJob, ImportRow, ImportRowError, audit, outbox
from services.registry.reference import normalize_name
from services.registry.schemas import CONTROL_CHARACTERS, ChildCreate
from services.registry.service import VIETNAM_TIME, check_record, child_record, parse_day, snapshot
from services.registry.vocabulary import (
    AT_RISK_FLAG_VOCABULARY,
    DISABILITY_LEVELS,
    ETHNICITIES,
    RELATIONSHIPS,
    SCHOOL_LEVELS,
    SCHOOL_STATUSES,
    SEXES,
    SPECIAL_GROUP_VOCABULARY,
    STATUSES,
    Vocabulary,
)

logger = get_logger("registry.imports")

MAX_GUARDIANS = 3
GUARDIAN_FIELDS: dict[str, str] = {
    guardian_field(n, part): part for n in range(1, MAX_GUARDIANS + 1) for part in GUARDIAN_PARTS}
# Columns a file may carry, by the name of the field they fill; `guardian_1_name` ... `guardian_3_lives_with_child`
# describe up to three guardians.
IMPORT_FIELDS: tuple[str, ...] = (
    "full_name", "sex", "date_of_birth", "date_of_birth_estimated", "ethnicity", "nationality", "personal_id",
    "commune_code", "address", "birth_registered", "birth_registered_on", "birth_registration_commune_code",
    "birth_certificate_number", *GUARDIAN_FIELDS, "school_name", "school_level", "school_grade", "school_status",
    "health_insurance_number", "health_insurance_valid_from", "health_insurance_valid_until", "disability",
    "disability_level", "special_groups", "at_risk_flags", "status",
)
# Earlier names of the first guardian's columns, still accepted.
ALIASES = {"guardian_name": "guardian_1_name", "guardian_relationship": "guardian_1_relationship",
           "guardian_phone": "guardian_1_phone", "guardian_personal_id": "guardian_1_personal_id"}
REQUIRED_FIELDS = ("full_name", "sex", "date_of_birth")
DATE_FIELDS = {"date_of_birth", "birth_registered_on", "health_insurance_valid_from", "health_insurance_valid_until"}
BOOL_FIELDS = {"date_of_birth_estimated", "birth_registered", "disability",
               *(f for f, part in GUARDIAN_FIELDS.items() if part == "lives_with_child")}
LIST_FIELDS = {"special_groups", "at_risk_flags"}
TRUE_WORDS = {"1", "true", "yes", "y", "x", "co", "có"}
FALSE_WORDS = {"0", "false", "no", "n", "khong", "không"}
# Coded fields take the code or either label of the vocabulary ("Nữ", "female", "Kinh", "01").
CODED: dict[str, Vocabulary] = {
    "sex": SEXES, "ethnicity": ETHNICITIES, "school_level": SCHOOL_LEVELS, "school_status": SCHOOL_STATUSES,
    "disability_level": DISABILITY_LEVELS, "status": STATUSES, "at_risk_flags": AT_RISK_FLAG_VOCABULARY,
    "special_groups": SPECIAL_GROUP_VOCABULARY,
    **{f: RELATIONSHIPS for f, part in GUARDIAN_FIELDS.items() if part == "relationship"},
}
EXTRA_WORDS: dict[str, dict[str, str]] = {
    "sex": {"m": "male", "f": "female", "nu": "female", "trai": "male", "gai": "female"},
    "relationship": {"bo": "father", "cha de": "father", "me de": "mother"},
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Python codec of each accepted encoding: utf-8-sig also reads the byte-order mark Excel writes.
ENCODINGS = {"utf-8": "utf-8-sig", "utf-16": "utf-16", "cp1258": "cp1258"}
MAX_CELL_CHARS = 1000
MAX_COLUMNS = 100
MAX_XLSX_UNCOMPRESSED = 300_000_000
# An XLSX sheet compresses 5-20 times; a file that expands far more is built to exhaust the reader.
MAX_XLSX_RATIO = 250
STALE_AFTER_SECONDS = 300
APPLY_CHUNK = 5_000


class ImportFailure(Exception):
    """The file as a whole cannot be imported (wrong format, encoding, header, size, time): the job fails cleanly."""


@dataclass
class RowProblem:
    row: int
    field: str
    message: str


@dataclass
class Batch:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    duplicates: int = 0
    read: int = 0
    finished: bool = False


@dataclass(frozen=True)
class Limits:
    """What one job may take: data rows, physical rows (blank ones included), and wall-clock time."""

    max_rows: int
    deadline: float  # time.monotonic()
    seconds: float

    @property
    def max_physical_rows(self) -> int:
        return self.max_rows + max(1_000, self.max_rows // 10)

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise ImportFailure(f"the import took longer than {self.seconds:.0f} s and was stopped; nothing was "
                                "written (split the file, or remove blank rows and columns)")


def sniff_format(first_bytes: bytes, filename: str | None) -> str:
    if first_bytes.startswith(b"PK\x03\x04") or (filename or "").lower().endswith(".xlsx"):
        return "xlsx"
    return "csv"


# --- reading files (blocking; runs in a worker thread) ---------------------------------------------------------


def _csv_rows(path: Path, encoding: str) -> Iterator[list[Any]]:
    with path.open("r", encoding=ENCODINGS[encoding], newline="", errors="strict") as handle:
        reader = csv.reader(handle)
        try:
            for row in reader:
                if len(row) > MAX_COLUMNS:
                    raise ImportFailure(f"line {reader.line_num}: more than {MAX_COLUMNS} columns")
                yield row
        except UnicodeError as exc:  # a decoding error, or a UTF-16 file without its byte order mark
            # Text is decoded in blocks, so the line is where the reader stood, a little before the bad byte.
            raise ImportFailure(f"near line {reader.line_num + 1}: the file is not valid {encoding}; save it as "
                                "CSV UTF-8 or name its encoding") from exc
        except csv.Error as exc:
            raise ImportFailure(f"line {reader.line_num}: malformed CSV ({exc})") from exc


def check_xlsx_archive(handle: Any) -> None:
    """Refuse an XLSX that would expand beyond what a real list needs, before any of it is parsed."""
    try:
        with zipfile.ZipFile(handle) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ImportFailure("the file is not a readable XLSX workbook") from exc
    if sum(info.file_size for info in members) > MAX_XLSX_UNCOMPRESSED:
        raise ImportFailure(f"the XLSX file expands to more than {MAX_XLSX_UNCOMPRESSED // 1_000_000} MB")
    for info in members:
        if info.file_size > 1_000_000 and info.file_size > MAX_XLSX_RATIO * max(info.compress_size, 1):
            raise ImportFailure("the XLSX file expands far more than a spreadsheet does; save it again from your "
                                "spreadsheet program")
    handle.seek(0)


def _xlsx_rows(path: Path) -> Iterator[list[Any]]:
    from openpyxl import load_workbook

    with path.open("rb") as handle:  # a handle, not the path: openpyxl judges a path by its extension
        check_xlsx_archive(handle)
        try:
            workbook = load_workbook(handle, read_only=True, data_only=False)
        except Exception as exc:  # openpyxl raises many types for a damaged file
            raise ImportFailure("the file is not a readable XLSX workbook") from exc
        try:
            sheet = workbook.worksheets[0]
            # The declared size of a sheet is the file's say: "A1:XFD1048576" would make the reader pad every row
            # to 16,384 cells and invent a million rows. Read the cells that are there, within the first columns.
            sheet.reset_dimensions()  # type: ignore[union-attr]
            for row in sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True):
                yield list(row)
        except ImportFailure:
            raise
        except Exception as exc:
            raise ImportFailure("the XLSX workbook is damaged") from exc
        finally:
            workbook.close()


def read_rows(path: Path, file_format: str, encoding: str, limits: Limits) -> Iterator[list[Any]]:
    """Every row of the file, within the job's limits: too many rows (blank ones included) or too much time fail the
    job, whatever the file claims about itself."""
    rows = _xlsx_rows(path) if file_format == "xlsx" else _csv_rows(path, encoding)
    for physical, row in enumerate(rows, start=1):
        if physical > limits.max_physical_rows:
            raise ImportFailure(f"the file has more than {limits.max_physical_rows} rows, blank rows included; at "
                                f"most {limits.max_rows} children are accepted per import")
        if physical % 256 == 0:
            limits.check_time()
        yield row


def count_rows(path: Path, file_format: str, encoding: str, limits: Limits) -> int:
    """Data rows in the file (after the header), reading it once; also finds encoding and format errors early."""
    total = -1
    for row in read_rows(path, file_format, encoding, limits):
        if total < 0 or any(cell not in (None, "") for cell in row):
            total += 1
    return max(total, 0)


def _header_key(value: str) -> str:
    return normalize_name(value)


ACCEPTED_HEADERS: dict[str, str] = {
    **{_header_key(name): name for name in IMPORT_FIELDS},
    **{_header_key(alias): name for alias, name in ALIASES.items()},
    **{_header_key(vi): name for name, vi in HEADERS.items() if name in IMPORT_FIELDS},
    **{_header_key(guardian_header(int(f.split("_")[1]), part)): f for f, part in GUARDIAN_FIELDS.items()},
}


def column_positions(header: list[Any], mapping: dict[str, str]) -> dict[str, int]:
    """Where each field's column is: the mapping names the header of each field; other columns are matched by
    their field code or by the Vietnamese header of the export (accents, case and spacing do not matter)."""
    names = [_header_key(str(cell)) if cell is not None else "" for cell in header]
    mapped = {ALIASES.get(name, name): column for name, column in mapping.items()}
    positions: dict[str, int] = {}
    for field_name, column in mapped.items():
        wanted = _header_key(column)
        if wanted not in names:
            raise ImportFailure(f"row 1: the column '{column}' mapped to {field_name} is not in the header row")
        positions[field_name] = names.index(wanted)
    for index, name in enumerate(names):
        field_name = ACCEPTED_HEADERS.get(name)
        if field_name and field_name not in positions and index not in positions.values():
            positions[field_name] = index
    return positions


def _lookup(vocabulary: Vocabulary, extra: dict[str, str]) -> dict[str, str]:
    words: dict[str, str] = {}
    for term in vocabulary.terms:
        for word in (term.code, term.vi, term.en, term.vi.split("(")[0], *term.extra.values()):
            words.setdefault(normalize_name(word), term.code)
    return words | extra


CODE_WORDS: dict[str, dict[str, str]] = {
    name: _lookup(vocabulary, EXTRA_WORDS.get("relationship" if name.startswith("guardian_") else name, {}))
    for name, vocabulary in CODED.items()
}


def coded(field_name: str, word: str) -> str:
    """The code a cell means: the code itself or a label, in Vietnamese or English ("Nữ", "Kinh", "đ")."""
    if field_name == "special_groups" and word.strip().lower() == "đ":
        return "dd"  # normalised, đ would become d: another group
    code = CODE_WORDS[field_name].get(normalize_name(word))
    if code is None:
        raise ValueError("is not one of the values of its list (see GET /v1/vocabularies)")
    return code


class RowConverter:
    """Turns the cells of one row into a child record, or into problems naming the row and the field."""

    def __init__(self, positions: dict[str, int], subject: Subject, default_commune: str | None):
        self.positions, self.subject, self.default_commune = positions, subject, default_commune
        self.seen_ids: set[str] = set()
        self.seen_people: set[tuple[str, str, date]] = set()
        self.today = utcnow().astimezone(VIETNAM_TIME).date()

    def convert(self, row_number: int, cells: list[Any],
                now: datetime) -> tuple[tuple[Any, ...] | None, list[RowProblem], bool]:
        problems: list[RowProblem] = []
        values: dict[str, Any] = {}
        for field_name, position in self.positions.items():
            cell = cells[position] if position < len(cells) else None
            try:
                value = self.cell_value(field_name, cell)
            except ValueError as exc:
                problems.append(RowProblem(row_number, field_name, str(exc)))
                continue
            if value is not None:
                values[field_name] = value
        for required in REQUIRED_FIELDS:
            if required not in values and not any(p.field == required for p in problems):
                problems.append(RowProblem(row_number, required, "is required"))
        if "commune_code" not in values and self.default_commune and "commune_code" not in self.positions:
            values["commune_code"] = self.default_commune
        try:
            data = ChildCreate.model_validate(self.body(values))
        except ValidationError as exc:
            # Every problem of the row at once, not only the first: fields already reported are not repeated.
            reported = {p.field for p in problems}
            for error in exc.errors():
                name = self.field_of(list(error["loc"]))
                if name not in reported:
                    problems.append(RowProblem(row_number, name, error["msg"]))
                    reported.add(name)
            return None, problems, False
        if problems:
            return None, problems, False
        if not self.subject.jurisdiction.contains(province_of(data.commune_code), data.commune_code):
            return None, [RowProblem(row_number, "commune_code", "is outside your jurisdiction")], False
        record = child_record(data, self.subject, now)
        child = SimpleNamespace(**record)
        try:
            check_record(child, self.today, self.today)
        except AppError as exc:
            return None, [RowProblem(row_number, self.field_of(p["loc"][1:]), p["msg"])
                          for p in exc.extra.get("errors", [])], False
        person = (child.commune_code, child.name_search, child.date_of_birth)
        if (child.personal_id and child.personal_id in self.seen_ids) or person in self.seen_people:
            return None, [], True
        if child.personal_id:
            self.seen_ids.add(child.personal_id)
        self.seen_people.add(person)
        return (row_number, child.id, child.personal_id, child.commune_code, child.name_search,
                child.date_of_birth, orjson.dumps(record).decode(), orjson.dumps(snapshot(child)).decode()), [], False

    @staticmethod
    def field_of(loc: list[Any]) -> str:
        """The import column behind an error location, e.g. ("guardians", 1, "phone") -> guardian_2_phone."""
        if not loc:
            return "row"
        if loc[0] == "guardians" and len(loc) > 2:
            part = "name" if loc[2] == "full_name" else str(loc[2])
            return guardian_field(int(loc[1]) + 1, part) if part in GUARDIAN_PARTS else "guardian_1_name"
        return str(loc[0])

    def cell_value(self, field_name: str, cell: Any) -> Any:
        if cell is None:
            return None
        if isinstance(cell, datetime):
            cell = cell.date()
        if isinstance(cell, date):
            if field_name not in DATE_FIELDS:
                raise ValueError("a date is not expected here")
            return cell.isoformat()
        if isinstance(cell, bool):
            cell = "1" if cell else "0"
        if isinstance(cell, float) and cell.is_integer():
            cell = int(cell)
        if isinstance(cell, int):
            # Spreadsheets drop leading zeros of numeric-looking codes; these codes have a fixed width.
            widths = {"personal_id": 12, "commune_code": 5, "birth_registration_commune_code": 5, "ethnicity": 2,
                      "health_insurance_number": 10}
            text_value = str(cell).zfill(widths.get(field_name, 0))
            if GUARDIAN_FIELDS.get(field_name) == "phone" and len(text_value) == 9:
                text_value = "0" + text_value
        else:
            text_value = str(cell).strip()
        if not text_value:
            return None
        if len(text_value) > MAX_CELL_CHARS:
            raise ValueError(f"is longer than {MAX_CELL_CHARS} characters")
        if text_value.startswith(FORMULA_START) and GUARDIAN_FIELDS.get(field_name) != "phone":
            raise ValueError("starts with a spreadsheet formula character (= + - @); formulas are not accepted")
        if field_name in DATE_FIELDS:
            day = parse_day(text_value)
            if day is None:
                raise ValueError("is not a real date (use YYYY-MM-DD or DD/MM/YYYY)")
            return day.isoformat()
        if field_name in BOOL_FIELDS:
            word = text_value.lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError("is not yes/no (có/không)")
        if field_name in LIST_FIELDS:
            return [coded(field_name, part) for part in text_value.replace(",", ";").split(";") if part.strip()]
        if field_name in CODED:
            return coded(field_name, text_value)
        if field_name == "school_grade":
            if not text_value.isascii() or not text_value.isdigit():
                raise ValueError("is not a whole number")
            return int(text_value)
        return text_value

    def body(self, values: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in values.items() if k not in GUARDIAN_FIELDS and k not in LIST_FIELDS}
        guardians = []
        for number in range(1, MAX_GUARDIANS + 1):
            guardian = {("full_name" if part == "name" else part): values[guardian_field(number, part)]
                        for part in GUARDIAN_PARTS if guardian_field(number, part) in values}
            if guardian:
                guardian.setdefault("relationship", "guardian")
                guardians.append(guardian)
        if guardians:
            body["guardians"] = guardians
        if "special_groups" in values:
            # A list says who is in a group now, not since when: membership starts on the day of the import.
            body["special_groups"] = [{"group": letter, "start": self.today.isoformat()}
                                      for letter in dict.fromkeys(values["special_groups"])]
        if "at_risk_flags" in values:
            body["at_risk_flags"] = values["at_risk_flags"]
        body["confirm_not_duplicate"] = True
        return body


class RowSource:
    """The file's rows, converted batch by batch. Each call of `next_batch` runs in a worker thread."""

    def __init__(self, path: Path, file_format: str, encoding: str, mapping: dict[str, str], subject: Subject,
                 limits: Limits):
        self.rows = read_rows(path, file_format, encoding, limits)
        self.limits = limits
        try:
            header = next(self.rows)
        except StopIteration as exc:
            raise ImportFailure("the file is empty") from exc
        positions = column_positions(header, mapping)
        default_commune = subject.jurisdiction.commune if subject.jurisdiction.level == "commune" else None
        missing = [f for f in REQUIRED_FIELDS if f not in positions]
        if "commune_code" not in positions and default_commune is None:
            missing.append("commune_code")
        if missing:
            raise ImportFailure(f"row 1: no column for {', '.join(missing)} (name the columns in the mapping)")
        self.converter = RowConverter(positions, subject, default_commune)
        self.row_number = 1

    def next_batch(self, size: int) -> Batch:
        batch = Batch()
        now = utcnow()
        while len(batch.rows) + len(batch.problems) < size:
            try:
                cells = next(self.rows)
            except StopIteration:
                batch.finished = True
                break
            self.row_number += 1
            if not any(cell not in (None, "") for cell in cells):
                continue
            batch.read += 1
            staged, problems, duplicate = self.converter.convert(self.row_number, cells, now)
            if staged is not None:
                batch.rows.append(staged)
            batch.problems.extend(problems)
            batch.duplicates += int(duplicate)
        self.limits.check_time()
        return batch


# --- the job ---------------------------------------------------------------------------------------------------

STAGED_COLUMNS = ["job_id", "row_number", "child_id", "personal_id", "commune_code", "name_search", "date_of_birth",
                  "record", "snapshot"]

# One chunk of staged rows into `child` with their first revision. Children already registered are skipped: by
# the checks, and by ON CONFLICT when a concurrent request registered the same child while the import ran.
APPLY_SQL = text("""
WITH batch AS (
    SELECT r.row_number, r.child_id, r.record, r.personal_id, r.commune_code, r.name_search, r.date_of_birth
    FROM import_row r WHERE r.job_id = :job AND r.row_number > :after ORDER BY r.row_number LIMIT :size
), fresh AS (
    SELECT b.* FROM batch b
    WHERE NOT EXISTS (SELECT 1 FROM child c WHERE c.merged_into_id IS NULL AND b.personal_id IS NOT NULL
                      AND c.personal_id = b.personal_id)
      AND NOT EXISTS (SELECT 1 FROM child c WHERE c.merged_into_id IS NULL AND c.commune_code = b.commune_code
                      AND c.name_search = b.name_search AND c.date_of_birth = b.date_of_birth)
), inserted AS (
    -- LATERAL: `(jsonb_populate_record(...)).*` would call the function once per column.
    INSERT INTO child SELECT record.* FROM fresh f, LATERAL jsonb_populate_record(NULL::child, f.record) AS record
    ORDER BY f.row_number
    ON CONFLICT DO NOTHING
    RETURNING id
), revisions AS (
    INSERT INTO child_revision (child_id, revision, at, actor_id, actor_role, actor_agency, change, changes)
    SELECT id, 1, :at, :actor, :role, :agency, 'import', jsonb_build_object('import_job', CAST(:job AS text))
    FROM inserted RETURNING child_id
)
SELECT b.row_number, rv.child_id FROM batch b LEFT JOIN revisions rv ON rv.child_id = b.child_id
ORDER BY b.row_number
""")

CREATED_SNAPSHOTS_SQL = text("""
SELECT r.row_number, r.snapshot FROM import_row r JOIN child c ON c.id = r.child_id
WHERE r.job_id = :job AND r.row_number > :after ORDER BY r.row_number LIMIT :size
""")


def job_subject(job: ImportJob) -> Subject:
    return Subject(id=job.created_by, role=Role(job.actor_role), agency=Agency(job.actor_agency),
                   jurisdiction=Jurisdiction.model_validate(job.jurisdiction), token_id="")


def queue_key(jurisdiction: dict[str, Any]) -> str:
    """Jobs of one jurisdiction (a commune, a province) wait for each other; different ones never do."""
    return ":".join(str(jurisdiction.get(part) or "") for part in ("level", "province", "commune"))


class ImportRunner:
    """Runs import jobs as asyncio tasks of this process: at most `workers` at once, at most one per jurisdiction,
    the next taken from the jurisdictions in turn; each within `max_seconds`."""

    def __init__(self, db: Database, directory: Path, *, max_rows: int, batch_rows: int, workers: int = 2,
                 max_seconds: float = 900.0):
        self.db, self.directory, self.max_rows, self.batch_rows = db, directory, max_rows, batch_rows
        self.workers, self.max_seconds = workers, max_seconds
        self.tasks: set[asyncio.Task[None]] = set()
        self.waiting: OrderedDict[str, deque[tuple[uuid.UUID, str]]] = OrderedDict()
        self.running: set[str] = set()
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: uuid.UUID) -> Path:
        return self.directory / f"{job_id}.upload"

    async def start(self, job_id: uuid.UUID, encoding: str, key: str = "") -> None:
        self.waiting.setdefault(key, deque()).append((job_id, encoding))
        self._dispatch()

    def _dispatch(self) -> None:
        while len(self.running) < self.workers:
            key = next((k for k, jobs in self.waiting.items() if jobs and k not in self.running), None)
            if key is None:
                return
            job_id, encoding = self.waiting[key].popleft()
            self.waiting.move_to_end(key)  # the next free worker goes to another jurisdiction first
            if not self.waiting[key]:
                del self.waiting[key]
            self.running.add(key)
            task = asyncio.create_task(self._run_and_release(job_id, encoding, key), name=f"import-{job_id}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run_and_release(self, job_id: uuid.UUID, encoding: str, key: str) -> None:
        try:
            await self.run(job_id, encoding)
        finally:
            self.running.discard(key)
            self._dispatch()

    async def stop(self) -> None:
        self.waiting.clear()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)

    async def run(self, job_id: uuid.UUID, encoding: str) -> None:
        try:
            await self._run(job_id, encoding)
        except ImportFailure as exc:
            await self._fail(job_id, str(exc))
        except asyncio.CancelledError:
            await asyncio.shield(self._fail(job_id, "the service stopped during the import; nothing was "
                                                    "written, upload the file again"))
            raise
        except Exception as exc:
            logger.error("import failed", extra={"job_id": str(job_id), "error_type": type(exc).__name__})
            await self._fail(job_id, "an unexpected error stopped the import; nothing was written")
        finally:
            await anyio.Path(self.path(job_id)).unlink(missing_ok=True)

    async def _run(self, job_id: uuid.UUID, encoding: str) -> None:
        limits = Limits(self.max_rows, time.monotonic() + self.max_seconds, self.max_seconds)
        async with self.db.sessionmaker() as session:
            job = await session.get_one(ImportJob, job_id)
            job.status = "validating"
            job.updated_at = utcnow()
            await session.commit()
        subject = job_subject(job)
        path = self.path(job_id)
        total = await anyio.to_thread.run_sync(count_rows, path, job.file_format, encoding, limits)
        if total > self.max_rows:
            raise ImportFailure(f"the file has {total} rows; at most {self.max_rows} are accepted per import")
        await self._progress(job_id, total_rows=total)
        source = await anyio.to_thread.run_sync(RowSource, path, job.file_format, encoding, job.mapping, subject,
                                                limits)
        started = time.perf_counter()
        done, errors = await self._stage(job_id, source)
        if errors and job.mode == "all_or_nothing":
            raise ImportFailure(f"{errors} rows have errors; nothing was imported (see the error report)")
        logger.info("import validated", extra={"job_id": str(job_id), "rows": done,
                                               "seconds": round(time.perf_counter() - started, 2)})
        await self._progress(job_id, status="applying")
        started = time.perf_counter()
        await self._apply(job_id, subject, done, errors, limits)
        logger.info("import applied", extra={"job_id": str(job_id),
                                             "seconds": round(time.perf_counter() - started, 2)})

    async def _stage(self, job_id: uuid.UUID, source: RowSource) -> tuple[int, int]:
        """Validate every row and stage the valid ones; returns rows read and rows with errors."""
        done = errors = duplicates = 0
        # The next batch is read and validated in a thread while this one is written: Python and PostgreSQL work
        # side by side.
        reading = asyncio.create_task(anyio.to_thread.run_sync(source.next_batch, self.batch_rows))
        try:
            while True:
                batch = await reading
                if not batch.finished:
                    reading = asyncio.create_task(anyio.to_thread.run_sync(source.next_batch, self.batch_rows))
                done += batch.read
                errors += len({p.row for p in batch.problems})
                duplicates += batch.duplicates
                async with self.db.sessionmaker() as session:
                    if batch.rows:
                        raw = (await (await session.connection()).get_raw_connection()).driver_connection
                        await raw.copy_records_to_table("import_row", records=[(job_id, *r) for r in batch.rows],
                                                        columns=STAGED_COLUMNS)
                    if batch.problems:
                        await session.execute(insert(ImportRowError), [
                            {"job_id": job_id, "row_number": p.row, "field": p.field[:100],
                             "message": p.message[:300]} for p in batch.problems])
                    await session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
                        rows_done=done, error_count=errors, duplicate_count=duplicates, updated_at=utcnow()))
                    await session.commit()
                if batch.finished:
                    return done, errors
        finally:
            if not reading.done():
                reading.cancel()

    async def _apply(self, job_id: uuid.UUID, subject: Subject, done: int, errors: int, limits: Limits) -> None:
        """One transaction: children and revisions chunk by chunk, their audit lines and events through the kit's
        `AuditLog` and `Outbox`. Events are written last, so the outbox is held only for that last moment."""
        remaining_ms = max(int((limits.deadline - time.monotonic()) * 1000), 30_000)
        purpose = f"import:{job_id}"
        async with self.db.sessionmaker() as session:
            try:
                await session.execute(text(f"SET LOCAL statement_timeout = {remaining_ms}"))
                created = await self._insert_children(session, job_id, subject, purpose)
                after = 0
                while True:
                    rows = (await session.execute(CREATED_SNAPSHOTS_SQL, {"job": job_id, "after": after,
                                                                          "size": APPLY_CHUNK})).all()
                    if not rows:
                        break
                    after = rows[-1].row_number
                    for row in rows:
                        outbox.emit(session, "child.registered", row.snapshot, agency=subject.agency.value)
                    await outbox.write_pending(session)
                await session.execute(delete(ImportRow).where(ImportRow.job_id == job_id))
                await session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
                    status="succeeded", created_count=created, rows_done=done,
                    duplicate_count=done - errors - created, finished_at=utcnow(), updated_at=utcnow()))
                await self.db.commit(session)
            except BaseException:
                await session.rollback()
                raise

    async def _insert_children(self, session: AsyncSession, job_id: uuid.UUID, subject: Subject,
                               purpose: str) -> int:
        created, after = 0, 0
        while True:
            rows = (await session.execute(APPLY_SQL, {
                "job": job_id, "after": after, "size": APPLY_CHUNK, "at": utcnow(), "actor": subject.id,
                "role": subject.role.value, "agency": subject.agency.value})).all()
            if not rows:
                return created
            after = rows[-1].row_number
            ids = [str(row.child_id) for row in rows if row.child_id is not None]
            if ids:
                await audit.record(session, subject, "create", "child", ids, purpose=purpose)
            created += len(ids)

    async def _progress(self, job_id: uuid.UUID, **values: Any) -> None:
        async with self.db.sessionmaker() as session:
            await session.execute(update(ImportJob).where(ImportJob.id == job_id).values(**values,
                                                                                         updated_at=utcnow()))
            await session.commit()

    async def _fail(self, job_id: uuid.UUID, reason: str) -> None:
        async with self.db.sessionmaker() as session:
            await session.execute(delete(ImportRow).where(ImportRow.job_id == job_id))
            await session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
                status="failed", failure=reason[:500], finished_at=utcnow(), updated_at=utcnow()))
            await session.commit()

    async def recover(self) -> None:
        """Jobs that stopped moving (their process died) failed with it; their staged rows were never applied.

        Running jobs write progress every batch, so a job silent for minutes belongs to no live process.
        """
        stale = utcnow() - timedelta(seconds=STALE_AFTER_SECONDS)
        async with self.db.sessionmaker() as session:
            unfinished = list((await session.execute(
                select(ImportJob.id).where(ImportJob.status.in_(["queued", "validating", "applying"]),
                                           ImportJob.updated_at < stale))).scalars())
        for job_id in unfinished:
            await self._fail(job_id, "the service restarted during the import; nothing was written, upload the "
                                     "file again")
            await anyio.Path(self.path(job_id)).unlink(missing_ok=True)
        # Uploads whose request failed before its job was committed: nobody will read them.
        async for upload in anyio.Path(self.directory).glob("*.upload"):
            if (await upload.stat()).st_mtime < stale.timestamp():
                await upload.unlink(missing_ok=True)


async def save_upload(chunks: Any, destination: Path, max_bytes: int) -> tuple[int, str, bytes]:
    """Copy an upload to disk, refusing it as soon as it passes the limit. Returns size, sha256, first bytes."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    async with await anyio.open_file(destination, "wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                await out.aclose()
                await anyio.Path(destination).unlink(missing_ok=True)
                raise PayloadTooLarge(f"the file may be at most {max_bytes} bytes")
            if len(head) < 8:
                head += chunk[:8]
            digest.update(chunk)
            await out.write(chunk)
    return size, digest.hexdigest(), head


def mapping_error(message: str, kind: str) -> dict[str, Any]:
    return FieldError(loc=["body", "mapping"], msg=message, type=kind).model_dump()


def parse_mapping(mapping: str | None) -> dict[str, str]:
    """The `mapping` form field: a JSON object {field: column header}; earlier field names are accepted."""
    if not mapping:
        return {}
    try:
        columns = orjson.loads(mapping)
    except orjson.JSONDecodeError as exc:
        raise UnprocessableContent("mapping must be a JSON object {field: column header}",
                                   errors=[mapping_error("is not JSON", "mapping.json")]) from exc
    if not isinstance(columns, dict) or not all(isinstance(v, str) and v.strip() and not CONTROL_CHARACTERS.search(v)
                                                for v in columns.values()):
        raise UnprocessableContent("mapping must be a JSON object {field: column header}",
                                   errors=[mapping_error("is not an object of column headers", "mapping.shape")])
    unknown = sorted(set(columns) - set(IMPORT_FIELDS) - set(ALIASES))
    if unknown:
        raise UnprocessableContent(f"unknown fields in mapping: {', '.join(unknown)}", fields=list(IMPORT_FIELDS),
                                   errors=[mapping_error("names an unknown field", "mapping.unknown_field")])
    return {ALIASES.get(str(k), str(k)): str(v)[:200] for k, v in columns.items()}


async def create_job(session: AsyncSession, subject: Subject, job_id: uuid.UUID, *, file_format: str, digest: str,
                     size: int, mode: str, mapping: dict[str, str]) -> ImportJob:
    """The job row of an upload, audited; the runner picks it up after the commit."""
    job = ImportJob(id=job_id, created_by=subject.id, actor_role=subject.role.value,
                    actor_agency=subject.agency.value, jurisdiction=subject.jurisdiction.model_dump(),
                    file_format=file_format, file_sha256=digest, file_size=size, mode=mode, mapping=mapping,
                    created_at=utcnow(), updated_at=utcnow())
    session.add(job)
    await session.flush()
    await audit.record(session, subject, "import", "import_job", str(job_id))
    return job


async def job_for(session: AsyncSession, subject: Subject, job_id: uuid.UUID) -> ImportJob | None:
    """Import jobs are visible to the user who started them."""
    return (await session.execute(
        select(ImportJob).where(ImportJob.id == job_id, ImportJob.created_by == subject.id))).scalar_one_or_none()


async def error_report(session: AsyncSession, job: ImportJob) -> list[list[str]]:
    """The rows of the error report: row number, field, the column it came from, and the problem."""
    problems = (await session.execute(
        select(ImportRowError.row_number, ImportRowError.field, ImportRowError.message)
        .where(ImportRowError.job_id == job.id).order_by(ImportRowError.row_number, ImportRowError.id))).all()
    rows = [[str(p.row_number), p.field, job.mapping.get(p.field, p.field), p.message] for p in problems]
    if job.failure:
        rows.insert(0, ["", "file", "", job.failure])
    return rows
