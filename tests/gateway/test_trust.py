"""Issue 16, the gateway's and the tokens' findings and classes, each test failing before its fix:

4 role and agency from one allowed list, a change audited and ending the user's sessions; 6 throttling per username
and address with growing delays, a lock only on much stronger evidence, admin unlock, the same answers for unknown
users; 7 key rotation national only, never unpublishing a key whose tokens can still be valid; 10 logout and
deactivation refused at the gateway and the services within seconds; 12 no redirects or Host reflection; 13 no
service documents and no public metrics through the gateway; 14 X-Request-ID bounded, ES256 low-S. Classes:
concurrency (a refresh token twice at once, admin writes), text identity (usernames and names), bounds.
"""

import asyncio
import base64
import json
import os
import time
import uuid
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from scripts.stack import free_port, local_redis_answers
from services.common import tokens
from tests.gateway.conftest import EchoUpstream
from tests.gateway.signin import new_user
from tests.helpers import DEMO_COMMUNE, DEMO_PROVINCE, OTHER_PROVINCE, Api, eventually

SERVICES = {"registry": f"/v1/children/{uuid.uuid4()}", "cases": f"/v1/cases/{uuid.uuid4()}",
            "reporting": "/v1/indicators"}


@pytest.fixture(scope="module")
def echo_gateway(extra_gateway: Callable[..., str], echo_upstream: EchoUpstream) -> str:
    """A gateway whose registry is the echo upstream, shared by the tests that only look at what passes."""
    return extra_gateway({"GATEWAY_REGISTRY_URL": echo_upstream.url})


async def sign_in(client: httpx.AsyncClient, username: str, password: str, address: str | None = None
                  ) -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    return await client.post("/auth/token", headers=headers, data={"grant_type": "password", "username": username,
                                                                   "password": password})


async def statuses_everywhere(api: Api, token: str) -> dict[str, int]:
    """The same token at the gateway and at each service called directly."""
    headers = {"Authorization": f"Bearer {token}"}
    found = {"gateway": (await api.client.get("/auth/me", headers=headers)).status_code}
    for service, path in SERVICES.items():
        async with httpx.AsyncClient(base_url=api.stack.url(service), timeout=10) as client:
            found[service] = (await client.get(path, headers=headers)).status_code
    return found


async def refused_everywhere_soon(api: Api, token: str) -> None:
    async def refused() -> bool:
        return set((await statuses_everywhere(api, token)).values()) == {401}

    await eventually(refused, timeout=15, interval=0.25)


async def audit_actions(api: Api, target: str) -> list[dict[str, object]]:
    connection = await asyncpg.connect(api.stack.database_url("gateway").replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await connection.fetch("SELECT action, detail FROM admin_audit_entry WHERE target_id = $1 ORDER BY at",
                                      target)
    finally:
        await connection.close()
    return [{"action": row["action"], "detail": json.loads(row["detail"])} for row in rows]


# 4 ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role,agency", [("police_officer", "hotline"), ("police_officer", "health"),
                                         ("child_protection_officer", "police"), ("hotline_operator", "system"),
                                         ("education_officer", "peoples_committee")])
async def test_role_and_agency_come_from_one_allowed_list(api: Api, role: str, agency: str) -> None:
    admin = await api.as_demo("admin")
    jurisdiction = {"level": "national"} if role == "hotline_operator" else {"level": "commune",
                                                                            "commune": DEMO_COMMUNE}
    created = await api.client.post("/admin/v1/users", headers=admin, json={
        "username": f"ag{uuid.uuid4().hex[:8]}", "password": "a-long-password-1", "display_name": "Nguyễn Văn An",
        "role": role, "agency": agency, "jurisdiction": jurisdiction})
    assert created.status_code == 422, created.text
    user_id, _, _ = await new_user(api, role="police_officer",
                                   jurisdiction={"level": "province", "province": DEMO_PROVINCE})
    changed = await api.client.patch(f"/admin/v1/users/{user_id}", headers=admin, json={"agency": "hotline"})
    assert changed.status_code == 422
    # A health officer may belong to a social protection establishment: a second allowed agency.
    health, _, _ = await new_user(api, role="health_officer", jurisdiction={"level": "province", "province": "01"})
    moved = await api.client.patch(f"/admin/v1/users/{health}", headers=admin, json={"agency": "social_services"})
    assert moved.status_code == 200 and moved.json()["agency"] == "social_services"


@pytest.mark.parametrize("change", [{"role": "commune_chairman"}, {"jurisdiction": {"level": "commune",
                                                                                    "commune": "00073"}},
                                    {"active": False}, {"password": "another-long-password"}])
async def test_a_change_of_role_agency_or_place_is_audited_and_ends_the_users_sessions(api: Api,
                                                                                     change: dict) -> None:
    user_id, username, password = await new_user(api)
    signed_in = (await sign_in(api.client, username, password)).json()
    assert 401 not in (await statuses_everywhere(api, signed_in["access_token"])).values()
    changed = await api.client.patch(f"/admin/v1/users/{user_id}", headers=await api.as_demo("admin"), json=change)
    assert changed.status_code == 200, changed.text
    await refused_everywhere_soon(api, signed_in["access_token"])
    assert (await api.client.post("/auth/refresh", json={"refresh_token": signed_in["refresh_token"]})
            ).status_code == 401
    last = (await audit_actions(api, user_id))[-1]
    assert last["action"] == "user.update" and last["detail"]["sessions_ended"] is True  # type: ignore[index]
    if "role" in change:
        assert last["detail"]["previous"] == {"role": "child_protection_officer",  # type: ignore[index]
                                              "agency": "peoples_committee"}


# 6 ---------------------------------------------------------------------------------------------------------------


async def test_failures_from_one_address_do_not_lock_the_officer_out(
        api: Api, extra_gateway: Callable[..., str]) -> None:
    url = extra_gateway({"GATEWAY_LOGIN_DELAY_SECONDS": "60"}, forwarded_from_loopback=True)
    _, username, password = await new_user(api)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        attacker = [(await sign_in(client, username, "wrong-password", "203.0.113.7")).status_code
                    for _ in range(6)]
        blocked = await sign_in(client, username, password, "203.0.113.7")
        officer = await sign_in(client, username, password, "198.51.100.20")
    assert attacker[:3] == [401, 401, 401] and 429 in attacker
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 1
    assert officer.status_code == 200  # before: five failures locked the account for everyone


async def test_waits_grow_and_unknown_usernames_answer_the_same(api: Api,
                                                                extra_gateway: Callable[..., str]) -> None:
    url = extra_gateway({"GATEWAY_LOGIN_DELAY_SECONDS": "0.3", "GATEWAY_LOGIN_FREE_FAILURES": "2"},
                        forwarded_from_loopback=True)
    _, username, _ = await new_user(api)
    connection = await asyncpg.connect(api.stack.database_url("gateway").replace("postgresql+asyncpg", "postgresql"))

    async def waits(name: str) -> tuple[list[int], list[float]]:
        statuses, delays = [], []
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for _ in range(5):
                async def not_blocked() -> bool:
                    return (await connection.fetchval(
                        "SELECT coalesce(max(blocked_until), now()) <= now() FROM sign_in_throttle "
                        "WHERE username = $1 AND address = '192.0.2.9'", name))
                await eventually(not_blocked, timeout=20, interval=0.05)
                statuses.append((await sign_in(client, name, "wrong-password", "192.0.2.9")).status_code)
                delays.append(await connection.fetchval(
                    "SELECT coalesce(extract(epoch FROM blocked_until - last_failure_at), 0)::float "
                    "FROM sign_in_throttle WHERE username = $1 AND address = '192.0.2.9'", name))
        return statuses, delays

    try:
        known = await waits(username)
        unknown = await waits(f"nobody{uuid.uuid4().hex[:8]}")
    finally:
        await connection.close()
    assert known[0] == unknown[0] == [401] * 5
    assert [round(d, 1) for d in known[1]] == [round(d, 1) for d in unknown[1]]
    grown = known[1][2:]
    assert grown[0] > 0 and grown[1] >= 1.9 * grown[0] and grown[2] >= 1.9 * grown[1], known[1]


async def test_a_lock_needs_much_stronger_evidence_and_an_admin_lifts_it(
        api: Api, extra_gateway: Callable[..., str]) -> None:
    url = extra_gateway({"GATEWAY_LOGIN_LOCK_FAILURES": "12", "GATEWAY_LOGIN_DELAY_SECONDS": "60"},
                        forwarded_from_loopback=True)
    user_id, username, password = await new_user(api)
    unknown = f"nobody{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for name in (username, unknown):
            for attempt in range(12):  # four addresses, three failures each: no address is ever delayed
                answer = await sign_in(client, name, "wrong-password", f"198.18.0.{attempt // 3 + 1}")
                assert answer.status_code == 401
        locked = await sign_in(client, username, password, "198.18.1.1")
        locked_unknown = await sign_in(client, unknown, password, "198.18.1.1")
        assert locked.status_code == locked_unknown.status_code == 429
        assert locked.json()["detail"] == locked_unknown.json()["detail"]
        read = await api.client.get(f"/admin/v1/users/{user_id}", headers=await api.as_demo("admin"))
        assert read.json()["locked_until"] is not None
        unlocked = await api.client.post(f"/admin/v1/users/{user_id}/unlock", headers=await api.as_demo("admin"))
        assert unlocked.status_code == 200 and unlocked.json()["locked_until"] is None
        assert (await sign_in(client, username, password, "198.18.1.1")).status_code == 200
    assert (await audit_actions(api, user_id))[-1]["action"] == "user.unlock"


# 7 ---------------------------------------------------------------------------------------------------------------


async def test_only_a_national_admin_rotates_and_no_rotation_drops_a_key_in_use(api: Api) -> None:
    province_admin = await api.province_user("admin", OTHER_PROVINCE)
    assert (await api.client.post("/admin/v1/keys/rotate", headers=province_admin)).status_code == 403
    officer = (await sign_in(api.client, "demo-child_protection_officer", "demo")).json()["access_token"]
    national = await api.as_demo("admin")
    first = await api.client.post("/admin/v1/keys/rotate", headers=national)
    second = await api.client.post("/admin/v1/keys/rotate", headers=national)
    assert first.status_code == second.status_code == 200
    kid = json.loads(base64.urlsafe_b64decode(officer.split(".")[0] + "==="))["kid"]
    published = [key["kid"] for key in (await api.client.get("/.well-known/jwks.json")).json()["keys"]]
    assert kid in published and first.json()["kid"] in published and second.json()["kid"] == published[0]
    # Before: the second rotation unpublished the key of every token signed before the first.
    assert 401 not in (await statuses_everywhere(api, officer)).values()
    assert [a["action"] for a in await audit_actions(api, second.json()["kid"])] == ["key.rotate"]


# 10 --------------------------------------------------------------------------------------------------------------


async def test_logout_refuses_the_access_token_everywhere_within_seconds(api: Api) -> None:
    _, username, password = await new_user(api, role="province_statistician",
                                           jurisdiction={"level": "province", "province": "01"})
    signed_in = (await sign_in(api.client, username, password)).json()
    # Used once first, so that the gateway and the services hold it in their verified-token caches.
    assert (await statuses_everywhere(api, signed_in["access_token"]))["gateway"] == 200
    started = time.monotonic()
    assert (await api.client.post("/auth/logout", json={"refresh_token": signed_in["refresh_token"]})
            ).status_code == 204
    await refused_everywhere_soon(api, signed_in["access_token"])
    assert time.monotonic() - started < 15
    revoked = (await api.client.get("/auth/revocations")).json()["sessions"]
    session_id = json.loads(base64.urlsafe_b64decode(signed_in["access_token"].split(".")[1] + "==="))["sid"]
    assert session_id in revoked


async def test_revoking_an_access_token_ends_its_session(api: Api) -> None:
    _, username, password = await new_user(api)
    signed_in = (await sign_in(api.client, username, password)).json()
    assert (await api.client.post("/auth/revoke", data={"token": signed_in["access_token"]})).status_code == 200
    await refused_everywhere_soon(api, signed_in["access_token"])
    assert (await api.client.post("/auth/refresh", json={"refresh_token": signed_in["refresh_token"]})
            ).status_code == 401


# 12, 13 ----------------------------------------------------------------------------------------------------------


async def test_no_redirect_leaves_the_gateway_and_no_host_is_reflected(api: Api, echo_gateway: str) -> None:
    headers = await api.as_demo("child_protection_officer") | {"Host": "evil.example"}
    for path in ("/registry/v1/children/", "/cases/v1/cases/", "/admin/v1/users/", "/auth/me/", "/docs/"):
        answer = await api.client.get(path, headers=headers)
        assert answer.status_code == 404, (path, answer.status_code)
        assert "location" not in answer.headers and "evil" not in answer.text and "127.0.0.1:" not in answer.text
    async with httpx.AsyncClient(base_url=echo_gateway) as client:
        redirected = await client.get("/registry/redirect", headers=headers)
    assert redirected.status_code == 404 and "location" not in redirected.headers


@pytest.mark.parametrize("service", ["registry", "cases", "reporting"])
async def test_service_documents_are_not_reachable_through_the_gateway(api: Api, service: str) -> None:
    headers = await api.as_demo("child_protection_officer")
    for path in ("openapi.json", "docs", "redoc", "docs/oauth2-redirect", "OpenAPI.json", "%6fpenapi.json"):
        answer = await api.client.get(f"/{service}/{path}", headers=headers)
        assert answer.status_code == 404, (path, answer.status_code)
    assert (await api.client.get("/openapi.json")).status_code == 200  # the combined document is public


async def test_gateway_metrics_are_not_public(api: Api, extra_gateway: Callable[..., str]) -> None:
    # The reverse proxy makes every caller look like loopback: loopback alone no longer opens /metrics.
    assert (await api.client.get("/metrics")).status_code == 404
    metrics_port = free_port()
    url = extra_gateway({"GATEWAY_METRICS_TOKEN": "scrape-token-" + uuid.uuid4().hex,
                         "GATEWAY_METRICS_PORT": str(metrics_port)})
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/metrics")).status_code == 404
    async with httpx.AsyncClient() as scraper:
        async def listening() -> bool:
            try:
                return (await scraper.get(f"http://127.0.0.1:{metrics_port}/metrics")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(listening, timeout=10)
        assert "http_requests_total" in (await scraper.get(f"http://127.0.0.1:{metrics_port}/metrics")).text


# 14 --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["x" * 65, "short", "has space in it", "ünïcödé-request-id", "<script>alert(1)",
                                   "id-with-%0a-newline", "'; DROP TABLE--", "a" * 1000])
async def test_request_id_is_a_bounded_token_or_a_new_one(api: Api, given: str, echo_gateway: str) -> None:
    raw = given.encode()  # sent as bytes: UTF-8 on the wire, as a hostile client may
    headers: dict[str, str | bytes] = {**await api.as_demo("child_protection_officer"), "X-Request-ID": raw}
    async with httpx.AsyncClient(base_url=echo_gateway) as client:
        answer = await client.get("/registry/v1/anything", headers=headers)
    returned = answer.headers["x-request-id"]
    assert returned != given and 8 <= len(returned) <= 64 and returned.isascii() and returned.isalnum()
    assert answer.json()["headers"]["x-request-id"] == returned
    for service in ("registry", "cases"):
        async with httpx.AsyncClient(base_url=api.stack.url(service)) as client:
            direct = await client.get("/healthz", headers={"X-Request-ID": raw})
        assert direct.headers["x-request-id"] != given


async def test_a_re_signed_high_s_token_is_not_another_valid_token(api: Api) -> None:
    genuine = (await sign_in(api.client, "demo-commune_chairman", "demo")).json()["access_token"]
    signing_input, _, signature = genuine.rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    twin = signing_input + "." + base64.urlsafe_b64encode(
        r + (tokens.P256_ORDER - s).to_bytes(32, "big")).rstrip(b"=").decode()
    assert twin != genuine
    assert 401 not in (await statuses_everywhere(api, genuine)).values()
    assert set((await statuses_everywhere(api, twin)).values()) == {401}


# Classes: concurrency, text identity, bounds ---------------------------------------------------------------------


async def test_one_refresh_token_twice_at_once_has_one_winner(api: Api) -> None:
    for _ in range(5):
        first = (await sign_in(api.client, "demo-health_officer", "demo")).json()
        started = time.monotonic()
        answers = await asyncio.gather(*(api.client.post("/auth/refresh", json={
            "refresh_token": first["refresh_token"]}) for _ in range(2)))
        assert time.monotonic() - started < 10
        statuses = sorted(a.status_code for a in answers)
        assert statuses[0] == 200 and statuses[1] in (401, 409), statuses
        loser = next(a for a in answers if a.status_code != 200)
        assert loser.headers["content-type"].startswith("application/problem+json") and loser.json()["detail"]


async def test_concurrent_admin_writes_have_one_winner(api: Api) -> None:
    admin = await api.as_demo("admin")
    username = f"race{uuid.uuid4().hex[:8]}"
    body = {"username": username, "password": "a-long-password-1", "display_name": "Lê Thị Hoa",
            "role": "child_protection_officer", "jurisdiction": {"level": "commune", "commune": DEMO_COMMUNE}}
    created = await asyncio.gather(*(api.client.post("/admin/v1/users", headers=admin, json=body)
                                     for _ in range(3)))
    assert sorted(a.status_code for a in created) == [201, 409, 409]
    user = next(a for a in created if a.status_code == 201)
    etag = user.headers["etag"]
    changes = await asyncio.gather(*(api.client.patch(f"/admin/v1/users/{user.json()['id']}", json={
        "display_name": name}, headers=admin | {"If-Match": etag}) for name in ("Lê Thị Hoa A", "Lê Thị Hoa B")))
    assert sorted(a.status_code for a in changes) == [200, 412]


@pytest.mark.parametrize("name,problem", [("Nguyễn Văn Аn", "Cyrillic А"), ("Nguyễn\u200bVăn An", "zero width"),
                                          ("Nguyễn Văn An\u202e", "bidi override"), ("Trần Thị Βình", "Greek Β"),
                                          (" Nguyễn Văn An", "leading space"), ("Nguyễn\u00a0Văn An", "nbsp")])
async def test_look_alike_and_invisible_characters_are_refused_in_names(api: Api, name: str, problem: str) -> None:
    answer = await api.client.post("/admin/v1/users", headers=await api.as_demo("admin"), json={
        "username": f"tx{uuid.uuid4().hex[:8]}", "password": "a-long-password-1", "display_name": name,
        "role": "child_protection_officer", "jurisdiction": {"level": "commune", "commune": DEMO_COMMUNE}})
    assert answer.status_code == 422, problem


async def test_usernames_and_names_have_one_spelling(api: Api) -> None:
    admin = await api.as_demo("admin")
    base = f"Officer.{uuid.uuid4().hex[:6]}"
    decomposed = "Nguye\u0302\u0303n Va\u0306n An"  # combining accents
    created = await api.client.post("/admin/v1/users", headers=admin, json={
        "username": base, "password": "a-long-password-1", "display_name": decomposed,
        "role": "child_protection_officer", "jurisdiction": {"level": "commune", "commune": DEMO_COMMUNE}})
    assert created.status_code == 201, created.text
    assert created.json()["username"] == base.lower() and created.json()["display_name"] == "Nguyễn Văn An"
    duplicate = await api.client.post("/admin/v1/users", headers=admin, json={
        "username": base.upper(), "password": "a-long-password-1", "display_name": "X",
        "role": "child_protection_officer", "jurisdiction": {"level": "commune", "commune": DEMO_COMMUNE}})
    assert duplicate.status_code == 409
    for hidden in (f"\u200b{base}", base.replace("O", "О"), f"{base}\u00ad"):  # zero width, Cyrillic O, soft hyphen
        refused = await api.client.post("/admin/v1/users", headers=admin, json={
            "username": hidden, "password": "a-long-password-1", "display_name": "X",
            "role": "child_protection_officer", "jurisdiction": {"level": "commune", "commune": DEMO_COMMUNE}})
        assert refused.status_code == 422
        assert (await sign_in(api.client, hidden, "a-long-password-1")).status_code == 401
    assert (await sign_in(api.client, base.upper(), "a-long-password-1")).status_code == 200


@pytest.mark.parametrize("data", [
    {"grant_type": "password", "username": "u" * 201, "password": "x"},
    {"grant_type": "password", "username": "demo-admin", "password": "p" * 201},
    {"grant_type": "password", "username": "demo\x00admin", "password": "demo"},
    {"grant_type": "authorization_code", "code": "c" * 201, "redirect_uri": "x", "client_id": "cp-web",
     "code_verifier": "v" * 43},
    {"grant_type": "authorization_code", "code": "c", "redirect_uri": "r" * 501, "client_id": "cp-web",
     "code_verifier": "v" * 43},
    {"grant_type": "refresh_token", "refresh_token": "r" * 201},
    {"grant_type": "client_credentials", "client_id": "c" * 101, "client_secret": "s"},
    {"grant_type": "x" * 51}, {"grant_type": "implicit"}, {"grant_type": "password"},
])
async def test_token_endpoint_inputs_are_bounded(api: Api, data: dict[str, str]) -> None:
    answer = await api.client.post("/auth/token", data=data)
    assert answer.status_code in (400, 401, 422), answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("request_", [
    ("GET", "/admin/v1/users?limit=0", None), ("GET", "/admin/v1/users?limit=100000", None),
    ("GET", "/admin/v1/users?cursor=%00", None), ("GET", "/admin/v1/users?cursor=" + "A" * 1001, None),
    ("GET", "/admin/v1/users?cursor=WyJhIiwiYiJd", None), ("GET", "/admin/v1/users/not-a-uuid", None),
    ("PATCH", "/admin/v1/users/00000000-0000-0000-0000-000000000000", {"display_name": "x" * 201}),
    ("PATCH", "/admin/v1/users/00000000-0000-0000-0000-000000000000", {"password": "short"}),
    ("POST", "/admin/v1/users", {"username": "ab", "password": "a-long-password-1", "display_name": "X",
                                 "role": "admin", "jurisdiction": {"level": "national"}}),
    ("POST", "/admin/v1/users", {"username": "abc", "password": "a-long-password-1\x00", "display_name": "X",
                                 "role": "admin", "jurisdiction": {"level": "national"}}),
    ("POST", "/admin/v1/users", {"username": "abc", "password": "a-long-password-1", "display_name": "X",
                                 "role": "admin", "jurisdiction": {"level": "province", "province": "9" * 500}}),
    ("DELETE", "/admin/v1/keys/" + "k" * 100, None),
])
async def test_admin_inputs_are_bounded(api: Api, request_: tuple[str, str, dict | None]) -> None:
    method, path, body = request_
    answer = await api.client.request(method, path, json=body, headers=await api.as_demo("admin"))
    assert answer.status_code in (400, 404, 422), (path, answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/problem+json")


# Throughput: budgets, breaker, shared limits ---------------------------------------------------------------------


async def test_a_hung_service_trips_the_breaker_and_answers_503_at_once(
        api: Api, extra_gateway: Callable[..., str], echo_upstream: EchoUpstream) -> None:
    # The upstream hangs 20 s; the budget is 4 s. Bounds sit between the two, and the breaker stays open long enough
    # (15 s) for a loaded machine to make the next call while it is open: the proof is that the upstream is not
    # called at all, not how fast the answer came.
    url = extra_gateway({"GATEWAY_REGISTRY_URL": echo_upstream.url, "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "4",
                         "GATEWAY_BREAKER_FAILURES": "3", "GATEWAY_BREAKER_OPEN_SECONDS": "15"})
    headers = await api.as_demo("child_protection_officer")
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(3):
            started = time.monotonic()
            assert (await client.get("/registry/slow", headers=headers)).status_code == 503
            assert time.monotonic() - started < 15  # the budget, not the 20 s hang
        calls = echo_upstream.calls
        started = time.monotonic()
        fast = await client.get("/registry/slow", headers=headers)
        assert fast.status_code == 503 and int(fast.headers["retry-after"]) >= 1
        assert time.monotonic() - started < 4  # did not wait out a budget
        assert echo_upstream.calls == calls  # the hung service was not even called

        async def closed_again() -> bool:
            return (await client.get("/registry/v1/fine", headers=headers)).status_code == 200

        await eventually(closed_again, timeout=60, interval=0.5)


@pytest.mark.skipif(not local_redis_answers() and not os.environ.get("CI"),
                    reason="needs Redis on 127.0.0.1:6379 (CI has it)")
async def test_rate_limits_are_shared_by_gateway_replicas(api: Api, extra_gateway: Callable[..., str]) -> None:
    shared = {"GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/0", "GATEWAY_REDIS_PREFIX": f"cp-t-{uuid.uuid4().hex}:",
              "GATEWAY_RATE_LIMIT_PER_USER": "6", "GATEWAY_RATE_LIMIT_PER_ADDRESS": "1000"}
    one, two = extra_gateway(shared), extra_gateway(shared)
    headers = await api.as_demo("education_officer")
    statuses = []
    async with httpx.AsyncClient(timeout=30) as client:
        for index in range(8):  # alternating: each replica alone would allow all 8 (6 each)
            url = one if index % 2 == 0 else two
            statuses.append((await client.get(f"{url}/registry/v1/children/x", headers=headers)).status_code)
    assert 429 not in statuses[:6] and statuses[6:] == [429, 429], statuses
