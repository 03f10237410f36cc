"""Issue 14: sign-in the way mobile and web apps expect. Discovery (RFC 8414, OpenID Connect), the authorization code
grant with PKCE (S256) for registered public clients through the gateway's own sign-in page, a second factor (TOTP)
with recovery codes, and each attack on the flow refused."""

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.gateway.signin import (
    MOBILE_CLIENT,
    MOBILE_REDIRECT,
    WEB_REDIRECT,
    SignIn,
    code_at,
    enrol,
    forms,
    new_user,
    secret_on,
)
from tests.helpers import Api, eventually
from tests.idp import ProvinceIdp


@pytest.fixture
async def browser(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of its own (cookie jar), that does not follow redirects: each step is looked at."""
    async with httpx.AsyncClient(base_url=api.stack.url("gateway"), timeout=30) as client:
        yield client


async def gateway_db(api: Api) -> asyncpg.Connection:
    return await asyncpg.connect(api.stack.database_url("gateway").replace("postgresql+asyncpg", "postgresql"))


async def test_discovery_documents_say_what_the_gateway_does(api: Api) -> None:
    oauth = (await api.client.get("/.well-known/oauth-authorization-server")).json()
    oidc = (await api.client.get("/.well-known/openid-configuration")).json()
    gateway = api.stack.url("gateway")
    assert oauth == oidc
    assert oauth["issuer"] == gateway  # equal to the `iss` of the tokens (RFC 8414 3.3)
    assert oauth["code_challenge_methods_supported"] == ["S256"]
    assert oauth["response_types_supported"] == ["code"]
    assert {"authorization_code", "refresh_token"} <= set(oauth["grant_types_supported"])
    assert "implicit" not in oauth["grant_types_supported"]
    assert oauth["id_token_signing_alg_values_supported"] == ["ES256"]
    assert "openid" in oauth["scopes_supported"]
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "revocation_endpoint"):
        assert oauth[name].startswith(gateway), name
        path = urlsplit(oauth[name]).path
        # Every endpoint named exists.
        post = name in ("token_endpoint", "revocation_endpoint")
        answer = await (api.client.post(path, data={}) if post else api.client.get(path))
        assert answer.status_code not in (404, 405), (name, answer.status_code)
    keys = (await api.client.get(urlsplit(oauth["jwks_uri"]).path)).json()["keys"]
    token = await api.login("demo-child_protection_officer")
    userinfo = await api.client.get(urlsplit(oauth["userinfo_endpoint"]).path,
                                    headers={"Authorization": f"Bearer {token}"})
    assert keys and userinfo.status_code == 200 and userinfo.json()["role"] == "child_protection_officer"


async def test_code_flow_with_second_factor_from_enrolment_to_the_api(api: Api, browser: httpx.AsyncClient) -> None:
    user_id, username, password = await new_user(api)
    flow = SignIn(browser)
    page = await flow.authorize()
    assert page.status_code == 200 and 'lang="vi"' in page.text and "Đăng nhập" in page.text
    assert page.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in page.headers[
        "content-security-policy"]
    assert "<script" not in page.text.lower()
    secret, codes, redirect = await enrol(flow, username, password)
    tokens = await flow.exchange(flow.code_from(redirect))
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["refresh_token"] and body["id_token"]
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await api.client.get("/auth/me", headers=headers)).json()["id"] == user_id
    listed = await api.client.get("/registry/v1/children", headers=headers, params={"commune_code": "00070"})
    assert listed.status_code == 200, listed.text

    # The next sign-in asks for the code; a recovery code works once.
    again = SignIn(browser)
    second = await again.password(await again.authorize(), username, password)
    assert second.status_code == 200 and forms(second.text).get("/auth/sign-in/second-factor") is not None
    done = await again.post(second, "/auth/sign-in/second-factor", code=codes[0])
    assert (await again.exchange(again.code_from(done))).status_code == 200
    third = SignIn(browser)
    page = await third.password(await third.authorize(), username, password)
    reused = await third.post(page, "/auth/sign-in/second-factor", code=codes[0])
    assert reused.status_code == 401 and "location" not in reused.headers
    done = await third.post(reused, "/auth/sign-in/second-factor", code=code_at(secret, 1))
    assert third.code_from(done)
    connection = await gateway_db(api)
    try:
        stored = await connection.fetch("SELECT code_hash FROM recovery_code WHERE user_id = $1::uuid", user_id)
    finally:
        await connection.close()
    assert len(stored) == 10 and not any(code in row["code_hash"] for row in stored for code in codes)


async def test_english_and_no_username_oracle(api: Api, browser: httpx.AsyncClient) -> None:
    _, username, _ = await new_user(api)
    flow = SignIn(browser)
    page = await flow.authorize(ui_locales="en")
    assert 'lang="en"' in page.text and "Sign in" in page.text
    wrong = await flow.password(page, username, "not-the-password")
    unknown = await flow.password(wrong, "nobody-by-this-name", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    message = lambda page: page.text.split('role="alert"')[1].split("<")[0]  # noqa: E731
    assert message(wrong) == message(unknown)
    request_id = forms(page.text)["/auth/sign-in"]["request"]
    switched = await browser.get(f"/auth/sign-in?{urlencode({'request': request_id, 'lang': 'vi'})}")
    assert 'lang="vi"' in switched.text and "Tên đăng nhập" in switched.text


async def test_a_real_oauth_library_signs_in_from_the_discovery_document(api: Api) -> None:
    """Authlib, given only the issuer's discovery document, runs code + PKCE and checks the ID token."""
    _, username, password = await new_user(api, role="province_statistician",
                                           jurisdiction={"level": "province", "province": "01"})
    gateway = api.stack.url("gateway")
    async with AsyncOAuth2Client(client_id="cp-web", redirect_uri=WEB_REDIRECT, scope="openid profile",
                                 code_challenge_method="S256", token_endpoint_auth_method="none",
                                 timeout=30) as client:
        discovery = f"{gateway}/.well-known/openid-configuration"
        metadata = (await client.request("GET", discovery, withhold_token=True)).json()
        verifier = secrets.token_urlsafe(48)
        url, state = client.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier,
                                                     nonce="n-0S6_WzA2Mj")
        async with httpx.AsyncClient(timeout=30) as browser:  # the person's browser, apart from the app
            page = await browser.get(url)
            form = forms(page.text)["/auth/sign-in"]
            redirect = await browser.post(f"{gateway}/auth/sign-in",
                                          data=form | {"username": username, "password": password})
        assert redirect.status_code == 303
        token = await client.fetch_token(metadata["token_endpoint"], code_verifier=verifier, state=state,
                                         authorization_response=redirect.headers["location"])
        keys = KeySet.import_key_set((await client.request("GET", metadata["jwks_uri"], withhold_token=True)).json())
        claims = jwt.decode(token["id_token"], keys, algorithms=["ES256"]).claims
        jwt.JWTClaimsRegistry(iss={"essential": True, "value": metadata["issuer"]},
                              aud={"essential": True, "value": "cp-web"},
                              nonce={"essential": True, "value": "n-0S6_WzA2Mj"}).validate(claims)
        info = (await client.get(metadata["userinfo_endpoint"])).json()
        assert info["sub"] == claims["sub"] and info["preferred_username"] == username
        refreshed = await client.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
        assert refreshed["access_token"] != token["access_token"]


# Attacks --------------------------------------------------------------------------------------------------------


async def signed_in(api: Api, browser: httpx.AsyncClient) -> tuple[SignIn, str]:
    """A statistician (no second factor by default) signed in up to the code."""
    _, username, password = await new_user(api, role="province_statistician",
                                           jurisdiction={"level": "province", "province": "01"})
    flow = SignIn(browser)
    return flow, flow.code_from(await flow.password(await flow.authorize(), username, password))


async def test_a_code_works_once_and_its_reuse_ends_the_session(api: Api, browser: httpx.AsyncClient) -> None:
    flow, code = await signed_in(api, browser)
    first = await flow.exchange(code)
    assert first.status_code == 200
    again = await flow.exchange(code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    refused = await api.client.post("/auth/refresh", json={"refresh_token": first.json()["refresh_token"]})
    assert refused.status_code == 401
    headers = {"Authorization": f"Bearer {first.json()['access_token']}"}

    async def access_refused() -> bool:
        return (await api.client.get("/auth/me", headers=headers)).status_code == 401

    await eventually(access_refused, timeout=15)


async def test_a_wrong_verifier_is_refused_and_burns_the_code(api: Api, browser: httpx.AsyncClient) -> None:
    flow, code = await signed_in(api, browser)
    wrong = await flow.exchange(code, code_verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert (await flow.exchange(code)).status_code == 400
    _, other = await signed_in(api, browser)
    assert (await flow.exchange(other, code_verifier="short")).status_code == 400


async def test_another_clients_redirect_uri_is_refused(api: Api, browser: httpx.AsyncClient) -> None:
    flow = SignIn(browser, client_id=MOBILE_CLIENT, redirect_uri=WEB_REDIRECT)
    page = await flow.authorize()
    assert page.status_code == 400 and "location" not in page.headers
    # A code issued for one redirect URI (and client) is refused for another.
    web, code = await signed_in(api, browser)
    assert (await web.exchange(code, redirect_uri=MOBILE_REDIRECT)).status_code == 400
    web, code = await signed_in(api, browser)
    assert (await web.exchange(code, client_id=MOBILE_CLIENT)).status_code == 400


@pytest.mark.parametrize("redirect_uri", ["https://evil.example/callback", "http://localhost:5173/callback/../x",
                                          "http://localhost:5173/callback?next=https://evil.example",
                                          "http://localhost:5173.evil.example/callback",
                                          "http://127.0.0.1.evil.example/callback",
                                          "http://evil.example@127.0.0.1:8080/callback",
                                          "http://localhost:5173@evil.example/callback", "//evil.example/callback",
                                          "javascript:alert(1)"])
async def test_no_open_redirect(api: Api, browser: httpx.AsyncClient, redirect_uri: str) -> None:
    flow = SignIn(browser, redirect_uri=redirect_uri)
    for overrides in ({}, {"state": None}, {"code_challenge_method": "plain"}, {"client_id": "no-such-client"}):
        page = await flow.authorize(**overrides)
        assert page.status_code == 400 and "location" not in page.headers, (redirect_uri, overrides)
        assert "evil" not in page.text


async def test_a_loopback_redirect_uri_may_take_any_port_but_nothing_else(api: Api,
                                                                          browser: httpx.AsyncClient) -> None:
    good = await SignIn(browser, client_id="cp-cli", redirect_uri="http://127.0.0.1:51234/callback").authorize()
    assert good.status_code == 200
    for uri in ("http://127.0.0.1:51234/other", "https://127.0.0.1:51234/callback", "http://localhost:51234/callback"):
        assert (await SignIn(browser, client_id="cp-cli", redirect_uri=uri).authorize()).status_code == 400


@pytest.mark.parametrize("overrides,error", [({"state": None}, "invalid_request"),
                                             ({"code_challenge": None}, "invalid_request"),
                                             ({"code_challenge_method": "plain"}, "invalid_request"),
                                             ({"code_challenge_method": None}, "invalid_request"),
                                             ({"response_type": "token"}, "unsupported_response_type"),
                                             ({"scope": "openid admin"}, "invalid_scope")])
async def test_requests_without_state_or_pkce_are_refused(browser: httpx.AsyncClient, overrides: dict[str, None],
                                                          error: str) -> None:
    flow = SignIn(browser)
    answer = await flow.authorize(**overrides)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(WEB_REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == [error] and "code" not in query


async def test_csrf_on_the_sign_in_form_is_refused(api: Api, browser: httpx.AsyncClient) -> None:
    _, username, password = await new_user(api)
    flow = SignIn(browser)
    page = await flow.authorize()
    fields = forms(page.text)["/auth/sign-in"] | {"username": username, "password": password}
    async with httpx.AsyncClient(base_url=api.stack.url("gateway")) as attacker:
        # Another site's form, posted from the victim's browser, carries no cookie (SameSite=Strict).
        no_cookie = await attacker.post("/auth/sign-in", data=fields)
        # The attacker's own sign-in cookie does not fit the victim's sign-in.
        await SignIn(attacker).authorize()
        their_cookie = await attacker.post("/auth/sign-in", data=fields)
    forged_token = await browser.post("/auth/sign-in", data=fields | {"csrf_token": "x" * 43})
    for answer in (no_cookie, their_cookie, forged_token):
        assert answer.status_code == 403 and "location" not in answer.headers
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    # The genuine form still works.
    assert (await browser.post("/auth/sign-in", data=fields)).status_code == 200


async def test_totp_brute_force_is_throttled_and_a_replayed_code_refused(api: Api,
                                                                          browser: httpx.AsyncClient) -> None:
    _, username, password = await new_user(api)
    first = SignIn(browser)
    secret, _, _ = await enrol(first, username, password)
    flow = SignIn(browser)
    page = await flow.password(await flow.authorize(), username, password)
    # The very code that confirmed the enrolment, sent again (refused as used, or as too old on a slow machine).
    replayed = await flow.post(page, "/auth/sign-in/second-factor", code=first.enrolment_code)
    assert replayed.status_code == 401
    page = replayed
    statuses = []
    for guess in range(8):
        page = await flow.post(page, "/auth/sign-in/second-factor", code=f"{guess:06d}")
        statuses.append(page.status_code)
    assert statuses[:4] == [401] * 4 and statuses[-1] == 429 and int(page.headers["retry-after"]) >= 1
    # While blocked, even the right code is not looked at.
    blocked = await flow.post(page, "/auth/sign-in/second-factor", code=code_at(secret, 1))
    assert blocked.status_code == 429


async def test_concurrent_replay_of_one_code_lets_only_one_through(api: Api) -> None:
    _, username, password = await new_user(api)
    async with httpx.AsyncClient(base_url=api.stack.url("gateway"), timeout=30) as one:
        secret, _, _ = await enrol(SignIn(one), username, password)
    flows, pages = [], []
    for _ in range(2):
        client = httpx.AsyncClient(base_url=api.stack.url("gateway"), timeout=30)
        flow = SignIn(client)
        flows.append(flow)
        pages.append(await flow.password(await flow.authorize(), username, password))
    code = code_at(secret, 1)
    try:
        answers = await asyncio.gather(*(flow.post(page, "/auth/sign-in/second-factor", code=code)
                                         for flow, page in zip(flows, pages, strict=True)))
    finally:
        for flow in flows:
            await flow.client.aclose()
    assert sorted(a.status_code for a in answers) == [303, 401]


async def test_cancel_returns_access_denied_to_the_client(browser: httpx.AsyncClient) -> None:
    flow = SignIn(browser)
    page = await flow.authorize()
    cancelled = await flow.post(page, "/auth/sign-in/cancel")
    query = parse_qs(urlsplit(cancelled.headers["location"]).query)
    assert cancelled.status_code == 303 and query["error"] == ["access_denied"] and query["state"] == [flow.state]


async def test_admin_resets_a_second_factor_audited(api: Api, browser: httpx.AsyncClient) -> None:
    user_id, username, password = await new_user(api)
    secret, _, _ = await enrol(SignIn(browser), username, password)
    reset = await api.client.delete(f"/admin/v1/users/{user_id}/mfa", headers=await api.as_demo("admin"))
    assert reset.status_code == 200 and reset.json()["mfa_enrolled"] is False
    again = SignIn(browser)
    enrolment = await again.password(await again.authorize(), username, password)
    assert 'class="qr"' in enrolment.text and secret_on(enrolment.text) != secret
    statistician = await api.client.delete(f"/admin/v1/users/{user_id}/mfa",
                                           headers=await api.as_demo("province_statistician"))
    assert statistician.status_code == 403
    connection = await gateway_db(api)
    try:
        actions = [r["action"] for r in await connection.fetch(
            "SELECT action FROM admin_audit_entry WHERE target_id = $1 ORDER BY at", user_id)]
    finally:
        await connection.close()
    assert actions[-1] == "user.mfa_reset"


async def test_password_grant_is_refused_in_production_unless_enabled_for_a_client(
        api: Api, extra_gateway: Callable[..., str]) -> None:
    clients = '{"cp-web": {"name": "Web", "redirect_uris": ["https://app.example/cb"]}, ' \
              '"it-tests": {"name": "Integration tests", "redirect_uris": ["https://ci.example/cb"], ' \
              '"password_grant": true}}'
    url = extra_gateway({"GATEWAY_ENVIRONMENT": "production", "GATEWAY_OAUTH_CLIENTS_JSON": clients})
    _, officer, officer_password = await new_user(api)
    _, statistician, statistician_password = await new_user(api, role="province_statistician",
                                                            jurisdiction={"level": "province", "province": "01"})
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        grant = lambda user, pw, **extra: client.post("/auth/token", data={  # noqa: E731
            "grant_type": "password", "username": user, "password": pw} | extra)
        no_client = await grant(statistician, statistician_password)
        not_enabled = await grant(statistician, statistician_password, client_id="cp-web")
        enabled = await grant(statistician, statistician_password, client_id="it-tests")
        needs_second_factor = await grant(officer, officer_password, client_id="it-tests")
        metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert no_client.status_code == not_enabled.status_code == 400
    assert no_client.json()["error"] == "unauthorized_client"
    assert enabled.status_code == 200
    assert needs_second_factor.status_code == 400 and needs_second_factor.json()["error"] == "invalid_grant"
    assert "password" in metadata["grant_types_supported"]  # enabled for a named client


async def test_province_identity_providers_still_sign_people_in(api: Api, province_idp: ProvinceIdp) -> None:
    token = province_idp.token("chu_tich_xa", {"level": "commune", "province": "01", "commune": "00070"})
    info = await api.client.get("/auth/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert info.status_code == 200 and info.json()["role"] == "commune_chairman"
