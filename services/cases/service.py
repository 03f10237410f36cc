"""Cases logic: intake, workflow actions driven by `workflow.TRANSITIONS`, tasks, notes, the work list, the deadline
check, and links to the registry. Every read goes through `access.readable`; every read and write is audited.
"""

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import (
    DateTime,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy import case as sql_case
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases import documents, forms, workflow
from services.cases.access import (
    Visibility,
    is_manager,
    reach,
    reaches,
    readable,
    readable_tasks,
    traced_history,
    visibility,
)
from services.cases.models import (
    Case,
    CaseDeadline,
    CaseHistory,
    CaseNote,
    CasePlan,
    CaseSeparation,
    CaseTask,
    as_written,
    audit,
    metadata,
    outbox,
)
from services.cases.registry import RegistryClient
from services.cases.schemas import AllegedPerpetrator, CaseCreate, LinkChild, NoteCreate, TaskUpdate
from services.cases.settings import CasesSettings
from services.cases.vocabulary import (
    FINISHED_TASK_STATUSES,
    AbuseForm,
    ClosureKind,
    ClosureReason,
    Deadline,
    ParentViews,
    PerpetratorRelationship,
    SeparationGround,
    State,
    TaskAgency,
    TaskStatus,
)
from services.common.age import age_group
from services.common.auth import Jurisdiction, Subject
from services.common.clock import utcnow
from services.common.db import Database, Shape, pending_inserts, take_pending_rows
from services.common.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidTransition,
    NotFound,
    PreconditionFailed,
    UnprocessableContent,
)
from services.common.links import public_path
from services.common.locations import province_of
from services.common.pagination import CursorInt, CursorText, CursorTime, Keyset
from services.common.permissions import Action, Agency, Role, Scope
from services.common.preconditions import etag as version_tag
from services.common.preconditions import require_match, require_sent

S = State
OPEN_TASK_STATUSES = (TaskStatus.OPEN.value, TaskStatus.IN_PROGRESS.value, TaskStatus.CANNOT_BE_DONE.value)
# Who may be named as the alleged abuser for the parents' views not to be asked (Decree 56 Art. 27(1)(h)).
PARENT_LIKE = frozenset({PerpetratorRelationship.PARENT, PerpetratorRelationship.STEP_PARENT,
                         PerpetratorRelationship.CAREGIVER})
# Task status changes (open → in_progress → done, or cannot_be_done); the case officer reopens and waives.
TASK_MOVES: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.OPEN: frozenset({TaskStatus.IN_PROGRESS, TaskStatus.CANNOT_BE_DONE, TaskStatus.WAIVED}),
    TaskStatus.IN_PROGRESS: frozenset({TaskStatus.DONE, TaskStatus.CANNOT_BE_DONE, TaskStatus.WAIVED}),
    TaskStatus.CANNOT_BE_DONE: frozenset({TaskStatus.OPEN, TaskStatus.WAIVED}),
    TaskStatus.DONE: frozenset({TaskStatus.OPEN}),
    TaskStatus.WAIVED: frozenset({TaskStatus.OPEN}),
    TaskStatus.CANCELLED: frozenset(),
}
OFFICER_ONLY = frozenset({TaskStatus.OPEN, TaskStatus.WAIVED})  # reopening and waiving
NEEDS_REASON = frozenset({TaskStatus.OPEN, TaskStatus.WAIVED, TaskStatus.CANNOT_BE_DONE})
SYSTEM = Subject(id="cases:deadline-check", role=Role.SERVICE, agency=Agency.SYSTEM,
                 jurisdiction=Jurisdiction(level="national"), token_id="")


# ---------------------------------------------------------------------------------------------------- snapshots


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def snapshot(case: Case, deadlines: Sequence[CaseDeadline],
             separations: Sequence[CaseSeparation] = ()) -> dict[str, Any]:
    """The statistical state of a case for events (docs/events.md): no personal data."""
    latest: dict[str, CaseDeadline] = {}
    for deadline in sorted(deadlines, key=lambda d: d.started_at):
        latest[deadline.name] = deadline
    return {
        "case_id": str(case.id), "revision": case.version, "province_code": case.province_code,
        "commune_code": case.commune_code, "incident_commune_code": case.incident_commune_code,
        "residence_commune_code": case.residence_commune_code, "received_at": case.received_at.isoformat(),
        "category": case.category, "channel": case.channel, "intake_agency": case.intake_agency,
        "child_sex": case.child_sex, "child_age_group": case.child_age_group, "child_age_years": case.child_age_years,
        "child_id": str(case.child_id) if case.child_id else None, "abuse_forms": list(case.abuse_forms),
        "risk_forms": list(case.risk_forms), "special_groups": list(case.special_groups),
        "environment": case.environment, "perpetrator_relationship": case.perpetrator_relationship,
        "state": case.state, "emergency": case.emergency,
        "emergency_measure": {"taken_at": case.emergency_measure_at.isoformat(),
                              "agency": case.emergency_measure_agency} if case.emergency_measure_at else None,
        "separations": [
            {"decided_at": s.decided_at.isoformat(), "ends_at": s.ends_at.isoformat(), "ended_at": _iso(s.ended_at),
             "extended_days": s.extended_days, "competent_authority_extension": s.authority_document is not None}
            for s in sorted(separations, key=lambda s: s.decided_at)
        ],
        "child_views_taken": case.child_views_taken, "parent_views": case.parent_views,
        "plan_approved_at": _iso(case.plan_approved_at), "closure_kind": case.closure_kind,
        "closure_reason": case.closure_reason, "closed_at": _iso(case.closed_at),
        "deadlines": {
            name: {"due_at": d.due_at.isoformat(), "met_at": _iso(d.met_at), "missed": d.missed}
            for name, d in latest.items()
        },
    }


async def separations_of(session: AsyncSession, case_id: uuid.UUID) -> list[CaseSeparation]:
    return list((await session.execute(
        select(CaseSeparation).where(CaseSeparation.case_id == case_id).order_by(CaseSeparation.decided_at)
    )).scalars())


async def current_snapshot(session: AsyncSession, case: Case) -> dict[str, Any]:
    return snapshot(case, await deadlines_of(session, case.id), await separations_of(session, case.id))


async def deadlines_of(session: AsyncSession, case_id: uuid.UUID) -> list[CaseDeadline]:
    return list((await session.execute(select(CaseDeadline).where(CaseDeadline.case_id == case_id))).scalars())


def etag(version: int) -> str:
    return version_tag(version)


def case_etag(case: Case, tasks: Sequence[CaseTask]) -> str:
    """The ETag of a case as read: its version, then a mark of its tasks (a task changes without a new version of
    the case, and the answer shows the tasks), so a 304 is never given for an answer that changed. A change needs
    only the version part to match (`check_precondition`)."""
    return _case_tag(case.version, len(tasks), sum(t.version for t in tasks))


def _case_tag(version: int, tasks: int, task_versions: int) -> str:
    return f'"{version}.{tasks}.{task_versions}"'


async def current_case_etag(session: AsyncSession, case: Case) -> str:
    tasks, versions = (await session.execute(
        select(func.count(), func.coalesce(func.sum(CaseTask.version), 0)).where(CaseTask.case_id == case.id))).one()
    return _case_tag(case.version, int(tasks), int(versions))


def check_precondition(if_match: str | None, version: int, current: str | None = None,
                       location: str | None = None) -> None:
    """Refuse a change made without, or against an old, version. Only the version part of an ETag counts; the 412
    names `current_etag` (the case's whole ETag, when given) and links to the case (`current`, through the gateway)
    so an offline client can read it, merge and send again."""
    require_sent(if_match, what="case")
    assert if_match is not None
    wanted = {tag.strip().removeprefix("W/").strip('"').partition(".")[0] for tag in if_match.split(",")}
    if str(version) not in wanted:  # "*" is no version: a workflow step is never taken blind
        raise PreconditionFailed("the case changed since you read it; read it again",
                                 current_etag=current or etag(version), **({"current": location} if location else {}))


async def check_case_precondition(session: AsyncSession, if_match: str | None, case: Case) -> None:
    """`check_precondition` for a case: a 412 names the case's whole current ETag, as a read would answer it."""
    try:
        check_precondition(if_match, case.version)
    except PreconditionFailed:
        check_precondition(if_match, case.version, await current_case_etag(session, case),
                           public_path(f"/v1/cases/{case.id}"))


def _record(session: AsyncSession, case: Case, subject: Subject, action: str, previous: str | None,
            data: dict[str, Any] | None, at: datetime, commune_code: str | None = None) -> None:
    """One history row, stamped with the commune that led the case when the action was taken."""
    session.add(CaseHistory(case_id=case.id, version=case.version, at=at, actor_id=subject.id,
                            actor_role=subject.role.value, agency=subject.agency.value, action=action,
                            from_state=previous, to_state=case.state, data=data,
                            commune_code=commune_code or case.commune_code))


# ---------------------------------------------------------------------------------------------------- intake


def _deadline_values(case: Case, name: Deadline, settings: CasesSettings, now: datetime) -> dict[str, Any]:
    rule = workflow.DEADLINES[name]
    amount = rule.amount if isinstance(rule.amount, int) else int(getattr(settings, rule.amount))
    return {"id": uuid.uuid4(), "case_id": case.id, "name": name.value, "started_at": now,
            "due_at": workflow.due_at(rule, amount, received_at=case.received_at, started_at=now)}


def _new_deadline(case: Case, name: Deadline, settings: CasesSettings, now: datetime) -> CaseDeadline:
    return CaseDeadline(**_deadline_values(case, name, settings, now))


def _start_deadline(session: AsyncSession, case: Case, name: Deadline, settings: CasesSettings,
                    now: datetime) -> CaseDeadline:
    deadline = _new_deadline(case, name, settings, now)
    session.add(deadline)
    return deadline


@cache
def _intake_statement(case_columns: tuple[str, ...], companions: tuple[tuple[str, tuple[str, ...]], ...],
                      pending: Shape | None) -> Any:
    """The statement that inserts a case, its companion rows and the unit of work's pending rows (its audit line and
    event), built once per shape (SQLAlchemy then reuses its compiled form without even recomputing a cache key).
    Everything after the case is inserted only if the case was: a retry with a known key inserts nothing."""
    table = metadata.tables["case_record"]
    new_case = (insert(table).values({c: bindparam(f"case_{c}", type_=table.c[c].type) for c in case_columns})
                .on_conflict_do_nothing(constraint="uq_case_record_idempotency").returning(table.c.id)
                .cte("new_case"))
    statement = select(new_case.c.id)
    for index, (name, columns) in enumerate(companions):
        companion = metadata.tables[name]
        source = select(new_case.c.id, *(bindparam(f"c{index}_{c}", type_=companion.c[c].type) for c in columns))
        statement = statement.add_cte(
            insert(companion).from_select(["case_id", *columns], source).cte(f"companion_{index}"))
    for index, rows in enumerate(pending_inserts(pending, new_case) if pending else ()):
        statement = statement.add_cte(rows.cte(f"pending_{index}"))
    return statement


async def _insert_with_companions(session: AsyncSession, values: dict[str, Any], companions: list[Any]) -> bool:
    """Insert a case unless its idempotency key exists, its companion rows and the session's pending rows only if it
    was inserted: one statement, one round trip (intake is the hot path; see `Database.one_statement`). Returns
    whether the case was inserted."""
    params = {f"case_{key}": value for key, value in values.items()}
    shapes = []
    for index, row in enumerate(companions):
        table = type(row).__table__
        columns = tuple(c.key for c in table.columns if c.key != "case_id" and getattr(row, c.key) is not None)
        shapes.append((table.name, columns))
        params |= {f"c{index}_{c}": getattr(row, c) for c in columns}
    pending = take_pending_rows(session)
    if pending is not None:
        params |= pending.params
    statement = _intake_statement(tuple(values), tuple(shapes), pending.shape if pending else None)
    return (await session.execute(statement, params)).scalar_one_or_none() is not None


def intake_digest(data: CaseCreate) -> str:
    """What tells a replay from another intake sent with the same Idempotency-Key."""
    return hashlib.sha256(orjson.dumps(data.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()


def _age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


INTAKE_DETAIL_FIELDS = ("received_place", "receiving_officer", "father", "mother", "family_circumstances",
                        "current_carer", "actions_taken", "incident_place")


def _intake_details(data: CaseCreate) -> dict[str, Any] | None:
    """The personal parts of Form 01 that the statistics do not need: kept on the case for the managers."""
    details = data.model_dump(mode="json", include=set(INTAKE_DETAIL_FIELDS), exclude_none=True)
    child = data.child.model_dump(mode="json", include={"full_name", "date_of_birth", "condition",
                                                        "likely_consequences"}, exclude_none=True)
    if child:
        details["child"] = child
    return details or None


async def create_case(session: AsyncSession, subject: Subject, data: CaseCreate, idempotency_key: str | None,
                      settings: CasesSettings) -> tuple["CaseDetail", bool]:
    """Record an intake (Form 01) and forward it to the commune where it happened (Decree 56 Art. 26(1)), which
    leads the case until it hands it to the commune where the child lives. Returns (case, created): a retry with the
    same Idempotency-Key and body answers the case it created; another body under that key is 422."""
    province = province_of(data.incident_commune_code)
    assert province is not None  # the schema accepts official codes only
    if not subject.jurisdiction.contains(province, data.incident_commune_code):
        raise NotFound("no such commune in your jurisdiction")
    now = utcnow()
    received = data.reported_at or now
    child = data.child
    age = child.approximate_age
    if child.date_of_birth is not None:
        age = _age_on(child.date_of_birth, received.astimezone(workflow.VIETNAM).date())
    first_name = child.first_name or (child.full_name.split()[-1] if child.full_name else None)
    reporter = None if data.reporter.anonymous else data.reporter.model_dump(mode="json", exclude_none=True)
    values = {
        "id": uuid.uuid4(), "state": S.RECEIVED.value, "version": 1, "province_code": province,
        "commune_code": data.incident_commune_code, "incident_commune_code": data.incident_commune_code,
        "residence_commune_code": data.residence_commune_code,
        "received_at": received, "updated_at": now, "incident_date": data.incident_date,
        "intake_agency": subject.agency.value, "created_by": subject.id, "idempotency_key": idempotency_key,
        "idempotency_digest": intake_digest(data) if idempotency_key else None,
        "category": data.category.value, "channel": data.channel.value if data.channel else None,
        "reporter_anonymous": data.reporter.anonymous, "reporter": reporter,
        # A registry id named at intake is a hint: the leading commune confirms it by linking the child (trust
        # finding 1: filing a report must not open a child's record).
        "child_id": None, "child_id_hint": child.child_id, "child_first_name": first_name,
        "child_age_years": age, "child_sex": child.sex.value,
        "child_age_group": age_group(age) if age is not None else "unknown",
        "child_place": child.place, "abuse_forms": [f.value for f in data.abuse_forms],
        "risk_forms": [f.value for f in data.risk_forms], "special_groups": [g.value for g in data.special_groups],
        "environment": data.environment.value if data.environment else None,
        "perpetrator_relationship": data.perpetrator_relationship.value,
        "description": data.description, "danger_indicators": [d.value for d in data.danger_indicators],
        "intake_details": _intake_details(data), "plan_cycle": 0,
    }
    # Written by the statement below, read back for the answer and the event: built as the ORM builds what it reads.
    case = as_written(Case, values)
    deadlines = [as_written(CaseDeadline, _deadline_values(case, name, settings, now))
                 for name in workflow.INTAKE_STARTS]
    history = as_written(CaseHistory, {
        "case_id": case.id, "version": 1, "at": now, "actor_id": subject.id, "actor_role": subject.role.value,
        "agency": subject.agency.value, "action": "receive", "from_state": None, "to_state": case.state,
        "data": {"intake_agency": subject.agency.value}, "commune_code": case.commune_code})
    tasks = []
    if case.category == "abused" and AbuseForm.SEXUAL_ABUSE.value in case.abuse_forms:
        # Joint Circular 01/2022 Art. 8: sexual abuse of a child goes to the investigating police at once.
        tasks.append(CaseTask(id=uuid.uuid4(), case_id=case.id, kind="referral", agency=TaskAgency.POLICE.value,
                              title="Referral to the investigating police (Joint Circular 01/2022)",
                              due_date=now.astimezone(workflow.VIETNAM).date(), status=TaskStatus.OPEN.value,
                              notes=[], version=1, created_at=now, updated_at=now))
    # One statement writes the case and what comes with it, its event and audit line included. The unique
    # (created_by, idempotency_key) constraint settles a retry, even one racing this very insert: the second insert
    # waits for the first transaction, then inserts nothing, and nothing comes with nothing.
    outbox.emit(session, "case.received", snapshot(case, deadlines), agency=subject.agency.value)
    await audit.record(session, subject, "create", "case", str(case.id))
    if not await _insert_with_companions(session, values, [*deadlines, history, *tasks]):
        existing = (await session.execute(select(Case).where(
            Case.created_by == subject.id, Case.idempotency_key == idempotency_key))).scalar_one()
        if existing.idempotency_digest not in (None, values["idempotency_digest"]):
            raise UnprocessableContent(
                "this Idempotency-Key was used for another report; use a new key for a new request",
                errors=[FieldError(loc=["header", "Idempotency-Key"], msg="was used with a different body",
                                   type="idempotency_key.reused").model_dump()])
        await audit.record(session, subject, "read", "case", str(existing.id), purpose="idempotent retry")
        return await detail(session, subject, existing), False
    # The answer is built from what was just written: no need to read it back.
    return _detail_of(subject, case, deadlines, tasks, None, []), True


# ---------------------------------------------------------------------------------------------------- reading


@dataclass
class CaseDetail:
    case: Case
    view: Visibility
    deadlines: list[CaseDeadline]
    tasks: list[CaseTask]
    plan: CasePlan | None
    separations: list[CaseSeparation]
    allowed_actions: list[str]
    all_tasks: list[CaseTask]  # the ETag covers every task, seen or not

    @property
    def overdue(self) -> bool:
        return any(d.running and d.missed_at is not None for d in self.deadlines)


async def _reachable(session: AsyncSession, subject: Subject, case_id: uuid.UUID, action: Action,
                     *, lock: bool = False) -> Case:
    query = readable(subject, action).where(Case.id == case_id)
    if lock:
        query = query.with_for_update(of=Case).execution_options(populate_existing=True)
    case = (await session.execute(query)).scalar_one_or_none()
    if case is None:
        raise NotFound("no such case")
    return case


async def detail(session: AsyncSession, subject: Subject, case: Case) -> CaseDetail:
    view = visibility(subject, case)
    deadlines = await deadlines_of(session, case.id)
    tasks = list((await session.execute(
        select(CaseTask).where(CaseTask.case_id == case.id).order_by(CaseTask.created_at)
    )).scalars())
    plan, separations = None, []
    if view.manager:
        plan = (await session.execute(
            select(CasePlan).where(CasePlan.case_id == case.id).order_by(CasePlan.submitted_at.desc()).limit(1)
        )).scalar_one_or_none()
        separations = await separations_of(session, case.id)
    return _detail_of(subject, case, deadlines, tasks, plan, separations)


def _unfinished_cycle_tasks(case: Case, tasks: Sequence[CaseTask]) -> list[CaseTask]:
    """The current plan cycle's tasks neither done, waived nor cancelled: they hold the review back."""
    return [t for t in tasks if t.kind == "plan" and t.cycle == case.plan_cycle
            and TaskStatus(t.status) not in FINISHED_TASK_STATUSES]


def allowed_actions(subject: Subject, case: Case, deadlines: Sequence[CaseDeadline],
                    tasks: Sequence[CaseTask]) -> list[str]:
    """The workflow actions this caller may take now: allowed by the table in this position, held by the caller's
    role, on a case the caller still reaches for that permission (a handover takes them away), and not held back
    by a guard (the review waits for the cycle's tasks)."""
    position = workflow.Position(State(case.state), frozenset(Deadline(d.name) for d in deadlines if d.running))
    agencies = {t.agency for t in tasks}
    review_blocked = bool(_unfinished_cycle_tasks(case, tasks))
    return [s.action for s in workflow.allowed_steps(position)
            if subject.can(s.permission) and reaches(subject, case, s.permission, agencies)
            and not (s.action == "start_review" and review_blocked)]


def _detail_of(subject: Subject, case: Case, deadlines: list[CaseDeadline], tasks: list[CaseTask],
               plan: CasePlan | None, separations: list[CaseSeparation]) -> CaseDetail:
    view = visibility(subject, case)
    if not reaches(subject, case, Action.CASE_READ, {t.agency for t in tasks}):
        # The caller just gave the case away (handover, transfer): the answer shows what it did, nothing more.
        view = Visibility(manager=False, reporter=False, own_agency=view.own_agency)
    return CaseDetail(case, view, deadlines, [t for t in tasks if view.sees_task(t)],
                      plan if view.manager else None, separations if view.manager else [],
                      allowed_actions(subject, case, deadlines, tasks), tasks)


async def get_case(session: AsyncSession, subject: Subject, case_id: uuid.UUID) -> CaseDetail:
    case = await _reachable(session, subject, case_id, Action.CASE_READ)
    await audit.record(session, subject, "read", "case", str(case.id))
    return await detail(session, subject, case)


# Newest first; the id breaks ties between cases received at the same instant.
CASE_PAGES: Keyset[tuple[Case, bool]] = Keyset(columns=(Case.received_at, Case.id), types=(CursorTime, uuid.UUID),
                                               key=lambda row: (row[0].received_at, row[0].id), descending=True)


def _overdue_condition() -> Any:
    return exists().where(CaseDeadline.case_id == Case.id, CaseDeadline.missed_at.is_not(None),
                          CaseDeadline.met_at.is_(None), CaseDeadline.cancelled_at.is_(None))


def _next_due() -> Any:
    """The earliest running deadline of the case (an index scan of `ix_case_deadline_running`)."""
    return (select(func.min(CaseDeadline.due_at))
            .where(CaseDeadline.case_id == Case.id, CaseDeadline.met_at.is_(None),
                   CaseDeadline.cancelled_at.is_(None)).scalar_subquery())


CASE_PAGES: Keyset[Any] = Keyset((Case.received_at, Case.id), (CursorTime, uuid.UUID),
                                 lambda row: (row[0].received_at, row[0].id), descending=True)


@dataclass
class CaseRow:
    case: Case
    overdue: bool
    next_due_at: datetime | None
    names_shown: bool  # oversight readers get no child's name


async def list_cases(session: AsyncSession, subject: Subject, *, state: State | None, overdue: bool | None,
                     cursor: str | None, limit: int) -> tuple[list[CaseRow], str | None]:
    query = readable(subject).add_columns(_overdue_condition().label("overdue"), _next_due().label("next_due"))
    if state is not None:
        query = query.where(Case.state == state.value)
    if overdue is not None:
        query = query.where(_overdue_condition() if overdue else ~_overdue_condition())
    rows, next_cursor = CASE_PAGES.page(list((await session.execute(CASE_PAGES.query(query, cursor, limit))).all()),
                                        limit)
    names = subject.scope(Action.CASE_READ) != Scope.SUMMARY
    if rows:
        await audit.record(session, subject, "list", "case", [str(row[0].id) for row in rows])
    return [CaseRow(row[0], bool(row[1]), row[2], names) for row in rows], next_cursor


HISTORY_PAGES: Keyset[CaseHistory] = Keyset((CaseHistory.version,), (CursorInt,), lambda e: (e.version,))
NOTE_PAGES: Keyset[CaseNote] = Keyset((CaseNote.at, CaseNote.id), (CursorTime, uuid.UUID), lambda n: (n.at, n.id))
TASK_PAGES: Keyset[CaseTask] = Keyset((CaseTask.created_at, CaseTask.id), (CursorTime, uuid.UUID),
                                      lambda t: (t.created_at, t.id))


async def history(session: AsyncSession, subject: Subject, case_id: uuid.UUID, cursor: str | None,
                  limit: int) -> tuple[list[CaseHistory], bool, str | None]:
    """The case's history, oldest first, a page at a time; the forms recorded only for the case managers. For a
    commune that handed the case over, only the rows of its own time (its trace)."""
    # A crafted cursor is refused before anything is read.
    query = HISTORY_PAGES.query(select(CaseHistory).where(CaseHistory.case_id == case_id), cursor, limit)
    case = (await session.execute(readable(subject).where(Case.id == case_id))).scalar_one_or_none()
    only_trace = case is None
    if only_trace:
        traced = select(CaseHistory.id).where(CaseHistory.case_id == case_id, traced_history(subject)).limit(1)
        if await session.scalar(traced) is None:
            raise NotFound("no such case")
        query = query.where(traced_history(subject))
    entries, next_cursor = HISTORY_PAGES.page(list((await session.execute(query)).scalars()), limit)
    await audit.record(session, subject, "read", "case_history", str(case_id),
                       purpose="trace of a case handed over" if only_trace else None)
    return entries, only_trace or (case is not None and visibility(subject, case).manager), next_cursor



# ---------------------------------------------------------------------------------------------------- workflow


def _form(step: workflow.Step, body: dict[str, Any] | forms.Form) -> forms.Form:
    if isinstance(body, step.form):
        return body
    if isinstance(body, forms.Form):
        body = body.model_dump(mode="json", exclude_unset=True)
    try:
        return step.form.model_validate(body)
    except ValidationError as exc:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        raise UnprocessableContent(f"the data for {step.action} is not valid", errors=errors) from exc


async def take_action(session: AsyncSession, subject: Subject, case_id: uuid.UUID, action: str,
                      body: dict[str, Any] | forms.Form, if_match: str | None,
                      settings: CasesSettings) -> CaseDetail:
    """Take one workflow action: the table decides whether it is allowed, the step's form is the body."""
    step = workflow.STEPS.get(action)
    if step is None:
        raise NotFound(f"no such workflow action: {action}")
    if not subject.can(step.permission):
        raise Forbidden(f"your role may not {step.permission.value}")
    require_sent(if_match, what="case")
    # The row lock makes two officers acting at once queue; the second then fails the version check.
    case = await _reachable(session, subject, case_id, step.permission, lock=True)
    await check_case_precondition(session, if_match, case)
    deadlines = await deadlines_of(session, case.id)
    running = {Deadline(d.name): d for d in deadlines if d.running}
    position = workflow.Position(State(case.state), frozenset(running))
    try:
        after = workflow.advance(position, action)
    except workflow.IllegalTransition as exc:
        tasks = list((await session.execute(select(CaseTask).where(CaseTask.case_id == case.id))).scalars())
        raise InvalidTransition(
            f"{action} is not allowed while the case is {case.state}", state=case.state,
            allowed_actions=allowed_actions(subject, case, deadlines, tasks),
        ) from exc
    form = _form(step, body)
    now = utcnow()
    previous, leading = State(case.state), case.commune_code
    data = form.model_dump(mode="json")
    # The step's papers are numbered first: a decision (Forms 05, 07) records the number of its paper.
    numbers = await documents.register_step(session, case, subject, action, data, now, leading, settings,
                                            step_version=case.version + 1)
    await _apply_effects(session, subject, case, step, form, previous, after.state, running, settings, now, numbers)
    closing = after.state == S.CLOSED
    # An emergency measure meets the 12-hour clock when it was taken, which may be before it was recorded.
    taken_at = getattr(form, "taken_at", None) or now
    for name in step.stops:
        if name in running:
            if closing:
                running[name].cancelled_at = now
            else:
                running[name].met_at = taken_at if name in workflow.MET_WHEN_TAKEN else now
    for name in step.starts:
        if name in running:
            running[name].met_at = now
        started = _start_deadline(session, case, name, settings, now)
        if name in workflow.MET_WHEN_TAKEN and case.emergency_measure_at is not None:
            # A competent body (police) already protected the child before the commune's assessment found it needed.
            started.met_at = case.emergency_measure_at
        if isinstance(form, forms.SeparationDecision) and name == Deadline.SEPARATION:
            # The decision's own duration; the table holds the 15-day maximum.
            started.started_at = taken_at
            started.due_at = _end_of_days(taken_at, form.duration_days)
        deadlines.append(started)
    case.state = after.state.value
    case.version += 1
    case.updated_at = now
    _record(session, case, subject, action, previous.value, data, now, leading)
    await session.flush()
    outbox.emit(session, "case.changed", await current_snapshot(session, case) | {"action": action},
                agency=subject.agency.value)
    await audit.record(session, subject, action, "case", str(case.id))
    return await detail(session, subject, case)


async def _apply_effects(session: AsyncSession, subject: Subject, case: Case, step: workflow.Step,
                         form: forms.Form, previous: State, new: State, running: dict[Deadline, CaseDeadline],
                         settings: CasesSettings, now: datetime, numbers: dict[str, str]) -> None:
    """What a step does besides moving the state, chosen by the (previous, new) states, or by the form for the
    steps that keep the state. `numbers` are the step's papers' register numbers, by paper."""
    match (previous, new):
        case (S.ASSESSING, S.EMERGENCY_PROTECTION | S.SPECIFIC_ASSESSMENT):
            assert isinstance(form, forms.InitialAssessment)
            case.emergency = new == S.EMERGENCY_PROTECTION
            if form.residence_commune_code is not None:
                case.residence_commune_code = form.residence_commune_code
        case (S.EMERGENCY_PROTECTION, S.SPECIFIC_ASSESSMENT) if isinstance(form, forms.EmergencyMeasures):
            _note_emergency_measure(case, form.taken_at or now, subject.agency.value)
        case (S.SPECIFIC_ASSESSMENT, S.PLAN_DRAFTING):
            assert isinstance(form, forms.SpecificAssessment)
            if (form.parent_views == ParentViews.NOT_ASKED_ALLEGED_ABUSER
                    and case.perpetrator_relationship not in PARENT_LIKE):
                raise UnprocessableContent("the parents' views are left out only when a parent or carer is the "
                                           "alleged abuser (Decree 56 Art. 27(1)(h)); the case names "
                                           f"{case.perpetrator_relationship}")
            case.child_views_taken = form.child_views is not None
            case.parent_views = form.parent_views.value
            case.plan_cycle += 1
        case (S.REVIEWING, S.PLAN_DRAFTING):
            case.plan_cycle += 1
        case (S.PLAN_DRAFTING | S.PLAN_RETURNED, S.AWAITING_APPROVAL):
            assert isinstance(form, forms.PlanSubmission)
            session.add(CasePlan(
                case_id=case.id, cycle=case.plan_cycle, status="submitted", objectives=form.objectives,
                measures=[m.model_dump(mode="json") for m in form.measures],
                tasks=[t.model_dump(mode="json") for t in form.tasks], submitted_at=now, submitted_by=subject.id,
            ))
        case (S.AWAITING_APPROVAL, S.IMPLEMENTING):
            assert isinstance(form, forms.PlanApproval)
            await _approve_plan(session, subject, case, form, now, numbers[documents.Paper.PLAN_APPROVAL])
        case (S.AWAITING_APPROVAL, S.PLAN_RETURNED):
            assert isinstance(form, forms.PlanReturn)
            plan = await _submitted_plan(session, case)
            plan.status, plan.decided_at, plan.decided_by = "returned", now, subject.id
            plan.return_reason = form.reason
        case (S.IMPLEMENTING, S.REVIEWING):
            tasks = list((await session.execute(select(CaseTask).where(CaseTask.case_id == case.id))).scalars())
            waiting = _unfinished_cycle_tasks(case, tasks)
            if waiting:
                raise Conflict("the review starts when the plan's tasks are done, or waived with a reason "
                               "(Decree 56 Art. 30(1))", waiting_tasks=[str(t.id) for t in waiting])
        case (S.AWAITING_CLOSURE, S.CLOSED):
            case.closure_kind, case.closure_reason = ClosureKind.REVIEW.value, ClosureReason.SAFE_AND_STABLE.value
            await _close(session, case, now)
        case (_, S.CLOSED):
            assert isinstance(form, forms.EarlyClosure)
            case.closure_kind, case.closure_reason = ClosureKind.EARLY.value, form.reason.value
            await _close(session, case, now)
        case (same, new_state) if same == new_state:
            await _apply_same_state_step(session, subject, case, form, running, now, numbers)


def _note_emergency_measure(case: Case, taken_at: datetime, agency: str) -> None:
    """The first emergency measure taken for the child: what the 12-hour indicator counts."""
    case.emergency = True
    if case.emergency_measure_at is None or taken_at < case.emergency_measure_at:
        case.emergency_measure_at, case.emergency_measure_agency = taken_at, agency


async def _open_separation(session: AsyncSession, case: Case) -> CaseSeparation:
    return (await session.execute(
        select(CaseSeparation).where(CaseSeparation.case_id == case.id, CaseSeparation.ended_at.is_(None))
        .order_by(CaseSeparation.decided_at.desc()).limit(1)
    )).scalar_one()


async def _apply_same_state_step(session: AsyncSession, subject: Subject, case: Case, form: forms.Form,
                                 running: dict[Deadline, CaseDeadline], now: datetime,
                                 numbers: dict[str, str]) -> None:
    match form:
        case forms.HandOver(residence_commune_code=given):
            target = given or case.residence_commune_code
            if target is None:
                raise UnprocessableContent("the commune where the child lives is not known: give "
                                           "residence_commune_code")
            if target == case.commune_code:
                raise InvalidTransition("the commune where the child lives already leads the case",
                                        state=case.state, allowed_actions=[])
            case.residence_commune_code = target
            _lead(case, target)
        case forms.Transfer(to_commune_code=commune):
            if commune == case.commune_code:
                raise InvalidTransition("the case is already with that commune", state=case.state,
                                        allowed_actions=[])
            case.residence_commune_code = commune
            _lead(case, commune)
        case forms.EmergencyMeasureRecord():
            agency = form.agency.value if form.agency else subject.agency.value
            if subject.agency.value != "peoples_committee" and agency != subject.agency.value:
                raise UnprocessableContent("record the measures your own agency took")
            _note_emergency_measure(case, form.taken_at or now, agency)
        case forms.SeparationDecision():
            _check_separation_ground(case, form)
            decided = form.taken_at or now
            ends = _end_of_days(decided, form.duration_days)
            session.add(CaseSeparation(case_id=case.id, decided_at=decided, decided_by=subject.id,
                                       decision_number=numbers[documents.Paper.SEPARATION_DECISION],
                                       ground=form.ground.value, duration_days=form.duration_days, ends_at=ends,
                                       place=form.place, alternative_carer=form.alternative_carer))
            if form.ground == SeparationGround.EMERGENCY:
                _note_emergency_measure(case, decided, subject.agency.value)
        case forms.SeparationExtension():
            separation = await _open_separation(session, case)
            total = separation.duration_days + separation.extended_days + form.days
            authority = form.competent_authority
            if total > forms.SEPARATION_MAX_DAYS and authority is None and separation.authority_document is None:
                raise UnprocessableContent(
                    f"a separation lasts at most {forms.SEPARATION_MAX_DAYS} days in all unless a competent "
                    f"authority requires more (Decree 56 Art. 32(3)); this one would last {total}: name the "
                    "authority and its document")
            separation.extended_days += form.days
            separation.ends_at = separation.ends_at + timedelta(days=form.days)
            if authority is not None:
                separation.authority_name, separation.authority_document = authority.name, authority.document_number
            running[Deadline.SEPARATION].due_at = separation.ends_at
        case forms.SeparationEnd():
            separation = await _open_separation(session, case)
            separation.ended_at, separation.end_kind = now, form.kind.value


def _lead(case: Case, commune: str) -> None:
    """The commune that leads from now on (Law Art. 52(2)); deadlines and history stay with the case."""
    province = province_of(commune)
    assert province is not None  # forms accept official codes only
    case.commune_code, case.province_code = commune, province


def _end_of_days(start: datetime, days: int) -> datetime:
    rule = workflow.DeadlineRule(Deadline.SEPARATION, days, "days", "started", "")
    return workflow.due_at(rule, days, received_at=start, started_at=start)


def _check_separation_ground(case: Case, form: forms.SeparationDecision) -> None:
    """Decree 56 Art. 32(1): a separation needs one of the law's grounds, as the case stands."""
    match form.ground:
        case SeparationGround.EMERGENCY if not case.emergency:
            raise UnprocessableContent("no emergency was found: the initial assessment (Form 02) or an emergency "
                                       "measure must find the child needs emergency protection (Art. 26(3))")
        case SeparationGround.PARENTS_REFUSE_PLAN if case.plan_cycle == 0:
            raise UnprocessableContent("there is no plan yet for the parents to refuse (Art. 32(1))")


async def _approve_plan(session: AsyncSession, subject: Subject, case: Case, form: forms.PlanApproval,
                        now: datetime, decision_number: str) -> None:
    """Form 05: the plan's tasks become the tasks of its cycle; tasks of earlier cycles still open are replaced."""
    plan = await _submitted_plan(session, case)
    plan.status, plan.decided_at, plan.decided_by = "approved", now, subject.id
    plan.decision_number = decision_number
    if case.plan_approved_at is None:
        case.plan_approved_at = now
    earlier = (await session.execute(
        select(CaseTask).where(CaseTask.case_id == case.id, CaseTask.kind == "plan",
                               CaseTask.cycle < plan.cycle, CaseTask.status.in_(OPEN_TASK_STATUSES))
    )).scalars()
    for task in earlier:
        task.status, task.status_reason = TaskStatus.CANCELLED.value, "replaced by a new plan"
        task.updated_at, task.version = now, task.version + 1
    for task in plan.tasks:
        session.add(CaseTask(case_id=case.id, plan_id=plan.id, kind="plan", agency=task["agency"],
                             assignee_id=task.get("assignee_id"), title=task["title"], cycle=plan.cycle,
                             start_date=date.fromisoformat(task["start_date"]),
                             due_date=date.fromisoformat(task["end_date"]), provider=task.get("provider"),
                             budget_vnd=task["budget_vnd"], status=TaskStatus.OPEN.value, notes=[],
                             created_at=now, updated_at=now))


async def _close(session: AsyncSession, case: Case, now: datetime) -> None:
    case.closed_at = now
    await _cancel_open_tasks(session, case, now)
    separation = (await session.execute(
        select(CaseSeparation).where(CaseSeparation.case_id == case.id, CaseSeparation.ended_at.is_(None))
    )).scalars()
    for open_separation in separation:
        open_separation.ended_at, open_separation.end_kind = now, "case_closed"


async def _submitted_plan(session: AsyncSession, case: Case) -> CasePlan:
    plan = (await session.execute(
        select(CasePlan).where(CasePlan.case_id == case.id, CasePlan.status == "submitted")
        .order_by(CasePlan.submitted_at.desc()).limit(1)
    )).scalar_one()
    return plan


async def _cancel_open_tasks(session: AsyncSession, case: Case, now: datetime) -> None:
    tasks = (await session.execute(
        select(CaseTask).where(CaseTask.case_id == case.id, CaseTask.status.in_(OPEN_TASK_STATUSES))
    )).scalars()
    for task in tasks:
        task.status, task.updated_at, task.version = TaskStatus.CANCELLED.value, now, task.version + 1


# ---------------------------------------------------------------------------------------------------- notes, tasks


def _refuse_if_closed(case: Case, what: str) -> None:
    if case.state == S.CLOSED.value:
        raise InvalidTransition(f"the case is closed: it takes no {what}", state=case.state, allowed_actions=[])


async def add_note(session: AsyncSession, subject: Subject, case_id: uuid.UUID, data: NoteCreate) -> CaseNote:
    case = await _reachable(session, subject, case_id, Action.CASE_NOTE)
    _refuse_if_closed(case, "new notes")
    note = CaseNote(case_id=case.id, at=utcnow(), author_id=subject.id, author_role=subject.role.value,
                    agency=subject.agency.value, visibility=data.visibility.value, text=data.text)
    session.add(note)
    await session.flush()
    await audit.record(session, subject, "add_note", "case", str(case.id))
    return note


async def list_notes(session: AsyncSession, subject: Subject, case_id: uuid.UUID, cursor: str | None,
                     limit: int) -> tuple[list[CaseNote], str | None]:
    query = NOTE_PAGES.query(select(CaseNote), cursor, limit)
    case = await _reachable(session, subject, case_id, Action.CASE_READ)
    view = visibility(subject, case)
    await audit.record(session, subject, "read", "case_notes", str(case.id))
    query = query.where(CaseNote.case_id == case.id, view.notes_filter(subject))
    return NOTE_PAGES.page(list((await session.execute(query)).scalars()), limit)


async def update_task(session: AsyncSession, subject: Subject, task_id: uuid.UUID, data: TaskUpdate,
                      if_match: str | None) -> CaseTask:
    """Move a task along `TASK_MOVES`: its agency works it (open → in_progress → done, or cannot_be_done with a
    reason); only the case officer of the leading commune reopens or waives it, with a reason."""
    require_sent(if_match, what="task")
    query = (readable_tasks(subject, Action.TASK_UPDATE).add_columns(Case).where(CaseTask.id == task_id)
             .with_for_update(of=CaseTask))
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise NotFound("no such task")
    task, case = row
    require_match(if_match, etag(task.version), what="task",
                  location=public_path(f"/v1/cases/{task.case_id}/tasks"))
    _refuse_if_closed(case, "task changes")
    current = TaskStatus(task.status)
    now = utcnow()
    if data.status is not None and data.status != current:
        if data.status not in TASK_MOVES[current]:
            raise InvalidTransition(f"a task {current.value} cannot become {data.status.value}",
                                    task_status=current.value,
                                    allowed_statuses=sorted(m.value for m in TASK_MOVES[current]))
        if data.status in OFFICER_ONLY and not (subject.can(Action.CASE_PLAN) and visibility(subject, case).manager):
            raise Forbidden("only the case officer reopens or waives a task")
        if data.status in NEEDS_REASON and data.reason is None:
            raise UnprocessableContent(f"say why the task is {data.status.value}: give a reason")
        task.status, task.status_reason = data.status.value, data.reason
    if data.assignee_id is not None:
        task.assignee_id = data.assignee_id
    text = "; ".join(t for t in (data.reason if data.status else None, data.note) if t)
    if text or data.status:
        task.notes = [*task.notes, {"at": now.isoformat(), "author_id": subject.id, "agency": subject.agency.value,
                                    "status": task.status, "text": text or None}]
    task.version += 1
    task.updated_at = now
    await session.flush()
    await audit.record(session, subject, "update_task", "case", str(task.case_id), purpose=f"task {task.id}")
    return task


async def list_tasks(session: AsyncSession, subject: Subject, case_id: uuid.UUID, cursor: str | None,
                     limit: int) -> tuple[list[CaseTask], str | None]:
    query = TASK_PAGES.query(select(CaseTask), cursor, limit)
    case = await _reachable(session, subject, case_id, Action.CASE_READ)
    view = visibility(subject, case)
    await audit.record(session, subject, "read", "case_tasks", str(case.id))
    query = query.where(CaseTask.case_id == case.id, view.tasks_filter())
    return TASK_PAGES.page(list((await session.execute(query)).scalars()), limit)


# ---------------------------------------------------------------------------------------------------- my work


# The decisions the law gives the chairman (and, for emergency measures, another competent body): emergency
# measures and separation (Decree 56 Art. 26(3), 31, 32), the plan (Art. 28(4)), the closure (Art. 30).
DECISION_PERMISSIONS = frozenset({Action.CASE_APPROVE, Action.CASE_CLOSE, Action.CASE_EMERGENCY})
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)  # undated work sorts last (a cursor holds no "infinity")


@dataclass(frozen=True)
class Waiting:
    """Cases in `states` (and with `requires` running) wait for one of `actions`; due by `due_by` deadlines."""

    states: tuple[State, ...]
    requires: Deadline | None
    actions: tuple[str, ...]
    due_by: tuple[Deadline, ...]


@cache
def waiting_decisions(permissions: frozenset[Action]) -> tuple[Waiting, ...]:
    """From the workflow table: where a case waits for a decision that `permissions` allow. A step available in
    (almost) every open state, like an early closure, is always possible and so never waits; one that needs a
    running deadline (a separation's extension or end) waits while that deadline runs."""
    generic = len(workflow.OPEN_STATES) - 1
    groups: dict[tuple[tuple[State, ...], Deadline | None], list[workflow.Step]] = {}
    for step in workflow.TRANSITIONS:
        if step.permission not in permissions or step.permission not in DECISION_PERMISSIONS:
            continue
        if step.requires_running is None and len(step.sources) >= generic:
            continue
        states = step.sources if step.requires_running else ()
        if step.requires_running is None:
            for state in step.sources:
                groups.setdefault(((state,), None), []).append(step)
        else:
            groups.setdefault((states, step.requires_running), []).append(step)
    return tuple(
        Waiting(states, requires, tuple(s.action for s in steps),
                tuple(dict.fromkeys(d for s in steps if s.target != S.CLOSED
                                    for d in (*s.stops, *((s.requires_running,) if s.requires_running else ())))))
        for (states, requires), steps in groups.items())


def _running(case_id: Any, names: Sequence[Deadline] | None = None) -> Any:
    condition = and_(CaseDeadline.case_id == case_id, CaseDeadline.met_at.is_(None),
                     CaseDeadline.cancelled_at.is_(None))
    return condition if names is None else and_(condition, CaseDeadline.name.in_([n.value for n in names]))


WORK_COLUMNS = ("rank", "due_at", "kind", "item_id", "case_id", "name", "actions", "task_status", "task_version")
WHEN = DateTime(timezone=True)


def _work_row(due: Any, now: datetime, kind: str, item_id: Any, case_id: Any, name: Any, actions: Any,
              task_status: Any = None, task_version: Any = None) -> Any:
    """One branch of the work list: the same columns in every branch; rank 0 is overdue, 1 is not yet."""
    values = (sql_case((due < now, 0), else_=1), due, literal(kind, String), cast(item_id, String), case_id,
              cast(name, String), cast(actions, String),
              null().cast(String) if task_status is None else task_status,
              null().cast(Integer) if task_version is None else task_version)
    return select(*(value.label(label) for value, label in zip(values, WORK_COLUMNS, strict=True)))


def _work_union(subject: Subject, now: datetime) -> Any:
    still_open = Case.state.in_([s.value for s in workflow.OPEN_STATES])
    parts = []
    if is_manager(subject):
        # Every running deadline of the open cases the caller's commune leads (Law Art. 52(2)). For each open case
        # (an index-only scan), its running deadlines (an index scan): a commune has a few hundred open cases,
        # while the table of running deadlines is large and a hash join would read it all.
        running = (select(CaseDeadline.id, CaseDeadline.name, CaseDeadline.due_at).where(_running(Case.id))
                   .limit(len(Deadline)).lateral("running"))  # at most one of each; the limit keeps it per case
        parts.append(_work_row(running.c.due_at, now, "deadline", running.c.id, Case.id, running.c.name,
                               running.c.name)
                     .select_from(Case).join(running, true())
                     .where(reach(subject, Action.CASE_READ), still_open))
    held = frozenset(action for action in DECISION_PERMISSIONS if subject.can(action))
    for waiting in waiting_decisions(held):
        due = (func.coalesce(select(func.min(CaseDeadline.due_at)).where(_running(Case.id, waiting.due_by))
                             .scalar_subquery(), literal(FAR_FUTURE, WHEN))
               if waiting.due_by else literal(FAR_FUTURE, WHEN))
        decision = (_work_row(due, now, "decision", Case.id, Case.id, literal(waiting.actions[0]),
                              literal(",".join(waiting.actions)))
                    .select_from(Case)
                    .where(reach(subject, workflow.STEPS[waiting.actions[0]].permission),
                           Case.state.in_([s.value for s in waiting.states])))
        if waiting.requires is not None:
            # A subquery per case, not a semi-join that would read every running deadline of the country.
            decision = decision.where(select(CaseDeadline.id).where(_running(Case.id, (waiting.requires,))).limit(1)
                                      .scalar_subquery().is_not(None))
        parts.append(decision)
    if subject.can(Action.TASK_UPDATE):
        # A task is due by the end of its day, Vietnam time.
        task_due = func.timezone(workflow.VIETNAM.key, cast(CaseTask.due_date + 1, DateTime), type_=WHEN)
        mine = or_(CaseTask.assignee_id == subject.id,
                   and_(CaseTask.assignee_id.is_(None), CaseTask.agency == subject.agency.value))
        tasks = readable_tasks(subject, Action.TASK_UPDATE).where(
            still_open, CaseTask.status.in_(OPEN_TASK_STATUSES), mine)
        parts.append(tasks.with_only_columns(*_work_row(
            task_due, now, "task", CaseTask.id, CaseTask.case_id, CaseTask.title, literal(""), CaseTask.status,
            CaseTask.version).selected_columns))
    if not parts:
        parts.append(_work_row(literal(FAR_FUTURE, WHEN), now, "none", Case.id, Case.id, literal(""),
                               literal("")).select_from(Case).where(false()))
    return union_all(*parts).subquery("work")


@dataclass
class WorkRow:
    kind: str
    item_id: str
    case_id: uuid.UUID
    name: str
    actions: list[str]
    due_at: datetime | None
    overdue: bool
    state: str
    commune_code: str
    child_first_name: str | None
    child_age_years: int | None
    task_status: str | None
    task_version: int | None


async def my_work(session: AsyncSession, subject: Subject, cursor: str | None,
                  limit: int) -> tuple[list[WorkRow], str | None]:
    """Everything waiting for the caller, overdue first, then by due time, a page at a time:

    - every running deadline of every open case the caller's commune leads (the case managers);
    - every case waiting for a decision the caller's role takes (from the workflow table: `waiting_decisions`);
    - the open tasks of the caller's agency not assigned to someone else, and those assigned to the caller.
    Each row carries the case's display fields (the child's first name and age, the commune, the state).
    """
    work = _work_union(subject, utcnow())
    pages: Keyset[Any] = Keyset((work.c.rank, work.c.due_at, work.c.kind, work.c.item_id),
                                (CursorInt, CursorTime, CursorText, CursorText),
                                lambda row: (row.rank, row.due_at, row.kind, row.item_id))
    # The page is cut from the union first; only its rows then fetch their case's display fields.
    page = pages.query(select(work), cursor, limit).subquery("page")
    query = (select(page, Case.state, Case.commune_code, Case.child_first_name, Case.child_age_years)
             .join(Case, Case.id == page.c.case_id)
             .order_by(page.c.rank, page.c.due_at, page.c.kind, page.c.item_id))
    rows, next_cursor = pages.page((await session.execute(query)).all(), limit)
    if rows:
        await audit.record(session, subject, "list", "case", sorted({str(r.case_id) for r in rows}),
                           purpose="my work")
    return [WorkRow(kind=r.kind, item_id=r.item_id, case_id=r.case_id, name=r.name,
                    actions=[a for a in r.actions.split(",") if a] if r.kind == "decision" else [],
                    due_at=None if r.due_at >= FAR_FUTURE else r.due_at, overdue=r.rank == 0, state=r.state,
                    commune_code=r.commune_code, child_first_name=r.child_first_name,
                    child_age_years=r.child_age_years, task_status=r.task_status, task_version=r.task_version)
            for r in rows], next_cursor


# ---------------------------------------------------------------------------------------------------- deadlines


async def check_deadlines(database: Database, settings: CasesSettings, now: datetime | None = None) -> int:
    """Mark overdue steps and emit `case.deadline_missed` once per missed deadline. Returns how many were marked.

    Safe to run in several processes at once: cases are locked with SKIP LOCKED and a deadline is marked once.
    """
    now = now or utcnow()
    overdue = and_(CaseDeadline.met_at.is_(None), CaseDeadline.cancelled_at.is_(None),
                   CaseDeadline.missed_at.is_(None), CaseDeadline.due_at < now)
    marked = 0
    async with database.sessionmaker() as session:
        try:
            case_ids = list((await session.execute(
                select(CaseDeadline.case_id).where(overdue).group_by(CaseDeadline.case_id)
                .order_by(func.min(CaseDeadline.due_at)).limit(settings.deadline_check_batch)
            )).scalars())
            for case_id in case_ids:
                case = (await session.execute(
                    select(Case).where(Case.id == case_id).with_for_update(skip_locked=True)
                )).scalar_one_or_none()
                if case is None:
                    continue
                deadlines = await deadlines_of(session, case.id)
                separations = await separations_of(session, case.id)
                for deadline in deadlines:
                    if deadline.running and deadline.missed_at is None and deadline.due_at < now:
                        deadline.missed_at = now
                        case.version += 1
                        _record(session, case, SYSTEM, "deadline_missed", case.state, {"deadline": deadline.name},
                                now)
                        outbox.emit(session, "case.deadline_missed",
                                    snapshot(case, deadlines, separations) | {"deadline": deadline.name},
                                    agency=Agency.SYSTEM.value)
                        marked += 1
                await audit.record(session, SYSTEM, "mark_missed", "case", str(case.id))
            await session.flush()
            await outbox.write_pending(session)  # the events go with the marks, whoever built `database`
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
    return marked


# ---------------------------------------------------------------------------------------------------- registry


async def link_child(session: AsyncSession, subject: Subject, case_id: uuid.UUID, data: LinkChild,
                     if_match: str | None, registry: RegistryClient, authorization: str) -> CaseDetail:
    """Link the case to a registry child (existing, or registered now). The case is untouched if that fails."""
    require_sent(if_match, what="case")
    case = await _reachable(session, subject, case_id, Action.CASE_LINK_CHILD)
    await check_case_precondition(session, if_match, case)
    if case.state == S.CLOSED.value:
        raise InvalidTransition("a closed case cannot be linked", state=case.state, allowed_actions=[])
    # The registry call happens before the row lock, so a slow registry never holds the case.
    if data.child_id is not None:
        child_id = await registry.existing_child(data.child_id, case.id, authorization)
    else:
        assert data.new_child is not None
        where = data.new_child.commune_code
        # The registry is written with this service's own account, which may register a child anywhere: the
        # caller's jurisdiction is checked here, as the registry would check it for the caller.
        if not subject.jurisdiction.contains(province_of(where), where):
            raise NotFound("no such commune in your jurisdiction")
        child_id = await registry.register_child(data.new_child)
    case = await _reachable(session, subject, case_id, Action.CASE_LINK_CHILD, lock=True)
    await check_case_precondition(session, if_match, case)
    now = utcnow()
    case.child_id = child_id
    case.version += 1
    case.updated_at = now
    _record(session, case, subject, "link_child", case.state, {"child_id": str(child_id)}, now)
    await session.flush()
    outbox.emit(session, "case.changed", await current_snapshot(session, case) | {"action": "link_child"},
                agency=subject.agency.value)
    await audit.record(session, subject, "link_child", "case", str(case.id))
    return await detail(session, subject, case)


async def involves(session: AsyncSession, purpose: str, agency: str, child_id: uuid.UUID,
                   commune: str | None = None) -> bool:
    """What the registry asks before it shows a child record outside its commune (need-to-know, Decree 56 Art. 33):
    is the case or task named by `purpose` (case:<uuid> or task:<uuid>) about `child_id` (linked by the leading
    commune), and

    - with `commune`: does that commune lead the case now (Law Art. 52(2); a handover moves the lead)?
    - otherwise: does it have a task or referral assigned to `agency`? An agency's own intake never counts: filing
      a report must not open a child's record (trust finding 1).
    """
    kind, _, raw_id = purpose.partition(":")
    try:
        object_id = uuid.UUID(raw_id)
    except ValueError:
        return False
    if commune is not None:
        if kind != "case" or agency != Agency.PEOPLES_COMMITTEE.value:
            return False
        query = select(Case.id).where(Case.id == object_id, Case.child_id == child_id, Case.commune_code == commune)
    elif kind == "task":
        query = (select(CaseTask.id).join(Case, Case.id == CaseTask.case_id)
                 .where(CaseTask.id == object_id, CaseTask.agency == agency, Case.child_id == child_id))
    else:
        has_task = exists().where(CaseTask.case_id == Case.id, CaseTask.agency == agency)
        query = select(Case.id).where(Case.id == object_id, Case.child_id == child_id, has_task)
    return (await session.scalar(query)) is not None


async def name_alleged_perpetrator(session: AsyncSession, subject: Subject, case_id: uuid.UUID,
                                   data: AllegedPerpetrator, if_match: str | None,
                                   registry: RegistryClient) -> CaseDetail:
    """Name which of the child's guardians is the alleged perpetrator, on the case (never in the registry): by the
    registry guardian's id, checked against the linked child's guardians, or by the relationship alone."""
    require_sent(if_match, what="case")
    case = await _reachable(session, subject, case_id, Action.CASE_ASSESS)
    await check_case_precondition(session, if_match, case)
    relationship = data.relationship.value if data.relationship is not None else None
    if data.guardian_id is not None:
        if case.child_id is None:
            raise Conflict("link the child first: a guardian is named among the registry child's guardians")
        # Asked before the row lock, so a slow registry never holds the case.
        guardians = await registry.guardians(case.child_id, case.id)
        guardian = next((g for g in guardians if g.get("id") == str(data.guardian_id)), None)
        if guardian is None:
            raise UnprocessableContent("no such guardian of the linked child", errors=[FieldError(
                loc=["body", "guardian_id"], msg="not a guardian of the linked child",
                type="guardian_id.unknown").model_dump()])
        relationship = str(guardian.get("relationship"))
    case = await _reachable(session, subject, case_id, Action.CASE_ASSESS, lock=True)
    await check_case_precondition(session, if_match, case)
    if case.state == S.CLOSED.value:
        raise InvalidTransition("the case is closed", state=case.state, allowed_actions=[])
    now = utcnow()
    case.perpetrator_guardian_id, case.perpetrator_guardian_relationship = data.guardian_id, relationship
    case.version += 1
    case.updated_at = now
    _record(session, case, subject, "name_alleged_perpetrator", case.state,
            {"guardian_id": str(data.guardian_id) if data.guardian_id else None, "relationship": relationship}, now)
    await session.flush()
    outbox.emit(session, "case.changed", snapshot(case, await deadlines_of(session, case.id)) | {
        "action": "name_alleged_perpetrator"}, agency=subject.agency.value)
    await audit.record(session, subject, "name_alleged_perpetrator", "case", str(case.id))
    return await detail(session, subject, case)


async def count_overdue(database: Database) -> int:
    """Deadlines missed and still running (the step is not done yet): what the supervisors must chase."""
    async with database.sessionmaker() as session:
        return int(await session.scalar(
            select(func.count()).select_from(CaseDeadline)
            .where(CaseDeadline.missed_at.is_not(None), CaseDeadline.met_at.is_(None),
                   CaseDeadline.cancelled_at.is_(None))
        ) or 0)
