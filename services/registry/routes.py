"""Registry HTTP routes: HTTP only; the rules live in `service.py` and `imports.py`."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
import orjson
from fastapi import APIRouter, BackgroundTasks, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import Response as PlainResponse
from sqlalchemy import select

from services.common.auth import Subject, require
from services.common.db import DbSession
from services.common.errors import NotFound, PayloadTooLarge, UnprocessableContent
from services.common.links import public_path
from services.common.locations import communes, provinces
from services.common.pagination import Page
from services.common.permissions import Action
from services.registry import service
from services.registry.addresses import convert_old_address
from services.registry.export import export_children, neutralise, to_csv
from services.registry.imports import IMPORT_FIELDS, ImportRunner, job_for, save_upload, sniff_format
from services.registry.models import Child, ImportJob, ImportRowError, audit
from services.registry.schemas import (
    CONTROL_CHARACTERS,
    AddressConversion,
    ChildCreate,
    ChildStatus,
    ChildUpdate,
    ChildView,
    CommuneRead,
    FileEncoding,
    GroupLetter,
    ImportJobRead,
    ImportMode,
    MergeRequest,
    ProvinceRead,
    RevisionRead,
)

router = APIRouter(prefix="/v1")
PROBLEMS = {code: {"description": text, "content": {"application/problem+json": {}}} for code, text in {
    400: "Bad request", 403: "The role may not take this action", 404: "Not found or outside your jurisdiction",
    409: "Likely duplicate, or the record was merged", 412: "Stale ETag", 413: "File too large",
    422: "Invalid data", 428: "If-Match required", 503: "A service this call needs is unavailable"}.items()}


# Officers read children; service accounts read them with the `registry:service_read` scope.
ChildReader = Annotated[Subject, Depends(require(Action.CHILD_READ, Action.REGISTRY_SERVICE_READ))]
ChildSearcher = Annotated[Subject, Depends(require(Action.CHILD_SEARCH))]
ChildCreator = Annotated[Subject, Depends(require(Action.CHILD_CREATE))]
ChildUpdater = Annotated[Subject, Depends(require(Action.CHILD_UPDATE))]
ChildMerger = Annotated[Subject, Depends(require(Action.CHILD_MERGE))]
HistoryReader = Annotated[Subject, Depends(require(Action.CHILD_HISTORY))]
Importer = Annotated[Subject, Depends(require(Action.CHILD_IMPORT))]
Exporter = Annotated[Subject, Depends(require(Action.CHILD_EXPORT))]
LocationReader = Annotated[Subject, Depends(require(Action.LOCATION_READ))]
IfMatch = Annotated[str | None, Header(description="The ETag of the version being changed")]
Purpose = Annotated[str | None, Query(description="What the read serves: case:<uuid> or task:<uuid>")]


def dump_json(content: Any) -> bytes:
    # asyncpg hands back its own UUID type, which orjson does not know: `str` writes it as the UUID text.
    return orjson.dumps(content, default=str)


def child_response(view: dict[str, Any], child: Child, status_code: int = 200,
                   headers: dict[str, str] | None = None) -> Response:
    """A `ChildView` as JSON with the record's ETag."""
    return Response(dump_json(view), status_code=status_code, media_type="application/json",
                    headers={"ETag": service.etag(child), "Content-Location": public_path(f"/v1/children/{child.id}"),
                             **(headers or {})})


# --- children --------------------------------------------------------------------------------------------------


@router.post("/children", response_model=ChildView, status_code=201, tags=["children"], responses=PROBLEMS)
async def create_child(session: DbSession, subject: ChildCreator, body: ChildCreate) -> Response:
    """Register a child (409 with candidates when a likely duplicate exists)."""
    child = await service.create_child(session, subject, body)
    scope = service.access_scope(subject, Action.CHILD_READ) or service.access_scope(subject, Action.CHILD_CREATE)
    return child_response(service.project(child, subject, scope), child, 201,
                          {"Location": public_path(f"/v1/children/{child.id}")})


@router.get("/children", response_model=Page[ChildView], tags=["children"], responses=PROBLEMS)
async def list_children(
    session: DbSession,
    subject: ChildSearcher,
    q: Annotated[str | None, Query(max_length=100, description="Name (accents optional), ID number, date of "
                                                              "birth or guardian phone")] = None,
    birth_year: Annotated[int | None, Query(ge=1990, le=2100)] = None,
    commune_code: Annotated[str | None, Query(pattern=r"^\d{5}$")] = None,
    province_code: Annotated[str | None, Query(pattern=r"^\d{2}$")] = None,
    special_group: GroupLetter | None = None,
    status: ChildStatus | None = None,
    age_min: Annotated[int | None, Query(ge=0, le=30)] = None,
    age_max: Annotated[int | None, Query(ge=0, le=30)] = None,
    birth_registered: bool | None = None,
    has_health_insurance: bool | None = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """Children in your jurisdiction, by name order, with filters; the hotline may only match (name + birth year,
    or ID number) and sees a few fields."""
    filters = service.ChildFilters(q=q, birth_year=birth_year, commune_code=commune_code,
                                   province_code=province_code, special_group=special_group, status=status,
                                   age_min=age_min, age_max=age_max, birth_registered=birth_registered,
                                   has_health_insurance=has_health_insurance)
    items, next_cursor = await service.list_children(session, subject, filters, cursor, limit)
    return Response(dump_json({"items": items, "next_cursor": next_cursor}), media_type="application/json")


@router.get("/children/export", tags=["children"], responses=PROBLEMS,
            response_class=PlainResponse, summary="A commune's children as CSV or XLSX")
async def export(session: DbSession, subject: Exporter,
                 commune_code: Annotated[str, Query(pattern=r"^\d{5}$")],
                 format: Literal["csv", "xlsx"] = "csv") -> PlainResponse:
    children = await service.export_rows(session, subject, commune_code)
    content = await anyio.to_thread.run_sync(export_children, children, format)
    media = "text/csv; charset=utf-8" if format == "csv" else \
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return PlainResponse(content, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="children-{commune_code}.{format}"'})


@router.get("/children/{child_id}", response_model=ChildView, tags=["children"], responses=PROBLEMS)
async def get_child(request: Request, session: DbSession, subject: ChildReader, child_id: uuid.UUID,
                    purpose: Purpose = None) -> Response:
    """A child record as your agency may see it. A merged id answers with the surviving record. Another agency
    names the case or task it acts on (`purpose`), and sees the child only when that case is about the child and
    involves the agency (503 while the cases service cannot confirm it)."""
    child, view = await service.get_child(session, subject, child_id, purpose, request.app.state.cases)
    return child_response(view, child)


@router.patch("/children/{child_id}", response_model=ChildView, tags=["children"], responses=PROBLEMS)
async def update_child(session: DbSession, subject: ChildUpdater, child_id: uuid.UUID, body: ChildUpdate,
                       if_match: IfMatch = None) -> Response:
    """Change some fields; send If-Match with the ETag you read (428 without it, 412 if someone changed it)."""
    child = await service.update_child(session, subject, child_id, body, if_match)
    view = service.project(child, subject, service.access_scope(subject, Action.CHILD_READ),
                           merged_ids=await service.merged_ids(session, child.id))
    return child_response(view, child)


@router.get("/children/{child_id}/history", response_model=Page[RevisionRead], tags=["children"],
            responses=PROBLEMS)
async def child_history(session: DbSession, subject: HistoryReader, child_id: uuid.UUID,
                        cursor: Annotated[str | None, Query(max_length=200)] = None,
                        limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Page[RevisionRead]:
    """Every change, newest first: who, when, which fields, old and new values."""
    rows, next_cursor = await service.history(session, subject, child_id, cursor, limit)
    return Page[RevisionRead](items=[RevisionRead.model_validate(r, from_attributes=True) for r in rows],
                              next_cursor=next_cursor)


@router.post("/children/{child_id}/merge", response_model=ChildView, tags=["children"], responses=PROBLEMS)
async def merge_children(session: DbSession, subject: ChildMerger, child_id: uuid.UUID, body: MergeRequest,
                         if_match: IfMatch = None) -> Response:
    """Retire `merged_child_id` into this record; both ids keep resolving to this one."""
    child = await service.merge_children(session, subject, child_id, body.merged_child_id, if_match)
    view = service.project(child, subject, service.access_scope(subject, Action.CHILD_READ),
                           merged_ids=await service.merged_ids(session, child.id))
    return child_response(view, child)


# --- imports ---------------------------------------------------------------------------------------------------


def import_view(job: ImportJob) -> ImportJobRead:
    return ImportJobRead.model_validate(
        {**job.model_dump(), "errors_url": public_path(f"/v1/imports/{job.id}/errors")})


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1 << 20):
        yield chunk


@router.post("/imports", response_model=ImportJobRead, status_code=202, tags=["imports"], responses=PROBLEMS)
async def start_import(
    request: Request,
    session: DbSession,
    subject: Importer,
    background: BackgroundTasks,
    response: Response,
    file: Annotated[UploadFile, File(description="CSV (UTF-8) or XLSX; the first row names the columns")],
    mode: Annotated[ImportMode, Form()] = "all_or_nothing",
    mapping: Annotated[str | None, Form(description='JSON: {"full_name": "Ho va ten", ...}')] = None,
    encoding: Annotated[FileEncoding, Form()] = "utf-8",
) -> ImportJobRead:
    """Upload a list; it is validated and imported in the background. Poll the job for progress."""
    settings = request.app.state.settings
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.import_max_bytes + 100_000:
        raise PayloadTooLarge(f"the file may be at most {settings.import_max_bytes} bytes")
    columns = parse_mapping(mapping)
    runner: ImportRunner = request.app.state.imports
    job_id = uuid.uuid4()
    size, digest, head = await save_upload(_chunks(file), runner.path(job_id), settings.import_max_bytes)
    if size == 0:
        await anyio.Path(runner.path(job_id)).unlink(missing_ok=True)
        raise UnprocessableContent("the file is empty")
    job = ImportJob(id=job_id, created_by=subject.id, actor_role=subject.role.value,
                    actor_agency=subject.agency.value, jurisdiction=subject.jurisdiction.model_dump(),
                    file_format=sniff_format(head, file.filename), file_sha256=digest, file_size=size, mode=mode,
                    mapping=columns)
    session.add(job)
    await session.flush()
    await audit.record(session, subject, "import", "import_job", str(job_id))
    # Starts after the response, hence after the commit: the job row is there when the task reads it.
    background.add_task(runner.start, job_id, encoding)
    response.headers["Location"] = public_path(f"/v1/imports/{job_id}")
    return import_view(job)


def parse_mapping(mapping: str | None) -> dict[str, str]:
    if not mapping:
        return {}
    try:
        columns = orjson.loads(mapping)
    except orjson.JSONDecodeError as exc:
        raise UnprocessableContent("mapping must be a JSON object {field: column header}") from exc
    if not isinstance(columns, dict) or not all(isinstance(v, str) and v.strip() and not CONTROL_CHARACTERS.search(v)
                                                for v in columns.values()):
        raise UnprocessableContent("mapping must be a JSON object {field: column header}")
    unknown = sorted(set(columns) - set(IMPORT_FIELDS))
    if unknown:
        raise UnprocessableContent(f"unknown fields in mapping: {', '.join(unknown)}",
                                   fields=list(IMPORT_FIELDS))
    return {str(k): str(v)[:200] for k, v in columns.items()}


@router.get("/imports/{job_id}", response_model=ImportJobRead, tags=["imports"], responses=PROBLEMS)
async def get_import(session: DbSession, subject: Importer, job_id: uuid.UUID) -> ImportJobRead:
    """Progress (rows done of total) and outcome of an import you started."""
    job = await job_for(session, subject, job_id)
    if job is None:
        raise NotFound("no such import")
    return import_view(job)


@router.get("/imports/{job_id}/errors", tags=["imports"], responses=PROBLEMS, response_class=PlainResponse,
            summary="The row-by-row error report, as CSV")
async def import_errors(session: DbSession, subject: Importer, job_id: uuid.UUID) -> PlainResponse:
    job = await job_for(session, subject, job_id)
    if job is None:
        raise NotFound("no such import")
    problems = (await session.execute(
        select(ImportRowError.row_number, ImportRowError.field, ImportRowError.message)
        .where(ImportRowError.job_id == job_id).order_by(ImportRowError.row_number, ImportRowError.id))).all()
    rows = [[str(p.row_number), p.field, job.mapping.get(p.field, p.field), p.message] for p in problems]
    if job.failure:
        rows.insert(0, ["", "file", "", job.failure])
    body = to_csv([[neutralise(cell) for cell in row] for row in rows], ["row", "field", "column", "problem"])
    return PlainResponse(body, media_type="text/csv; charset=utf-8",
                         headers={"Content-Disposition": f'attachment; filename="import-{job_id}-errors.csv"'})


# --- locations -------------------------------------------------------------------------------------------------


@router.get("/locations/provinces", response_model=list[ProvinceRead], tags=["locations"])
async def list_provinces(_: LocationReader) -> list[ProvinceRead]:
    """The 34 provinces and centrally-run cities (since 1 July 2025)."""
    return [ProvinceRead(**vars(p)) for p in sorted(provinces().values(), key=lambda p: p.code)]


@router.get("/locations/provinces/{code}/communes", response_model=list[CommuneRead], tags=["locations"],
            responses=PROBLEMS)
async def list_communes(_: LocationReader, code: str) -> list[CommuneRead]:
    if code not in provinces():
        raise NotFound("no such province")
    return [CommuneRead(**vars(c)) for c in sorted(communes().values(), key=lambda c: c.code)
            if c.province_code == code]


@router.get("/locations/communes/{code}", response_model=CommuneRead, tags=["locations"], responses=PROBLEMS)
async def get_commune(_: LocationReader, code: str) -> CommuneRead:
    commune = communes().get(code)
    if commune is None:
        raise NotFound("no such commune")
    return CommuneRead(**vars(commune))


@router.get("/locations/convert", response_model=AddressConversion, tags=["locations"], responses=PROBLEMS)
async def convert(_: LocationReader,
                  address: Annotated[str, Query(min_length=3, max_length=300,
                                                description="Old address: ward, district, province")]
                  ) -> AddressConversion:
    """Map a pre-2025 address (with its district) onto the current commune."""
    result = await anyio.to_thread.run_sync(convert_old_address, address)
    if result.province is None:
        raise NotFound("no province recognised in this address")
    return result

