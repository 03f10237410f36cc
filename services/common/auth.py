"""Who is calling: token verification in every service, and typed auth dependencies on the routes.

The gateway checks tokens, but every service checks them again here (signature through the cached JWKS, issuer,
audience, expiry, pinned algorithm, and the revocation list of ended sessions). Route dependencies check that the
role may take the action at all (403); object-level checks against jurisdiction and agency happen in each service's
one `readable()` place (404).
"""

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement, and_, false, true

from services.common import tokens
from services.common.errors import Forbidden, Unauthorized
from services.common.logging import get_logger
from services.common.permissions import Action, Agency, Role, Scope, scope_for

logger = get_logger("auth")
JurisdictionLevel = Literal["national", "province", "commune"]


class Jurisdiction(BaseModel):
    """Where a user acts: the whole country, one province, or one commune/ward (official codes)."""

    level: JurisdictionLevel
    province: str | None = None
    commune: str | None = None

    def contains(self, province_code: str | None, commune_code: str | None) -> bool:
        if self.level == "national":
            return True
        if self.level == "province":
            return province_code is not None and province_code == self.province
        return commune_code is not None and commune_code == self.commune

    def filter(self, province_column: Any, commune_column: Any) -> ColumnElement[bool]:
        """The same test as `contains`, as a SQL condition on an object's location columns."""
        if self.level == "national":
            return true()
        if self.level == "province":
            return province_column == self.province if self.province else false()
        return and_(commune_column == self.commune) if self.commune else false()


@dataclass(frozen=True)
class Subject:
    """The authenticated caller, from a verified token."""

    id: str
    role: Role
    agency: Agency
    jurisdiction: Jurisdiction
    token_id: str
    name: str = ""
    scopes: frozenset[str] = field(default_factory=frozenset)
    session_id: str = ""  # the sign-in the token belongs to (`sid`); empty for service and province tokens

    @property
    def is_service(self) -> bool:
        return self.role == Role.SERVICE

    def scope(self, action: Action) -> Scope | None:
        if self.is_service and action.value not in self.scopes:
            return None
        return scope_for(self.role, action)

    def can(self, action: Action) -> bool:
        return self.scope(action) is not None


@dataclass
class TrustedIssuer:
    """An identity provider whose tokens we accept, with how its claims map onto ours.

    `claims` maps our names (role, agency, jurisdiction) to the provider's claim names; `role_values` maps the
    provider's role values onto our roles (an unmapped role is refused).
    """

    issuer: str
    jwks_url: str
    audience: str
    claims: dict[str, str] = field(default_factory=dict)
    role_values: dict[str, str] = field(default_factory=dict)


class JwksCache:
    """Public keys of one issuer, fetched over HTTP, refreshed on an unknown key id at most every few seconds."""

    def __init__(self, url: str, client: httpx.AsyncClient, ttl: float = 300.0, min_refresh: float = 1.0):
        self.url, self.client, self.ttl, self.min_refresh = url, client, ttl, min_refresh
        self.keys: dict[str, dict[str, Any]] = {}
        self.fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, kid: str | None) -> dict[str, dict[str, Any]]:
        age = time.monotonic() - self.fetched_at
        if age > self.ttl or (kid not in self.keys and age > self.min_refresh):
            await self.refresh()
        return self.keys

    async def refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self.fetched_at < self.min_refresh and self.keys:
                return
            try:
                response = await self.client.get(self.url, timeout=5.0)
                response.raise_for_status()
                self.keys = {k["kid"]: k for k in response.json()["keys"] if "kid" in k}
                self.fetched_at = time.monotonic()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                logger.warning("jwks fetch failed", extra={"error_type": type(exc).__name__})
                if not self.keys:
                    raise Unauthorized("signing keys are unavailable") from exc


class KeySource(Protocol):
    async def get(self, kid: str | None) -> dict[str, dict[str, Any]]: ...


SessionIds = Callable[[], Awaitable[Iterable[str]]]


class RevocationList:
    """Sign-in sessions ended before their access tokens expire: a logout, a deactivation, a change of role, agency
    or jurisdiction, a reset second factor. An access token names its session (`sid`); a token of an ended session
    is refused everywhere within a few seconds, although its signature is still good.

    The list is read from its source (the gateway's database in the gateway; `GET /auth/revocations` of the gateway in
    every service) at most every `max_age` seconds, by one caller while the others wait. When the source cannot be
    read, the last list read is kept and the failure logged: a gateway restart must not stop every service.
    """

    def __init__(self, source: SessionIds, max_age: float = 2.0):
        self.source, self.max_age = source, max_age
        self.sessions: frozenset[str] = frozenset()
        self.etag = _list_etag(self.sessions)
        self.read_at = float("-inf")
        self._lock = asyncio.Lock()

    @classmethod
    def from_gateway(cls, url: str, client: httpx.AsyncClient, max_age: float = 2.0) -> "RevocationList":
        """The gateway's published list, read over HTTP with `If-None-Match` (usually a 304)."""
        state: dict[str, Any] = {"etag": None, "sessions": frozenset()}

        async def read() -> Iterable[str]:
            headers = {"If-None-Match": state["etag"]} if state["etag"] else {}
            response = await client.get(url, headers=headers, timeout=2.0)
            if response.status_code == 304:
                return state["sessions"]
            response.raise_for_status()
            state["sessions"] = frozenset(str(sid) for sid in response.json()["sessions"])
            state["etag"] = response.headers.get("etag")
            return state["sessions"]

        return cls(read, max_age)

    async def current(self) -> frozenset[str]:
        if time.monotonic() - self.read_at > self.max_age:
            async with self._lock:
                if time.monotonic() - self.read_at > self.max_age:
                    await self._read()
        return self.sessions

    async def is_revoked(self, session_id: str) -> bool:
        return bool(session_id) and session_id in await self.current()

    async def _read(self) -> None:
        try:
            self.sessions = frozenset(await self.source())
            self.etag = _list_etag(self.sessions)
        except Exception as exc:  # the source is another process or a database: any failure keeps the last list
            logger.warning("revocation list unavailable", extra={"error_type": type(exc).__name__})
        self.read_at = time.monotonic()


def _list_etag(sessions: frozenset[str]) -> str:
    return '"' + hashlib.sha256("\n".join(sorted(sessions)).encode()).hexdigest()[:32] + '"'


class TokenVerifier:
    def __init__(self, *, issuer: str, audience: str, jwks_url: str, client: httpx.AsyncClient,
                 trusted: list[TrustedIssuer] | None = None, own_keys: KeySource | None = None,
                 revocations: RevocationList | None = None):
        self.own = TrustedIssuer(issuer=issuer, jwks_url=jwks_url, audience=audience)
        self.issuers = {self.own.issuer: self.own} | {t.issuer: t for t in trusted or []}
        self.caches: dict[str, KeySource] = {
            i.issuer: JwksCache(i.jwks_url, client) for i in self.issuers.values()
        }
        if own_keys is not None:
            self.caches[self.own.issuer] = own_keys
        self.revocations = revocations
        # Verified tokens, kept for at most a minute and never past their expiry: a frontend sends the same
        # token with every call, and an ECDSA check per request is the largest CPU cost of a small call. The
        # revocation list is consulted on every call, cached or not, so the cache never outlives a logout.
        self.verified: dict[str, tuple[Subject, float]] = {}

    async def verify(self, token: str) -> Subject:
        cached = self.verified.get(token)
        if cached is not None and cached[1] > time.time():
            subject = cached[0]
        else:
            subject, expires = await self._verify(token)
            if len(self.verified) >= 10_000:
                self.verified.clear()
            self.verified[token] = (subject, min(expires, time.time() + 60))
        if self.revocations is not None and await self.revocations.is_revoked(subject.session_id):
            raise Unauthorized("the session has ended; sign in again")
        return subject

    async def _verify(self, token: str) -> tuple[Subject, float]:
        try:
            header = tokens.unverified_header(token)
            issuer = str(tokens.unverified_claims(token).get("iss", ""))
            config = self.issuers.get(issuer)
            if config is None:
                raise tokens.TokenError("unknown issuer")
            keys = await self.caches[issuer].get(header.get("kid"))
            # Our tokens are signed low-S, so a high-S copy of one is a forgery; a province's token, whose signer may
            # not normalise, is checked in its one low-S spelling, so its two spellings are one token.
            own = config is self.own
            claims = tokens.verify(token if own else tokens.canonical(token), keys, issuer=config.issuer,
                                   audience=config.audience, require_low_s=own)
        except tokens.TokenError as exc:
            raise Unauthorized(str(exc)) from exc
        return self._subject(claims, config), float(claims["exp"])

    def _subject(self, claims: dict[str, Any], config: TrustedIssuer) -> Subject:
        mapping = config.claims
        try:
            role_value = str(claims[mapping.get("role", "role")])
            if config is not self.own:
                role_value = config.role_values[role_value]
            role = Role(role_value)
            agency = Agency(claims[mapping.get("agency", "agency")])
            jurisdiction = Jurisdiction.model_validate(claims[mapping.get("jurisdiction", "jur")])
        except (KeyError, ValueError, ValidationError) as exc:
            raise Unauthorized("token claims rejected") from exc
        if role == Role.SERVICE and config is not self.own:
            raise Unauthorized("token claims rejected")
        scopes = frozenset(str(claims.get("scope", "")).split())
        session_id = str(claims.get("sid", "")) if config is self.own else ""
        return Subject(id=str(claims["sub"]), role=role, agency=agency, jurisdiction=jurisdiction,
                       token_id=str(claims.get("jti", "")), name=str(claims.get("name", "")), scopes=scopes,
                       session_id=session_id)


bearer = HTTPBearer(auto_error=False, description="Access token from the gateway's POST /auth/token")


async def current_subject(request: Request,
                          credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Subject:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("a bearer token is required")
    verifier: TokenVerifier = request.app.state.verifier
    subject = await verifier.verify(credentials.credentials)
    request.state.subject = subject
    return subject


def require(action: Action, *alternatives: Action) -> Callable[..., Awaitable[Subject]]:
    """A dependency: the caller's role may take `action` (or one of the `alternatives`) at all. Which objects it
    reaches is checked later, in the service's one `readable()` place."""
    actions = (action, *alternatives)

    # Security scopes put the actions into the OpenAPI document of every route that requires them.
    async def dependency(subject: Subject = Security(current_subject, scopes=[a.value for a in actions])) -> Subject:
        if not any(subject.can(a) for a in actions):
            raise Forbidden(f"your role may not {action.value}")
        return subject

    dependency.__name__ = f"require_{action.name.lower()}"
    return dependency
