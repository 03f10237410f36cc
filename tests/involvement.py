"""Cases that involve an agency the way the law has it, for tests of need-to-know access.

An agency is involved in a case only through a task or referral the commune gives it, never by filing a report
itself (trust finding 1): the police by the statutory referral of a sexual-abuse report (Joint Circular 01/2022),
another agency by a task of the approved plan. The way to an approved plan is read from the workflow table, so a
change to the table changes these helpers with it.
"""

from typing import Any

from services.cases import workflow
from services.common.permissions import PERMISSIONS, Role
from tests.cases.samples import FORMS
from tests.helpers import Api


def path_to(state: workflow.State) -> list[workflow.Step]:
    """The shortest list of steps from an intake to `state`."""
    start = workflow.initial_position()
    paths: dict[workflow.Position, list[workflow.Step]] = {start: []}
    queue = [start]
    while queue:
        position = queue.pop(0)
        if position.state == state:
            return paths[position]
        for step in workflow.allowed_steps(position):
            following = workflow.advance(position, step.action)
            if following not in paths:
                paths[following] = [*paths[position], step]
                queue.append(following)
    raise AssertionError(f"the workflow never reaches {state}")


async def _etag(api: Api, headers: dict[str, str], case_id: str) -> str:
    read = await api.client.get(f"/cases/v1/cases/{case_id}", headers=headers)
    assert read.status_code == 200, read.text
    return str(read.headers["etag"])


async def linked_case(api: Api, officer: dict[str, str], commune: str, child_id: str | None,
                      abuse_forms: tuple[str, ...] = ("neglect",)) -> str:
    """A case the commune's officer reports and, when `child_id` is given, links to the registry child."""
    response = await api.client.post("/cases/v1/cases", headers=officer, json={
        "incident_commune_code": commune, "abuse_forms": list(abuse_forms), "environment": "home",
        "description": "Report made by a test", "child": {"sex": "female"}})
    assert response.status_code == 201, response.text
    case_id = str(response.json()["id"])
    if child_id is not None:
        linked = await api.client.post(f"/cases/v1/cases/{case_id}/link-child", json={"child_id": child_id},
                                       headers=officer | {"If-Match": response.headers["etag"]})
        assert linked.status_code == 200, linked.text
    return case_id


async def case_involving(api: Api, commune: str, child_id: str | None, agency: str,
                         officer: dict[str, str] | None = None) -> str:
    """A case of `commune` about the registry child that involves `agency`: a sexual-abuse report for the police
    (their referral), else a plan with one task for `agency`, approved by the commune's chairman."""
    officer = officer or await api.commune_user("child_protection_officer", commune)
    if agency == "police":
        return await linked_case(api, officer, commune, child_id, ("sexual_abuse",))
    case_id = await linked_case(api, officer, commune, child_id)
    chairman = await api.commune_user("commune_chairman", commune)
    for step in path_to(workflow.State.IMPLEMENTING):
        actor = officer if step.permission in PERMISSIONS[Role.CHILD_PROTECTION_OFFICER] else chairman
        body: dict[str, Any] = dict(FORMS[step.action])
        if step.action == "submit_plan":
            body["tasks"] = [{**body["tasks"][0], "agency": agency, "title": f"Task for {agency}"}]
        answer = await api.client.post(f"/cases/v1/cases/{case_id}/actions/{step.action}", json=body,
                                       headers=actor | {"If-Match": await _etag(api, officer, case_id)})
        assert answer.status_code == 200, f"{step.action}: {answer.text}"
    return case_id
