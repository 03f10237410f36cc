"""Gateway HTTP routes: the token endpoint and discovery, user and key administration, the combined API docs, and
the proxy. The sign-in page is in `pages.py`."""

import base64
import binascii
import re
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from gateway import openapi
from gateway.keys import KeyRing
from gateway.models import User
from gateway.oauth import AuthorizationServer
from gateway.schemas import (
    Me,
    RefreshRequest,
    Revocations,
    RotatedKey,
    TokenResponse,
    UserCreate,
    UserInfo,
    UserRead,
    UserUpdate,
)
from gateway.service import Identity, user_etag, user_read
from gateway.settings import GatewaySettings
from services.common.auth import RevocationList, Subject, bearer, current_subject, require
from services.common.db import DbSession
from services.common.errors import BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized, problem_responses
from services.common.pagination import Page
from services.common.permissions import PERMISSIONS, Action
from services.common.preconditions import IfMatch, conditional, require_match

router = APIRouter()

TOKEN_PROBLEMS = problem_responses(400, 401, 409, 422, 429, 503)
AUTH_PROBLEMS = problem_responses(401, 422, 429, 503)
ADMIN_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 422, 503)
UserAdmin = Annotated[Subject, Depends(require(Action.USER_ADMIN))]
MfaAdmin = Annotated[Subject, Depends(require(Action.USER_MFA_RESET))]
KeyAdmin = Annotated[Subject, Depends(require(Action.KEY_ROTATE))]
Caller = Annotated[Subject, Depends(current_subject)]
SERVICES = ("registry", "cases", "reporting")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", "password")


def identity(request: Request) -> Identity:
    return request.app.state.identity


def authorization_server(request: Request) -> AuthorizationServer:
    return request.app.state.authorization_server


def settings_of(request: Request) -> GatewaySettings:
    return request.app.state.settings


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def limit_address(request: Request) -> None:
    wait = await request.app.state.address_limiter.acquire(client_address(request))
    if wait:
        raise TooManyRequests("too many requests from this address", headers={"Retry-After": str(int(wait) + 1)})


async def limit_user(request: Request, subject_id: str) -> None:
    wait = await request.app.state.user_limiter.acquire(subject_id)
    if wait:
        raise TooManyRequests("too many requests for this user", headers={"Retry-After": str(int(wait) + 1)})


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("client authentication failed", error="invalid_client") from exc
    return client_id, secret


def _session_tokens(request: Request, user: Any, session_id: uuid.UUID, refresh_token: str,
                    scope: str | None = None, id_token: str | None = None) -> TokenResponse:
    service = identity(request)
    return TokenResponse(access_token=service.access_token_for(user, session_id), refresh_token=refresh_token,
                         expires_in=service.settings.access_token_ttl_seconds, scope=scope, id_token=id_token)


@router.post("/auth/token", response_model=TokenResponse, response_model_exclude_none=True, tags=["auth"],
             responses=TOKEN_PROBLEMS,
             summary="The token endpoint: authorization code (with PKCE), refresh token, client credentials, and "
                     "the deprecated password grant")
async def token(
    request: Request,
    session: DbSession,
    grant_type: Annotated[str, Form(max_length=50)],
    code: Annotated[str | None, Form(max_length=200)] = None,
    redirect_uri: Annotated[str | None, Form(max_length=500)] = None,
    code_verifier: Annotated[str | None, Form(max_length=200)] = None,
    refresh_token: Annotated[str | None, Form(max_length=200)] = None,
    username: Annotated[str | None, Form(max_length=200)] = None,
    password: Annotated[str | None, Form(max_length=200)] = None,
    scope: Annotated[str, Form(max_length=500)] = "",
    client_id: Annotated[str | None, Form(max_length=100)] = None,
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
) -> TokenResponse:
    await limit_address(request)
    service = identity(request)
    settings = settings_of(request)
    if grant_type not in GRANT_TYPES:
        raise BadRequest("unsupported grant type", error="unsupported_grant_type")
    if grant_type == "authorization_code":
        if not code or not redirect_uri or not code_verifier or not client_id:
            raise BadRequest("code, redirect_uri, code_verifier and client_id are required", error="invalid_request")
        server = authorization_server(request)
        user, session_id, new_refresh, used = await server.exchange(
            session, code=code, client_id=client_id, redirect_uri=redirect_uri, verifier=code_verifier)
        id_token = None
        if "openid" in used.scope.split():
            id_token = server.id_token(user, client_id, session_id, used.nonce, used.auth_time, used.amr)
        return _session_tokens(request, user, session_id, new_refresh, used.scope or None, id_token)
    if grant_type == "refresh_token":
        if not refresh_token:
            raise BadRequest("refresh_token is required", error="invalid_request")
        user, session_id, new_refresh = await service.refresh(session, refresh_token, client_id)
        return _session_tokens(request, user, session_id, new_refresh)
    if grant_type == "password":
        if not settings.password_grant_allowed(client_id):
            raise BadRequest("the password grant is not enabled here; sign in with the authorization code flow",
                             error="unauthorized_client")
        if not username or not password:
            raise BadRequest("username and password are required", error="invalid_request")
        user = await service.login(session, username, password, client_address(request))
        if settings.environment == "production" and service.mfa_required(user):
            raise BadRequest("this account signs in with a second factor: use the authorization code flow",
                             error="invalid_grant")
        session_id, new_refresh = await service.open_session(session, user, client_id)
        return _session_tokens(request, user, session_id, new_refresh)
    credentials = _basic_credentials(request) or (client_id or "", client_secret or "")
    access, granted = await service.client_credentials(session, credentials[0], credentials[1], set(scope.split()))
    return TokenResponse(access_token=access, expires_in=settings.service_token_ttl_seconds, scope=granted)


@router.post("/auth/refresh", response_model=TokenResponse, response_model_exclude_none=True, tags=["auth"],
             responses=problem_responses(401, 409, 422, 429, 503),
             summary="Trade a refresh token for new tokens; the old refresh token stops working")
async def refresh(request: Request, session: DbSession, body: RefreshRequest) -> TokenResponse:
    await limit_address(request)
    user, session_id, new_refresh = await identity(request).refresh(session, body.refresh_token)
    return _session_tokens(request, user, session_id, new_refresh)


@router.post("/auth/logout", status_code=204, tags=["auth"], responses=problem_responses(422, 429, 503),
             summary="End the session of a refresh token: its refresh and access tokens stop working")
async def logout(request: Request, session: DbSession, body: RefreshRequest) -> Response:
    await limit_address(request)
    await identity(request).logout(session, body.refresh_token)
    return Response(status_code=204)


@router.post("/auth/revoke", status_code=200, tags=["auth"], responses=problem_responses(422, 429, 503),
             summary="Token revocation (RFC 7009): a refresh or access token; its whole session ends. An unknown "
                     "or invalid token answers 200 too (RFC 7009 2.2)")
async def revoke_token(request: Request, session: DbSession, token: Annotated[str, Form(max_length=4000)],
                       token_type_hint: Annotated[str | None, Form(max_length=50)] = None,
                       client_id: Annotated[str | None, Form(max_length=100)] = None) -> dict[str, str]:
    await limit_address(request)
    service = identity(request)
    if token.count(".") == 2:
        try:
            subject = await request.app.state.verifier.verify(token)
        except Unauthorized:
            return {}
        await service.end_session_of_token(session, subject)
    else:
        await service.logout(session, token)
    return {}


@router.get("/auth/me", response_model=Me, tags=["auth"], responses=problem_responses(401, 503),
            summary="Who the token says you are, and what you may do")
async def me(subject: Caller) -> Me:
    permissions = {action.value: scope.value for action, scope in PERMISSIONS[subject.role].items()
                   if subject.can(action)}
    return Me(id=subject.id, name=subject.name, role=subject.role, agency=subject.agency,
              jurisdiction=subject.jurisdiction, permissions=permissions)


async def _user_info(session: DbSession, subject: Subject) -> UserInfo:
    if subject.is_service:
        raise Unauthorized("a user's access token is required")
    username = None
    if subject.session_id:  # our own user
        user = await session.get(User, uuid.UUID(subject.id))
        username = user.username if user else None
    return UserInfo(sub=subject.id, name=subject.name, preferred_username=username, role=subject.role,
                    agency=subject.agency, jurisdiction=subject.jurisdiction)


@router.get("/auth/userinfo", response_model=UserInfo, response_model_exclude_none=True, tags=["auth"],
            responses=problem_responses(401, 503), summary="OpenID Connect UserInfo: the signed-in user")
async def get_user_info(session: DbSession, subject: Caller) -> UserInfo:
    return await _user_info(session, subject)


@router.post("/auth/userinfo", response_model=UserInfo, response_model_exclude_none=True, tags=["auth"],
             responses=problem_responses(401, 503), summary="OpenID Connect UserInfo, by POST (Core 1.0 5.3.1)")
async def post_user_info(session: DbSession, subject: Caller) -> UserInfo:
    return await _user_info(session, subject)


@router.get("/auth/revocations", response_model=Revocations, tags=["auth"],
            summary="Sessions ended before their access tokens expire; every service refuses their tokens")
async def list_revocations(request: Request) -> Response:
    revocations: RevocationList = request.app.state.revocations
    sessions = sorted(await revocations.current())
    not_modified = conditional(request, revocations.etag)
    if not_modified is not None:
        return not_modified
    return Response(Revocations(sessions=sessions).model_dump_json(), media_type="application/json",
                    headers={"ETag": revocations.etag, "Cache-Control": "no-cache"})


@router.get("/.well-known/jwks.json", tags=["auth"], summary="Public keys that verify access and ID tokens")
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    response.headers["cache-control"] = "public, max-age=60"
    keyring: KeyRing = request.app.state.keyring
    return keyring.jwks()


@router.get("/.well-known/oauth-authorization-server", tags=["auth"],
            summary="Authorization server metadata (RFC 8414)")
async def authorization_server_metadata(request: Request, response: Response) -> dict[str, Any]:
    response.headers["cache-control"] = "public, max-age=300"
    return authorization_server(request).metadata()


@router.get("/.well-known/openid-configuration", tags=["auth"], summary="OpenID Connect discovery")
async def openid_configuration(request: Request, response: Response) -> dict[str, Any]:
    response.headers["cache-control"] = "public, max-age=300"
    return authorization_server(request).metadata()


# Administration ----------------------------------------------------------------------------------------------


async def _read_user(request: Request, session: DbSession, user: Any) -> UserRead:
    locked_until = await identity(request).throttle.locked_until(session, user.username)
    return user_read(user, locked_until)


@router.post("/admin/v1/users", response_model=UserRead, status_code=201, tags=["admin"], responses=ADMIN_PROBLEMS)
async def create_user(request: Request, response: Response, session: DbSession, actor: UserAdmin,
                      body: UserCreate) -> UserRead:
    user = await identity(request).create_user(session, actor, body)
    response.headers["ETag"] = user_etag(user)
    return await _read_user(request, session, user)


@router.get("/admin/v1/users", response_model=Page[UserRead], tags=["admin"], responses=ADMIN_PROBLEMS)
async def list_users(request: Request, session: DbSession, actor: UserAdmin,
                     cursor: Annotated[str | None, Query(max_length=1000)] = None,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Page[UserRead]:
    users, next_cursor = await identity(request).list_users(session, actor, cursor, limit)
    return Page(items=[await _read_user(request, session, u) for u in users], next_cursor=next_cursor)


@router.get("/admin/v1/users/{user_id}", response_model=UserRead, tags=["admin"],
            responses=ADMIN_PROBLEMS | {304: {"description": "Not modified (If-None-Match)"}})
async def get_user(request: Request, response: Response, session: DbSession, actor: UserAdmin,
                   user_id: uuid.UUID) -> Any:
    user = await identity(request).get_user(session, actor, user_id)
    current = user_etag(user)
    not_modified = conditional(request, current)
    if not_modified is not None:
        return not_modified
    response.headers["ETag"] = current
    return await _read_user(request, session, user)


@router.patch("/admin/v1/users/{user_id}", response_model=UserRead, tags=["admin"],
              responses=ADMIN_PROBLEMS | problem_responses(412),
              summary="Change role, agency, jurisdiction, name or password; deactivate or reactivate. A change of "
                      "role, agency, jurisdiction or password, or a deactivation, ends the user's sessions")
async def update_user(request: Request, response: Response, session: DbSession, actor: UserAdmin,
                      user_id: uuid.UUID, body: UserUpdate, if_match: IfMatch = None) -> UserRead:
    service = identity(request)
    user = await service.get_user(session, actor, user_id, for_update=True)
    if if_match:
        require_match(if_match, user_etag(user), what="user")
    user = await service.update_user(session, actor, user, body)
    response.headers["ETag"] = user_etag(user)
    return await _read_user(request, session, user)


@router.post("/admin/v1/users/{user_id}/unlock", response_model=UserRead, tags=["admin"], responses=ADMIN_PROBLEMS,
             summary="Lift the sign-in lock and waits of a user, from every address (audited)")
async def unlock_user(request: Request, session: DbSession, actor: UserAdmin, user_id: uuid.UUID) -> UserRead:
    service = identity(request)
    user = await service.get_user(session, actor, user_id, for_update=True)
    await service.unlock_user(session, actor, user)
    return await _read_user(request, session, user)


@router.delete("/admin/v1/users/{user_id}/mfa", response_model=UserRead, tags=["admin"], responses=ADMIN_PROBLEMS,
               summary="Reset a user's second factor (a lost phone): their sessions end and the next sign-in "
                       "enrols a new one (audited)")
async def reset_second_factor(request: Request, session: DbSession, actor: MfaAdmin,
                              user_id: uuid.UUID) -> UserRead:
    service = identity(request)
    user = await service.get_user(session, actor, user_id, for_update=True)
    await service.reset_mfa(session, actor, user)
    return await _read_user(request, session, user)


def _national(actor: Subject) -> None:
    if actor.jurisdiction.level != "national":
        raise Forbidden("the signing key is national: only a national admin may change it")


@router.post("/admin/v1/keys/rotate", response_model=RotatedKey, tags=["admin"], responses=ADMIN_PROBLEMS,
             summary="Start signing with a new key; every key whose tokens can still be valid stays published")
async def rotate_key(request: Request, actor: KeyAdmin) -> RotatedKey:
    _national(actor)
    keyring: KeyRing = request.app.state.keyring
    kid = await keyring.rotate(actor.id)
    return RotatedKey(kid=kid, published=[key.kid for key in keyring.published])


@router.delete("/admin/v1/keys/{kid}", status_code=204, tags=["admin"], responses=ADMIN_PROBLEMS,
               summary="Withdraw a compromised key at once: every token it signed is refused (not the current key)")
async def withdraw_key(request: Request, actor: KeyAdmin, kid: Annotated[str, Path(max_length=32)]) -> Response:
    _national(actor)
    await request.app.state.keyring.withdraw(kid, actor.id)
    return Response(status_code=204)


@router.get("/openapi.json", include_in_schema=False)
async def combined_openapi(request: Request) -> dict[str, Any]:
    state = request.app.state
    cached = getattr(state, "openapi_cache", None)
    if cached is None or time.monotonic() - cached[0] > 60 or len(cached[2]) < len(SERVICES):
        docs = await openapi.fetch_service_docs(state.http, state.settings.upstreams)
        state.openapi_cache = (time.monotonic(), openapi.merge(request.app.openapi(), docs), docs)
    return state.openapi_cache[1]


@router.get("/docs", include_in_schema=False)
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Child protection API")


PUBLIC_SERVICE_PATHS = ("healthz", "readyz")
# Download links of case files carry their own signature (5 minutes at most), checked by the cases service.
PUBLIC_LINK = re.compile(r"^v1/attachment-links/[^/]+$")
# Uploads of case files: streamed to the service, not buffered here, with their own body limit.
ATTACHMENT_UPLOADS = (("POST", re.compile(r"^v1/cases/[^/]+/attachments$")),
                      ("PUT", re.compile(r"^v1/attachment-uploads/[^/]+/parts/[^/]+$")))


FORWARDED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


# Requests under a service's prefix reach this endpoint through `proxy.DirectForwarding`, before the router; the
# route stays for the rest (an unknown prefix is 404 here) and names the requests in the access log and metrics.
@router.api_route("/{service}/{path:path}", methods=list(FORWARDED_METHODS), include_in_schema=False)
async def forward(request: Request, service: str, path: str) -> Response:
    if service not in SERVICES:
        raise NotFound("no such route")
    proxy = request.app.state.proxy
    url = proxy.upstream_url(request, service)
    await limit_address(request)
    public_link = service == "cases" and request.method == "GET" and PUBLIC_LINK.match(path)
    if path not in PUBLIC_SERVICE_PATHS and not public_link:
        subject = await current_subject(request, await bearer(request))
        await limit_user(request, subject.id)
    settings = request.app.state.settings
    if service == "cases" and any(request.method == m and p.match(path) for m, p in ATTACHMENT_UPLOADS):
        return await proxy.forward(request, url, service, settings.max_attachment_bytes, streamed=True)
    max_body = settings.max_upload_bytes if "/imports" in f"/{path}" else settings.max_body_bytes
    return await proxy.forward(request, url, service, max_body)


def forwarding_route() -> APIRoute:
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is forward)
