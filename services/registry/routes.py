"""Registry HTTP routes: HTTP only; the rules live in `service.py` and `imports.py`."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
import orjson
from fastapi import APIRouter, BackgroundTasks, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import Response as PlainResponse

from services.common.auth import Subject, require
from services.common.db import DbSession
from services.common.errors import (
    BadRequest,
    FieldError,
    NotFound,
    PayloadTooLarge,
    UnprocessableContent,
    problem_responses,
)
from services.common.links import public_path
from services.common.locations import communes, provinces
from services.common.pagination import MAX_PAGE_SIZE, Page
from services.common.permissions import Action, Scope
from services.common.preconditions import IfMatch, conditional
from services.common.sync import MAX_SYNC_PAGE
from services.registry import imports, service, sync
from services.registry.addresses import convert_old_address
from services.registry.export import Labels, export_children, neutralise, to_csv
from services.registry.imports import ImportRunner
from services.registry.models import Child, ImportJob
from services.registry.schemas import (
    AddressConversion,
    ChildChange,
    ChildChangePage,
    ChildCreate,
    ChildUpdate,
    ChildView,
    CommuneRead,
    FileEncoding,
    ImportJobRead,
    ImportMode,
    MergeRequest,
    ProvinceRead,
    RevisionRead,
)
from services.registry.vocabulary import ChildStatus, SpecialGroup

router = APIRouter(prefix="/v1")

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
Purpose = Annotated[str | None, Query(max_length=45, description="What the read serves: case:<uuid> or task:<uuid>")]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
    description="Makes a retry safe: the same key and body answer the child the first request created")]
Cursor = Annotated[str | None, Query(max_length=1000, description="`next_cursor` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


def dump_json(content: Any) -> bytes:
    # asyncpg hands back its own UUID type, which orjson does not know: `str` writes it as the UUID text.
    return orjson.dumps(content, default=str)


def child_response(view: dict[str, Any], child: Child, status_code: int = 200,
                   headers: dict[str, str] | None = None) -> Response:
    """A `ChildView` as JSON with the record's ETag."""
    return Response(dump_json(view), status_code=status_code, media_type="application/json",
                    headers={"ETag": service.etag(child), "Content-Location": public_path(f"/v1/children/{child.id}"),
                             **(headers or {})})


XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- children --------------------------------------------------------------------------------------------------


@router.post("/children", response_model=ChildView, status_code=201, tags=["children"],
             responses={**problem_responses(400, 401, 403, 404, 409, 422, 503), 200: {
                 "model": ChildView, "description": "A retry: the child the first request with this Idempotency-Key "
                                                    "created (header Idempotent-Replayed: true)"}})
async def create_child(session: DbSession, subject: ChildCreator, body: ChildCreate,
                       idempotency_key: IdempotencyKey = None) -> Response:
    """Register a child (409 with candidates when a likely duplicate exists)."""
    child, created = await service.create_child(session, subject, body, idempotency_key)
    scope = service.access_scope(subject, Action.CHILD_READ) or service.access_scope(subject, Action.CHILD_CREATE)
    headers = ({"Location": public_path(f"/v1/children/{child.id}")}
               | ({} if created else {"Idempotent-Replayed": "true"}))
    return child_response(service.project(child, subject, scope), child, 201 if created else 200, headers)


@router.get("/children", response_model=Page[ChildView], tags=["children"],
            responses=problem_responses(400, 401, 403, 422, 429, 503))
async def list_children(
    request: Request,
    session: DbSession,
    subject: ChildSearcher,
    q: Annotated[str | None, Query(max_length=100, description="Name (accents optional), ID number, date of "
                                                              "birth or guardian phone")] = None,
    first_name: Annotated[str | None, Query(max_length=60, description="Hotline match: the whole given name")] = None,
    birth_year: Annotated[int | None, Query(ge=1990, le=2100)] = None,
    age: Annotated[int | None, Query(ge=0, le=17, description="Hotline match: approximate age (±1 year)")] = None,
    commune_code: Annotated[str | None, Query(pattern=r"^[0-9]{5}$")] = None,
    province_code: Annotated[str | None, Query(pattern=r"^[0-9]{2}$")] = None,
    special_group: SpecialGroup | None = None,
    status: ChildStatus | None = None,
    age_min: Annotated[int | None, Query(ge=0, le=30)] = None,
    age_max: Annotated[int | None, Query(ge=0, le=30)] = None,
    birth_registered: bool | None = None,
    has_health_insurance: bool | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """Children in your jurisdiction, by name order, with filters. The hotline only matches: a 12-digit ID number
    (`q`), or `first_name` + `age` or `birth_year` + `commune_code` or `province_code`; at most 5 candidates with a
    few fields, a limited number of searches an hour."""
    if service.access_scope(subject, Action.CHILD_SEARCH) == Scope.MATCH:
        hidden = (special_group, status, age_min, age_max, birth_registered, has_health_insurance, cursor)
        if any(value is not None for value in hidden):
            # Other filters would reveal what the match fields hide (a group, a status, registration, insurance).
            raise BadRequest("the match search takes only q, first_name, age, birth_year, commune_code and "
                             "province_code")
        match = service.MatchQuery(q=q, first_name=first_name, birth_year=birth_year, age=age,
                                   commune_code=commune_code, province_code=province_code)
        items = await service.match_children(session, subject, match,
                                             request.app.state.settings.match_searches_per_hour)
        return Response(dump_json({"items": items, "next_cursor": None}), media_type="application/json")
    if first_name is not None or age is not None:
        raise BadRequest("first_name and age belong to the hotline's match; use q, age_min and age_max")
    filters = service.ChildFilters(q=q, birth_year=birth_year, commune_code=commune_code,
                                   province_code=province_code, special_group=special_group, status=status,
                                   age_min=age_min, age_max=age_max, birth_registered=birth_registered,
                                   has_health_insurance=has_health_insurance)
    items, next_cursor = await service.list_children(session, subject, filters, cursor, limit)
    return Response(dump_json({"items": items, "next_cursor": next_cursor}), media_type="application/json")


@router.get("/children/export", tags=["children"], response_class=PlainResponse,
            responses={**problem_responses(400, 401, 403, 404, 422, 503), 200: {
                "description": "The children as CSV (`format=csv`) or XLSX (`format=xlsx`)",
                "content": {"text/csv": {"schema": {"type": "string"}},
                            XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}},
            summary="A commune's children as CSV or XLSX")
async def export_children_list(
    session: DbSession, subject: Exporter, commune_code: Annotated[str, Query(pattern=r"^[0-9]{5}$")],
    format: Literal["csv", "xlsx"] = "csv",
    labels: Annotated[Labels, Query(description="vi: Vietnamese headers and labels; codes: field codes and codes")]
    = "vi",
) -> PlainResponse:
    children = await service.export_rows(session, subject, commune_code)
    content = await anyio.to_thread.run_sync(export_children, children, format, labels, service.today())
    media = "text/csv; charset=utf-8" if format == "csv" else XLSX_MEDIA_TYPE
    return PlainResponse(content, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="children-{commune_code}.{format}"'})


@router.get("/children/{child_id}", response_model=ChildView, tags=["children"],
            responses={**problem_responses(400, 401, 403, 404, 422, 503),
                       304: {"description": "Not modified: the ETag in If-None-Match is current"}})
async def get_child(request: Request, session: DbSession, subject: ChildReader, child_id: uuid.UUID,
                    purpose: Purpose = None) -> Response:
    """A child record as you may see it. A merged id answers with the surviving record. Another agency names the
    case or task it acts on (`purpose`), and sees the child only when that case is about the child and involves the
    agency; a commune officer or chairman reads a child of another commune when naming a case their commune leads
    (503 while the cases service cannot confirm it)."""
    child, view = await service.get_child(session, subject, child_id, purpose, request.app.state.cases)
    unchanged = conditional(request, service.etag(child))
    if unchanged is not None:
        return unchanged
    return child_response(view, child)


@router.patch("/children/{child_id}", response_model=ChildView, tags=["children"],
              responses=problem_responses(400, 401, 403, 404, 409, 412, 422, 428, 503))
async def update_child(session: DbSession, subject: ChildUpdater, child_id: uuid.UUID, body: ChildUpdate,
                       if_match: IfMatch = None) -> Response:
    """Change some fields; send If-Match with the ETag you read (428 without it, 412 if someone changed it)."""
    child = await service.update_child(session, subject, child_id, body, if_match)
    view = service.project(child, subject, service.access_scope(subject, Action.CHILD_READ),
                           merged_ids=await service.merged_ids(session, child.id))
    return child_response(view, child)


@router.get("/children/{child_id}/history", response_model=Page[RevisionRead], tags=["children"],
            responses=problem_responses(400, 401, 403, 404, 422, 503))
async def list_child_history(session: DbSession, subject: HistoryReader, child_id: uuid.UUID,
                             cursor: Cursor = None, limit: Limit = 50) -> Page[RevisionRead]:
    """Every change, newest first: who, when, which fields, old and new values."""
    rows, next_cursor = await service.history(session, subject, child_id, cursor, limit)
    return Page[RevisionRead](items=[RevisionRead.model_validate(r, from_attributes=True) for r in rows],
                              next_cursor=next_cursor)


@router.post("/children/{child_id}/merge", response_model=ChildView, tags=["children"],
             responses=problem_responses(400, 401, 403, 404, 409, 412, 422, 428, 503))
async def merge_children(session: DbSession, subject: ChildMerger, child_id: uuid.UUID, body: MergeRequest,
                         if_match: IfMatch = None) -> Response:
    """Retire `merged_child_id` into this record; both ids keep resolving to this one. If-Match (the ETag of this
    record as you compared it) is required: 428 without it, 412 when it changed since."""
    child = await service.merge_children(session, subject, child_id, body.merged_child_id, if_match)
    view = service.project(child, subject, service.access_scope(subject, Action.CHILD_READ),
                           merged_ids=await service.merged_ids(session, child.id))
    return child_response(view, child)


@router.get("/sync/children", response_model=ChildChangePage, tags=["sync"],
            responses=problem_responses(400, 401, 403, 410, 422, 503,
                                        s410="The cursor is another identity's (user, role, place): sync from the "
                                             "start"),
            summary="Offline sync: the children you can list that changed since the cursor, or their tombstones")
async def sync_children(
    session: DbSession, subject: ChildSearcher,
    cursor: Annotated[str | None, Query(max_length=1000, description="`next_cursor` of the last page applied; none "
                                                                     "for a first sync")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SYNC_PAGE, description="Changes read at most")] = 50,
) -> Response:
    """Apply the items in order: an item with `deleted` removes the child from the replica (`merged_into` names the
    record that took a merged one's place), any other replaces it whole. Keep `next_cursor` with the replica once
    the page is applied, and ask again at once while `has_more`."""
    page = await sync.changes(session, subject, cursor, limit)
    items = [
        ChildChange(id=c.child_id, deleted=False, etag=c.etag).model_dump(mode="json") | {"record": c.view}
        if c.view is not None else
        ChildChange(id=c.child_id, deleted=True, reason=c.reason, merged_into=c.merged_into).model_dump(mode="json")
        for c in page.changes
    ]
    return Response(dump_json({"items": items, "next_cursor": page.next_cursor, "has_more": page.has_more}),
                    media_type="application/json")


# --- imports ---------------------------------------------------------------------------------------------------


def import_view(job: ImportJob) -> ImportJobRead:
    return ImportJobRead.model_validate(
        {**job.model_dump(), "errors_url": public_path(f"/v1/imports/{job.id}/errors")})


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1 << 20):
        yield chunk


@router.post("/imports", response_model=ImportJobRead, status_code=202, tags=["imports"],
             responses=problem_responses(400, 401, 403, 413, 422, 503))
async def start_import(
    request: Request,
    session: DbSession,
    subject: Importer,
    background: BackgroundTasks,
    response: Response,
    file: Annotated[UploadFile, File(description="CSV (UTF-8) or XLSX; the first row names the columns")],
    mode: Annotated[ImportMode, Form()] = "all_or_nothing",
    mapping: Annotated[str | None, Form(description='JSON: {"full_name": "Họ và tên", ...}')] = None,
    encoding: Annotated[FileEncoding, Form()] = "utf-8",
) -> ImportJobRead:
    """Upload a list; it is validated and imported in the background. Poll the job for progress."""
    settings = request.app.state.settings
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.import_max_bytes + 100_000:
        raise PayloadTooLarge(f"the file may be at most {settings.import_max_bytes} bytes")
    columns = imports.parse_mapping(mapping)
    runner: ImportRunner = request.app.state.imports
    job_id = uuid.uuid4()
    size, digest, head = await imports.save_upload(_chunks(file), runner.path(job_id), settings.import_max_bytes)
    if size == 0:
        await anyio.Path(runner.path(job_id)).unlink(missing_ok=True)
        raise UnprocessableContent("the file is empty", errors=[
            FieldError(loc=["body", "file"], msg="is empty", type="file.empty").model_dump()])
    job = await imports.create_job(session, subject, job_id, file_format=imports.sniff_format(head, file.filename),
                                   digest=digest, size=size, mode=mode, mapping=columns)
    # Starts after the response, hence after the commit: the job row is there when the task reads it.
    background.add_task(runner.start, job_id, encoding, imports.queue_key(job.jurisdiction))
    response.headers["Location"] = public_path(f"/v1/imports/{job_id}")
    return import_view(job)


@router.get("/imports/{job_id}", response_model=ImportJobRead, tags=["imports"],
            responses=problem_responses(400, 401, 403, 404, 422, 503))
async def get_import(session: DbSession, subject: Importer, job_id: uuid.UUID) -> ImportJobRead:
    """Progress (rows done of total) and outcome of an import you started."""
    job = await imports.job_for(session, subject, job_id)
    if job is None:
        raise NotFound("no such import")
    return import_view(job)


@router.get("/imports/{job_id}/errors", tags=["imports"], response_class=PlainResponse,
            responses={**problem_responses(400, 401, 403, 404, 422, 503), 200: {
                "description": "One line per refused row", "content": {"text/csv": {"schema": {"type": "string"}}}}},
            summary="The row-by-row error report, as CSV")
async def get_import_errors(session: DbSession, subject: Importer, job_id: uuid.UUID) -> PlainResponse:
    job = await imports.job_for(session, subject, job_id)
    if job is None:
        raise NotFound("no such import")
    rows = await imports.error_report(session, job)
    body = to_csv([[neutralise(cell) for cell in row] for row in rows], ["row", "field", "column", "problem"])
    return PlainResponse(body, media_type="text/csv; charset=utf-8",
                         headers={"Content-Disposition": f'attachment; filename="import-{job_id}-errors.csv"'})


# --- locations -------------------------------------------------------------------------------------------------


@router.get("/locations/provinces", response_model=list[ProvinceRead], tags=["locations"],
            responses=problem_responses(400, 401, 403))
async def list_provinces(_: LocationReader) -> list[ProvinceRead]:
    """The 34 provinces and centrally-run cities (since 1 July 2025)."""
    return [ProvinceRead(**vars(p)) for p in sorted(provinces().values(), key=lambda p: p.code)]


@router.get("/locations/provinces/{code}/communes", response_model=list[CommuneRead], tags=["locations"],
            responses=problem_responses(400, 401, 403, 404))
async def list_communes(_: LocationReader, code: str) -> list[CommuneRead]:
    if code not in provinces():
        raise NotFound("no such province")
    return [CommuneRead(**vars(c)) for c in sorted(communes().values(), key=lambda c: c.code)
            if c.province_code == code]


@router.get("/locations/communes/{code}", response_model=CommuneRead, tags=["locations"],
            responses=problem_responses(400, 401, 403, 404))
async def get_commune(_: LocationReader, code: str) -> CommuneRead:
    commune = communes().get(code)
    if commune is None:
        raise NotFound("no such commune")
    return CommuneRead(**vars(commune))


@router.get("/locations/convert", response_model=AddressConversion, tags=["locations"],
            responses=problem_responses(400, 401, 403, 404, 422))
async def convert_address(_: LocationReader,
                          address: Annotated[str, Query(min_length=3, max_length=300,
                                                        description="Old address: ward, district, province")]
                          ) -> AddressConversion:
    """Map a pre-2025 address (with its district) onto the current commune."""
    result = await anyio.to_thread.run_sync(convert_old_address, address)
    if result.province is None:
        raise NotFound("no province recognised in this address")
    return result
