"""Every route of every service, called as every role: the answers match the permission table exactly.

A role without the route's action gets 403. A role with it gets the answer that route gives to the test's call (a
random id in the path, an empty JSON body, no query): `ALLOWED_ANSWERS` says which, per route and, where it
differs, per scope of the caller; never 401, 403 or a 500. Routes and their actions are read from the services' own
OpenAPI documents, where `require(action)` records them, so a new route is covered the day it is added, and the
test fails until its answer is written down here. The signing-key rotation changes the system for every test, so
its allowed side is one real rotation in its own test below.
"""

import re
import uuid

import httpx
import pytest

from scripts.gen_permissions_docs import route_permissions
from scripts.stack import SERVICE_SCOPES
from services.common.permissions import PERMISSIONS, Action, Role, Scope
from tests.helpers import Api

ROUTES = [row for row in route_permissions() if row[3]]
KEY_ROTATION = ("POST", "/admin/v1/keys/rotate")
USER_ROLES = [role for role in Role if role != Role.SERVICE]
# What a caller allowed to take the route's action gets for the test's call. A dict answers per scope of the
# caller's action (the hotline's MATCH, an agency's INVOLVED, ...), `None` standing for every other scope.
Answer = int | dict[Scope | None, int]
ALLOWED_ANSWERS: dict[tuple[str, str], Answer] = {
    # gateway
    ("POST", "/admin/v1/users"): 422,  # the body lacks every field
    ("GET", "/admin/v1/users"): 200,
    ("GET", "/admin/v1/users/{user_id}"): 404,
    ("PATCH", "/admin/v1/users/{user_id}"): 404,
    KEY_ROTATION: 200,
    ("DELETE", "/admin/v1/keys/{kid}"): 422,  # a key id is not a uuid
    ("DELETE", "/admin/v1/users/{user_id}/mfa"): 404,
    ("POST", "/admin/v1/users/{user_id}/unlock"): 404,
    # registry
    ("GET", "/registry/internal/v1/events"): 200,
    ("POST", "/registry/v1/children"): 422,
    # The hotline must name the child it looks for (400 for a bare list); the others browse their jurisdiction.
    ("GET", "/registry/v1/children"): {Scope.MATCH: 400, None: 200},
    ("GET", "/registry/v1/children/export"): 422,  # the commune is required
    # An agency must name the case or task the read serves (400 without it); the others find no such child.
    ("GET", "/registry/v1/children/{child_id}"): {Scope.INVOLVED: 400, None: 404},
    ("PATCH", "/registry/v1/children/{child_id}"): 404,
    ("GET", "/registry/v1/children/{child_id}/history"): 404,
    ("POST", "/registry/v1/children/{child_id}/merge"): 422,
    ("POST", "/registry/v1/imports"): 422,  # no file
    ("GET", "/registry/v1/imports/{job_id}"): 404,
    ("GET", "/registry/v1/imports/{job_id}/errors"): 404,
    ("GET", "/registry/v1/locations/provinces"): 200,
    ("GET", "/registry/v1/locations/provinces/{code}/communes"): 404,
    ("GET", "/registry/v1/locations/communes/{code}"): 404,
    ("GET", "/registry/v1/locations/convert"): 422,  # the old code is required
    # cases
    ("GET", "/cases/internal/v1/events"): 200,
    ("GET", "/cases/internal/v1/involvement"): 422,  # purpose and child are required
    ("GET", "/cases/v1/workflow"): 200,
    ("POST", "/cases/v1/cases"): 422,
    ("GET", "/cases/v1/cases"): 200,
    ("GET", "/cases/v1/cases/{case_id}"): 404,
    ("GET", "/cases/v1/cases/{case_id}/history"): 404,
    ("POST", "/cases/v1/cases/{case_id}/actions/{action}"): 404,  # role x action x state: test_workflow_matrix.py
    ("POST", "/cases/v1/cases/{case_id}/notes"): 422,
    ("GET", "/cases/v1/cases/{case_id}/notes"): 404,
    ("GET", "/cases/v1/cases/{case_id}/tasks"): 404,
    ("PATCH", "/cases/v1/tasks/{task_id}"): 422,
    ("POST", "/cases/v1/cases/{case_id}/link-child"): 422,
    ("GET", "/cases/v1/me/work"): 200,
    ("POST", "/cases/v1/cases/{case_id}/attachments"): 415,  # JSON, not a multipart file
    ("GET", "/cases/v1/cases/{case_id}/attachments"): 404,
    ("POST", "/cases/v1/cases/{case_id}/attachment-uploads"): 422,
    ("GET", "/cases/v1/attachment-uploads/{upload_id}"): 404,
    ("DELETE", "/cases/v1/attachment-uploads/{upload_id}"): 404,
    ("PUT", "/cases/v1/attachment-uploads/{upload_id}/parts/{number}"): 422,  # a random id is no part number
    ("POST", "/cases/v1/attachment-uploads/{upload_id}/complete"): 404,
    ("GET", "/cases/v1/attachments/{attachment_id}"): 404,
    ("GET", "/cases/v1/attachments/{attachment_id}/content"): 404,
    ("POST", "/cases/v1/attachments/{attachment_id}/link"): 404,
    ("POST", "/cases/v1/attachments/{attachment_id}/delete"): 422,  # the reason is required
    ("PUT", "/cases/v1/attachments/{attachment_id}/legal-hold"): 422,
    ("GET", "/cases/v1/cases/{case_id}/documents"): 404,
    ("GET", "/cases/v1/cases/{case_id}/documents/{document_id}.{fmt}"): 422,  # a random id is no format
    ("GET", "/cases/v1/forms/{paper}/blank.{fmt}"): 422,  # nor a paper
    # reporting
    ("GET", "/reporting/v1/indicators"): 200,
    ("GET", "/reporting/v1/values"): 422,  # indicator, period and place are required
    ("GET", "/reporting/v1/reports/{period}"): 422,  # a random id is no period
    ("GET", "/reporting/v1/dhis2/metadata"): 200,
    ("GET", "/reporting/v1/child-friendly/{year}"): 422,  # a random id is no year
    ("PUT", "/reporting/v1/child-friendly/{year}/communes/{commune}/criteria/{criterion}"): 422,
}


def allowed_answer(method: str, path: str, scope: Scope | None) -> int:
    answer = ALLOWED_ANSWERS[(method, path)]
    return answer if isinstance(answer, int) else answer.get(scope, answer[None])


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)


async def call(api: Api, service: str, method: str, path: str, headers: dict[str, str]) -> int:
    url = concrete(path)
    body = {} if method in ("POST", "PUT", "PATCH") else None
    if "/internal/" in path:
        # Feeds between services are not routed by the gateway: call the service directly.
        async with httpx.AsyncClient(base_url=api.stack.url(service)) as direct:
            response = await direct.request(method, url.removeprefix(f"/{service}"), json=body, headers=headers)
    else:
        response = await api.client.request(method, url, json=body, headers=headers)
    return response.status_code


def test_every_route_has_its_allowed_answer_written_down() -> None:
    routes = {(method, path) for _, method, path, _ in ROUTES}
    missing = sorted(routes - set(ALLOWED_ANSWERS))
    assert not missing, f"add to ALLOWED_ANSWERS what an allowed caller gets for these routes: {missing}"
    assert not set(ALLOWED_ANSWERS) - routes, f"routes that no longer exist: {sorted(set(ALLOWED_ANSWERS) - routes)}"


def test_every_route_declares_an_action_or_is_public() -> None:
    # A file's download link carries its own signature, made after the access check (services/cases/attachments.py).
    public = {"/healthz", "/readyz", "/auth/token", "/auth/refresh", "/auth/logout", "/auth/me",
              "/.well-known/jwks.json", "/v1/vocabularies", "/auth/revoke", "/auth/userinfo", "/auth/revocations",
              "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration",
              "/v1/attachment-links/{token}"}
    for service, method, path, actions in route_permissions():
        bare = path.removeprefix(f"/{service}") if service != "gateway" else path
        assert actions or bare in public, f"{method} {path} declares no action"


@pytest.mark.parametrize("role", USER_ROLES, ids=[r.value for r in USER_ROLES])
async def test_user_roles_match_the_table(api: Api, role: Role) -> None:
    headers = await api.as_demo(role.value)
    mismatches = []
    for service, method, path, actions in ROUTES:
        held = [action for action in actions if action in PERMISSIONS[role]]
        if held and (method, path) == KEY_ROTATION:
            continue  # one real rotation: test_the_signing_key_rotation_is_an_admin_act
        want = allowed_answer(method, path, PERMISSIONS[role][held[0]]) if held else 403
        status = await call(api, service, method, path, headers)
        if status != want:
            mismatches.append(f"{method} {path} {[a.value for a in actions]}: {status}, expected {want}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("client_id", sorted(SERVICE_SCOPES))
async def test_service_accounts_match_their_scopes(api: Api, client_id: str) -> None:
    headers = {"Authorization": f"Bearer {await api.service_token(client_id)}"}
    scopes = set(SERVICE_SCOPES[client_id])
    mismatches = []
    for service, method, path, actions in ROUTES:
        held = [action for action in actions if action in PERMISSIONS[Role.SERVICE] and action.value in scopes]
        want = allowed_answer(method, path, PERMISSIONS[Role.SERVICE][held[0]]) if held else 403
        status = await call(api, service, method, path, headers)
        if status != want:
            mismatches.append(f"{method} {path} {[a.value for a in actions]}: {status}, expected {want}")
    assert not mismatches, "\n".join(mismatches)


async def test_the_signing_key_rotation_is_an_admin_act(api: Api) -> None:
    """Every other role was refused above (403). The admin rotates once: new tokens carry the new key, and tokens
    signed before stay valid at the gateway and at the services until they expire."""
    before = {role: await api.as_demo(role.value) for role in USER_ROLES}
    rotated = await api.client.post("/admin/v1/keys/rotate", headers=before[Role.ADMIN])
    assert rotated.status_code == 200, rotated.text
    for role, headers in before.items():
        assert (await api.client.get("/auth/me", headers=headers)).status_code == 200, role
    officer = before[Role.CHILD_PROTECTION_OFFICER]
    assert (await api.client.get("/cases/v1/cases", headers=officer)).status_code == 200
    api.tokens.clear()  # later tests sign in again, with the new key
    fresh = await api.as_demo(Role.CHILD_PROTECTION_OFFICER.value)
    assert (await api.client.get("/registry/v1/children", headers=fresh)).status_code == 200


def test_service_scopes_are_actions_of_the_service_role() -> None:
    for scopes in SERVICE_SCOPES.values():
        for scope in scopes:
            assert Action(scope) in PERMISSIONS[Role.SERVICE]
