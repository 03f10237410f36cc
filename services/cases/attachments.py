"""Tài liệu kèm theo hồ sơ vụ việc: the files a case is made of (photos of injuries, medical certificates, police
records, school letters, the scans of signed decisions), kept encrypted in the object store.

How an upload stays consistent without a transaction across two systems (no orphan, nothing half-written):
1. a short database transaction checks the caller's reach on the case (404) and the store answers (503, fast);
2. the file streams through the type check and metadata removal (`attachments_content`) into the object store,
   encrypted, under a new key that starts with the time (`attachments/<UTC time>-<uuid>`); no database connection
   is held meanwhile;
3. a second short transaction writes the row, its audit line and its event; if it fails, the object is deleted.
A process killed between 2 and 3 leaves an object without a row: the sweeper (`sweep`) lists the keys written since
its last round (they sort by time) and deletes those no row names once they are older than the grace period.

Resumable uploads (a phone on a broken connection): a session is created with the file's size; parts of
`part_size` bytes are sent in any order and again after a break (S3 multipart underneath); one call finishes it, and
the assembled file goes through the same checks into the same kind of object as above.

Downloads: only after the case access check and the attachment's visibility (`access.readable_attachments`),
streamed through the API, or as a link to this service valid at most 5 minutes (the objects are encrypted by the
application, so the store's own presigned URLs would hand out ciphertext). Every upload, download and link is
audited: who, which file, which case. Events carry ids and kinds only, never file names or captions.
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases.access import manages_files, readable, readable_attachments
from services.cases.attachments_content import EXTENSIONS, Detected, MediaType, cleaned
from services.cases.forms import PlainText
from services.cases.models import Attachment, AttachmentUpload, Case, ObjectSweep, audit, outbox
from services.cases.settings import CasesSettings
from services.cases.vocabulary import NoteVisibility
from services.common.auth import Jurisdiction, Subject
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import AppError, Conflict, NotFound, PayloadTooLarge
from services.common.links import public_path
from services.common.logging import get_logger
from services.common.pagination import CursorTime, Keyset
from services.common.permissions import Action, Agency, Role
from services.common.preconditions import etag, require_match
from services.common.storage import (
    ObjectNotFound,
    ObjectReader,
    ObjectStore,
    ObjectStoreUnavailable,
    PartUpload,
    StoredObject,
)
from services.common.vocabulary import from_enum

logger = get_logger("attachments")
SYSTEM = Subject(id="cases:file-sweeper", role=Role.SERVICE, agency=Agency.SYSTEM,
                 jurisdiction=Jurisdiction(level="national"), token_id="")
FINAL, STAGING = "attachments/", "staging/"
SWEEP_LOCK = 0x0C_A7_7A_C4


class AttachmentKind(StrEnum):
    """Loại tài liệu."""

    EVIDENCE_PHOTO = "evidence_photo"
    MEDICAL = "medical"
    POLICE_RECORD = "police_record"
    SIGNED_DECISION = "signed_decision"
    OTHER = "other"


class DecisionForm(StrEnum):
    """The signed decisions of the procedure: Form 05, the chairman's decision approving the support plan (Decree 56
    Art. 28(4)); Form 07, the decision to separate the child temporarily (Art. 32(2))."""

    PLAN_APPROVAL = "05"
    SEPARATION = "07"


VOCABULARIES = [
    from_enum("attachment_kind", AttachmentKind, {
        "evidence_photo": ("Ảnh chứng cứ", "Evidence photo"),
        "medical": ("Giấy tờ y tế", "Medical document"),
        "police_record": ("Hồ sơ của công an", "Police record"),
        "signed_decision": ("Quyết định đã ký", "Signed decision"),
        "other": ("Tài liệu khác", "Other document"),
    }, vi="Loại tài liệu kèm theo", en="Kind of attachment"),
    from_enum("decision_form", DecisionForm, {
        "05": ("Mẫu số 05: Quyết định phê duyệt kế hoạch hỗ trợ, can thiệp",
               "Form 05: decision approving the support plan"),
        "07": ("Mẫu số 07: Quyết định tạm thời cách ly trẻ em", "Form 07: decision on temporary separation"),
    }, vi="Mẫu quyết định", en="Decision form", source="Nghị định 56/2017/NĐ-CP, Điều 28, 32"),
]

Caption = Annotated[str, Field(max_length=1000, description="What the file shows; personal data, never in events"),
                    PlainText]
FileName = Annotated[str, Field(min_length=1, max_length=200), PlainText]
Reason = Annotated[str, Field(min_length=1, max_length=1000), PlainText]


# ---------------------------------------------------------------------------------------------------- shapes


class AttachmentFields(BaseModel):
    """What an uploader says of a file (the form fields before the file, or the body of a session)."""

    model_config = ConfigDict(extra="forbid")

    kind: AttachmentKind
    caption: Caption = ""
    visibility: NoteVisibility = Field(NoteVisibility.MANAGERS, description="managers: the commune's people's "
                                       "committee only; participants: also the agencies with a task on the case")
    form_number: DecisionForm | None = Field(None, description="Required for a signed decision")
    filename: FileName | None = Field(None, description="The name on the phone or computer; never used for the type")

    @model_validator(mode="after")
    def _decisions_name_their_form(self) -> "AttachmentFields":
        if (self.kind == AttachmentKind.SIGNED_DECISION) != (self.form_number is not None):
            raise ValueError("a signed decision names its form number (05 or 07), other kinds none")
        return self


class UploadCreate(AttachmentFields):
    size: int = Field(gt=0, description="The file's size in bytes")


class AttachmentRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    kind: AttachmentKind
    form_number: DecisionForm | None
    caption: str
    visibility: NoteVisibility
    filename: str | None
    media_type: MediaType
    size: int
    sha256: str = Field(description="SHA-256 of the stored bytes (after the metadata was removed), hex")
    uploaded_at: datetime
    uploaded_by: str
    uploader_agency: str
    version: int
    deleted_at: datetime | None
    delete_reason: str | None
    legal_hold: bool
    hold_reason: str | None


class UploadRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    size: int
    part_size: int
    part_count: int
    received_parts: list[int] = Field(description="Parts stored whole; send the others, then complete")
    expires_at: datetime


class Deletion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class LegalHold(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hold: bool
    reason: Reason


class DownloadLink(BaseModel):
    url: str = Field(description="GET it without a token until it expires (at most 5 minutes)")
    expires_at: datetime


def attachment_read(row: Attachment) -> AttachmentRead:
    return AttachmentRead.model_validate(row, from_attributes=True)


def attachment_etag(row: Attachment) -> str:
    return etag(row.version)


# ---------------------------------------------------------------------------------------------------- helpers


class UploadTooSlow(AppError):
    status, title, type_suffix = 408, "Upload too slow", "upload-too-slow"


STAMP = "%Y%m%dT%H%M%S%fZ"
STAMP_LENGTH = 22


def stamp(moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%S%fZ}"


def object_key(prefix: str, now: datetime | None = None) -> str:
    """`<prefix><UTC time>-<uuid>`: keys sort by the time they were written (what the sweeper relies on)."""
    return f"{prefix}{stamp(now or utcnow())}-{uuid.uuid4()}"


def key_stamp(key: str, prefix: str) -> str:
    return key[len(prefix):len(prefix) + STAMP_LENGTH]


async def _case(session: AsyncSession, subject: Subject, case_id: uuid.UUID, action: Action) -> Case:
    case = (await session.execute(readable(subject, action).where(Case.id == case_id))).scalar_one_or_none()
    if case is None:
        raise NotFound("no such case")
    return case


async def _attachment(session: AsyncSession, subject: Subject, attachment_id: uuid.UUID, action: Action,
                      *, lock: bool = False) -> tuple[Attachment, Case]:
    query = readable_attachments(subject, action).where(Attachment.id == attachment_id,
                                                         Attachment.purged_at.is_(None))
    if lock:
        query = query.with_for_update(of=Attachment).execution_options(populate_existing=True)
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise NotFound("no such file")
    return row[0], row[1]


async def _forget(store: ObjectStore, key: str) -> None:
    """Delete an object whose row was not written; on failure the sweeper deletes it later."""
    try:
        await store.delete(key)
    except (ObjectStoreUnavailable, ObjectNotFound):
        logger.warning("object left for the sweeper")


def _event(row: Attachment, case: Case) -> dict[str, Any]:
    return {"attachment_id": str(row.id), "case_id": str(case.id), "kind": row.kind,
            "province_code": case.province_code, "commune_code": case.commune_code}


async def idle_limited(stream: AsyncIterable[bytes], idle_seconds: float) -> AsyncIterator[bytes]:
    """The request body, refused with 408 when the client sends nothing for `idle_seconds` (a stalled upload must
    not hold a part buffer)."""
    source = aiter(stream)
    while True:
        try:
            piece = await asyncio.wait_for(anext(source), idle_seconds)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadTooSlow(f"nothing arrived for {idle_seconds:g} s; resume with an upload session") from None
        if piece:
            yield piece


async def _store_cleaned(store: ObjectStore, settings: CasesSettings, key: str,
                         chunks: AsyncIterable[bytes]) -> tuple[StoredObject, MediaType]:
    detected = Detected()
    stored = await store.put(key, cleaned(chunks, detected, max_bytes=settings.attachment_max_bytes,
                                          max_pixels=settings.attachment_image_max_pixels))
    assert detected.media_type is not None
    return stored, detected.media_type


async def _record(database: Database, store: ObjectStore, settings: CasesSettings, subject: Subject,
                  case_id: uuid.UUID, fields: AttachmentFields, stored: StoredObject, media_type: MediaType,
                  started: datetime, session_id: uuid.UUID | None = None) -> Attachment:
    """Step 3: the row that makes the object exist. On any failure the object is deleted."""
    try:
        if (utcnow() - started).total_seconds() > settings.attachment_orphan_grace_seconds / 2:
            # The sweeper may already count this object as an orphan: never give it a row.
            raise UploadTooSlow("the upload took too long; send it again")
        async with database.unit_of_work() as session:
            case = await _case(session, subject, case_id, Action.ATTACHMENT_UPLOAD)
            row = Attachment(case_id=case.id, kind=fields.kind.value, caption=fields.caption,
                             form_number=fields.form_number.value if fields.form_number else None,
                             visibility=fields.visibility.value, filename=fields.filename, media_type=media_type.value,
                             size=stored.size, sha256=stored.sha256, object_key=stored.key, key_id=stored.key_id,
                             uploaded_at=utcnow(), uploaded_by=subject.id, uploader_role=subject.role.value,
                             uploader_agency=subject.agency.value)
            session.add(row)
            if session_id is not None:
                await session.execute(delete(AttachmentUpload).where(AttachmentUpload.id == session_id))
            await session.flush()
            outbox.emit(session, "attachment.added", _event(row, case), agency=subject.agency.value)
            await audit.record(session, subject, "upload", "attachment", str(row.id), purpose=f"case:{case.id}",
                               detail={"kind": row.kind, "size": row.size, "media_type": row.media_type})
    except BaseException:
        await _forget(store, stored.key)
        raise
    return row


# ---------------------------------------------------------------------------------------------------- uploads


async def upload(database: Database, store: ObjectStore, settings: CasesSettings, subject: Subject,
                 case_id: uuid.UUID, fields: AttachmentFields, chunks: AsyncIterable[bytes]) -> Attachment:
    """One request: the form fields, then the file, streamed into the store."""
    async with database.unit_of_work() as session:
        await _case(session, subject, case_id, Action.ATTACHMENT_UPLOAD)
    await store.check()
    started = utcnow()
    stored, media_type = await _store_cleaned(store, settings, object_key(FINAL, started), chunks)
    return await _record(database, store, settings, subject, case_id, fields, stored, media_type, started)


async def start_upload(database: Database, store: ObjectStore, settings: CasesSettings, subject: Subject,
                       case_id: uuid.UUID, body: UploadCreate) -> UploadRead:
    if body.size > settings.attachment_max_bytes:
        raise PayloadTooLarge(f"a file may be at most {settings.attachment_max_bytes} bytes")
    async with database.unit_of_work() as session:
        case = await _case(session, subject, case_id, Action.ATTACHMENT_UPLOAD)
    now = utcnow()
    parts = await store.start_upload(object_key(STAGING, now), body.size, settings.attachment_part_bytes)
    try:
        async with database.unit_of_work() as session:
            row = AttachmentUpload(
                case_id=case.id, created_by=subject.id, created_at=now,
                expires_at=now + timedelta(hours=settings.attachment_upload_hours), kind=body.kind.value,
                form_number=body.form_number.value if body.form_number else None, caption=body.caption,
                visibility=body.visibility.value, filename=body.filename, size=body.size,
                part_size=parts.part_size, staging_key=parts.key, token=parts.token())
            session.add(row)
            await session.flush()
            await audit.record(session, subject, "upload_started", "attachment_upload", str(row.id),
                               purpose=f"case:{case.id}", detail={"kind": row.kind, "size": row.size})
    except BaseException:
        await store.abort_upload(parts)
        raise
    return _upload_read(row, parts, [])


def _upload_read(row: AttachmentUpload, parts: PartUpload, received: list[int]) -> UploadRead:
    return UploadRead(id=row.id, case_id=row.case_id, size=row.size, part_size=row.part_size,
                      part_count=parts.part_count, received_parts=received, expires_at=row.expires_at)


async def _own_upload(database: Database, subject: Subject, upload_id: uuid.UUID) -> AttachmentUpload:
    """A session only its creator continues, while its case stays within reach."""
    async with database.unit_of_work() as session:
        row = (await session.execute(select(AttachmentUpload).where(
            AttachmentUpload.id == upload_id, AttachmentUpload.created_by == subject.id,
            AttachmentUpload.expires_at > utcnow()))).scalar_one_or_none()
        if row is None:
            raise NotFound("no such upload session, or it expired")
        await _case(session, subject, row.case_id, Action.ATTACHMENT_UPLOAD)
    return row


async def upload_status(database: Database, store: ObjectStore, subject: Subject, upload_id: uuid.UUID) -> UploadRead:
    row = await _own_upload(database, subject, upload_id)
    parts = PartUpload.from_token(row.token)
    return _upload_read(row, parts, await store.uploaded_parts(parts))


async def put_part(database: Database, store: ObjectStore, subject: Subject, upload_id: uuid.UUID, number: int,
                   chunks: AsyncIterable[bytes]) -> None:
    row = await _own_upload(database, subject, upload_id)
    parts = PartUpload.from_token(row.token)
    if not 1 <= number <= parts.part_count:
        raise NotFound(f"parts are numbered 1 to {parts.part_count}")
    await store.put_part(parts, number, chunks)


async def finish_upload(database: Database, store: ObjectStore, settings: CasesSettings, subject: Subject,
                        upload_id: uuid.UUID) -> Attachment:
    row = await _own_upload(database, subject, upload_id)
    parts = PartUpload.from_token(row.token)
    # ObjectNotFound: finished by an earlier call that stopped before its row; the assembled object is there.
    with contextlib.suppress(ObjectNotFound):
        await store.finish_upload(parts)
    reader = await store.open(row.staging_key)
    started = utcnow()
    stored, media_type = await _store_cleaned(store, settings, object_key(FINAL, started), reader)
    fields = AttachmentFields(kind=AttachmentKind(row.kind), caption=row.caption,
                              visibility=NoteVisibility(row.visibility),
                              form_number=DecisionForm(row.form_number) if row.form_number else None,
                              filename=row.filename)
    attachment = await _record(database, store, settings, subject, row.case_id, fields, stored, media_type,
                               started, session_id=row.id)
    await _forget(store, row.staging_key)
    return attachment


async def abort_upload(database: Database, store: ObjectStore, subject: Subject, upload_id: uuid.UUID) -> None:
    row = await _own_upload(database, subject, upload_id)
    await _drop_session(database, store, row, subject)


async def _drop_session(database: Database, store: ObjectStore, row: AttachmentUpload, actor: Subject) -> None:
    await store.abort_upload(PartUpload.from_token(row.token))
    async with database.unit_of_work() as session:
        await session.execute(delete(AttachmentUpload).where(AttachmentUpload.id == row.id))
        await audit.record(session, actor, "upload_dropped", "attachment_upload", str(row.id),
                           purpose=f"case:{row.case_id}")
    await _forget(store, row.staging_key)


# ---------------------------------------------------------------------------------------------------- reading


async def list_attachments(session: AsyncSession, subject: Subject, case_id: uuid.UUID, *, cursor: str | None,
                           limit: int, include_deleted: bool) -> tuple[list[Attachment], str | None]:
    case = await _case(session, subject, case_id, Action.ATTACHMENT_READ)
    query = readable_attachments(subject, Action.ATTACHMENT_READ).where(
        Attachment.case_id == case.id, Attachment.purged_at.is_(None))
    if not (include_deleted and manages_files(subject)):
        query = query.where(Attachment.deleted_at.is_(None))
    keyset: Keyset[Attachment] = Keyset((Attachment.uploaded_at, Attachment.id), (CursorTime, uuid.UUID),
                                        lambda a: (a.uploaded_at, a.id))
    rows = [row[0] for row in (await session.execute(keyset.query(query, cursor, limit))).all()]
    page, next_cursor = keyset.page(rows, limit)
    await audit.record(session, subject, "list", "attachment", [str(a.id) for a in page] or None,
                       purpose=f"case:{case.id}")
    return page, next_cursor


async def get_attachment(session: AsyncSession, subject: Subject, attachment_id: uuid.UUID) -> Attachment:
    row, case = await _attachment(session, subject, attachment_id, Action.ATTACHMENT_READ)
    if row.deleted_at is not None and not manages_files(subject):
        raise NotFound("no such file")
    await audit.record(session, subject, "read", "attachment", str(row.id), purpose=f"case:{case.id}")
    return row


@dataclass
class Download:
    attachment: Attachment
    reader: ObjectReader


async def download(database: Database, store: ObjectStore, subject: Subject, attachment_id: uuid.UUID,
                   *, via: str = "api") -> Download:
    """Open the file for the caller after the access check; the audit line commits only once the store answered."""
    async with database.unit_of_work() as session:
        row, case = await _attachment(session, subject, attachment_id, Action.ATTACHMENT_READ)
        if row.deleted_at is not None:
            raise NotFound("the file was deleted")
        reader = await store.open(row.object_key)
        try:
            await audit.record(session, subject, "download", "attachment", str(row.id), purpose=f"case:{case.id}",
                               detail={"via": via})
        except BaseException:
            await reader.close()
            raise
    return Download(row, reader)


def _sign(store: ObjectStore, payload: bytes, kid: str | None = None) -> tuple[str, bytes]:
    kid, key = store.keys.derive("attachment-link", kid)
    return kid, hmac.new(key, payload, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text_value: str) -> bytes:
    return base64.urlsafe_b64decode(text_value + "=" * (-len(text_value) % 4))


async def issue_link(session: AsyncSession, store: ObjectStore, settings: CasesSettings, subject: Subject,
                     attachment_id: uuid.UUID) -> DownloadLink:
    """A link to the file for `attachment_link_seconds` (at most 300), signed with a key derived from the master
    key; it names the caller, whose reach is checked again when it is used."""
    row, case = await _attachment(session, subject, attachment_id, Action.ATTACHMENT_READ)
    if row.deleted_at is not None:
        raise NotFound("the file was deleted")
    expires = utcnow() + timedelta(seconds=settings.attachment_link_seconds)
    claims = {"a": str(row.id), "s": subject.id, "r": subject.role.value, "g": subject.agency.value,
              "j": subject.jurisdiction.model_dump(exclude_none=True), "e": int(expires.timestamp())}
    payload = json.dumps(claims, separators=(",", ":")).encode()
    kid, signature = _sign(store, payload)
    token = f"{_b64(payload)}.{kid}.{_b64(signature)}"
    await audit.record(session, subject, "link", "attachment", str(row.id), purpose=f"case:{case.id}",
                       detail={"expires_at": expires.isoformat()})
    return DownloadLink(url=public_path(f"/v1/attachment-links/{token}"), expires_at=expires)


def link_subject(store: ObjectStore, token: str) -> tuple[Subject, uuid.UUID]:
    """The caller a link was issued to and its file; 404 for a link that is forged, damaged or expired."""
    try:
        encoded, kid, signature = token.split(".")
        payload = _unb64(encoded)
        if kid not in store.keys.keys or not hmac.compare_digest(_sign(store, payload, kid)[1], _unb64(signature)):
            raise ValueError("bad signature")
        claims = json.loads(payload)
        if claims["e"] < utcnow().timestamp():
            raise ValueError("expired")
        subject = Subject(id=claims["s"], role=Role(claims["r"]), agency=Agency(claims["g"]),
                          jurisdiction=Jurisdiction.model_validate(claims["j"]), token_id="link")
        return subject, uuid.UUID(claims["a"])
    except (ValueError, KeyError, TypeError) as exc:
        raise NotFound("no such link, or it expired") from exc


# ---------------------------------------------------------------------------------------------------- changes


async def delete_attachment(session: AsyncSession, subject: Subject, attachment_id: uuid.UUID, body: Deletion,
                            if_match: str | None) -> Attachment:
    """Soft delete with a reason: the file disappears from the case at once; its bytes are purged after the
    retention period unless a legal hold keeps them."""
    row, case = await _attachment(session, subject, attachment_id, Action.ATTACHMENT_DELETE, lock=True)
    require_match(if_match, attachment_etag(row), what="file")
    if row.deleted_at is not None:
        raise Conflict("the file is already deleted")
    row.deleted_at, row.deleted_by, row.delete_reason = utcnow(), subject.id, body.reason
    row.version += 1
    await session.flush()
    outbox.emit(session, "attachment.deleted", _event(row, case), agency=subject.agency.value)
    await audit.record(session, subject, "delete", "attachment", str(row.id), purpose=f"case:{case.id}")
    return row


async def set_legal_hold(session: AsyncSession, subject: Subject, attachment_id: uuid.UUID, body: LegalHold,
                         if_match: str | None) -> Attachment:
    """A legal hold keeps a file's bytes past its retention (proceedings, an inspection) until it is lifted."""
    row, case = await _attachment(session, subject, attachment_id, Action.ATTACHMENT_HOLD, lock=True)
    require_match(if_match, attachment_etag(row), what="file")
    row.legal_hold, row.hold_reason = body.hold, body.reason
    row.hold_changed_at, row.hold_changed_by = utcnow(), subject.id
    row.version += 1
    await session.flush()
    await audit.record(session, subject, "hold" if body.hold else "release_hold", "attachment", str(row.id),
                       purpose=f"case:{case.id}")
    return row


# ---------------------------------------------------------------------------------------------------- the sweeper


@dataclass
class SweepReport:
    orphans_deleted: int = 0
    sessions_expired: int = 0
    purged: int = 0
    rewrapped: int = 0
    skipped: bool = False  # another process holds the sweep


async def sweep(database: Database, store: ObjectStore, settings: CasesSettings,
                now: datetime | None = None) -> SweepReport:
    """One round of upkeep, in one process at a time (an advisory lock): expired upload sessions are dropped,
    objects no row names are deleted once older than the grace period, deleted files past their retention are
    purged unless held, and files wrapped by an older master key are rewrapped with the active one."""
    now = now or utcnow()
    report = SweepReport()
    # The lock belongs to a connection held for the whole round (a session would hand its connection back to the
    # pool at each commit).
    async with database.engine.connect() as lock:
        if not await lock.scalar(select(func.pg_try_advisory_lock(SWEEP_LOCK))):
            report.skipped = True
            return report
        try:
            async with database.sessionmaker() as session:
                await _expire_sessions(database, store, session, now, report)
                await _delete_orphans(store, session, settings, now, report)
                await _purge(store, session, settings, now, report)
                await _rewrap(store, session, settings, report)
        finally:
            await lock.scalar(select(func.pg_advisory_unlock(SWEEP_LOCK)))
    return report


async def _expire_sessions(database: Database, store: ObjectStore, session: AsyncSession, now: datetime,
                           report: SweepReport) -> None:
    expired = list((await session.execute(select(AttachmentUpload).where(AttachmentUpload.expires_at <= now)
                                          .limit(500))).scalars())
    await session.commit()
    for row in expired:
        await _drop_session(database, store, row, SYSTEM)
        report.sessions_expired += 1


async def _delete_orphans(store: ObjectStore, session: AsyncSession, settings: CasesSettings, now: datetime,
                          report: SweepReport) -> None:
    grace = timedelta(seconds=settings.attachment_orphan_grace_seconds)
    cutoff = stamp(now - grace)
    state = await session.get(ObjectSweep, "orphans")
    # The window reaches back one grace period before the last round's end: an object appears only once its upload
    # has finished, which may be up to that much after the time in its key.
    start = ""
    if state is not None:
        # min(): a clock set back must not leave the keys written meanwhile behind the window.
        last = min(state.swept_until, cutoff)
        start = FINAL + stamp(datetime.strptime(last, STAMP).replace(tzinfo=now.tzinfo) - grace)
    batch: list[str] = []
    async for info in store.listing(FINAL, after=start):
        if key_stamp(info.key, FINAL) >= cutoff:
            break
        batch.append(info.key)
        if len(batch) >= 500:
            report.orphans_deleted += await _delete_unnamed(store, session, batch, Attachment.object_key)
            batch = []
    report.orphans_deleted += await _delete_unnamed(store, session, batch, Attachment.object_key)
    # Assembled uploads wait under staging/ only between the finishing call and its commit: few, listed whole.
    staged = [info.key async for info in store.listing(STAGING)
              if key_stamp(info.key, STAGING) < cutoff]
    report.orphans_deleted += await _delete_unnamed(store, session, staged, AttachmentUpload.staging_key)
    if state is None:
        session.add(ObjectSweep(name="orphans", swept_until=cutoff, updated_at=now))
    else:
        state.swept_until, state.updated_at = cutoff, now
    await session.commit()


async def _delete_unnamed(store: ObjectStore, session: AsyncSession, keys: list[str], column: Any) -> int:
    if not keys:
        return 0
    named = set((await session.execute(select(column).where(column.in_(keys)))).scalars())
    deleted = 0
    for key in keys:
        if key not in named:
            await store.delete(key)
            deleted += 1
    if deleted:
        logger.info("orphan objects deleted", extra={"count": deleted})
    return deleted


async def _purge(store: ObjectStore, session: AsyncSession, settings: CasesSettings, now: datetime,
                 report: SweepReport) -> None:
    due = now - timedelta(days=settings.attachment_retention_days)
    rows = list((await session.execute(
        select(Attachment, Case).join(Case, Case.id == Attachment.case_id)
        .where(Attachment.deleted_at <= due, Attachment.purged_at.is_(None), Attachment.legal_hold.is_(False))
        .order_by(Attachment.deleted_at).limit(200).with_for_update(of=Attachment, skip_locked=True))).all())
    for row, case in rows:
        await store.delete(row.object_key)
        row.purged_at = now
        row.version += 1
        outbox.emit(session, "attachment.purged", _event(row, case), agency=Agency.SYSTEM.value)
        await audit.record(session, SYSTEM, "purge", "attachment", str(row.id), purpose=f"case:{case.id}")
        report.purged += 1
    await outbox.write_pending(session)
    await session.commit()


async def _rewrap(store: ObjectStore, session: AsyncSession, settings: CasesSettings, report: SweepReport) -> None:
    rows = list((await session.execute(
        select(Attachment).where(Attachment.key_id != store.keys.active, Attachment.purged_at.is_(None))
        .limit(settings.attachment_rewrap_batch))).scalars())
    await session.commit()
    for row in rows:
        key_id = await store.rewrap(row.object_key)
        await session.execute(update(Attachment).where(Attachment.id == row.id).values(key_id=key_id))
        await session.commit()
        report.rewrapped += 1


async def keep_files(database: Database, store: ObjectStore, settings: CasesSettings, stop: asyncio.Event) -> None:
    """The sweeper's loop in the cases service: a round every `attachment_sweep_seconds`."""
    while not stop.is_set():
        if store.configured:
            try:
                report = await sweep(database, store, settings)
                if report.orphans_deleted or report.sessions_expired or report.purged or report.rewrapped:
                    logger.info("files swept", extra={"orphans": report.orphans_deleted,
                                                      "expired_sessions": report.sessions_expired,
                                                      "purged": report.purged, "rewrapped": report.rewrapped})
            except Exception as exc:  # the next round retries; a failed round must not end the loop
                logger.warning("file sweep failed", extra={"error_type": type(exc).__name__})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.attachment_sweep_seconds)


def content_headers(row: Attachment) -> dict[str, str]:
    """Headers of a download: the stored type, its length and digest (RFC 9530), and a file name that cannot
    smuggle a type (the extension follows the content)."""
    extension = EXTENSIONS[MediaType(row.media_type)]
    stem = (row.filename or "").rsplit(".", 1)[0] or f"attachment-{row.id}"
    return {
        "Content-Length": str(row.size),
        "Content-Disposition": f"attachment; filename=\"attachment-{row.id}.{extension}\"; "
                               f"filename*=UTF-8''{quote(f'{stem}.{extension}', safe='')}",
        "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(row.sha256)).decode()}:",
        "ETag": f'"{row.sha256}"',
    }
