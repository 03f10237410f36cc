"""Every route of every service, called as every role: the answers match the permission table exactly.

Route-level: a role without the route's action gets 403; a role with it never gets 401 or 403 (objects outside
its reach answer 404). Routes and their actions are read from the services' own OpenAPI documents, where
`require(action)` records them, so a new route is covered the day it is added.
"""

import re
import uuid

import httpx
import pytest

from scripts.gen_permissions_docs import route_permissions
from scripts.stack import SERVICE_SCOPES
from services.common.permissions import PERMISSIONS, Action, Role
from tests.helpers import Api

ROUTES = [row for row in route_permissions() if row[3]]
# Calling these as an allowed role would change the system for every other test.
SIDE_EFFECTS_WHEN_ALLOWED = {("POST", "/admin/v1/keys/rotate")}
USER_ROLES = [role for role in Role if role != Role.SERVICE]


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


def test_every_route_declares_an_action_or_is_public() -> None:
    public = {"/healthz", "/readyz", "/auth/token", "/auth/refresh", "/auth/logout", "/auth/me",
              "/.well-known/jwks.json", "/v1/vocabularies"}
    for service, method, path, actions in route_permissions():
        bare = path.removeprefix(f"/{service}") if service != "gateway" else path
        assert actions or bare in public, f"{method} {path} declares no action"


@pytest.mark.parametrize("role", USER_ROLES, ids=[r.value for r in USER_ROLES])
async def test_user_roles_match_the_table(api: Api, role: Role) -> None:
    headers = await api.as_demo(role.value)
    mismatches = []
    for service, method, path, actions in ROUTES:
        allowed = any(action in PERMISSIONS[role] for action in actions)
        if allowed and (method, path) in SIDE_EFFECTS_WHEN_ALLOWED:
            continue
        status = await call(api, service, method, path, headers)
        if (status == 403) == allowed or status == 401:
            mismatches.append(f"{method} {path} {actions}: {status}, table says allowed={allowed}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("client_id", sorted(SERVICE_SCOPES))
async def test_service_accounts_match_their_scopes(api: Api, client_id: str) -> None:
    headers = {"Authorization": f"Bearer {await api.service_token(client_id)}"}
    scopes = set(SERVICE_SCOPES[client_id])
    mismatches = []
    for service, method, path, actions in ROUTES:
        allowed = any(action in PERMISSIONS[Role.SERVICE] and action.value in scopes for action in actions)
        if allowed and (method, path) in SIDE_EFFECTS_WHEN_ALLOWED:
            continue
        status = await call(api, service, method, path, headers)
        if (status == 403) == allowed or status == 401:
            mismatches.append(f"{method} {path} {actions}: {status}, scopes say allowed={allowed}")
    assert not mismatches, "\n".join(mismatches)


def test_service_scopes_are_actions_of_the_service_role() -> None:
    for scopes in SERVICE_SCOPES.values():
        for scope in scopes:
            assert Action(scope) in PERMISSIONS[Role.SERVICE]
