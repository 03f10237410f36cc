"""Every workflow action, taken by every role, on a real case in every position the workflow can reach.

The positions (a state and the deadlines running, since some actions need a running deadline) and the way to reach
each are computed from `services/cases/workflow.py`'s table, and each case is brought there through the public API,
so a change to the table changes this test with it. Each call sends the action's valid form with the case's
current ETag, so the answer depends only on who asks and where the case stands:

- 403: the role may not take the action at all (the permission table);
- 404: the case is outside the caller's reach for that action (jurisdiction, agency, own intakes);
- 409: the action is not allowed in the case's position, and nothing is written;
- 200: the action is taken (on a case of its own, brought to the position for it), the case moves where the table
  says, and the answer lists the actions the table then allows this role.
"""

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.service import demo_jurisdiction
from services.cases import workflow
from services.common.permissions import PERMISSIONS, ROLE_AGENCY, Action, Role, Scope
from tests.cases.samples import FORMS, PLAN, intake
from tests.helpers import DEMO_COMMUNE, DEMO_PROVINCE, OTHER_COMMUNE, OTHER_PROVINCE, Api

OFFICER, CHAIRMAN = Role.CHILD_PROTECTION_OFFICER, Role.COMMUNE_CHAIRMAN
PARALLEL = 8  # calls in flight at once: enough to be quick, few enough not to swamp a shared machine


@dataclass(frozen=True)
class Caller:
    """A user: a demo user of a role, or a user of the same role in another commune."""

    role: Role
    commune: str | None  # the commune of a commune-level user
    province: str | None
    label: str


def reachable_positions() -> dict[workflow.Position, list[str]]:
    """Every position the table can reach from an intake, with the shortest list of actions that reaches it. A
    transfer or handover gives the case to another commune without moving it, so it never leads anywhere new. The
    answers depend on the state and the running deadlines only: positions that differ only in whether an emergency
    measure was already taken count once."""
    start = workflow.initial_position()
    paths: dict[workflow.Position, list[str]] = {start: []}
    seen = {(start.state, start.running)}
    queue = [start]
    while queue:
        position = queue.pop(0)
        for step in workflow.allowed_steps(position):
            following = workflow.advance(position, step.action)
            if (following.state, following.running) not in seen:
                seen.add((following.state, following.running))
                paths[following] = [*paths[position], step.action]
                queue.append(following)
    return paths


POSITIONS = reachable_positions()


def position_id(position: workflow.Position) -> str:
    return "+".join([position.state.value, *sorted(d.value for d in position.running)])


def reaches(caller: Caller, action: Action, position: workflow.Position) -> bool:
    """Whether a case of the demo commune, reported by the demo officer, is within the caller's reach for `action`.
    Its only tasks are those of the sample plan (tests/cases/samples.py), once a plan was approved on the way to
    the position (the object matrix tests the other ways in: referrals, other provinces)."""
    within = (caller.commune == DEMO_COMMUNE if caller.commune
              else caller.province is None or caller.province == DEMO_PROVINCE)
    match PERMISSIONS[caller.role].get(action):
        case Scope.JURISDICTION:
            return within
        case Scope.OWN:
            return caller.role == OFFICER and caller.commune == DEMO_COMMUNE
        case _:  # INVOLVED: a task of the approved plan for the caller's agency
            return within and "approve_plan" in POSITIONS[position] and ROLE_AGENCY[caller.role].value in {
                task["agency"] for task in PLAN["tasks"]}


def expected(caller: Caller, step: workflow.Step, position: workflow.Position) -> int:
    if Action.CASE_READ not in PERMISSIONS[caller.role] or step.permission not in PERMISSIONS[caller.role]:
        return 403
    if not reaches(caller, step.permission, position):
        return 404
    return 200 if step in workflow.allowed_steps(position) else 409


@dataclass
class Harness:
    api: Api
    headers: dict[Caller, dict[str, str]]
    gate: asyncio.Semaphore

    def caller(self, role: Role) -> Caller:
        return next(c for c in self.headers if c.role == role and c.commune in (DEMO_COMMUNE, None))

    async def read(self, case_id: str) -> tuple[dict[str, Any], str]:
        response = await self.api.client.get(f"/cases/v1/cases/{case_id}", headers=self.headers[self.caller(OFFICER)])
        assert response.status_code == 200, response.text
        return response.json(), response.headers["etag"]

    async def act(self, caller: Caller, case_id: str, action: str, etag: str) -> tuple[int, dict[str, Any]]:
        async with self.gate:
            response = await self.api.client.post(f"/cases/v1/cases/{case_id}/actions/{action}", json=FORMS[action],
                                                  headers=self.headers[caller] | {"If-Match": etag})
        return response.status_code, response.json()

    async def finish_tasks(self, case_id: str) -> None:
        """The review waits for the plan's tasks (Decree 56 Art. 30): the officer waives those still open."""
        officer = self.headers[self.caller(OFFICER)]
        case, _ = await self.read(case_id)
        for task in case["tasks"]:
            if task["kind"] == "plan" and task["status"] in ("open", "in_progress", "cannot_be_done"):
                async with self.gate:
                    response = await self.api.client.patch(
                        f"/cases/v1/tasks/{task['id']}", json={"status": "waived", "reason": "not needed"},
                        headers=officer | {"If-Match": f'"{task["version"]}"'})
                assert response.status_code == 200, response.text

    async def case_at(self, position: workflow.Position) -> str:
        """A new case of the demo commune, brought to `position` by the commune's own officer and chairman."""
        async with self.gate:
            created = await self.api.client.post("/cases/v1/cases", json=intake(DEMO_COMMUNE),
                                                 headers=self.headers[self.caller(OFFICER)])
        assert created.status_code == 201, created.text
        case_id = str(created.json()["id"])
        for action in POSITIONS[position]:
            if action == "start_review":
                await self.finish_tasks(case_id)
            step = workflow.STEPS[action]
            actor = next(role for role in (OFFICER, CHAIRMAN) if step.permission in PERMISSIONS[role])
            _, etag = await self.read(case_id)
            status, body = await self.act(self.caller(actor), case_id, action, etag)
            assert status == 200, (action, body)
        if position.state == workflow.State.IMPLEMENTING:
            await self.finish_tasks(case_id)
        case, _ = await self.read(case_id)
        assert case["state"] == position.state.value
        assert {d["name"] for d in case["deadlines"] if d["running"]} == {d.value for d in position.running}
        return case_id


@pytest.fixture(scope="module")
async def harness(api: Api) -> Harness:
    headers: dict[Caller, dict[str, str]] = {}
    for role in Role:
        if role == Role.SERVICE:
            continue
        place = demo_jurisdiction(role)
        headers[Caller(role, place.commune, place.province, role.value)] = await api.as_demo(role.value)
    for role in (OFFICER, CHAIRMAN):  # the workflow's own roles, in a commune the cases are not in
        headers[Caller(role, OTHER_COMMUNE, OTHER_PROVINCE, f"{role.value}@{OTHER_COMMUNE}")] = \
            await api.commune_user(role.value, OTHER_COMMUNE)
    return Harness(api, headers, asyncio.Semaphore(PARALLEL))


def test_every_action_and_every_state_are_covered() -> None:
    reached_states = {position.state for position in POSITIONS}
    assert reached_states == set(workflow.State), set(workflow.State) - reached_states
    taken_somewhere = {step.action for position in POSITIONS for step in workflow.allowed_steps(position)}
    assert taken_somewhere == set(workflow.STEPS), set(workflow.STEPS) - taken_somewhere
    assert set(FORMS) >= set(workflow.STEPS), "tests/cases/samples.py needs a valid form for every action"


@pytest.mark.parametrize("position", list(POSITIONS), ids=[position_id(p) for p in POSITIONS])
async def test_every_role_and_action_on_a_case_in_this_position(harness: Harness,
                                                                position: workflow.Position) -> None:
    case_id = await harness.case_at(position)
    before, etag = await harness.read(case_id)
    calls: list[tuple[Caller, workflow.Step, int]] = [
        (caller, step, expected(caller, step, position)) for caller in harness.headers
        for step in workflow.TRANSITIONS]

    async def refused(caller: Caller, step: workflow.Step, want: int) -> str | None:
        status, body = await harness.act(caller, case_id, step.action, etag)
        return None if status == want else f"{caller.label} {step.action}: {status}, expected {want}: {body}"

    async def taken(caller: Caller, step: workflow.Step) -> str | None:
        own_case = await harness.case_at(position)
        _, own_etag = await harness.read(own_case)
        status, body = await harness.act(caller, own_case, step.action, own_etag)
        if status != 200:
            return f"{caller.label} {step.action}: {status}, expected 200: {body}"
        after = workflow.advance(position, step.action)
        allowed = [s.action for s in workflow.allowed_steps(after) if s.permission in PERMISSIONS[caller.role]
                   # the review waits for the new plan's tasks
                   and not (step.action == "approve_plan" and s.action == "start_review")]
        if step.action in ("hand_over", "transfer"):
            allowed = []  # the case now leads from another commune: nothing is left to this caller
        if body["state"] != after.state.value or body["allowed_actions"] != allowed:
            return f"{caller.label} {step.action}: now {body['state']} {body['allowed_actions']}, expected " \
                   f"{after.state.value} {allowed}"
        return None

    checks: list[Awaitable[str | None]] = [
        taken(caller, step) if want == 200 else refused(caller, step, want) for caller, step, want in calls]
    wrong = [problem for problem in await asyncio.gather(*checks) if problem]
    assert not wrong, "\n".join(wrong)
    assert any(want == 200 for _, _, want in calls) or not workflow.allowed_steps(position)
    after, _ = await harness.read(case_id)
    assert after["version"] == before["version"], "a refused action changed the case"

