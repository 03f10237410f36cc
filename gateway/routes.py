"""Gateway HTTP routes: tokens, keys, user administration, the combined API docs, and the proxy."""

import base64
import binascii
import re
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from gateway import openapi
from gateway.schemas import Me, RefreshRequest, TokenResponse, UserCreate, UserRead, UserUpdate
from gateway.service import Identity, KeyRing, user_read
from services.common.auth import Subject, bearer, current_subject, require
from services.common.db import DbSession
from services.common.errors import BadRequest, NotFound, TooManyRequests, Unauthorized
from services.common.pagination import Page
from services.common.permissions import PERMISSIONS, Action

router = APIRouter()


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem+json answers a route documents (RFC 9457)."""
    text = {400: "Bad request", 401: "Not authenticated", 403: "The role may not take this action",
            404: "Not found or outside your jurisdiction", 409: "Conflict", 422: "Invalid data",
            429: "Too many requests or attempts", 503: "Unavailable"}
    return {status: {"description": text[status], "content": {"application/problem+json": {}}}
            for status in statuses}


AUTH_PROBLEMS = problems(400, 401, 422, 429)
ADMIN_PROBLEMS = problems(400, 401, 403, 404, 409, 422)
UserAdmin = Annotated[Subject, Depends(require(Action.USER_ADMIN))]
SERVICES = ("registry", "cases", "reporting")


def identity(request: Request) -> Identity:
    return request.app.state.identity


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def limit_address(request: Request) -> None:
    wait = request.app.state.address_limiter.acquire(client_address(request))
    if wait:
        raise TooManyRequests("too many requests from this address", headers={"Retry-After": str(int(wait) + 1)})


def limit_user(request: Request, subject_id: str) -> None:
    wait = request.app.state.user_limiter.acquire(subject_id)
    if wait:
        raise TooManyRequests("too many requests for this user", headers={"Retry-After": str(int(wait) + 1)})


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("client authentication failed") from exc
    return client_id, secret


@router.post("/auth/token", response_model=TokenResponse, tags=["auth"], responses=AUTH_PROBLEMS,
             summary="Sign in (password grant) or get a service token (client credentials grant)")
async def token(
    request: Request,
    session: DbSession,
    grant_type: Annotated[str, Form(pattern="^(password|client_credentials)$")],
    username: Annotated[str | None, Form(max_length=100)] = None,
    password: Annotated[str | None, Form(max_length=200)] = None,
    scope: Annotated[str, Form(max_length=500)] = "",
    client_id: Annotated[str | None, Form(max_length=100)] = None,
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
) -> TokenResponse:
    limit_address(request)
    service = identity(request)
    if grant_type == "password":
        if not username or not password:
            raise BadRequest("username and password are required")
        if any(ord(c) < 32 for c in username):
            raise Unauthorized("wrong username or password")
        user = await service.login(session, username, password)
        refresh = await service.new_refresh_token(session, user)
        return TokenResponse(access_token=service.access_token_for(user), refresh_token=refresh,
                             expires_in=service.settings.access_token_ttl_seconds)
    credentials = _basic_credentials(request) or (client_id or "", client_secret or "")
    access, granted = await service.client_credentials(session, credentials[0], credentials[1], set(scope.split()))
    return TokenResponse(access_token=access, expires_in=service.settings.service_token_ttl_seconds, scope=granted)


@router.post("/auth/refresh", response_model=TokenResponse, tags=["auth"], responses=AUTH_PROBLEMS,
             summary="Trade a refresh token for new tokens; the old refresh token stops working")
async def refresh(request: Request, session: DbSession, body: RefreshRequest) -> TokenResponse:
    limit_address(request)
    service = identity(request)
    user, new_refresh = await service.refresh(session, body.refresh_token)
    return TokenResponse(access_token=service.access_token_for(user), refresh_token=new_refresh,
                         expires_in=service.settings.access_token_ttl_seconds)


@router.post("/auth/logout", status_code=204, tags=["auth"], responses=AUTH_PROBLEMS,
             summary="Revoke a refresh token and its family")
async def logout(request: Request, session: DbSession, body: RefreshRequest) -> Response:
    limit_address(request)
    await identity(request).logout(session, body.refresh_token)
    return Response(status_code=204)


@router.get("/auth/me", response_model=Me, tags=["auth"], responses=problems(400, 401),
            summary="Who the token says you are, and what you may do")
async def me(subject: Annotated[Subject, Depends(current_subject)]) -> Me:
    permissions = {action.value: scope.value for action, scope in PERMISSIONS[subject.role].items()
                   if subject.can(action)}
    return Me(id=subject.id, name=subject.name, role=subject.role, agency=subject.agency,
              jurisdiction=subject.jurisdiction, permissions=permissions)


@router.get("/.well-known/jwks.json", tags=["auth"], summary="Public keys that verify access tokens")
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    response.headers["cache-control"] = "public, max-age=60"
    keyring: KeyRing = request.app.state.keyring
    return keyring.jwks()


@router.post("/admin/v1/users", response_model=UserRead, status_code=201, tags=["admin"], responses=ADMIN_PROBLEMS)
async def create_user(request: Request, session: DbSession, actor: UserAdmin, body: UserCreate) -> UserRead:
    return user_read(await identity(request).create_user(session, actor, body))


@router.get("/admin/v1/users", response_model=Page[UserRead], tags=["admin"], responses=ADMIN_PROBLEMS)
async def list_users(request: Request, session: DbSession, actor: UserAdmin,
                     cursor: Annotated[str | None, Query(max_length=100)] = None,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Page[UserRead]:
    users = await identity(request).list_users(session, actor, cursor, limit)
    return Page(items=[user_read(u) for u in users],
                next_cursor=users[-1].username if len(users) == limit else None)


@router.get("/admin/v1/users/{user_id}", response_model=UserRead, tags=["admin"], responses=ADMIN_PROBLEMS)
async def get_user(request: Request, session: DbSession, actor: UserAdmin, user_id: uuid.UUID) -> UserRead:
    return user_read(await identity(request).get_user(session, actor, user_id))


@router.patch("/admin/v1/users/{user_id}", response_model=UserRead, tags=["admin"], responses=ADMIN_PROBLEMS,
              summary="Change role, agency, jurisdiction, name or password; deactivate or reactivate")
async def update_user(request: Request, session: DbSession, actor: UserAdmin, user_id: uuid.UUID,
                      body: UserUpdate) -> UserRead:
    return user_read(await identity(request).update_user(session, actor, user_id, body))


@router.post("/admin/v1/keys/rotate", tags=["admin"], responses=ADMIN_PROBLEMS, summary="Start signing with a new key")
async def rotate_key(request: Request, actor: UserAdmin) -> dict[str, str]:
    kid = await request.app.state.keyring.rotate()
    return {"kid": kid}


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


PUBLIC_SERVICE_PATHS = ("healthz", "readyz", "openapi.json")
# Download links of case files carry their own signature (5 minutes at most), checked by the cases service.
PUBLIC_LINK = re.compile(r"^v1/attachment-links/[^/]+$")
# Uploads of case files: streamed to the service, not buffered here, with their own body limit.
ATTACHMENT_UPLOADS = (("POST", re.compile(r"^v1/cases/[^/]+/attachments$")),
                      ("PUT", re.compile(r"^v1/attachment-uploads/[^/]+/parts/[^/]+$")))


@router.api_route("/{service}/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                  include_in_schema=False)
async def forward(request: Request, service: str, path: str) -> Response:
    if service not in SERVICES:
        raise NotFound("no such route")
    proxy = request.app.state.proxy
    url = proxy.upstream_url(request, service)
    limit_address(request)
    public_link = service == "cases" and request.method == "GET" and PUBLIC_LINK.match(path)
    if path not in PUBLIC_SERVICE_PATHS and not public_link:
        subject = await current_subject(request, await bearer(request))
        limit_user(request, subject.id)
    settings = request.app.state.settings
    if service == "cases" and any(request.method == m and p.match(path) for m, p in ATTACHMENT_UPLOADS):
        return await proxy.forward(request, url, service, settings.max_attachment_bytes, streamed=True)
    max_body = settings.max_upload_bytes if "/imports" in f"/{path}" else settings.max_body_bytes
    return await proxy.forward(request, url, service, max_body)
