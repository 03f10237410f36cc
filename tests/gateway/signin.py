"""Driving the gateway's sign-in page over plain HTTP, as a browser without JavaScript would: the authorization
request, the forms with their hidden fields and the CSRF cookie, and the redirect that carries the code."""

import base64
import hashlib
import html
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pyotp

from tests.helpers import DEMO_COMMUNE, Api

WEB_CLIENT = "cp-web"
WEB_REDIRECT = "http://localhost:5173/callback"
MOBILE_CLIENT = "cp-mobile"
MOBILE_REDIRECT = "vn.gov.baovetreem.app:/oauth2redirect"


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append({"action": values.get("action"), "fields": {}})
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1]["fields"][values["name"]] = values.get("value") or ""


def forms(page: str) -> dict[str, dict[str, str]]:
    """The page's forms by action, each with its fields' initial values."""
    parser = _Forms()
    parser.feed(page)
    return {form["action"]: form["fields"] for form in parser.forms}


def secret_on(page: str) -> str:
    match = re.search(r'<p class="secret"[^>]*>([^<]+)</p>', page)
    assert match, "no secret on the enrolment page"
    return html.unescape(match.group(1)).replace(" ", "")


def recovery_codes_on(page: str) -> list[str]:
    return re.findall(r"<li>([a-z0-9]{5}-[a-z0-9]{5})</li>", page)


def code_at(secret: str, steps_ahead: int = 0) -> str:
    """The TOTP code of the current step, or of a later one (within the accepted drift), so that a test never waits
    for the next 30-second step."""
    totp = pyotp.TOTP(secret)
    return totp.generate_otp(totp.timecode(datetime.now(UTC)) + steps_ahead)


@dataclass
class SignIn:
    """One authorization request of a public client, through the sign-in page."""

    client: httpx.AsyncClient  # its own cookie jar: one browser
    client_id: str = WEB_CLIENT
    redirect_uri: str = WEB_REDIRECT
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    scope: str = "openid profile"
    enrolment_code: str = ""  # the TOTP code that confirmed the enrolment (a replay test sends it again)

    def params(self, **overrides: Any) -> dict[str, str]:
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": self.scope, "state": self.state, "nonce": self.nonce,
                  "code_challenge": s256(self.verifier), "code_challenge_method": "S256"}
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    async def authorize(self, **overrides: Any) -> httpx.Response:
        return await self.client.get(f"/auth/authorize?{urlencode(self.params(**overrides))}")

    async def post(self, page: httpx.Response, action: str, **values: str) -> httpx.Response:
        fields = forms(page.text)[action]
        return await self.client.post(action, data=fields | values)

    async def password(self, page: httpx.Response, username: str, password: str) -> httpx.Response:
        return await self.post(page, "/auth/sign-in", username=username, password=password)

    def code_from(self, response: httpx.Response) -> str:
        assert response.status_code == 303, response.text[:500]
        location = response.headers["location"]
        assert location.startswith(self.redirect_uri + "?"), location
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == [self.state]
        return query["code"][0]

    async def exchange(self, code: str, **overrides: str) -> httpx.Response:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "client_id": self.client_id, "code_verifier": self.verifier} | overrides
        return await self.client.post("/auth/token", data=data)


async def new_user(api: Api, role: str = "child_protection_officer",
                   jurisdiction: dict[str, Any] | None = None) -> tuple[str, str, str]:
    """A user made through the admin API: (id, username, password)."""
    username, password = f"si{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}"
    response = await api.client.post("/admin/v1/users", headers=await api.as_demo("admin"), json={
        "username": username, "password": password, "display_name": "Cán bộ thử nghiệm", "role": role,
        "jurisdiction": jurisdiction or {"level": "commune", "commune": DEMO_COMMUNE}})
    assert response.status_code == 201, response.text
    return response.json()["id"], username, password


async def enrol(flow: SignIn, username: str, password: str) -> tuple[str, list[str], httpx.Response]:
    """Sign in the first time: password, then enrolment of the second factor. Returns (secret, recovery codes,
    the redirect with the code)."""
    page = await flow.authorize()
    assert page.status_code == 200, page.text[:300]
    enrolment = await flow.password(page, username, password)
    assert enrolment.status_code == 200 and 'class="qr"' in enrolment.text, enrolment.text[:500]
    secret = secret_on(enrolment.text)
    flow.enrolment_code = code_at(secret)
    codes_page = await flow.post(enrolment, "/auth/sign-in/enrol", code=flow.enrolment_code)
    assert codes_page.status_code == 200, codes_page.text[:500]
    codes = recovery_codes_on(codes_page.text)
    assert len(codes) == 10
    return secret, codes, await flow.post(codes_page, "/auth/sign-in/continue")
