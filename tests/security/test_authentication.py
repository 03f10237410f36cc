"""OWASP API2 (broken authentication), beyond the token attacks of tests/gateway/test_tokens.py (alg=none, HS/ES
confusion, expired, wrong audience or issuer, tampered claims, unknown key, garbage), which are tried there against
the gateway and a service.

Here: every service, called directly without the gateway, refuses a token meant for another audience or signed by
another issuer's key, and a service account's token reaches nothing beyond its scopes; a deactivated user can
neither sign in nor refresh."""

import uuid

import httpx
import pytest

from services.common import tokens
from tests.helpers import DEMO_COMMUNE, Api
from tests.idp import ProvinceIdp

# One authenticated read per service, as a user of the demo commune would make it.
PROBES = {"registry": f"/v1/children/{uuid.uuid4()}", "cases": f"/v1/cases/{uuid.uuid4()}",
          "reporting": "/v1/indicators"}
JURISDICTION = {"level": "commune", "province": "01", "commune": DEMO_COMMUNE}


async def direct_statuses(api: Api, token: str) -> dict[str, int]:
    statuses = {}
    for service, path in PROBES.items():
        async with httpx.AsyncClient(base_url=api.stack.url(service), timeout=10) as client:
            response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        statuses[service] = response.status_code
        if response.status_code == 401:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "bearer" in response.headers["www-authenticate"].lower()
    return statuses


async def test_a_genuine_token_is_accepted_by_every_service_directly(api: Api) -> None:
    # The control for the refusals below: the services do accept the gateway's tokens when called directly.
    token = await api.login("demo-commune_chairman")
    assert await direct_statuses(api, token) == {"registry": 404, "cases": 404, "reporting": 200}


@pytest.mark.parametrize("attack", ["other_audience", "other_issuer_key_claiming_ours", "expired_at_the_idp",
                                    "our_claims_names_from_the_idp"])
async def test_tokens_for_another_audience_or_issuer_are_refused_by_services(api: Api, province_idp: ProvinceIdp,
                                                                           attack: str) -> None:
    genuine = province_idp.token("chu_tich_xa", JURISDICTION)
    assert (await direct_statuses(api, genuine))["reporting"] == 200  # the trusted province IdP works
    if attack == "other_audience":
        token = province_idp.token("chu_tich_xa", JURISDICTION, aud="another-ministry-system")
    elif attack == "other_issuer_key_claiming_ours":
        # The province's key signing a token that says the gateway issued it: keys are bound to their issuer.
        token = province_idp.token("chu_tich_xa", JURISDICTION, iss=api.stack.url("gateway"),
                                   aud="child-protection")
    elif attack == "expired_at_the_idp":
        token = province_idp.token("chu_tich_xa", JURISDICTION, exp=1_700_000_000)
    else:
        # Our claim names (role, agency, jur) are not what this issuer is mapped by: no role is read from them.
        claims = {"iss": province_idp.issuer, "aud": province_idp.audience, "sub": "x", "exp": 4_000_000_000,
                  "jti": "j", "role": "commune_chairman", "agency": "peoples_committee", "jur": JURISDICTION}
        token = tokens.sign(claims, province_idp.key)
    assert await direct_statuses(api, token) == {"registry": 401, "cases": 401, "reporting": 401}


async def test_a_service_account_reaches_only_its_scopes(api: Api) -> None:
    reporting = await api.service_token("reporting", "events:read")
    headers = {"Authorization": f"Bearer {reporting}"}
    commune = {"commune_code": DEMO_COMMUNE}
    for service, path, params in (("registry", "/v1/children", commune), ("cases", "/v1/cases", {}),
                                  ("registry", "/v1/children/export", commune), ("reporting", "/v1/indicators", {})):
        async with httpx.AsyncClient(base_url=api.stack.url(service), timeout=10) as client:
            response = await client.get(path, headers=headers, params=params)
        assert response.status_code == 403, (service, path, response.text)
    # A scope the account does not hold is not granted by asking for it.
    asked = await api.client.post("/auth/token", data={"grant_type": "client_credentials",
                                                       "scope": "events:read registry:service_read"},
                                  auth=("reporting", api.stack.client_secrets["reporting"]))
    assert asked.status_code == 200 and asked.json()["scope"] == "events:read"


async def test_a_deactivated_user_can_neither_sign_in_nor_refresh(api: Api) -> None:
    admin = await api.as_demo("admin")
    username, password = f"sec{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}"
    created = await api.client.post("/admin/v1/users", headers=admin, json={
        "username": username, "password": password, "display_name": "Leaving officer",
        "role": "child_protection_officer", "jurisdiction": {"level": "commune", "commune": DEMO_COMMUNE}})
    assert created.status_code == 201, created.text
    signed_in = await api.client.post("/auth/token", data={"grant_type": "password", "username": username,
                                                           "password": password})
    assert signed_in.status_code == 200
    refresh = signed_in.json()["refresh_token"]

    deactivated = await api.client.patch(f"/admin/v1/users/{created.json()['id']}", json={"active": False},
                                         headers=admin)
    assert deactivated.status_code == 200 and deactivated.json()["active"] is False
    refused = await api.client.post("/auth/refresh", json={"refresh_token": refresh})
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    login = await api.client.post("/auth/token", data={"grant_type": "password", "username": username,
                                                       "password": password})
    assert login.status_code == 401
    # Reactivation does not bring the old refresh token back: it was revoked, not suspended.
    await api.client.patch(f"/admin/v1/users/{created.json()['id']}", json={"active": True}, headers=admin)
    assert (await api.client.post("/auth/refresh", json={"refresh_token": refresh})).status_code == 401
