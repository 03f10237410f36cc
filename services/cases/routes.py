"""Cases HTTP routes. HTTP only: the logic is in `service.py`, access control in `access.py`."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response

from services.cases import service, workflow
from services.cases.registry import RegistryClient
from services.cases.schemas import (
    CaseCreate,
    CaseRead,
    CaseSummary,
    ChildRead,
    DeadlineDue,
    DeadlineRead,
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
    Work,
)
from services.cases.settings import CasesSettings
from services.cases.vocabulary import State
from services.common.auth import Subject, require
from services.common.db import DbSession, DbStatementSession
from services.common.links import public_path
from services.common.pagination import MAX_PAGE_SIZE, Page
from services.common.permissions import PERMISSIONS, Action, Agency

router = APIRouter(prefix="/v1", tags=["cases"])
internal_router = APIRouter(prefix="/internal/v1", tags=["internal"])

CaseCreator = Annotated[Subject, Depends(require(Action.CASE_CREATE))]
CaseReader = Annotated[Subject, Depends(require(Action.CASE_READ))]
NoteWriter = Annotated[Subject, Depends(require(Action.CASE_NOTE))]
TaskUpdater = Annotated[Subject, Depends(require(Action.TASK_UPDATE))]
ChildLinker = Annotated[Subject, Depends(require(Action.CASE_LINK_CHILD))]
WorkReader = Annotated[Subject, Depends(require(Action.WORK_READ))]
ServiceReader = Annotated[Subject, Depends(require(Action.CASES_SERVICE_READ))]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=200)]
PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/problem+json": {}}}
    for code, text in {400: "The body is not JSON, or the cursor is not valid",
                       403: "Your role may not take this action", 404: "No such case within your reach",
                       409: "Not allowed in the current state (or the case is closed); lists the allowed "
                            "actions",
                       412: "The case changed since you read it", 422: "Invalid data", 428: "If-Match is required",
                       503: "The registry is unavailable"}.items()
}
LIST_PROBLEMS = {code: PROBLEMS[code] for code in (400, 403, 422)}
ROLE_PROBLEMS = {code: PROBLEMS[code] for code in (403,)}


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
        child=ChildRead(child_id=case.child_id, first_name=case.child_first_name,
                        approximate_age=case.child_age_years, sex=case.child_sex, age_group=case.child_age_group,
                        place=case.child_place),
        abuse_forms=list(case.abuse_forms), risk_forms=list(case.risk_forms),
        special_groups=list(case.special_groups), environment=case.environment,
        perpetrator_relationship=case.perpetrator_relationship, description=case.description,
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
                    headers={"ETag": service.etag(detail.case.version)} | (headers or {}))


def summary(case: Any, overdue: bool) -> CaseSummary:
    return CaseSummary(id=case.id, state=case.state, version=case.version, province_code=case.province_code,
                       commune_code=case.commune_code, received_at=case.received_at, category=case.category,
                       abuse_forms=list(case.abuse_forms), environment=case.environment, emergency=case.emergency,
                       overdue=overdue)


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
             responses={**PROBLEMS, 200: {"model": CaseRead, "description": "The case an earlier request with the "
                                                                             "same Idempotency-Key created"}},
             summary="Record a report (Form 01); it goes at once to the commune where it happened")
async def create_case(
    session: DbStatementSession, subject: CaseCreator, settings: Settings, body: CaseCreate,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                                   pattern=r"^[\x21-\x7e]+$")] = None,
) -> Response:
    detail, created = await service.create_case(session, subject, body, idempotency_key, settings)
    return case_response(detail, 201 if created else 200, {"Location": public_path(f"/v1/cases/{detail.case.id}")})


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
    return Page[CaseSummary](items=[summary(case, flag) for case, flag in rows], next_cursor=next_cursor)


@router.get("/cases/{case_id}", response_model=CaseRead, responses=PROBLEMS)
async def get_case(session: DbSession, subject: CaseReader, case_id: uuid.UUID) -> Response:
    return case_response(await service.get_case(session, subject, case_id))


@router.get("/cases/{case_id}/history", response_model=list[HistoryEntry], responses=PROBLEMS)
async def get_history(session: DbSession, subject: CaseReader, case_id: uuid.UUID) -> list[HistoryEntry]:
    entries, with_data = await service.history(session, subject, case_id)
    return [HistoryEntry(version=e.version, at=e.at, actor_id=e.actor_id, actor_role=e.actor_role, agency=e.agency,
                         action=e.action, from_state=e.from_state, to_state=e.to_state, commune_code=e.commune_code,
                         data=e.data if with_data else None) for e in entries]


@router.post("/cases/{case_id}/actions/{action}", response_model=CaseRead, responses=PROBLEMS,
             summary="Take a workflow action; the body is the form the action requires (see GET /v1/workflow)")
async def take_action(
    session: DbSession, subject: CaseReader, settings: Settings, case_id: uuid.UUID, action: str,
    if_match: IfMatch = None, body: Annotated[dict[str, Any] | None, Body()] = None,
) -> Response:
    return case_response(await service.take_action(session, subject, case_id, action, body or {}, if_match,
                                                   settings))


@router.post("/cases/{case_id}/notes", response_model=NoteRead, status_code=201, responses=PROBLEMS)
async def add_note(session: DbSession, subject: NoteWriter, case_id: uuid.UUID, body: NoteCreate) -> NoteRead:
    return NoteRead.model_validate(await service.add_note(session, subject, case_id, body), from_attributes=True)


@router.get("/cases/{case_id}/notes", response_model=list[NoteRead], responses=PROBLEMS)
async def list_notes(session: DbSession, subject: CaseReader, case_id: uuid.UUID) -> list[NoteRead]:
    return [NoteRead.model_validate(n, from_attributes=True)
            for n in await service.list_notes(session, subject, case_id)]


@router.get("/cases/{case_id}/tasks", response_model=list[TaskRead], responses=PROBLEMS)
async def list_tasks(session: DbSession, subject: CaseReader, case_id: uuid.UUID) -> list[TaskRead]:
    return [task_read(t) for t in await service.list_tasks(session, subject, case_id)]


@router.patch("/tasks/{task_id}", response_model=TaskRead, responses=PROBLEMS,
              summary="Update a task: by its agency (or the case managers)")
async def update_task(session: DbSession, subject: TaskUpdater, task_id: uuid.UUID, body: TaskUpdate,
                      response: Response, if_match: IfMatch = None) -> TaskRead:
    task = await service.update_task(session, subject, task_id, body, if_match)
    response.headers["ETag"] = service.etag(task.version)
    return task_read(task)


@router.post("/cases/{case_id}/link-child", response_model=CaseRead, responses=PROBLEMS,
             summary="Link the case to a registry child, existing or registered now")
async def link_child(session: DbSession, subject: ChildLinker, registry: Registry, case_id: uuid.UUID,
                     body: LinkChild, if_match: IfMatch = None) -> Response:
    return case_response(await service.link_child(session, subject, case_id, body, if_match, registry))


@router.get("/me/work", response_model=Work, responses=ROLE_PROBLEMS,
            summary="What waits for you: tasks, approvals, deadlines")
async def my_work(session: DbSession, subject: WorkReader, settings: Settings) -> Work:
    work = await service.my_work(session, subject, settings)
    return Work(
        tasks=[task_read(t) for t in work.tasks],
        approvals=[summary(case, flag) for case, flag in work.approvals],
        deadlines=[DeadlineDue(case_id=row.case_id, commune_code=row.commune_code, state=row.state, deadline=row.name,
                               due_at=row.due_at, missed=row.missed_at is not None) for row in work.deadlines],
    )


@internal_router.get("/involvement", summary="Does a case or task about this child involve this agency?")
async def involvement(
    session: DbSession,
    _: ServiceReader,
    purpose: Annotated[str, Query(pattern=r"^(case|task):[0-9a-fA-F-]{36}$")],
    agency: Annotated[Agency, Query()],
    child_id: Annotated[uuid.UUID, Query()],
) -> dict[str, bool]:
    return {"involved": await service.involves(session, purpose, agency.value, child_id)}
