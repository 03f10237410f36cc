"""Sign-in, refresh, logout, lockout, service accounts, key rotation, and token attacks.

Every attack is tried against the gateway and directly against a service, which must verify tokens itself.
"""

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from services.common import tokens
from tests.helpers import DEMO_COMMUNE, Api, eventually
from tests.idp import ProvinceIdp


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    pad = lambda part: part + "=" * (-len(part) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(header))), json.loads(base64.urlsafe_b64decode(pad(payload))),
            signature)


async def accepted(api: Api, token: str) -> dict[str, int]:
    """Status of the same authenticated call at the gateway and directly at the registry service."""
    headers = {"Authorization": f"Bearer {token}"}
    through_gateway = await api.client.get("/auth/me", headers=headers)
    async with httpx.AsyncClient(base_url=api.stack.url("registry")) as direct:
        at_service = await direct.get(f"/v1/children/{uuid.uuid4()}", headers=headers)
    return {"gateway": through_gateway.status_code, "service": at_service.status_code}


async def valid_token(api: Api) -> str:
    return await api.login("demo-child_protection_officer")


async def test_password_grant_returns_short_lived_access_and_refresh_token(api: Api) -> None:
    response = await api.client.post("/auth/token", data={"grant_type": "password",
                                                          "username": "demo-child_protection_officer",
                                                          "password": "demo"})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and 600 <= body["expires_in"] <= 3600 and body["refresh_token"]
    header, claims, _ = split(body["access_token"])
    assert header["alg"] == "ES256" and header["kid"]
    assert {"sub", "agency", "role", "jur", "iss", "aud", "exp", "jti"} <= claims.keys()
    assert claims["role"] == "child_protection_officer" and claims["jur"]["commune"] == DEMO_COMMUNE
    me = await api.client.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["permissions"]["child:create"] == "jurisdiction"


async def test_wrong_password_and_unknown_user_look_the_same(api: Api) -> None:
    wrong = await api.client.post("/auth/token", data={"grant_type": "password", "username": "demo-admin",
                                                       "password": "nope-nope"})
    unknown = await api.client.post("/auth/token", data={"grant_type": "password", "username": "nobody-here",
                                                         "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.headers["content-type"].startswith("application/problem+json")


async def test_refresh_rotates_and_reuse_revokes_the_family(api: Api) -> None:
    first = (await api.client.post("/auth/token", data={"grant_type": "password", "username": "demo-admin",
                                                        "password": "demo"})).json()
    second = await api.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()["refresh_token"]
    assert rotated != first["refresh_token"]
    reuse = await api.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    # The thief's reuse ended the family: the legitimate newest token is gone too.
    assert (await api.client.post("/auth/refresh", json={"refresh_token": rotated})).status_code == 401


async def test_logout_revokes_refresh_token(api: Api) -> None:
    body = (await api.client.post("/auth/token", data={"grant_type": "password", "username": "demo-admin",
                                                       "password": "demo"})).json()
    assert (await api.client.post("/auth/logout", json={"refresh_token": body["refresh_token"]})).status_code == 204
    assert (await api.client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})).status_code == 401


async def test_refresh_tokens_are_stored_hashed(api: Api) -> None:
    body = (await api.client.post("/auth/token", data={"grant_type": "password", "username": "demo-admin",
                                                       "password": "demo"})).json()
    connection = await asyncpg.connect(api.stack.database_url("gateway").replace("postgresql+asyncpg", "postgresql"))
    try:
        stored = await connection.fetchval("SELECT count(*) FROM refresh_token WHERE token_hash = $1",
                                           hashlib.sha256(body["refresh_token"].encode()).hexdigest())
        plain = await connection.fetchval("SELECT count(*) FROM refresh_token WHERE token_hash = $1",
                                          body["refresh_token"])
        password = await connection.fetchval("SELECT password_hash FROM user_account WHERE username = 'demo-admin'")
    finally:
        await connection.close()
    assert stored == 1 and plain == 0
    assert password.startswith("$argon2")


async def test_service_account_gets_only_its_scopes(api: Api) -> None:
    token = await api.service_token("reporting", "events:read child:create")
    _, claims, _ = split(token)
    assert claims["role"] == "service" and claims["scope"] == "events:read"
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api.stack.url("registry")) as registry:
        assert (await registry.get("/internal/v1/events", params={"limit": 1}, headers=headers)).status_code == 200
        refused = await registry.post("/v1/children", headers=headers, json={
            "full_name": "X", "sex": "male", "date_of_birth": "2015-01-01", "commune_code": DEMO_COMMUNE})
        assert refused.status_code == 403
    wrong = await api.client.post("/auth/token", data={"grant_type": "client_credentials"},
                                  auth=("reporting", "not-the-secret"))
    assert wrong.status_code == 401


async def test_event_feed_refuses_user_tokens(api: Api) -> None:
    headers = await api.as_demo("child_protection_officer")
    async with httpx.AsyncClient(base_url=api.stack.url("registry")) as registry:
        assert (await registry.get("/internal/v1/events", headers=headers)).status_code == 403
    assert (await api.client.get("/registry/internal/v1/events", headers=headers)).status_code == 404


def forged(claims: dict[str, Any], header: dict[str, Any], key: bytes | None = None) -> str:
    signing_input = f"{b64(header)}.{b64(claims)}"
    signature = b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest()) if key else ""
    return f"{signing_input}.{signature}"


@pytest.mark.parametrize("attack", ["alg_none", "hs256_with_public_key", "expired", "wrong_audience",
                                    "wrong_issuer", "tampered_role", "unknown_kid", "foreign_key_same_kid",
                                    "garbage", "missing_claims"])
async def test_token_attacks_are_refused_everywhere(api: Api, attack: str) -> None:
    genuine = await valid_token(api)
    header, claims, signature = split(genuine)
    jwks = (await api.client.get("/.well-known/jwks.json")).json()["keys"]
    now = int(time.time())
    if attack == "alg_none":
        token = forged(claims | {"role": "admin"}, {"alg": "none", "kid": header["kid"], "typ": "JWT"})
    elif attack == "hs256_with_public_key":
        public = next(k for k in jwks if k["kid"] == header["kid"])
        token = forged(claims, {"alg": "HS256", "kid": header["kid"]}, json.dumps(public).encode())
    elif attack == "expired":
        token = forged(claims | {"exp": now - 3600}, header) + signature
    elif attack in ("wrong_audience", "wrong_issuer", "tampered_role"):
        change = {"wrong_audience": {"aud": "another-system"}, "wrong_issuer": {"iss": "https://evil.example"},
                  "tampered_role": {"role": "admin", "jur": {"level": "national"}}}[attack]
        token = f"{b64(header)}.{b64(claims | change)}.{signature}"
    elif attack == "unknown_kid":
        token = tokens.sign(claims, tokens.SigningKey.generate())
    elif attack == "foreign_key_same_kid":
        token = tokens.sign(claims, tokens.SigningKey(kid=header["kid"],
                                                      private_pem=tokens.SigningKey.generate().private_pem))
    elif attack == "garbage":
        token = "not.a.token"
    else:
        stripped = {k: v for k, v in claims.items() if k not in ("exp", "jti")}
        token = tokens.sign(stripped, tokens.SigningKey.generate())
    assert await accepted(api, token) == {"gateway": 401, "service": 401}
    assert await accepted(api, genuine) == {"gateway": 200, "service": 404}


async def test_missing_or_non_bearer_authorization_is_401(api: Api) -> None:
    assert (await api.client.get("/registry/v1/children/x")).status_code == 401
    basic = await api.client.get("/auth/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401
    assert "bearer" in basic.headers["www-authenticate"].lower()


async def test_key_rotation_keeps_existing_sessions(api: Api) -> None:
    old = await api.login("demo-commune_chairman")
    old_kid = split(old)[0]["kid"]
    rotated = await api.client.post("/admin/v1/keys/rotate", headers=await api.as_demo("admin"))
    assert rotated.status_code == 200 and rotated.json()["kid"] != old_kid
    kids = [k["kid"] for k in (await api.client.get("/.well-known/jwks.json")).json()["keys"]]
    assert kids[:2] == [rotated.json()["kid"], old_kid]
    new = (await api.client.post("/auth/token", data={"grant_type": "password", "username": "demo-commune_chairman",
                                                      "password": "demo"})).json()["access_token"]
    assert split(new)[0]["kid"] == rotated.json()["kid"]
    assert await accepted(api, old) == {"gateway": 200, "service": 404}

    async def new_key_known_everywhere() -> bool:
        return await accepted(api, new) == {"gateway": 200, "service": 404}

    await eventually(new_key_known_everywhere, timeout=30)


async def test_province_identity_provider_is_trusted_through_configuration(api: Api,
                                                                          province_idp: ProvinceIdp) -> None:
    jurisdiction = {"level": "commune", "province": "01", "commune": DEMO_COMMUNE}
    token = province_idp.token("can_bo_bao_ve_tre_em", jurisdiction)
    me = await api.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["role"] == "child_protection_officer" and me.json()["jurisdiction"]["commune"] == DEMO_COMMUNE
    assert (await accepted(api, token))["service"] == 404
    unmapped = province_idp.token("giam_doc", jurisdiction)
    assert await accepted(api, unmapped) == {"gateway": 401, "service": 401}
    no_service_role = province_idp.token("service", jurisdiction)
    assert (await accepted(api, no_service_role))["gateway"] == 401
