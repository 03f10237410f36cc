"""Bulk import of a commune's list of children from CSV or XLSX (nhap danh sach tre em), as a background job.

The file is read in a worker thread, in batches: every row is converted and validated exactly like an API create,
valid rows are staged with COPY in `import_row`, problems go to `import_row_error` naming the row and the field.
Then one transaction applies the staged rows with INSERT ... SELECT, skipping children already registered (same ID
number, or same name, date of birth and commune), so re-importing a file creates no duplicates. In all-or-nothing
mode a single bad row means nothing is applied; in row-by-row mode the valid rows are applied and the bad ones
reported. Either way the apply is one transaction: nothing is ever half-written.
"""

import asyncio
import csv
import hashlib
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import orjson
from pydantic import ValidationError
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Jurisdiction, Subject
from services.common.db import Database
from services.common.errors import AppError
from services.common.locations import province_of
from services.common.logging import get_logger
from services.common.outbox import EVENT_SCHEMA_VERSION
from services.common.permissions import Agency, Role
from services.registry.models import ImportJob, ImportRow, ImportRowError
from services.registry.schemas import ChildCreate
from services.registry.service import check_record, child_record, parse_day, snapshot

logger = get_logger("registry.imports")

# Columns a file may carry, by the name of the field they fill. Guardian columns describe one guardian.
IMPORT_FIELDS: tuple[str, ...] = (
    "full_name", "sex", "date_of_birth", "date_of_birth_estimated", "ethnicity", "nationality", "personal_id",
    "commune_code", "address", "birth_registered", "birth_registered_on", "birth_registration_commune_code",
    "birth_certificate_number", "guardian_name", "guardian_relationship", "guardian_phone", "guardian_personal_id",
    "school_name", "school_level", "school_grade", "school_status", "health_insurance_number",
    "health_insurance_valid_from", "health_insurance_valid_until", "disability", "disability_level",
    "special_groups", "at_risk_flags", "status",
)
REQUIRED_FIELDS = ("full_name", "sex", "date_of_birth")
DATE_FIELDS = {"date_of_birth", "birth_registered_on", "health_insurance_valid_from", "health_insurance_valid_until"}
BOOL_FIELDS = {"date_of_birth_estimated", "birth_registered", "disability"}
LIST_FIELDS = {"special_groups", "at_risk_flags"}
TRUE_WORDS = {"1", "true", "yes", "y", "x", "co", "có"}
FALSE_WORDS = {"0", "false", "no", "n", "khong", "không"}
SEX_WORDS = {"male": "male", "m": "male", "nam": "male", "female": "female", "f": "female", "nu": "female",
             "nữ": "female"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Python codec of each accepted encoding: utf-8-sig also reads the byte-order mark Excel writes.
ENCODINGS = {"utf-8": "utf-8-sig", "utf-16": "utf-16", "cp1258": "cp1258"}
MAX_CELL_CHARS = 1000
MAX_XLSX_UNCOMPRESSED = 500_000_000
STALE_AFTER_SECONDS = 300
GUARDIAN_FIELDS = {"guardian_name": "full_name", "guardian_relationship": "relationship",
                   "guardian_phone": "phone", "guardian_personal_id": "personal_id"}


class ImportFailure(Exception):
    """The file as a whole cannot be imported (wrong format, encoding, header, size): the job fails cleanly."""


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


def sniff_format(first_bytes: bytes, filename: str | None) -> str:
    if first_bytes.startswith(b"PK\x03\x04") or (filename or "").lower().endswith(".xlsx"):
        return "xlsx"
    return "csv"


# --- reading files (blocking; runs in a worker thread) ---------------------------------------------------------


def _csv_rows(path: Path, encoding: str) -> Iterator[list[Any]]:
    with path.open("r", encoding=ENCODINGS[encoding], newline="", errors="strict") as handle:
        reader = csv.reader(handle)
        try:
            yield from reader
        except UnicodeError as exc:  # a decoding error, or a UTF-16 file without its byte order mark
            # Text is decoded in blocks, so the line is where the reader stood, a little before the bad byte.
            raise ImportFailure(f"near line {reader.line_num + 1}: the file is not valid {encoding}; save it as "
                                "CSV UTF-8 or name its encoding") from exc
        except csv.Error as exc:
            raise ImportFailure(f"line {reader.line_num}: malformed CSV ({exc})") from exc


def _xlsx_rows(path: Path) -> Iterator[list[Any]]:
    from openpyxl import load_workbook

    with path.open("rb") as handle:  # a handle, not the path: openpyxl judges a path by its extension
        try:
            with zipfile.ZipFile(handle) as archive:
                if sum(info.file_size for info in archive.infolist()) > MAX_XLSX_UNCOMPRESSED:
                    raise ImportFailure("the XLSX file expands to more than 500 MB")
            handle.seek(0)
            workbook = load_workbook(handle, read_only=True, data_only=False)
        except ImportFailure:
            raise
        except Exception as exc:  # openpyxl raises many types for a damaged file
            raise ImportFailure("the file is not a readable XLSX workbook") from exc
        try:
            for row in workbook.worksheets[0].iter_rows(values_only=True):
                yield list(row)
        except Exception as exc:
            raise ImportFailure("the XLSX workbook is damaged") from exc
        finally:
            workbook.close()


def read_rows(path: Path, file_format: str, encoding: str) -> Iterator[list[Any]]:
    return _xlsx_rows(path) if file_format == "xlsx" else _csv_rows(path, encoding)


def count_rows(path: Path, file_format: str, encoding: str) -> int:
    """Data rows in the file (after the header), reading it once; also finds encoding and format errors early."""
    total = -1
    for row in read_rows(path, file_format, encoding):
        if total < 0 or any(cell not in (None, "") for cell in row):
            total += 1
    return max(total, 0)


def column_positions(header: list[Any], mapping: dict[str, str]) -> dict[str, int]:
    """Where each field's column is: the mapping names the header of each field; unmapped fields match by name."""
    names = [str(cell).strip().lower() if cell is not None else "" for cell in header]
    positions: dict[str, int] = {}
    for field_name in IMPORT_FIELDS:
        wanted = mapping.get(field_name, field_name).strip().lower()
        if wanted in names:
            positions[field_name] = names.index(wanted)
        elif field_name in mapping:
            raise ImportFailure(f"row 1: the column '{mapping[field_name]}' mapped to {field_name} is not in the "
                                "header row")
    return positions


class RowConverter:
    """Turns the cells of one row into a child record, or into problems naming the row and the field."""

    def __init__(self, positions: dict[str, int], subject: Subject, default_commune: str | None):
        self.positions, self.subject, self.default_commune = positions, subject, default_commune
        self.seen_ids: set[str] = set()
        self.seen_people: set[tuple[str, str, date]] = set()
        self.today = date.today()

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
                name = self.field_of([str(part) for part in error["loc"]])
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
            check_record(child, self.today)
        except AppError as exc:
            return None, [RowProblem(row_number, p["field"].split(".")[0],
                                     f"{p.get('part', '')} {p['detail']}".strip())
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
    def field_of(loc: list[str]) -> str:
        """The import column behind a schema error location, e.g. ("guardians", 0, "phone") -> guardian_phone."""
        if not loc:
            return "row"
        if loc[0] == "guardians" and len(loc) > 2:
            return next((k for k, v in GUARDIAN_FIELDS.items() if v == loc[2]), "guardian_name")
        return loc[0]

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
            if field_name == "guardian_phone" and len(text_value) == 9:
                text_value = "0" + text_value
        else:
            text_value = str(cell).strip()
        if not text_value:
            return None
        if len(text_value) > MAX_CELL_CHARS:
            raise ValueError(f"is longer than {MAX_CELL_CHARS} characters")
        if text_value.startswith(FORMULA_START) and field_name != "guardian_phone":
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
            raise ValueError("is not yes/no")
        if field_name == "sex":
            sex = SEX_WORDS.get(text_value.lower())
            if sex is None:
                raise ValueError("is not male/female (nam/nu)")
            return sex
        if field_name in LIST_FIELDS:
            return [part.strip().lower() for part in text_value.replace(",", ";").split(";") if part.strip()]
        if field_name == "school_grade":
            if not text_value.isdigit():
                raise ValueError("is not a whole number")
            return int(text_value)
        return text_value

    def body(self, values: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in values.items() if k not in GUARDIAN_FIELDS and k not in LIST_FIELDS}
        guardian = {GUARDIAN_FIELDS[k]: v for k, v in values.items() if k in GUARDIAN_FIELDS}
        if guardian:
            guardian.setdefault("relationship", "guardian")
            body["guardians"] = [guardian]
        if "special_groups" in values:
            # A list says who is in a group now, not since when: membership starts on the day of the import.
            body["special_groups"] = [{"group": letter, "start": self.today.isoformat()}
                                      for letter in values["special_groups"]]
        if "at_risk_flags" in values:
            body["at_risk_flags"] = values["at_risk_flags"]
        body["confirm_not_duplicate"] = True
        return body


class RowSource:
    """The file's rows, converted batch by batch. Each call of `next_batch` runs in a worker thread."""

    def __init__(self, path: Path, file_format: str, encoding: str, mapping: dict[str, str], subject: Subject):
        self.rows = read_rows(path, file_format, encoding)
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
        now = datetime.now(UTC)
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
        return batch


# --- the job ---------------------------------------------------------------------------------------------------

STAGED_COLUMNS = ["job_id", "row_number", "child_id", "personal_id", "commune_code", "name_search", "date_of_birth",
                  "record", "snapshot"]

APPLY_SQL = text("""
WITH fresh AS (
    SELECT r.child_id, r.record, r.row_number FROM import_row r
    WHERE r.job_id = :job
      AND NOT EXISTS (SELECT 1 FROM child c WHERE c.merged_into_id IS NULL AND r.personal_id IS NOT NULL
                      AND c.personal_id = r.personal_id)
      AND NOT EXISTS (SELECT 1 FROM child c WHERE c.merged_into_id IS NULL AND c.commune_code = r.commune_code
                      AND c.name_search = r.name_search AND c.date_of_birth = r.date_of_birth)
), inserted AS (
    -- LATERAL: `(jsonb_populate_record(...)).*` would call the function once per column.
    INSERT INTO child SELECT record.* FROM fresh f, LATERAL jsonb_populate_record(NULL::child, f.record) AS record
    ORDER BY f.row_number
    RETURNING id
), revisions AS (
    INSERT INTO child_revision (child_id, revision, at, actor_id, actor_role, actor_agency, change, changes)
    SELECT id, 1, now(), :actor, :role, :agency, 'import', jsonb_build_object('import_job', CAST(:job AS text))
    FROM inserted RETURNING child_id
)
INSERT INTO audit_entry (id, at, actor_id, actor_role, actor_agency, action, object_type, object_id, purpose)
SELECT gen_random_uuid(), now(), :actor, :role, :agency, 'create', 'child', child_id::text, :purpose
FROM revisions
""")

EVENTS_SQL = text("""
INSERT INTO outbox_event (id, type, version, occurred_at, agency, payload)
SELECT gen_random_uuid(), 'child.registered', :version, now(), :agency, r.snapshot
FROM import_row r JOIN child c ON c.id = r.child_id
WHERE r.job_id = :job ORDER BY r.row_number
""")


def job_subject(job: ImportJob) -> Subject:
    return Subject(id=job.created_by, role=Role(job.actor_role), agency=Agency(job.actor_agency),
                   jurisdiction=Jurisdiction.model_validate(job.jurisdiction), token_id="")


class ImportRunner:
    """Runs import jobs as asyncio tasks of this process, one at a time so memory stays flat."""

    def __init__(self, db: Database, directory: Path, *, max_rows: int, batch_rows: int):
        self.db, self.directory, self.max_rows, self.batch_rows = db, directory, max_rows, batch_rows
        self.tasks: set[asyncio.Task[None]] = set()
        self.one_at_a_time = asyncio.Semaphore(1)
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: uuid.UUID) -> Path:
        return self.directory / f"{job_id}.upload"

    async def start(self, job_id: uuid.UUID, encoding: str) -> None:
        task = asyncio.create_task(self.run(job_id, encoding), name=f"import-{job_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)

    async def run(self, job_id: uuid.UUID, encoding: str) -> None:
        async with self.one_at_a_time:
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
        async with self.db.sessionmaker() as session:
            job = await session.get_one(ImportJob, job_id)
            job.status = "validating"
            await session.commit()
        subject = job_subject(job)
        path = self.path(job_id)
        total = await anyio.to_thread.run_sync(count_rows, path, job.file_format, encoding)
        if total > self.max_rows:
            raise ImportFailure(f"the file has {total} rows; at most {self.max_rows} are accepted per import")
        await self._progress(job_id, total_rows=total)
        source = await anyio.to_thread.run_sync(RowSource, path, job.file_format, encoding, job.mapping, subject)
        started = time.perf_counter()
        done, errors = await self._stage(job_id, source)
        if errors and job.mode == "all_or_nothing":
            raise ImportFailure(f"{errors} rows have errors; nothing was imported (see the error report)")
        logger.info("import validated", extra={"job_id": str(job_id), "rows": done,
                                               "seconds": round(time.perf_counter() - started, 2)})
        await self._progress(job_id, status="applying")
        started = time.perf_counter()
        await self._apply(job_id, subject, done, errors)
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
                        rows_done=done, error_count=errors, duplicate_count=duplicates,
                        updated_at=datetime.now(UTC)))
                    await session.commit()
                if batch.finished:
                    return done, errors
        finally:
            if not reading.done():
                reading.cancel()

    async def _apply(self, job_id: uuid.UUID, subject: Subject, done: int, errors: int) -> None:
        agency = subject.agency.value
        async with self.db.sessionmaker() as session:
            applied = await session.execute(APPLY_SQL, {
                "job": job_id, "actor": subject.id, "role": subject.role.value, "agency": agency,
                "purpose": f"import:{job_id}"})
            created = int(applied.rowcount)  # type: ignore[attr-defined]
            inserted_at = time.perf_counter()
            # Events in the same transaction (each carries its transaction id: services/common/outbox.py).
            await session.execute(EVENTS_SQL, {"job": job_id, "agency": agency, "version": EVENT_SCHEMA_VERSION})
            logger.info("import events written", extra={"job_id": str(job_id), "children": created,
                                                         "seconds": round(time.perf_counter() - inserted_at, 2)})
            await session.execute(delete(ImportRow).where(ImportRow.job_id == job_id))
            await session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
                status="succeeded", created_count=created, rows_done=done, duplicate_count=done - errors - created,
                finished_at=datetime.now(UTC)))
            await session.commit()

    async def _progress(self, job_id: uuid.UUID, **values: Any) -> None:
        async with self.db.sessionmaker() as session:
            await session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
                **values, updated_at=datetime.now(UTC)))
            await session.commit()

    async def _fail(self, job_id: uuid.UUID, reason: str) -> None:
        async with self.db.sessionmaker() as session:
            await session.execute(delete(ImportRow).where(ImportRow.job_id == job_id))
            await session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
                status="failed", failure=reason[:500], finished_at=datetime.now(UTC)))
            await session.commit()

    async def recover(self) -> None:
        """Jobs that stopped moving (their process died) failed with it; their staged rows were never applied.

        Running jobs write progress every batch, so a job silent for minutes belongs to no live process.
        """
        stale = datetime.now(UTC) - timedelta(seconds=STALE_AFTER_SECONDS)
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
    from services.common.errors import PayloadTooLarge

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


async def job_for(session: AsyncSession, subject: Subject, job_id: uuid.UUID) -> ImportJob | None:
    """Import jobs are visible to the user who started them."""
    return (await session.execute(
        select(ImportJob).where(ImportJob.id == job_id, ImportJob.created_by == subject.id))).scalar_one_or_none()
