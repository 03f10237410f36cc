"""The papers' HTTP routes: a case's Decree 56 papers as PDF and DOCX, and the blank forms. HTTP only: the logic is
in `documents.py`, which also holds the need-to-know rules."""

import base64
import uuid
from enum import StrEnum
from typing import Annotated
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.cases import documents
from services.cases.documents_render import MEDIA_TYPES
from services.cases.schemas import DocumentRead, DocumentVersionRead
from services.cases.settings import CasesSettings
from services.common.auth import Subject, require
from services.common.db import DbSession
from services.common.errors import problem_responses
from services.common.links import public_path
from services.common.permissions import Action

router = APIRouter(prefix="/v1", tags=["documents"])

DocumentReader = Annotated[Subject, Depends(require(Action.DOCUMENT_READ))]
FormPrinter = Annotated[Subject, Depends(require(Action.FORM_PRINT))]


class Format(StrEnum):
    PDF = "pdf"
    DOCX = "docx"


# Both media types declared, so a generated client reads the answer as bytes of the type the path asks for.
CONTENT = {200: {"description": "The paper: PDF or DOCX, as the path's extension asks",
                 "content": {MEDIA_TYPES[fmt.value]: {"schema": {"type": "string", "format": "binary"}}
                             for fmt in Format}}}


def _settings(request: Request) -> CasesSettings:
    settings: CasesSettings = request.app.state.settings
    return settings


Settings = Annotated[CasesSettings, Depends(_settings)]


def _paper_response(content: bytes, fmt: Format, name: str, sha256: str) -> Response:
    """The bytes with their type, digest (RFC 9530) and a file name; never cached (a case paper is personal)."""
    filename = f"{name}.{fmt.value}"
    return Response(content, media_type=MEDIA_TYPES[fmt.value], headers={
        "Content-Disposition": f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename, safe='')}",
        "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(sha256)).decode()}:",
        "ETag": f'"{sha256}"', "Cache-Control": "private, no-store",
    })


def _file_stem(document: documents.CaseDocument, audience: str) -> str:
    reference = "".join(c if c.isascii() and c.isalnum() else "-" for c in document.reference.replace("Đ", "D"))
    return f"mau-{document.paper}-{reference}" + (f"-{audience}" if audience else "")


@router.get("/cases/{case_id}/documents", response_model=list[DocumentRead],
            responses=problem_responses(401, 403, 404, 422),
            summary="The case's Decree 56 papers (Mẫu số 01-07, the needs-meeting minutes) that you may see")
async def list_documents(session: DbSession, subject: DocumentReader, settings: Settings,
                         case_id: uuid.UUID) -> list[DocumentRead]:
    shown, versions = await documents.list_documents(session, subject, case_id, settings)
    base = f"/v1/cases/{case_id}/documents"
    return [
        DocumentRead(
            id=s.document.id, case_id=s.document.case_id, paper=s.document.paper,
            title=documents.paper_title(s.document.paper, settings.forms_template_dir), reference=s.document.reference,
            issued_on=s.document.issued_on, step_version=s.document.step_version, action=s.document.action,
            extract_for=s.audience or None,
            versions=[DocumentVersionRead(case_version=v.case_version, pdf_sha256=v.pdf_sha256,
                                          docx_sha256=v.docx_sha256, created_at=v.created_at)
                      for v in versions.get((s.document.id, s.audience), [])],
            pdf_url=public_path(f"{base}/{s.document.id}.pdf"), docx_url=public_path(f"{base}/{s.document.id}.docx"))
        for s in shown
    ]


@router.get("/cases/{case_id}/documents/{document_id}.{fmt}", response_class=Response,
            responses=CONTENT | problem_responses(401, 403, 404, 422),
            summary="A paper of the case as PDF or DOCX: from the case as it stands, or an earlier version")
async def get_document(
    session: DbSession, subject: DocumentReader, settings: Settings, case_id: uuid.UUID, document_id: uuid.UUID,
    fmt: Format,
    case_version: Annotated[int | None, Query(ge=1, le=2**31 - 1,
                                              description="A version listed for the paper (default: current)")] = None,
) -> Response:
    document, version = await documents.fetch(session, subject, case_id, document_id, fmt.value, case_version,
                                              settings)
    content, sha256 = (version.pdf, version.pdf_sha256) if fmt == Format.PDF else (version.docx, version.docx_sha256)
    return _paper_response(content, fmt, _file_stem(document, version.audience), sha256)


@router.get("/forms/{paper}/blank.{fmt}", response_class=Response,
            responses=CONTENT | problem_responses(401, 403, 422),
            summary="A blank paper form, to fill in by hand")
async def blank_form(subject: FormPrinter, settings: Settings,
                     paper: Annotated[documents.Paper, Path(description='"01" ... "07", or "03-minutes"')],
                     fmt: Format) -> Response:
    content = await anyio.to_thread.run_sync(documents.blank_form, paper.value, fmt.value, settings)
    return _paper_response(content, fmt, f"mau-{paper.value}-blank", documents.sha256(content))
