"""The workflow actions as typed routes, one per row of `workflow.TRANSITIONS` (Decree 56/2017/ND-CP, Arts. 25-32).

`POST /v1/cases/{case_id}/actions/{action}` for each action of the table: its request body is the step's form
(a named schema: `PlanSubmission` for `submit_plan`), its operationId is `takeAction` + the action in CamelCase
(`takeActionSubmitPlan`), and only the roles holding the step's permission pass the route. The routes are generated
from the table when the app is built, so an action added to or changed in the table is a route of the API, with its
form, the same day. Every route ends in the one `service.take_action`: If-Match is required (428 without it, 412
with `current_etag` and a `current` link when the case changed since it was read) and the answer carries the new
ETag.

Each URL is the one the former generic route (`/actions/{action}` with a free-form body) answered, so clients that
built it by hand keep working; that route is gone from the API, since every action it took is now an operation of
its own with a typed body (an unknown action answers 404).
"""

import inspect
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response

from services.cases import forms, service, workflow
from services.cases.routes import Settings, case_response
from services.cases.schemas import CaseRead
from services.common.auth import Subject, require
from services.common.db import DbSession
from services.common.errors import problem_responses
from services.common.preconditions import IfMatch

router = APIRouter(prefix="/v1", tags=["workflow"])
PROBLEMS = problem_responses(
    400, 401, 403, 404, 409, 412, 422, 428, 503,
    s404="No such case within your reach", s409="Not allowed in the case's current state; lists `allowed_actions`",
    s412="The case changed since you read it: `current_etag` and the `current` link give the version to merge with")


def camel(action: str) -> str:
    return "".join(part.capitalize() for part in action.split("_"))


def operation_name(step: workflow.Step) -> str:
    """The route function's name, from which the kit derives the operationId (`take_action_submit_plan` becomes
    `takeActionSubmitPlan`)."""
    return f"take_action_{step.action}"


def takes_no_data(step: workflow.Step) -> bool:
    return not any(field.is_required() for field in step.form.model_fields.values())


def describe(step: workflow.Step) -> str:
    target = f"`{step.target.value}`" if step.target else "the same state"
    form = inspect.cleandoc(step.form.__doc__ or "")
    return (f"Legal step {step.legal_step}.\n\nAllowed from {', '.join(f'`{s.value}`' for s in step.sources)}; "
            f"leads to {target}. Needs the permission `{step.permission.value}`. The body is the form "
            f"`{step.form.__name__}`" + (f": {form}" if form else ".") + "\n\nSend `If-Match` with the ETag of the "
            "case as you read it.")


def endpoint(step: workflow.Step) -> Callable[..., Awaitable[Response]]:
    """The route function of one step: its signature (the form as the body, the step's permission) is built from the
    table row, which is what FastAPI reads to validate the request and to write the OpenAPI document."""

    async def take(session: DbSession, subject: Subject, settings: Settings, case_id: uuid.UUID,
                   body: forms.Form | None = None, if_match: IfMatch = None) -> Response:
        data = body.model_dump(mode="json", exclude_unset=True) if body is not None else {}
        return case_response(await service.take_action(session, subject, case_id, step.action, data, if_match,
                                                       settings))

    actor = Annotated[Subject, Depends(require(step.permission))]
    form = (Annotated[step.form | None, Body(description="No data: the step records who took it and when.")]
            if takes_no_data(step) else Annotated[step.form, Body()])
    signature = inspect.signature(take)
    parameters = [
        parameter.replace(annotation=actor) if name == "subject"
        else parameter.replace(annotation=form, default=None if takes_no_data(step) else inspect.Parameter.empty)
        if name == "body" else parameter
        for name, parameter in signature.parameters.items()
    ]
    # A required body may not follow parameters with defaults in a signature: keep the order valid.
    parameters.sort(key=lambda p: p.default is not inspect.Parameter.empty)
    take.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    take.__name__ = take.__qualname__ = operation_name(step)
    return take


for _step in workflow.TRANSITIONS:
    router.add_api_route(
        f"/cases/{{case_id}}/actions/{_step.action}", endpoint(_step), methods=["POST"], name=operation_name(_step),
        response_model=CaseRead, responses=PROBLEMS, summary=f"{_step.action}: {_step.legal_step}",
        description=describe(_step),
    )
