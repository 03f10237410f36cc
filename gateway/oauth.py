"""The authorization server: discovery (RFC 8414, OpenID Connect Discovery 1.0), the authorization code grant with
PKCE (RFC 6749 4.1, RFC 7636, S256 only) for registered public clients, and ID tokens (OpenID Connect Core 1.0).

A sign-in runs as a short-lived `AuthorizationRequest` row: the client's validated request, then the password, then
the second factor (or its enrolment), then a code. Codes are single use, live `authorization_code_ttl_seconds`, and
are bound to the client, the exact redirect URI and the code challenge; a code presented twice ends the session
it opened (RFC 6749 4.1.2). Nothing is ever redirected to a URI that is not registered for the client.
"""

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import mfa
from gateway.models import AuthorizationCode, AuthorizationRequest, User
from gateway.service import Identity
from gateway.settings import GatewaySettings, OAuthClient
from services.common import tokens
from services.common.clock import utcnow
from services.common.errors import BadRequest, Unauthorized

SCOPES = ("openid", "profile", "offline_access")
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA-256(verifier)) without padding
VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 4.1
PRINTABLE = re.compile(r"[\x20-\x7e]{1,500}")
LANGUAGES = ("vi", "en")
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def redirect_uri_matches(registered: list[str], given: str) -> bool:
    """Exact string comparison (RFC 9700 2.1), except the port of a loopback redirect URI, which a native app picks
    at run time (RFC 8252 7.3)."""
    if given in registered:
        return True
    try:
        parts = urlsplit(given)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != "http" or port is None or parts.hostname is None:
        return False
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if host not in LOOPBACK_HOSTS:
        return False
    portless = parts._replace(netloc=host).geturl()
    return portless in registered


def with_query(uri: str, params: dict[str, str]) -> str:
    return uri + ("&" if urlsplit(uri).query else "?") + urlencode(params)


def redirect_target(uri: str) -> str:
    """What a page's CSP `form-action` must allow so that its form may end in a redirect to `uri`."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"


class PageError(Exception):
    """An authorization request that cannot be answered by redirecting (unknown client, unregistered redirect
    URI): shown on the gateway's page, never sent anywhere (RFC 6749 4.1.2.1)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RedirectError(Exception):
    """An error the client's redirect URI receives (`error`, `error_description`, `state`, `iss`)."""

    def __init__(self, location: str):
        super().__init__(location)
        self.location = location


@dataclass(frozen=True)
class AuthorizeParams:
    client_id: str
    redirect_uri: str
    response_type: str
    scope: str
    state: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    ui_locales: str | None


@dataclass(frozen=True)
class Stage:
    """What the sign-in page shows next: `password`, `totp`, `enrol`, `recovery_codes` or `done` (redirect)."""

    name: str
    location: str | None = None
    recovery_codes: tuple[str, ...] = ()


class AuthorizationServer:
    def __init__(self, settings: GatewaySettings, identity: Identity):
        self.settings, self.identity = settings, identity

    @property
    def issuer(self) -> str:
        return self.settings.jwt_issuer

    def endpoint(self, path: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}{path}"

    def metadata(self) -> dict[str, Any]:
        """Authorization server metadata (RFC 8414 2) that is also an OpenID Provider configuration: only what the
        gateway really does."""
        grants = ["authorization_code", "refresh_token", "client_credentials"]
        if self.settings.environment != "production" or any(c.password_grant
                                                            for c in self.settings.oauth_clients.values()):
            grants.append("password")  # deprecated (RFC 9700 2.4): development, tests, named clients only
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.endpoint("/auth/authorize"),
            "token_endpoint": self.endpoint("/auth/token"),
            "userinfo_endpoint": self.endpoint("/auth/userinfo"),
            "revocation_endpoint": self.endpoint("/auth/revoke"),
            "jwks_uri": self.endpoint("/.well-known/jwks.json"),
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": grants,
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [tokens.ALGORITHM],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "azp", "sid",
                                 "name", "preferred_username", "role", "agency", "jurisdiction"],
            "ui_locales_supported": list(LANGUAGES),
            "authorization_response_iss_parameter_supported": True,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "claims_parameter_supported": False,
            "service_documentation": self.endpoint("/docs"),
        }

    def client(self, client_id: str) -> OAuthClient | None:
        return self.settings.oauth_clients.get(client_id)

    def _redirect_error(self, redirect_uri: str, error: str, description: str, state: str | None) -> RedirectError:
        params = {"error": error, "error_description": description, "iss": self.issuer}
        if state:
            params["state"] = state
        return RedirectError(with_query(redirect_uri, params))

    def check(self, params: AuthorizeParams) -> None:
        """Validate an authorization request (RFC 6749 4.1.1, RFC 7636 4.3). Client and redirect URI first: until
        both are known good, nothing is redirected."""
        client = self.client(params.client_id)
        if client is None:
            raise PageError("unknown_client")
        if not redirect_uri_matches(client.redirect_uris, params.redirect_uri):
            raise PageError("redirect_uri")
        fail = lambda error, text: self._redirect_error(params.redirect_uri, error, text, params.state)  # noqa: E731
        if not params.state or not PRINTABLE.fullmatch(params.state):
            # Every sign-in must carry the client's state: without it the client cannot tell its own answer from a
            # forged one (CSRF against the client, RFC 9700 2.1).
            raise fail("invalid_request", "state is required")
        if params.response_type != "code":
            raise fail("unsupported_response_type", "only response_type=code is supported")
        if params.code_challenge_method != "S256" or not params.code_challenge or \
                not CHALLENGE.fullmatch(params.code_challenge):
            raise fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
        if params.nonce is not None and not PRINTABLE.fullmatch(params.nonce):
            raise fail("invalid_request", "nonce is not valid")
        unknown = set(params.scope.split()) - set(SCOPES)
        if unknown or len(params.scope) > 500:
            raise fail("invalid_scope", "unknown scope")

    async def begin(self, session: AsyncSession, params: AuthorizeParams) -> tuple[str, str, AuthorizationRequest]:
        """Store a validated request; returns the request's id and the CSRF token for the browser."""
        self.check(params)
        request_token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        wanted = (params.ui_locales or "").split()
        lang = next((code for code in wanted if code in LANGUAGES), "vi")
        row = AuthorizationRequest(
            id_hash=digest(request_token), csrf_hash=digest(csrf), client_id=params.client_id,
            redirect_uri=params.redirect_uri, scope=params.scope, state=params.state or "", nonce=params.nonce,
            code_challenge=params.code_challenge or "", lang=lang, stage="password",
            expires_at=utcnow() + timedelta(seconds=self.settings.sign_in_ttl_seconds),
        )
        session.add(row)
        await session.flush()
        return request_token, csrf, row

    async def load(self, session: AsyncSession, request_token: str, csrf_cookie: str | None,
                   csrf_form: str | None) -> AuthorizationRequest:
        """The sign-in in progress, locked for this step. A form without the browser's cookie, or whose token
        differs from it, was not posted by our page in this browser: refused."""
        row = (await session.execute(
            select(AuthorizationRequest).where(AuthorizationRequest.id_hash == digest(request_token))
            .with_for_update()
        )).scalar_one_or_none()
        if row is None or row.expires_at <= utcnow() or row.stage == "done":
            raise PageError("expired")
        if csrf_form is not None and (not csrf_cookie or not hmac.compare_digest(csrf_cookie, csrf_form)):
            raise PageError("csrf")
        if not csrf_cookie or not hmac.compare_digest(digest(csrf_cookie), row.csrf_hash):
            raise PageError("csrf")
        return row

    async def password(self, session: AsyncSession, row: AuthorizationRequest, username: str, password: str,
                       address: str) -> Stage:
        self._expect(row, "password")
        user = await self.identity.login(session, username, password, address)
        row.user_id, row.password_at = user.id, utcnow()
        if not self.identity.mfa_required(user):
            return await self._finish(session, row, user, ["pwd"])
        if user.totp_enrolled_at is not None:
            row.stage = "totp"
        else:
            row.stage, row.pending_totp_secret = "enrol", mfa.new_secret()
        return Stage(row.stage)

    async def second_factor(self, session: AsyncSession, row: AuthorizationRequest, code: str) -> Stage:
        self._expect(row, "totp")
        user = await self._user(session, row)
        blocked = await self.identity.throttle.second_factor_blocked(session, user.username)
        if blocked is not None:
            raise blocked.error(utcnow())
        if await mfa.accept_code(session, user, code):
            method = "otp"
        elif await mfa.use_recovery_code(session, user.id, code):
            method = "recovery_code"
        else:
            await self.identity.throttle.second_factor_failed(user.username)
            raise Unauthorized("the code is not valid")
        await self.identity.throttle.second_factor_succeeded(session, user.username)
        return await self._finish(session, row, user, ["pwd", method])

    async def enrol(self, session: AsyncSession, row: AuthorizationRequest, code: str) -> Stage:
        self._expect(row, "enrol")
        user = await self._user(session, row)
        blocked = await self.identity.throttle.second_factor_blocked(session, user.username)
        if blocked is not None:
            raise blocked.error(utcnow())
        step = mfa.matching_step(row.pending_totp_secret or "", code)
        if step is None:
            await self.identity.throttle.second_factor_failed(user.username)
            raise Unauthorized("the code is not valid")
        enrolled = await session.execute(
            update(User).where(User.id == user.id, User.totp_enrolled_at.is_(None))
            .values(totp_secret=row.pending_totp_secret, totp_enrolled_at=utcnow(), totp_last_step=step,
                    updated_at=utcnow())
        )
        if not enrolled.rowcount:  # type: ignore[attr-defined]
            raise PageError("expired")  # enrolled meanwhile in another window: start again
        await self.identity.throttle.second_factor_succeeded(session, user.username)
        codes = await mfa.new_recovery_codes(session, user.id)
        row.stage, row.pending_totp_secret = "recovery_codes", None
        return Stage("recovery_codes", recovery_codes=tuple(codes))

    async def after_recovery_codes(self, session: AsyncSession, row: AuthorizationRequest) -> Stage:
        self._expect(row, "recovery_codes")
        return await self._finish(session, row, await self._user(session, row), ["pwd", "otp"])

    def enrolment(self, row: AuthorizationRequest, username: str) -> tuple[str, str]:
        """The otpauth URI and the secret to show while enrolling."""
        secret = row.pending_totp_secret or ""
        return mfa.provisioning_uri(secret, username, self.settings.totp_issuer_name), secret

    def _expect(self, row: AuthorizationRequest, stage: str) -> None:
        if row.stage != stage:
            raise PageError("expired")

    async def _user(self, session: AsyncSession, row: AuthorizationRequest) -> User:
        user = await session.get(User, row.user_id) if row.user_id else None
        if user is None or not user.active:
            raise PageError("expired")
        return user

    async def _finish(self, session: AsyncSession, row: AuthorizationRequest, user: User, amr: list[str]) -> Stage:
        code = secrets.token_urlsafe(32)
        session.add(AuthorizationCode(
            code_hash=digest(code), client_id=row.client_id, redirect_uri=row.redirect_uri, user_id=user.id,
            code_challenge=row.code_challenge, scope=row.scope, nonce=row.nonce,
            auth_time=row.password_at or utcnow(), amr=amr,
            expires_at=utcnow() + timedelta(seconds=self.settings.authorization_code_ttl_seconds),
        ))
        row.stage = "done"
        await session.flush()
        return Stage("done", location=with_query(row.redirect_uri, {"code": code, "state": row.state,
                                                                    "iss": self.issuer}))

    def cancel(self, row: AuthorizationRequest) -> str:
        row.stage = "done"
        return self._redirect_error(row.redirect_uri, "access_denied", "the user cancelled the sign-in",
                                    row.state).location

    # Token endpoint --------------------------------------------------------------------------------------

    async def exchange(self, session: AsyncSession, *, code: str, client_id: str, redirect_uri: str,
                       verifier: str) -> tuple[User, uuid.UUID, str, AuthorizationCode]:
        """Trade a code for a session (RFC 6749 4.1.3, RFC 7636 4.6): (user, session id, refresh token, code)."""
        if not self.client(client_id):
            raise Unauthorized("client authentication failed", error="invalid_client")
        used = await self._take_code(digest(code))
        if used is None:
            await self._code_replayed(digest(code))
            raise BadRequest("the authorization code is not valid", error="invalid_grant")
        if used.expires_at <= utcnow() or used.client_id != client_id or used.redirect_uri != redirect_uri:
            raise BadRequest("the authorization code is not valid", error="invalid_grant")
        if not VERIFIER.fullmatch(verifier) or not hmac.compare_digest(s256(verifier), used.code_challenge):
            raise BadRequest("the code verifier does not match", error="invalid_grant")
        user = await session.get(User, used.user_id)
        if user is None or not user.active:
            raise BadRequest("the authorization code is not valid", error="invalid_grant")
        session_id, refresh_token = await self.identity.open_session(session, user, client_id)
        await session.execute(update(AuthorizationCode).where(AuthorizationCode.code_hash == used.code_hash)
                              .values(session_id=session_id))
        return user, session_id, refresh_token, used

    async def _take_code(self, code_hash: str) -> AuthorizationCode | None:
        """Use the code up in its own transaction: a failed exchange (a wrong verifier) still burns it, so that a
        stolen code cannot be tried again."""
        async with self.identity.database.sessionmaker() as session, session.begin():
            return (await session.execute(
                update(AuthorizationCode)
                .where(AuthorizationCode.code_hash == code_hash, AuthorizationCode.used_at.is_(None))
                .values(used_at=utcnow()).returning(AuthorizationCode)
            )).scalar_one_or_none()

    async def _code_replayed(self, code_hash: str) -> None:
        """A used code came back: whoever holds it, the session it opened ends (RFC 6749 4.1.2)."""
        async with self.identity.database.sessionmaker() as session, session.begin():
            used = (await session.execute(select(AuthorizationCode).where(
                AuthorizationCode.code_hash == code_hash, AuthorizationCode.used_at.is_not(None)))).scalar_one_or_none()
            if used is not None and used.session_id is not None:
                await self.identity.end_sessions(session, used.user_id, [used.session_id], "code_replayed")

    def id_token(self, user: User, client_id: str, session_id: uuid.UUID, nonce: str | None, auth_time: datetime,
                 amr: list[str]) -> str:
        now = tokens.now()
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": str(user.id), "aud": client_id, "azp": client_id, "iat": now,
            "exp": now + self.settings.access_token_ttl_seconds, "auth_time": int(auth_time.timestamp()),
            "amr": amr, "sid": str(session_id), "jti": uuid.uuid4().hex, "name": user.display_name,
            "preferred_username": user.username,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return tokens.sign(claims, self.identity.keyring.current, typ="JWT")


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
