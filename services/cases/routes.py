"""Cases HTTP routes. HTTP only: the logic is in `service.py`, access control in `access.py`."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from services.cases import consent, display, service, workflow
from services.cases.registry import RegistryClient
from services.cases.schemas import (
    AllegedPerpetrator,
    AllegedPerpetratorRead,
    CaseCreate,
    CaseRead,
    CaseSummary,
    ChildRead,
    ConsentCreate,
    ConsentRead,
    ConsentWithdrawal,
    DeadlineRead,
    DisclosureCreate,
    DisclosureRead,
    EmergencyMeasureRead,
    HistoryEntry,
    LinkChild,
    NoteCreate,
    NoteRead,
    PlanRead,
    Reporter,
    SeparationRead,
    StepRead,
    TaskRead,
    TaskUpdate,
    WorkItem,
)
from services.cases.settings import CasesSettings
from services.cases.vocabulary import State
from services.common.auth import Subject, require
from services.common.db import DbSession, DbStatementSession
from services.common.errors import problem_responses
from services.common.links import public_path
from services.common.pagination import MAX_PAGE_SIZE, Page
from services.common.permissions import PERMISSIONS, Action, Agency
from services.common.preconditions import IfMatch, IfNoneMatch, conditional

router = APIRouter(prefix="/v1", tags=["cases"])
internal_router = APIRouter(prefix="/internal/v1", tags=["internal"])

CaseCreator = Annotated[Subject, Depends(require(Action.CASE_CREATE))]
CaseReader = Annotated[Subject, Depends(require(Action.CASE_READ))]
NoteWriter = Annotated[Subject, Depends(require(Action.CASE_NOTE))]
TaskUpdater = Annotated[Subject, Depends(require(Action.TASK_UPDATE))]
ChildLinker = Annotated[Subject, Depends(require(Action.CASE_LINK_CHILD))]
WorkReader = Annotated[Subject, Depends(require(Action.WORK_READ))]
Assessor = Annotated[Subject, Depends(require(Action.CASE_ASSESS))]
ConsentKeeper = Annotated[Subject, Depends(require(Action.CASE_CONSENT))]
Discloser = Annotated[Subject, Depends(require(Action.CASE_DISCLOSE))]
Cursor = Annotated[str | None, Query(max_length=1000, description="`next_cursor` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
ServiceReader = Annotated[Subject, Depends(require(Action.CASES_SERVICE_READ))]
# The errors each route really answers (401 and 400 for an unknown parameter are added by the kit).
NO_CASE = "No such case within your reach"
ROLE_PROBLEMS = problem_responses(403)
LIST_PROBLEMS = problem_responses(400, 403, 422)
READ_PROBLEMS = problem_responses(403, 404, 422, s404=NO_CASE)
WRITE_PROBLEMS = problem_responses(400, 403, 404, 409, 422, s404=NO_CASE,
                                   s409="Not allowed in the current state of the case (or the case is closed)")
PAGE_PROBLEMS = problem_responses(400, 403, 404, 422, s404=NO_CASE, s400="The cursor is not valid")
CHANGE_PROBLEMS = problem_responses(400, 403, 404, 409, 412, 422, 428, s404=NO_CASE,
                                    s409="Not allowed in the current state of the case or task")


async def get_settings(request: Request) -> CasesSettings:
    settings: CasesSettings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> RegistryClient:
    registry: RegistryClient = request.app.state.registry
    return registry


Settings = Annotated[CasesSettings, Depends(get_settings)]
Registry = Annotated[RegistryClient, Depends(get_registry)]


def task_read(task: Any) -> TaskRead:
    return TaskRead.model_validate(task, from_attributes=True)


def case_read(detail: service.CaseDetail) -> CaseRead:
    case, view = detail.case, detail.view
    reporter = None
    if view.reporter:
        reporter = Reporter.model_validate(case.reporter) if case.reporter else Reporter(anonymous=True)
    perpetrator = None
    if view.perpetrator and (case.perpetrator_guardian_id or case.perpetrator_guardian_relationship):
        perpetrator = AllegedPerpetratorRead(guardian_id=case.perpetrator_guardian_id,
                                             relationship=case.perpetrator_guardian_relationship)
    named = not view.summary  # oversight: no child's name or place, no free text
    measure = None
    if case.emergency_measure_at is not None:
        measure = EmergencyMeasureRead(taken_at=case.emergency_measure_at, agency=case.emergency_measure_agency)
    return CaseRead(
        id=case.id, state=case.state, version=case.version, province_code=case.province_code,
        commune_code=case.commune_code, incident_commune_code=case.incident_commune_code,
        residence_commune_code=case.residence_commune_code,
        received_at=case.received_at, updated_at=case.updated_at, incident_date=case.incident_date,
        intake_agency=case.intake_agency, category=case.category, channel=case.channel,
        reporter_anonymous=case.reporter_anonymous, reporter=reporter,
        child=ChildRead(child_id=case.child_id, child_id_hint=case.child_id_hint if view.manager else None,
                        first_name=case.child_first_name if named else None,
                        approximate_age=case.child_age_years, sex=case.child_sex, age_group=case.child_age_group,
                        place=case.child_place if named else None),
        abuse_forms=list(case.abuse_forms), risk_forms=list(case.risk_forms),
        special_groups=list(case.special_groups), environment=case.environment,
        perpetrator_relationship=case.perpetrator_relationship, alleged_perpetrator=perpetrator,
        description=case.description if named else None,
        danger_indicators=list(case.danger_indicators),
        intake_details=case.intake_details if view.manager else None,
        emergency=case.emergency, emergency_measure=measure,
        separations=[SeparationRead.model_validate(s, from_attributes=True) for s in detail.separations],
        child_views_taken=case.child_views_taken, parent_views=case.parent_views, plan_cycle=case.plan_cycle,
        plan_approved_at=case.plan_approved_at, closure_kind=case.closure_kind,
        closure_reason=case.closure_reason, closed_at=case.closed_at, overdue=detail.overdue,
        deadlines=[DeadlineRead(name=d.name, started_at=d.started_at, due_at=d.due_at, met_at=d.met_at,
                                missed=d.missed, running=d.running)
                   for d in sorted(detail.deadlines, key=lambda d: d.started_at)],
        tasks=[task_read(t) for t in detail.tasks],
        plan=PlanRead.model_validate(detail.plan, from_attributes=True) if detail.plan else None,
        allowed_actions=detail.allowed_actions,
    )


def case_response(detail: service.CaseDetail, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The case as JSON with its ETag, serialized once (the response model above is for the docs)."""
    return Response(case_read(detail).model_dump_json(), status_code=status, media_type="application/json",
                    headers={"ETag": service.case_etag(detail.case, detail.all_tasks)} | (headers or {}))


def summary(row: service.CaseRow) -> CaseSummary:
    case = row.case
    return CaseSummary(id=case.id, state=case.state, state_label=display.state_label(case.state),
                       version=case.version, province_code=case.province_code, commune_code=case.commune_code,
                       commune_name=display.commune_name(case.commune_code), received_at=case.received_at,
                       category=case.category, child_first_name=case.child_first_name if row.names_shown else None,
                       child_age_years=case.child_age_years, abuse_forms=list(case.abuse_forms),
                       environment=case.environment, emergency=case.emergency, overdue=row.overdue,
                       next_due_at=row.next_due_at)


def work_item(row: service.WorkRow) -> WorkItem:
    step = display.step_of(row.kind, row.name, row.actions)
    return WorkItem(kind=row.kind, id=row.item_id, case_id=row.case_id, name=row.name, actions=row.actions,
                    due_at=row.due_at, overdue=row.overdue, state=row.state,
                    state_label=display.state_label(row.state), step=step,
                    commune_code=row.commune_code, commune_name=display.commune_name(row.commune_code),
                    child_first_name=row.child_first_name, child_age_years=row.child_age_years,
                    task_status=row.task_status, task_version=row.task_version)


@router.get("/workflow", response_model=list[StepRead], responses=ROLE_PROBLEMS,
            summary="The workflow table: states, actions, deadlines")
async def get_workflow(subject: CaseReader) -> list[StepRead]:
    return [
        StepRead(action=s.action, sources=[x.value for x in s.sources], target=s.target.value if s.target else None,
                 permission=s.permission.value,
                 roles=[role.value for role, actions in PERMISSIONS.items() if s.permission in actions],
                 form=s.form.model_json_schema(), starts=[d.value for d in s.starts], stops=[d.value for d in s.stops],
                 legal_step=s.legal_step)
        for s in workflow.TRANSITIONS
    ]


@router.post("/cases", response_model=CaseRead, status_code=201,
             responses={**problem_responses(400, 403, 404, 409, 422,
                                            s404="No such commune within your jurisdiction",
                                            s409="A concurrent request made the same report",
                                            s422="Invalid data, or this Idempotency-Key came with another body"),
                        200: {"model": CaseRead, "description": "A retry: the case the first request with this "
                                                               "Idempotency-Key created (header Idempotent-Replayed: "
                                                               "true)"}},
             summary="Record a report (Form 01); it goes at once to the commune where it happened")
async def create_case(
    session: DbStatementSession, subject: CaseCreator, settings: Settings, body: CaseCreate,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                                   pattern=r"^[\x21-\x7e]+$")] = None,
) -> Response:
    detail, created = await service.create_case(session, subject, body, idempotency_key, settings)
    return case_response(detail, 201 if created else 200, {"Location": public_path(f"/v1/cases/{detail.case.id}")}
                         | ({} if created else {"Idempotent-Replayed": "true"}))


@router.get("/cases", response_model=Page[CaseSummary], responses=LIST_PROBLEMS,
            summary="Cases within your reach, newest first")
async def list_cases(
    session: DbSession, subject: CaseReader, state: State | None = None,
    overdue: Annotated[bool | None, Query(description="Only cases with a missed deadline still open")] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> Page[CaseSummary]:
    rows, next_cursor = await service.list_cases(session, subject, state=state, overdue=overdue, cursor=cursor,
                                                 limit=limit)
    return Page[CaseSummary](items=[summary(row) for row in rows], next_cursor=next_cursor)


@router.get("/cases/{case_id}", response_model=CaseRead,
            responses={**READ_PROBLEMS, 304: {"description": "Not modified: the If-None-Match ETag is current"}})
async def get_case(session: DbSession, subject: CaseReader, request: Request, case_id: uuid.UUID,
                   _: IfNoneMatch = None) -> Response:
    detail = await service.get_case(session, subject, case_id)
    unchanged = conditional(request, service.case_etag(detail.case, detail.all_tasks))
    return unchanged or case_response(detail)


@router.get("/cases/{case_id}/history", response_model=Page[HistoryEntry], responses=PAGE_PROBLEMS,
            summary="The case's history, oldest first (for a commune that handed it over: its own part)")
async def get_history(session: DbSession, subject: CaseReader, case_id: uuid.UUID, cursor: Cursor = None,
                      limit: Limit = 50) -> Page[HistoryEntry]:
    entries, with_data, next_cursor = await service.history(session, subject, case_id, cursor, limit)
    return Page[HistoryEntry](items=[
        HistoryEntry(version=e.version, at=e.at, actor_id=e.actor_id, actor_role=e.actor_role, agency=e.agency,
                     action=e.action, from_state=e.from_state, to_state=e.to_state, commune_code=e.commune_code,
                     data=e.data if with_data else None) for e in entries], next_cursor=next_cursor)


@router.post("/cases/{case_id}/notes", response_model=NoteRead, status_code=201, responses=WRITE_PROBLEMS)
async def add_note(session: DbSession, subject: NoteWriter, case_id: uuid.UUID, body: NoteCreate) -> NoteRead:
    return NoteRead.model_validate(await service.add_note(session, subject, case_id, body), from_attributes=True)


@router.get("/cases/{case_id}/notes", response_model=Page[NoteRead], responses=PAGE_PROBLEMS,
            summary="The notes of a case you may see, oldest first")
async def list_notes(session: DbSession, subject: CaseReader, case_id: uuid.UUID, cursor: Cursor = None,
                     limit: Limit = 50) -> Page[NoteRead]:
    notes, next_cursor = await service.list_notes(session, subject, case_id, cursor, limit)
    return Page[NoteRead](items=[NoteRead.model_validate(n, from_attributes=True) for n in notes],
                          next_cursor=next_cursor)


@router.get("/cases/{case_id}/tasks", response_model=Page[TaskRead], responses=PAGE_PROBLEMS,
            summary="The tasks of a case you may see, oldest first")
async def list_tasks(session: DbSession, subject: CaseReader, case_id: uuid.UUID, cursor: Cursor = None,
                     limit: Limit = 50) -> Page[TaskRead]:
    tasks, next_cursor = await service.list_tasks(session, subject, case_id, cursor, limit)
    return Page[TaskRead](items=[task_read(t) for t in tasks], next_cursor=next_cursor)


@router.patch("/tasks/{task_id}", response_model=TaskRead, responses=CHANGE_PROBLEMS,
              summary="Update a task: by its agency (or the case managers)")
async def update_task(session: DbSession, subject: TaskUpdater, task_id: uuid.UUID, body: TaskUpdate,
                      response: Response, if_match: IfMatch = None) -> TaskRead:
    task = await service.update_task(session, subject, task_id, body, if_match)
    response.headers["ETag"] = service.etag(task.version)
    return task_read(task)


@router.post("/cases/{case_id}/link-child", response_model=CaseRead,
             responses={**CHANGE_PROBLEMS, **problem_responses(503, s503="The registry is unavailable")},
             summary="Link the case to a registry child, existing or registered now")
async def link_child(session: DbSession, subject: ChildLinker, registry: Registry, request: Request,
                     case_id: uuid.UUID, body: LinkChild, if_match: IfMatch = None) -> Response:
    # The registry reads the child with the caller's own token: its reach, not this service's.
    return case_response(await service.link_child(session, subject, case_id, body, if_match, registry,
                                                  request.headers.get("authorization", "")))


@router.put("/cases/{case_id}/alleged-perpetrator", response_model=CaseRead,
            responses={**CHANGE_PROBLEMS, **problem_responses(503, s503="The registry is unavailable")},
            summary="Name which of the child's guardians is the alleged perpetrator (on the case, never the registry)")
async def name_alleged_perpetrator(session: DbSession, subject: Assessor, registry: Registry, case_id: uuid.UUID,
                                   body: AllegedPerpetrator, if_match: IfMatch = None) -> Response:
    return case_response(await service.name_alleged_perpetrator(session, subject, case_id, body, if_match,
                                                                registry))


@router.post("/cases/{case_id}/consents", response_model=ConsentRead, status_code=201, responses=WRITE_PROBLEMS,
             summary="Record a consent to disclose the child's information (Law on Children Art. 6(11), 21)")
async def record_consent(session: DbSession, subject: ConsentKeeper, case_id: uuid.UUID,
                         body: ConsentCreate) -> ConsentRead:
    created = await consent.record_consent(
        session, subject, case_id, given_by=body.given_by, giver_name=body.giver_name, guardian_id=body.guardian_id,
        child_age_years=body.child_age_years, purpose=body.purpose, scope=body.scope, recipient=body.recipient,
        given_at=body.given_at)
    return ConsentRead.model_validate(created, from_attributes=True)


@router.get("/cases/{case_id}/consents", response_model=list[ConsentRead], responses=READ_PROBLEMS,
            summary="The consents recorded on a case, withdrawn ones included")
async def list_consents(session: DbSession, subject: ConsentKeeper, case_id: uuid.UUID) -> list[ConsentRead]:
    return [ConsentRead.model_validate(c, from_attributes=True)
            for c in await consent.list_consents(session, subject, case_id)]


@router.post("/cases/{case_id}/consents/{consent_id}/withdraw", response_model=ConsentRead, responses=WRITE_PROBLEMS,
             summary="Record that a consent was withdrawn (it stays on the record)")
async def withdraw_consent(session: DbSession, subject: ConsentKeeper, case_id: uuid.UUID, consent_id: uuid.UUID,
                           body: ConsentWithdrawal) -> ConsentRead:
    return ConsentRead.model_validate(await consent.withdraw_consent(session, subject, case_id, consent_id,
                                                                     body.note), from_attributes=True)


@router.post("/cases/{case_id}/disclosures", response_model=DisclosureRead, status_code=201, responses=WRITE_PROBLEMS,
             summary="Record information given outside the plan's bodies: refused (409) without consents that "
                     "cover it or a named legal exception")
async def disclose(session: DbSession, subject: Discloser, case_id: uuid.UUID,
                   body: DisclosureCreate) -> DisclosureRead:
    made = await consent.disclose(session, subject, case_id, recipient=body.recipient, purpose=body.purpose,
                                  information=body.information, basis=body.basis, consent_ids=body.consent_ids,
                                  legal_reference=body.legal_reference)
    return DisclosureRead.model_validate(made, from_attributes=True)


@router.get("/cases/{case_id}/disclosures", response_model=list[DisclosureRead], responses=WRITE_PROBLEMS,
            summary="The disclosures recorded on a case")
async def list_disclosures(session: DbSession, subject: Discloser, case_id: uuid.UUID) -> list[DisclosureRead]:
    return [DisclosureRead.model_validate(d, from_attributes=True)
            for d in await consent.list_disclosures(session, subject, case_id)]


@router.get("/me/work", response_model=Page[WorkItem], responses=LIST_PROBLEMS,
            summary="What waits for you: running deadlines of the cases you lead, decisions, your tasks; overdue "
                    "first, then by due time")
async def my_work(session: DbSession, subject: WorkReader, cursor: Cursor = None, limit: Limit = 50) -> Page[WorkItem]:
    rows, next_cursor = await service.my_work(session, subject, cursor, limit)
    return Page[WorkItem](items=[work_item(row) for row in rows], next_cursor=next_cursor)


@internal_router.get("/involvement", summary="Does a case or task about this child involve this agency, or does "
                                             "this commune lead the case?")
async def involvement(
    session: DbSession,
    _: ServiceReader,
    purpose: Annotated[str, Query(pattern=r"^(case|task):[0-9a-fA-F-]{36}$")],
    agency: Annotated[Agency, Query()],
    child_id: Annotated[uuid.UUID, Query()],
    commune: Annotated[str | None, Query(pattern=r"^\d{5}$", description="The reader's commune: does it lead "
                                         "the case now (Law on Children Art. 52(2))?")] = None,
) -> dict[str, bool]:
    return {"involved": await service.involves(session, purpose, agency.value, child_id, commune)}
