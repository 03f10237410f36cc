"""Giấy tờ của hồ sơ: the Decree 56 papers of a case (Mẫu số 01-07 and the needs-meeting minutes), numbered, kept and
shown on a need-to-know basis.

- Numbering (Decree 30/2020/NĐ-CP Art. 15): each paper gets the next number of its series (per issuing body and
  year) when its step is taken, in the step's own transaction (`register_step`). The intake report (Form 01) and
  papers of steps taken before this register existed are numbered when the case's papers are first listed.
- Renditions: a paper is rendered from the case as it stands (`CaseDocumentVersion`: PDF and DOCX with their
  SHA-256, kept for good). The same case version always gives the same bytes; a later case change that changes the
  paper's text gives a new version, and the old ones stay readable.
- Need-to-know (Law on Children Art. 21; Decree 56 Art. 28(5), Art. 33): the commune's people's committee sees every
  paper; an agency with a task in an approved plan receives the approval decision (Form 05) and an extract of the
  plan (Form 04) with its own tasks only; nobody else sees any, and no agency ever sees the intake report, which
  names the reporter. Every list and download is audited.
"""

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import cache
from typing import Any

import anyio
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases import documents_render as render
from services.cases import workflow
from services.cases.access import readable
from services.cases.models import Case, CaseDocument, CaseDocumentVersion, CaseHistory, DocumentSequence, audit
from services.cases.settings import CasesSettings
from services.common.auth import Subject
from services.common.errors import NotFound
from services.common.locations import communes, provinces
from services.common.permissions import Action, Agency, Scope


class Paper(StrEnum):
    """Mẫu số 01-07 of Decree 56 (and the minutes of the needs meeting, made in Form 03's step)."""

    INTAKE_REPORT = "01"
    INITIAL_ASSESSMENT = "02"
    SPECIFIC_ASSESSMENT = "03"
    NEEDS_MEETING_MINUTES = "03-minutes"
    PLAN = "04"
    PLAN_APPROVAL = "05"
    REVIEW = "06"
    SEPARATION_DECISION = "07"


PAPERS = tuple(paper.value for paper in Paper)
INTAKE, SPECIFIC, MINUTES, PLAN, APPROVAL = "01", "03", "03-minutes", "04", "05"
# Columns of the case that no paper but the intake report prints (the reporter) or that are bookkeeping.
PRIVATE_COLUMNS = {"reporter", "reporter_anonymous", "intake_details", "created_by", "idempotency_key"}
# The field of a step's form that dates its paper, when not the step's own time (a decision signed on a given day).
DATE_FIELDS = {"05": ("decided_on",), "06": ("reviewed_on",), "07": ("taken_at",),
               MINUTES: ("needs_meeting", "held_on")}


def utcnow() -> datetime:
    return datetime.now(UTC)


def step_papers(action: str) -> tuple[str, ...]:
    """The papers a workflow step makes: the `paper` of its form (forms.py); Form 03's step also makes the minutes
    of the needs meeting."""
    step = workflow.STEPS.get(action)
    paper = getattr(step.form, "paper", None) if step is not None else None
    if paper is None:
        return ()
    return (paper, MINUTES) if paper == SPECIFIC else (paper,)


def paper_title(paper: str, override: str | None = None) -> str:
    return str(render.labels(override)["paper_title"][paper])


# ---------------------------------------------------------------------------------------------------- numbering


async def next_number(session: AsyncSession, issuer: str, year: int, series: str) -> int:
    """The next number of a series. The upsert locks the series' row until the transaction ends, so two papers
    never share a number, and a rolled-back transaction gives its number back (no gaps)."""
    table = DocumentSequence.__table__
    statement = (insert(table).values(issuer=issuer, year=year, series=series, last_number=1)
                 .on_conflict_do_update(index_elements=["issuer", "year", "series"],
                                        set_={"last_number": table.c.last_number + 1})
                 .returning(table.c.last_number))
    return int((await session.execute(statement)).scalar_one())


def _issuer(case: Case, paper: str, leading: str | None) -> tuple[str, str, str | None]:
    """(register key, agency, commune) of the body that issues a paper: the intake report is the receiving body's
    (the national hotline, or an agency of the commune where it happened); every other paper is the people's
    committee's of the commune that led the case at that step (Decree 56 Arts. 26-32; Law Art. 52(2))."""
    if paper != INTAKE:
        commune = leading or case.commune_code
        return commune, Agency.PEOPLES_COMMITTEE.value, commune
    agency, commune = case.intake_agency, case.incident_commune_code
    if agency == Agency.HOTLINE.value:
        return agency, agency, None
    if agency == Agency.PEOPLES_COMMITTEE.value:
        return commune, agency, commune
    return f"{agency}:{commune}", agency, commune


def symbol(settings: CasesSettings, paper: str, agency: str, number: int | None, year: int | None) -> str:
    pattern = settings.document_symbols[paper]
    short = render.labels(settings.forms_template_dir)["agency_short"].get(agency, agency.upper())
    if number is None:  # a blank form: the number is written by hand
        pattern = re.sub(r"\{number[^}]*\}", "……", pattern)
        return pattern.format(year="……", issuer_short=short)
    return pattern.format(number=number, year=year, issuer_short=short)


def _dated(paper: str, data: dict[str, Any] | None, at: datetime) -> date:
    """The paper's date: the day its form gives (a decision's day, the meeting's), else the day of the step."""
    value: Any = data or {}
    for key in DATE_FIELDS.get(paper, ()):
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, str) and value:
        moment = value if "T" in value else f"{value}T12:00:00+07:00"
        return datetime.fromisoformat(moment).astimezone(workflow.VIETNAM).date()
    return at.astimezone(workflow.VIETNAM).date()


async def _register(session: AsyncSession, case: Case, paper: str, action: str, step_version: int,
                    issued_on: date, leading: str | None, signer: str, settings: CasesSettings) -> str:
    """Number one paper: the next number of its series, in the register of the body that issues it. Returns its
    number and symbol ("12/QĐ-UBND")."""
    issuer, agency, commune = _issuer(case, paper, leading)
    series = settings.document_series[paper]
    number = await next_number(session, issuer, issued_on.year, series)
    reference = symbol(settings, paper, agency, number, issued_on.year)
    session.add(CaseDocument(
        id=uuid.uuid4(), case_id=case.id, paper=paper, step_version=step_version, action=action, issuer=issuer,
        issuer_agency=agency, issuer_commune_code=commune, year=issued_on.year, series=series, number=number,
        reference=reference, issued_on=issued_on, signer_name=signer[:200], registered_at=utcnow()))
    return reference


async def register_step(session: AsyncSession, case: Case, subject: Subject, action: str, data: dict[str, Any],
                        at: datetime, leading: str, settings: CasesSettings, *, step_version: int) -> dict[str, str]:
    """Number the papers of the step being taken (in the step's transaction, the case locked; `step_version` is
    the version the step gives the case), so a decision has its number when it is signed, and the decision
    records that number (Forms 05, 07): one number per decision, the register's. The one who took the step signs
    it. Returns each paper's number and symbol."""
    numbers = {paper: await _register(session, case, paper, action, step_version, _dated(paper, data, at), leading,
                                      subject.name, settings)
               for paper in step_papers(action)}
    await session.flush()
    return numbers


async def _history(session: AsyncSession, case_id: uuid.UUID) -> list[CaseHistory]:
    return list((await session.execute(
        select(CaseHistory).where(CaseHistory.case_id == case_id).order_by(CaseHistory.version))).scalars())


async def _documents(session: AsyncSession, case_id: uuid.UUID) -> list[CaseDocument]:
    return list((await session.execute(
        select(CaseDocument).where(CaseDocument.case_id == case_id)
        .order_by(CaseDocument.step_version, CaseDocument.paper))).scalars())


def _missing(history: Sequence[CaseHistory], documents: Sequence[CaseDocument]) -> list[tuple[str, CaseHistory]]:
    have = {(d.paper, d.step_version) for d in documents}
    wanted = [(INTAKE, history[0])] if history else []
    wanted += [(paper, entry) for entry in history for paper in step_papers(entry.action)]
    return [(paper, entry) for paper, entry in wanted if (paper, entry.version) not in have]


async def ensure_registered(session: AsyncSession, case: Case, settings: CasesSettings) -> list[CaseDocument]:
    """The case's papers, numbering any not numbered yet (the intake report; steps from before the register)."""
    history, documents = await _history(session, case.id), await _documents(session, case.id)
    if not _missing(history, documents):
        return documents
    # Lock the case so two first readers do not number the same paper twice, then look again.
    locked = (await session.execute(select(Case).where(Case.id == case.id).with_for_update()
                                    .execution_options(populate_existing=True))).scalar_one()
    documents = await _documents(session, case.id)
    for paper, entry in _missing(history, documents):
        if paper == INTAKE:
            await _register(session, locked, paper, "receive", 1, _dated(paper, None, locked.received_at), None,
                            "", settings)
        else:
            await _register(session, locked, paper, entry.action, entry.version, _dated(paper, entry.data, entry.at),
                            entry.commune_code, "", settings)
    await session.flush()
    return await _documents(session, case.id)


# ---------------------------------------------------------------------------------------------------- need-to-know


@dataclass(frozen=True)
class Shown:
    """A paper as one caller may see it: whole (audience "") or the extract made for the caller's agency."""

    document: CaseDocument
    audience: str


def _plan_of_approvals(history: Sequence[CaseHistory]) -> dict[int, CaseHistory]:
    """Each approval (by its version) -> the plan submission it approved: the last one before it."""
    approvals, last_plan = {}, None
    for entry in history:
        if PLAN in step_papers(entry.action):
            last_plan = entry
        elif APPROVAL in step_papers(entry.action) and last_plan is not None:
            approvals[entry.version] = last_plan
    return approvals


def _agencies_of(plan: CaseHistory | None) -> set[str]:
    return {str(t.get("agency")) for t in ((plan.data or {}).get("tasks") or [])} if plan else set()


def manages(subject: Subject) -> bool:
    return subject.agency == Agency.PEOPLES_COMMITTEE and subject.scope(Action.DOCUMENT_READ) == Scope.JURISDICTION


def shown_to(subject: Subject, history: Sequence[CaseHistory], documents: Sequence[CaseDocument]) -> list[Shown]:
    if manages(subject):
        return [Shown(d, "") for d in documents]
    agency = subject.agency.value
    approved = {plan.version: version for version, plan in _plan_of_approvals(history).items()
                if agency in _agencies_of(plan)}
    shown = []
    for document in documents:
        if document.paper == APPROVAL and document.step_version in approved.values():
            shown.append(Shown(document, ""))
        elif document.paper == PLAN and document.step_version in approved:
            shown.append(Shown(document, agency))
    return shown


# ---------------------------------------------------------------------------------------------------- contexts


def _place(commune_code: str | None, words: dict[str, Any]) -> str:
    """Địa danh (Decree 30 Appendix I): the commune's name without its kind."""
    commune = communes().get(commune_code or "")
    if commune is None:
        return str(words["national_place"])
    return re.sub(r"^(xã|phường|thị trấn|đặc khu)\s+", "", commune.name, flags=re.IGNORECASE)


def _issuer_lines(document: CaseDocument, words: dict[str, Any]) -> dict[str, str]:
    body = words["agency_body"].get(document.issuer_agency, document.issuer_agency.upper())
    commune = communes().get(document.issuer_commune_code or "")
    parent = words["agency_parent"].get(document.issuer_agency, "")
    if commune is not None and not parent:
        province = provinces().get(commune.province_code)
        parent = province.name.upper() if province and document.issuer_agency != Agency.PEOPLES_COMMITTEE else ""
    return {"parent": parent, "body": body, "unit": commune.name.upper() if commune else "",
            "unit_name": commune.name if commune else ""}


def _local(at: datetime | None) -> dict[str, Any] | None:
    if at is None:
        return None
    local = at.astimezone(workflow.VIETNAM)
    return {"date": local.date(), "time": f"{local.hour:02d} giờ {local.minute:02d}"}


def _case_view(case: Case) -> dict[str, Any]:
    view = {column.key: getattr(case, column.key) for column in Case.__table__.columns
            if column.key not in PRIVATE_COLUMNS}
    commune, incident = communes().get(case.commune_code), communes().get(case.incident_commune_code)
    residence = communes().get(getattr(case, "residence_commune_code", None) or "")
    view |= {"commune_name": commune.name if commune else case.commune_code,
             "residence_commune_name": residence.name if residence else None,
             "incident_commune_name": incident.name if incident else case.incident_commune_code,
             "received": _local(case.received_at)}
    return view


def context(document: CaseDocument, audience: str, case: Case, history: Sequence[CaseHistory],
            documents: Sequence[CaseDocument], override: str | None = None) -> dict[str, Any]:
    """What a paper's template reads. Only the intake report gets the reporter."""
    words = render.labels(override)
    entry = next((h for h in history if h.version == document.step_version and document.paper != INTAKE), None)
    data: dict[str, Any] = (entry.data if entry else None) or {}
    issued = document.issued_on
    earlier = {d.paper: d.reference for d in sorted(documents, key=lambda d: d.step_version)
               if d.step_version <= document.step_version}
    values: dict[str, Any] = {
        "blank": False, "audience": audience,
        "doc": {"paper": document.paper, "reference": document.reference,
                "place": _place(document.issuer_commune_code, words),
                "day": f"{issued.day:02d}", "month": f"{issued.month:02d}", "year": issued.year,
                "issued_on": issued, "title": paper_title(document.paper, override)},
        "issuer": _issuer_lines(document, words), "signer": {"name": document.signer_name or render.Blanks()},
        "case": _case_view(case), "form": data.get("needs_meeting") or {} if document.paper == MINUTES else data,
        "step": {"at": _local(entry.at) if entry else None, "action": document.action,
                 "taken": _local(datetime.fromisoformat(data["taken_at"])) if data.get("taken_at") else
                 _local(entry.at) if entry else None},
        "earlier": earlier,
    }
    if document.paper == INTAKE:
        values["reporter"] = {"anonymous": case.reporter_anonymous, **(case.reporter or {})}
        values["intake"] = getattr(case, "intake_details", None) or {}
    if document.paper == PLAN:
        tasks = list(data.get("tasks") or [])
        values["tasks"] = [t for t in tasks if not audience or t.get("agency") == audience]
        values["budget"] = sum(int(t.get("budget_vnd") or 0) for t in tasks)
    if document.paper == "06":
        ratings = [str(r.get("rating")) for r in data.get("ratings") or []]
        values["tally"] = {level: ratings.count(level) for level in ("high", "medium", "low")}
    if document.paper == APPROVAL:
        plan = _plan_of_approvals(history).get(document.step_version)
        values["plan"] = (plan.data or {}) if plan else {}
        plan_document = next((d for d in documents if plan and d.paper == PLAN and d.step_version == plan.version),
                             None)
        values["plan_reference"] = plan_document.reference if plan_document else render.Blanks()
        values["agencies"] = sorted(_agencies_of(plan))
        values["budget"] = sum(int(t.get("budget_vnd") or 0) for t in values["plan"].get("tasks") or [])
    wrapped: dict[str, Any] = _wrap(values)
    return wrapped


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return _Fields({key: _wrap(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_wrap(item) for item in value]
    return value


class _Fields(dict[str, Any]):
    """A form's data for a template: a field that was not given (optional, or added to the form later) reads as
    empty, at any depth, so an older step's paper still prints."""

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        return _Fields() if value is None else value


def blank_context(paper: str, reference: str, override: str | None = None) -> dict[str, Any]:
    blank = render.Blanks()
    return {"blank": True, "audience": "",
            "doc": {"paper": paper, "reference": reference, "place": blank,
                    "day": "……", "month": "……", "year": "……", "issued_on": blank,
                    "title": paper_title(paper, override)},
            "issuer": {"parent": "", "body": blank, "unit": "", "unit_name": blank}, "signer": {"name": blank},
            "case": blank,
            "form": blank, "step": blank, "earlier": blank, "reporter": blank, "intake": blank, "tasks": blank,
            "plan": blank, "plan_reference": blank, "agencies": blank, "budget": blank, "tally": blank}


# ---------------------------------------------------------------------------------------------------- rendering


def template_of(paper: str) -> str:
    return f"{paper}.html"


def render_paper(paper: str, values: dict[str, Any], dated: Any, override: str | None) -> tuple[bytes, bytes]:
    """The PDF and the DOCX of one paper (blocking)."""
    laid_out = render.compose(template_of(paper), values, title=values["doc"]["title"], dated=dated,
                              override=override)
    return render.render_pdf(laid_out), render.render_docx(laid_out)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _latest(session: AsyncSession, document: CaseDocument, audience: str) -> CaseDocumentVersion | None:
    return (await session.execute(
        select(CaseDocumentVersion).where(CaseDocumentVersion.document_id == document.id,
                                          CaseDocumentVersion.audience == audience)
        .order_by(CaseDocumentVersion.case_version.desc()).limit(1))).scalar_one_or_none()


async def current_version(session: AsyncSession, case: Case, shown: Shown, history: Sequence[CaseHistory],
                          documents: Sequence[CaseDocument], settings: CasesSettings) -> CaseDocumentVersion:
    """The rendition of a paper from the case as it stands: the stored one when the text has not changed since, or
    a new version kept beside the old ones."""
    document, audience = shown.document, shown.audience
    latest = await _latest(session, document, audience)
    if latest is not None and latest.case_version == case.version:
        return latest
    values = context(document, audience, case, history, documents, settings.forms_template_dir)
    pdf, docx = await anyio.to_thread.run_sync(render_paper, document.paper, values, document.issued_on,
                                               settings.forms_template_dir)
    if latest is not None and latest.pdf_sha256 == sha256(pdf) and latest.docx_sha256 == sha256(docx):
        return latest
    table = CaseDocumentVersion.__table__
    await session.execute(insert(table).values(
        id=uuid.uuid4(), document_id=document.id, audience=audience, case_version=case.version, pdf=pdf,
        pdf_sha256=sha256(pdf), docx=docx, docx_sha256=sha256(docx), created_at=utcnow(),
    ).on_conflict_do_nothing(constraint="uq_case_document_version"))
    stored = await _latest(session, document, audience)
    assert stored is not None
    return stored


async def versions_of(session: AsyncSession, shown: Sequence[Shown]) -> dict[tuple[uuid.UUID, str], list[Any]]:
    if not shown:
        return {}
    rows = (await session.execute(
        select(CaseDocumentVersion.document_id, CaseDocumentVersion.audience, CaseDocumentVersion.case_version,
               CaseDocumentVersion.pdf_sha256, CaseDocumentVersion.docx_sha256, CaseDocumentVersion.created_at)
        .where(CaseDocumentVersion.document_id.in_([s.document.id for s in shown]))
        .order_by(CaseDocumentVersion.case_version))).all()
    wanted = {(s.document.id, s.audience) for s in shown}
    found: dict[tuple[uuid.UUID, str], list[Any]] = {key: [] for key in wanted}
    for row in rows:
        if (row.document_id, row.audience) in wanted:
            found[(row.document_id, row.audience)].append(row)
    return found


# ---------------------------------------------------------------------------------------------------- API


async def _case(session: AsyncSession, subject: Subject, case_id: uuid.UUID) -> Case:
    case = (await session.execute(readable(subject, Action.DOCUMENT_READ).where(Case.id == case_id)))
    found = case.scalar_one_or_none()
    if found is None:
        raise NotFound("no such case")
    return found


async def list_documents(session: AsyncSession, subject: Subject, case_id: uuid.UUID,
                         settings: CasesSettings) -> tuple[list[Shown], dict[tuple[uuid.UUID, str], list[Any]]]:
    case = await _case(session, subject, case_id)
    documents = await ensure_registered(session, case, settings)
    shown = shown_to(subject, await _history(session, case.id), documents)
    await audit.record(session, subject, "list", "case_document", str(case.id),
                       detail={"papers": [s.document.paper for s in shown]})
    return shown, await versions_of(session, shown)


async def fetch(session: AsyncSession, subject: Subject, case_id: uuid.UUID, document_id: uuid.UUID, fmt: str,
                case_version: int | None, settings: CasesSettings) -> tuple[CaseDocument, CaseDocumentVersion]:
    """One paper's rendition within the caller's reach: the current one, or the one made from `case_version`."""
    case = await _case(session, subject, case_id)
    documents = await ensure_registered(session, case, settings)
    history = await _history(session, case.id)
    shown = next((s for s in shown_to(subject, history, documents) if s.document.id == document_id), None)
    if shown is None:
        raise NotFound("no such paper of this case within your reach")
    if case_version is None:
        version = await current_version(session, case, shown, history, documents, settings)
    else:
        version = (await session.execute(select(CaseDocumentVersion).where(
            CaseDocumentVersion.document_id == document_id, CaseDocumentVersion.audience == shown.audience,
            CaseDocumentVersion.case_version == case_version))).scalar_one_or_none()
        if version is None:
            raise NotFound("no version of this paper was made from that case version; see the list of versions")
    await audit.record(session, subject, "download", "case_document", str(case.id),
                       purpose=f"paper {shown.document.paper}",
                       detail={"document_id": str(document_id), "format": fmt, "case_version": version.case_version,
                               "audience": shown.audience})
    return shown.document, version


DECREE_56_SIGNED = date(2017, 5, 9)  # the metadata date of blank forms


def blank_form(paper: str, fmt: str, settings: CasesSettings) -> bytes:
    """A blank paper form, the same for every commune (blocking; rendered once per process and setting)."""
    reference = symbol(settings, paper, Agency.PEOPLES_COMMITTEE.value, None, None)
    return _blank_form(paper, reference, settings.forms_template_dir)[0 if fmt == "pdf" else 1]


@cache
def _blank_form(paper: str, reference: str, override: str | None) -> tuple[bytes, bytes]:
    return render_paper(paper, blank_context(paper, reference, override), DECREE_56_SIGNED, override)
