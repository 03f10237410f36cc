"""Cases logic: intake, workflow actions driven by `workflow.TRANSITIONS`, tasks, notes, the work list, the deadline
check, and links to the registry. Every read goes through `access.readable`; every read and write is audited.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, bindparam, exists, func, or_, select, true, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases import documents, forms, workflow
from services.cases.access import Visibility, reach, reaches, readable, readable_tasks, traced_history, visibility
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
from services.cases.schemas import CaseCreate, LinkChild, NoteCreate, TaskUpdate
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
    BadRequest,
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    UnprocessableContent,
)
from services.common.locations import province_of
from services.common.pagination import decode_cursor, encode_cursor
from services.common.permissions import Action, Agency, Role, Scope

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
    return f'"{version}"'


def check_precondition(if_match: str | None, version: int) -> None:
    if not if_match:
        raise PreconditionRequired("send If-Match with the ETag of the version you read")
    wanted = {tag.strip().removeprefix("W/").strip('"') for tag in if_match.split(",")}
    if str(version) not in wanted:
        raise PreconditionFailed("the case changed since you read it; read it again", current_etag=etag(version))


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
    leads the case until it hands it to the commune where the child lives. Returns (case, created)."""
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
        "category": data.category.value, "channel": data.channel.value if data.channel else None,
        "reporter_anonymous": data.reporter.anonymous, "reporter": reporter,
        "child_id": child.child_id, "child_first_name": first_name,
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
                      allowed_actions(subject, case, deadlines, tasks))


async def get_case(session: AsyncSession, subject: Subject, case_id: uuid.UUID) -> CaseDetail:
    case = await _reachable(session, subject, case_id, Action.CASE_READ)
    await audit.record(session, subject, "read", "case", str(case.id))
    return await detail(session, subject, case)


def _overdue_condition() -> Any:
    return exists().where(CaseDeadline.case_id == Case.id, CaseDeadline.missed_at.is_not(None),
                          CaseDeadline.met_at.is_(None), CaseDeadline.cancelled_at.is_(None))


async def list_cases(session: AsyncSession, subject: Subject, *, state: State | None, overdue: bool | None,
                     cursor: str | None, limit: int) -> tuple[list[tuple[Case, bool]], str | None]:
    overdue_flag = _overdue_condition().label("overdue")
    query = readable(subject).add_columns(overdue_flag).order_by(Case.received_at.desc(), Case.id.desc())
    if state is not None:
        query = query.where(Case.state == state.value)
    if overdue is not None:
        query = query.where(_overdue_condition() if overdue else ~_overdue_condition())
    after = decode_cursor(cursor, 2)
    if after is not None:
        try:
            at, last_id = datetime.fromisoformat(after[0]), uuid.UUID(after[1])
        except (TypeError, ValueError) as exc:
            raise BadRequest("the cursor is not valid") from exc
        query = query.where(tuple_(Case.received_at, Case.id) < tuple_(at, last_id))
    rows = [(row[0], bool(row[1])) for row in (await session.execute(query.limit(limit + 1))).all()]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1][0]
        next_cursor = encode_cursor([last.received_at.isoformat(), str(last.id)])
    if rows:
        await audit.record(session, subject, "list", "case", [str(c.id) for c, _ in rows])
    return rows, next_cursor


async def history(session: AsyncSession, subject: Subject, case_id: uuid.UUID) -> tuple[list[CaseHistory], bool]:
    """The case's history; for a commune that handed the case over, only the rows of its own time (its trace)."""
    case = (await session.execute(readable(subject).where(Case.id == case_id))).scalar_one_or_none()
    only_trace = case is None
    query = select(CaseHistory).where(CaseHistory.case_id == case_id).order_by(CaseHistory.version)
    if only_trace:
        query = query.where(traced_history(subject))
    entries = list((await session.execute(query)).scalars())
    if only_trace and not entries:
        raise NotFound("no such case")
    await audit.record(session, subject, "read", "case_history", str(case_id),
                       purpose="trace of a case handed over" if only_trace else None)
    return entries, only_trace or (case is not None and visibility(subject, case).manager)


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
    if not if_match:
        raise PreconditionRequired("send If-Match with the ETag of the version you read")
    # The row lock makes two officers acting at once queue; the second then fails the version check.
    case = await _reachable(session, subject, case_id, step.permission, lock=True)
    check_precondition(if_match, case.version)
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
    await _apply_effects(session, subject, case, step, form, previous, after.state, running, settings, now)
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
    data = form.model_dump(mode="json")
    _record(session, case, subject, action, previous.value, data, now, leading)
    await session.flush()
    await documents.register_step(session, case, subject, action, data, now, leading, settings)
    outbox.emit(session, "case.changed", await current_snapshot(session, case) | {"action": action},
                agency=subject.agency.value)
    await audit.record(session, subject, action, "case", str(case.id))
    return await detail(session, subject, case)


async def _apply_effects(session: AsyncSession, subject: Subject, case: Case, step: workflow.Step,
                         form: forms.Form, previous: State, new: State, running: dict[Deadline, CaseDeadline],
                         settings: CasesSettings, now: datetime) -> None:
    """What a step does besides moving the state, chosen by the (previous, new) states, or by the form for the
    steps that keep the state."""
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
            await _approve_plan(session, subject, case, form, now)
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
            await _apply_same_state_step(session, subject, case, form, running, now)


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
                                 running: dict[Deadline, CaseDeadline], now: datetime) -> None:
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
                                       decision_number=form.decision_number, ground=form.ground.value,
                                       duration_days=form.duration_days, ends_at=ends, place=form.place,
                                       alternative_carer=form.alternative_carer))
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
                        now: datetime) -> None:
    """Form 05: the plan's tasks become the tasks of its cycle; tasks of earlier cycles still open are replaced."""
    plan = await _submitted_plan(session, case)
    plan.status, plan.decided_at, plan.decided_by = "approved", now, subject.id
    plan.decision_number = form.decision_number
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


async def list_notes(session: AsyncSession, subject: Subject, case_id: uuid.UUID) -> list[CaseNote]:
    case = await _reachable(session, subject, case_id, Action.CASE_READ)
    view = visibility(subject, case)
    await audit.record(session, subject, "read", "case_notes", str(case.id))
    query = select(CaseNote).where(CaseNote.case_id == case.id, view.notes_filter(subject)).order_by(CaseNote.at)
    return list((await session.execute(query)).scalars())


async def update_task(session: AsyncSession, subject: Subject, task_id: uuid.UUID, data: TaskUpdate,
                      if_match: str | None) -> CaseTask:
    """Move a task along `TASK_MOVES`: its agency works it (open → in_progress → done, or cannot_be_done with a
    reason); only the case officer of the leading commune reopens or waives it, with a reason."""
    if not if_match:
        raise PreconditionRequired("send If-Match with the ETag of the task you read")
    query = (readable_tasks(subject, Action.TASK_UPDATE).add_columns(Case).where(CaseTask.id == task_id)
             .with_for_update(of=CaseTask))
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise NotFound("no such task")
    task, case = row
    check_precondition(if_match, task.version)
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


async def list_tasks(session: AsyncSession, subject: Subject, case_id: uuid.UUID) -> list[CaseTask]:
    case = await _reachable(session, subject, case_id, Action.CASE_READ)
    view = visibility(subject, case)
    await audit.record(session, subject, "read", "case_tasks", str(case.id))
    tasks = (await session.execute(
        select(CaseTask).where(CaseTask.case_id == case.id).order_by(CaseTask.created_at)
    )).scalars()
    return [t for t in tasks if view.sees_task(t)]


# ---------------------------------------------------------------------------------------------------- my work


@dataclass
class WorkList:
    tasks: list[CaseTask]
    approvals: list[tuple[Case, bool]]
    deadlines: list[Any]  # rows: case_id, commune_code, state, name, due_at, missed_at


async def my_work(session: AsyncSession, subject: Subject, settings: CasesSettings) -> WorkList:
    """Tasks due for the caller's agency (or the caller), plans awaiting the chairman, deadlines near or missed.

    Each list holds the `work_list_limit` most urgent items.
    """
    now, limit = utcnow(), settings.work_list_limit
    # Closed cases have no running deadlines nor open tasks: saying so lets the planner use the state indexes.
    still_open = Case.state.in_([s.value for s in workflow.OPEN_STATES])
    tasks: list[CaseTask] = []
    if subject.can(Action.TASK_UPDATE):
        query = readable_tasks(subject, Action.TASK_UPDATE).where(
            still_open, CaseTask.status.in_(OPEN_TASK_STATUSES),
            or_(CaseTask.assignee_id.is_(None), CaseTask.assignee_id == subject.id),
        ).order_by(CaseTask.due_date, CaseTask.id).limit(limit)
        tasks = list((await session.execute(query)).scalars())
    approvals: list[tuple[Case, bool]] = []
    if subject.can(Action.CASE_APPROVE):
        query = readable(subject, Action.CASE_APPROVE).add_columns(_overdue_condition()).where(
            Case.state == S.AWAITING_APPROVAL.value).order_by(Case.updated_at).limit(limit)
        approvals = [(row[0], bool(row[1])) for row in (await session.execute(query)).all()]
    deadlines: list[Any] = []
    mine = [d.value for d in Deadline if any(subject.can(p) for p in workflow.stopped_by(d))]
    # Supervisors (jurisdiction-wide readers) also see every missed deadline of their area.
    supervisor = subject.scope(Action.CASE_READ) == Scope.JURISDICTION and not subject.is_service
    if mine or supervisor:
        horizon = now + timedelta(hours=settings.work_horizon_hours)
        due_soon = and_(CaseDeadline.name.in_(mine), CaseDeadline.due_at < horizon)
        missed = CaseDeadline.missed_at.is_not(None)
        wanted = or_(due_soon, missed) if supervisor else and_(CaseDeadline.name.in_(mine), or_(due_soon, missed))
        # For each open case (an index-only scan), its running deadlines (an index scan): a commune has a few
        # hundred open cases, while the table of running deadlines is large and a hash join would read it all.
        running = (select(CaseDeadline.name, CaseDeadline.due_at, CaseDeadline.missed_at)
                   .where(CaseDeadline.case_id == Case.id, CaseDeadline.met_at.is_(None),
                          CaseDeadline.cancelled_at.is_(None), wanted)
                   .limit(len(Deadline)).lateral("running"))  # at most one of each; the limit keeps it per case
        query = (select(Case.id.label("case_id"), Case.commune_code, Case.state, running.c.name, running.c.due_at,
                        running.c.missed_at)
                 .select_from(Case).join(running, true())
                 .where(reach(subject, Action.CASE_READ), still_open)
                 .order_by(running.c.due_at).limit(limit))
        deadlines = list((await session.execute(query)).all())
    shown = {str(t.case_id) for t in tasks} | {str(c.id) for c, _ in approvals} | {str(r.case_id) for r in deadlines}
    if shown:
        await audit.record(session, subject, "list", "case", sorted(shown), purpose="my work")
    return WorkList(tasks, approvals, deadlines)


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
                     if_match: str | None, registry: RegistryClient) -> CaseDetail:
    """Link the case to a registry child (existing, or registered now). The case is untouched if that fails."""
    if not if_match:
        raise PreconditionRequired("send If-Match with the ETag of the version you read")
    case = await _reachable(session, subject, case_id, Action.CASE_LINK_CHILD)
    check_precondition(if_match, case.version)
    if case.state == S.CLOSED.value:
        raise InvalidTransition("a closed case cannot be linked", state=case.state, allowed_actions=[])
    # The registry call happens before the row lock, so a slow registry never holds the case.
    if data.child_id is not None:
        child_id = await registry.existing_child(data.child_id, case.id)
    else:
        assert data.new_child is not None
        where = data.new_child.commune_code
        # The registry is written with this service's own account, which may register a child anywhere: the
        # caller's jurisdiction is checked here, as the registry would check it for the caller.
        if not subject.jurisdiction.contains(province_of(where), where):
            raise NotFound("no such commune in your jurisdiction")
        child_id = await registry.register_child(data.new_child)
    case = await _reachable(session, subject, case_id, Action.CASE_LINK_CHILD, lock=True)
    check_precondition(if_match, case.version)
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


async def involves(session: AsyncSession, purpose: str, agency: str, child_id: uuid.UUID) -> bool:
    """Whether the case or task named by `purpose` (case:<uuid> or task:<uuid>) is about `child_id` and involves
    `agency` (a task or referral to it, or its own intake): what the registry asks before it shows another
    agency a child record (need-to-know, Decree 56 Art. 33)."""
    kind, _, raw_id = purpose.partition(":")
    try:
        object_id = uuid.UUID(raw_id)
    except ValueError:
        return False
    if kind == "task":
        query = (select(CaseTask.id).join(Case, Case.id == CaseTask.case_id)
                 .where(CaseTask.id == object_id, CaseTask.agency == agency, Case.child_id == child_id))
    else:
        has_task = exists().where(CaseTask.case_id == Case.id, CaseTask.agency == agency)
        query = select(Case.id).where(Case.id == object_id, Case.child_id == child_id,
                                      or_(has_task, Case.intake_agency == agency))
    return (await session.scalar(query)) is not None


async def count_overdue(database: Database) -> int:
    """Deadlines missed and still running (the step is not done yet): what the supervisors must chase."""
    async with database.sessionmaker() as session:
        return int(await session.scalar(
            select(func.count()).select_from(CaseDeadline)
            .where(CaseDeadline.missed_at.is_not(None), CaseDeadline.met_at.is_(None),
                   CaseDeadline.cancelled_at.is_(None))
        ) or 0)
