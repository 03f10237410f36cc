"""Who is calling: token verification in every service, and typed auth dependencies on the routes.

The gateway checks tokens, but every service checks them again here (signature through the cached JWKS, issuer,
audience, expiry, pinned algorithm). Route dependencies check that the role may take the action at all (403);
object-level checks against jurisdiction and agency happen in each service's one `readable()` place (404).
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
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


class TokenVerifier:
    def __init__(self, *, issuer: str, audience: str, jwks_url: str, client: httpx.AsyncClient,
                 trusted: list[TrustedIssuer] | None = None, own_keys: KeySource | None = None):
        self.own = TrustedIssuer(issuer=issuer, jwks_url=jwks_url, audience=audience)
        self.issuers = {self.own.issuer: self.own} | {t.issuer: t for t in trusted or []}
        self.caches: dict[str, KeySource] = {
            i.issuer: JwksCache(i.jwks_url, client) for i in self.issuers.values()
        }
        if own_keys is not None:
            self.caches[self.own.issuer] = own_keys
        # Verified tokens, kept for at most a minute and never past their expiry: a frontend sends the same
        # token with every call, and an ECDSA check per request is the largest CPU cost of a small call.
        self.verified: dict[str, tuple[Subject, float]] = {}

    async def verify(self, token: str) -> Subject:
        cached = self.verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        subject, expires = await self._verify(token)
        if len(self.verified) >= 10_000:
            self.verified.clear()
        self.verified[token] = (subject, min(expires, time.time() + 60))
        return subject

    async def _verify(self, token: str) -> tuple[Subject, float]:
        try:
            header = tokens.unverified_header(token)
            issuer = str(tokens.unverified_claims(token).get("iss", ""))
            config = self.issuers.get(issuer)
            if config is None:
                raise tokens.TokenError("unknown issuer")
            keys = await self.caches[issuer].get(header.get("kid"))
            claims = tokens.verify(token, keys, issuer=config.issuer, audience=config.audience)
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
        return Subject(id=str(claims["sub"]), role=role, agency=agency, jurisdiction=jurisdiction,
                       token_id=str(claims.get("jti", "")), name=str(claims.get("name", "")), scopes=scopes)


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
