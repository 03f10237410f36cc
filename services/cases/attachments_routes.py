"""Attachments HTTP routes. HTTP only: the logic is in `attachments.py`, access control in `access.py`.

Uploads are read as they arrive, never whole: `FormStream` parses multipart/form-data incrementally (the fields
first, then the file, streamed on), and a part of a resumable upload is the raw request body. The gateway lifts its
body limit on these two routes only.
"""

import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from python_multipart.multipart import MultipartParser, parse_options_header

from services.cases import attachments
from services.cases.attachments import (
    AttachmentFields,
    AttachmentKind,
    AttachmentRead,
    DecisionForm,
    Deletion,
    DownloadLink,
    LegalHold,
    UploadCreate,
    UploadRead,
    attachment_etag,
    attachment_read,
    content_headers,
)
from services.cases.attachments_content import MediaType
from services.cases.settings import CasesSettings
from services.cases.vocabulary import NoteVisibility
from services.common.auth import Subject, require
from services.common.db import Database, DbSession
from services.common.errors import AppError, BadRequest, problem_responses
from services.common.links import public_path
from services.common.pagination import MAX_PAGE_SIZE, Page
from services.common.permissions import Action
from services.common.preconditions import IfMatch
from services.common.storage import ObjectStore

router = APIRouter(prefix="/v1", tags=["attachments"])

Uploader = Annotated[Subject, Depends(require(Action.ATTACHMENT_UPLOAD))]
Reader = Annotated[Subject, Depends(require(Action.ATTACHMENT_READ))]
Deleter = Annotated[Subject, Depends(require(Action.ATTACHMENT_DELETE))]
Holder = Annotated[Subject, Depends(require(Action.ATTACHMENT_HOLD))]
MAX_FIELD_BYTES = 4096
MAX_FIELDS = 10


class UnsupportedMediaType(AppError):
    status, title, type_suffix = 415, "Unsupported media type", "unsupported-media-type"


def _database(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


def _store(request: Request) -> ObjectStore:
    store: ObjectStore = request.app.state.object_store
    return store


def _settings(request: Request) -> CasesSettings:
    settings: CasesSettings = request.app.state.settings
    return settings


Db = Annotated[Database, Depends(_database)]
Store = Annotated[ObjectStore, Depends(_store)]
Settings = Annotated[CasesSettings, Depends(_settings)]

UPLOAD_FORM = {
    "required": True,
    "content": {"multipart/form-data": {
        "schema": {
            "type": "object", "required": ["kind", "file"],
            "properties": {
                "kind": {"type": "string", "enum": [k.value for k in AttachmentKind]},
                "caption": {"type": "string", "maxLength": 1000},
                "visibility": {"type": "string", "enum": [v.value for v in NoteVisibility], "default": "managers"},
                "form_number": {"type": "string", "enum": [f.value for f in DecisionForm],
                                "description": "Required for a signed decision"},
                "filename": {"type": "string", "maxLength": 200},
                "file": {"type": "string", "format": "binary",
                         "description": "Last part: JPEG, PNG, HEIC, PDF or DOCX, told by its content"},
            },
        },
        "encoding": {"file": {"contentType": "application/octet-stream"}},
    }},
}
PART_BODY = {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                 "format": "binary"}}}}


class FormStream:
    """A multipart/form-data body read as it arrives: the text fields, which come first, then the file part, whose
    bytes are handed on as they come (nothing is spooled to disk or kept whole)."""

    def __init__(self, request: Request, idle_seconds: float):
        kind, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise UnsupportedMediaType("send the file as multipart/form-data: the fields, then `file`")
        self.events: deque[tuple[str, Any]] = deque()
        self.headers: dict[str, str] = {}
        self.header_field = b""
        self.header_value = b""
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": lambda: self.events.append(("end", None)),
        })
        self.source = aiter(attachments.idle_limited(request.stream(), idle_seconds))
        self.exhausted = False

    def _part_begin(self) -> None:
        self.headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def _header_end(self) -> None:
        self.headers[self.header_field.decode("latin-1").lower()] = self.header_value.decode("latin-1")
        self.header_field = self.header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", ""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self.events.append(("part", (name, b"filename" in options)))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self.events.append(("data", bytes(data[start:end])))

    async def _next(self) -> tuple[str, Any] | None:
        while not self.events:
            if self.exhausted:
                return None
            try:
                piece = await anext(self.source)
            except StopAsyncIteration:
                self.exhausted = True
                self.parser.finalize()
                continue
            try:
                self.parser.write(piece)
            except Exception as exc:  # the parser's own errors (python_multipart.exceptions) on a malformed body
                raise BadRequest("the multipart body is malformed") from exc
        return self.events.popleft()

    async def fields(self) -> AttachmentFields:
        values: dict[str, str] = {}
        name, buffer = "", bytearray()
        while (event := await self._next()) is not None:
            kind, value = event
            if kind == "part":
                name, is_file = value
                if is_file or name == "file":
                    try:
                        return AttachmentFields.model_validate(values)
                    except ValidationError as exc:
                        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(
                            include_url=False, include_context=False, include_input=False)]) from None
                if len(values) >= MAX_FIELDS:
                    raise BadRequest("too many form fields")
                buffer = bytearray()
            elif kind == "data":
                buffer += value
                if len(buffer) > MAX_FIELD_BYTES:
                    raise BadRequest(f"a form field holds at most {MAX_FIELD_BYTES} bytes")
            elif kind == "end":
                try:
                    values[name] = buffer.decode("utf-8")
                except UnicodeDecodeError:
                    raise BadRequest("form fields are UTF-8 text") from None
        raise RequestValidationError([{"loc": ("body", "file"), "msg": "Field required", "type": "missing"}])

    async def file(self) -> AsyncIterator[bytes]:
        while (event := await self._next()) is not None:
            kind, value = event
            if kind == "data":
                yield value
            elif kind == "end":
                break
        # Whatever follows the file must be the end of the body: one file per upload.
        while (event := await self._next()) is not None:
            if event[0] in ("part", "data"):
                raise BadRequest("send one file per upload, after the fields")


def _attachment_response(row: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(attachment_read(row).model_dump_json(), status_code=status, media_type="application/json",
                    headers={"ETag": attachment_etag(row)} | (headers or {}))


@router.post("/cases/{case_id}/attachments", response_model=AttachmentRead, status_code=201,
             openapi_extra={"requestBody": UPLOAD_FORM},
             responses=problem_responses(400, 401, 403, 404, 408, 413, 415, 422, 503),
             summary="Attach a file to a case in one request (multipart/form-data, streamed)")
async def upload_attachment(request: Request, subject: Uploader, database: Db, store: Store, settings: Settings,
                            case_id: uuid.UUID) -> Response:
    form = FormStream(request, settings.attachment_idle_seconds)
    fields = await form.fields()
    row = await attachments.upload(database, store, settings, subject, case_id, fields, form.file())
    return _attachment_response(row, 201, {"Location": public_path(f"/v1/attachments/{row.id}")})


@router.get("/cases/{case_id}/attachments", response_model=Page[AttachmentRead],
            responses=problem_responses(400, 401, 403, 404, 422), summary="The files of a case you may see")
async def list_attachments(
    session: DbSession, subject: Reader, case_id: uuid.UUID,
    include_deleted: Annotated[bool, Query(description="Also deleted files (case managers only)")] = False,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> Page[AttachmentRead]:
    rows, next_cursor = await attachments.list_attachments(session, subject, case_id, cursor=cursor, limit=limit,
                                                           include_deleted=include_deleted)
    return Page[AttachmentRead](items=[attachment_read(r) for r in rows], next_cursor=next_cursor)


@router.post("/cases/{case_id}/attachment-uploads", response_model=UploadRead, status_code=201,
             responses=problem_responses(400, 401, 403, 404, 413, 422, 503),
             summary="Start a resumable upload: then send its parts, in any order and again after a break")
async def start_attachment_upload(subject: Uploader, database: Db, store: Store, settings: Settings,
                                  case_id: uuid.UUID, body: UploadCreate) -> Response:
    upload = await attachments.start_upload(database, store, settings, subject, case_id, body)
    return Response(upload.model_dump_json(), status_code=201, media_type="application/json",
                    headers={"Location": public_path(f"/v1/attachment-uploads/{upload.id}")})


@router.get("/attachment-uploads/{upload_id}", response_model=UploadRead,
            responses=problem_responses(401, 403, 404, 422, 503),
            summary="Which parts of a resumable upload have arrived")
async def get_attachment_upload(subject: Uploader, database: Db, store: Store, upload_id: uuid.UUID) -> UploadRead:
    return await attachments.upload_status(database, store, subject, upload_id)


@router.put("/attachment-uploads/{upload_id}/parts/{number}", status_code=204, openapi_extra={"requestBody": PART_BODY},
            responses=problem_responses(400, 401, 403, 404, 408, 413, 422, 503),
            summary="Send one part (exactly `part_size` bytes; the last one the rest); sending it again replaces it")
async def upload_attachment_part(request: Request, subject: Uploader, database: Db, store: Store,
                                 settings: Settings, upload_id: uuid.UUID,
                                 number: Annotated[int, Path(ge=1, le=10_000)]) -> Response:
    await attachments.put_part(database, store, subject, upload_id, number,
                               attachments.idle_limited(request.stream(), settings.attachment_idle_seconds))
    return Response(status_code=204)


@router.post("/attachment-uploads/{upload_id}/complete", response_model=AttachmentRead, status_code=201,
             responses=problem_responses(401, 403, 404, 408, 409, 415, 422, 503),
             summary="Finish a resumable upload: the file is checked and attached (409 lists missing parts)")
async def finish_attachment_upload(subject: Uploader, database: Db, store: Store, settings: Settings,
                                   upload_id: uuid.UUID) -> Response:
    row = await attachments.finish_upload(database, store, settings, subject, upload_id)
    return _attachment_response(row, 201, {"Location": public_path(f"/v1/attachments/{row.id}")})


@router.delete("/attachment-uploads/{upload_id}", status_code=204,
               responses=problem_responses(401, 403, 404, 422, 503), summary="Give up a resumable upload")
async def cancel_attachment_upload(subject: Uploader, database: Db, store: Store, upload_id: uuid.UUID) -> Response:
    await attachments.abort_upload(database, store, subject, upload_id)
    return Response(status_code=204)


@router.get("/attachments/{attachment_id}", response_model=AttachmentRead,
            responses=problem_responses(401, 403, 404, 422), summary="A file's description (not its content)")
async def get_attachment(session: DbSession, subject: Reader, attachment_id: uuid.UUID) -> Response:
    return _attachment_response(await attachments.get_attachment(session, subject, attachment_id))


def _content(download: attachments.Download) -> StreamingResponse:
    row = download.attachment
    return StreamingResponse(download.reader, media_type=row.media_type, headers=content_headers(row))


# One binary media type for client generators; the answer's Content-Type is the file's own, one of MediaType.
CONTENT = {200: {"description": "The file, decrypted as it streams; its Content-Type is the stored type: "
                                + ", ".join(media.value for media in MediaType),
                 "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.get("/attachments/{attachment_id}/content", response_class=StreamingResponse,
            responses=CONTENT | problem_responses(401, 403, 404, 422, 503), summary="Download a file")
async def download_attachment(subject: Reader, database: Db, store: Store, attachment_id: uuid.UUID) -> Response:
    return _content(await attachments.download(database, store, subject, attachment_id))


@router.post("/attachments/{attachment_id}/link", response_model=DownloadLink,
             responses=problem_responses(401, 403, 404, 422, 503),
             summary="A download link valid at most 5 minutes, for a viewer that cannot send the token")
async def create_attachment_link(session: DbSession, subject: Reader, store: Store, settings: Settings,
                                 attachment_id: uuid.UUID) -> DownloadLink:
    return await attachments.issue_link(session, store, settings, subject, attachment_id)


@router.get("/attachment-links/{token}", response_class=StreamingResponse,
            responses=CONTENT | problem_responses(404, 422, 503),
            summary="Download a file through a link from POST .../link (no token needed until it expires)")
async def download_attachment_by_link(database: Db, store: Store,
                                      token: Annotated[str, Path(max_length=2000)]) -> Response:
    subject, attachment_id = attachments.link_subject(store, token)
    return _content(await attachments.download(database, store, subject, attachment_id, via="link"))


@router.post("/attachments/{attachment_id}/delete", response_model=AttachmentRead,
             responses=problem_responses(400, 401, 403, 404, 409, 412, 422, 428),
             summary="Delete a file, with a reason; its bytes are purged after the retention period")
async def delete_attachment(session: DbSession, subject: Deleter, attachment_id: uuid.UUID, body: Deletion,
                            if_match: IfMatch = None) -> Response:
    return _attachment_response(await attachments.delete_attachment(session, subject, attachment_id, body, if_match))


@router.put("/attachments/{attachment_id}/legal-hold", response_model=AttachmentRead,
            responses=problem_responses(400, 401, 403, 404, 412, 422, 428),
            summary="Put a file under legal hold, or lift it: held files are never purged")
async def set_attachment_legal_hold(session: DbSession, subject: Holder, attachment_id: uuid.UUID,
                                    body: Annotated[LegalHold, Body()], if_match: IfMatch = None) -> Response:
    return _attachment_response(await attachments.set_legal_hold(session, subject, attachment_id, body, if_match))
