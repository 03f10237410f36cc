"""RFC 9457 problem+json errors. Every failure a client sees goes through `problem_response`."""

from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.links import public_path
from services.common.logging import get_logger, request_id_var

PROBLEM_JSON = "application/problem+json"
PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "request_id"})
logger = get_logger("errors")


class FieldError(BaseModel):
    """One invalid input: where it is (`loc`, for example ["body", "child", "first_name"]), what is wrong, and a
    stable machine code (`type`). The submitted value is never echoed back: it may be personal data."""

    loc: list[str]
    msg: str
    type: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`). Some problems add members: `errors` (the
    invalid fields), `allowed_actions` (what the case allows now), `current_etag` (the version to read again)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem; stable, for programs to switch on.")
    title: str = Field(description="A short English summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str | None = Field(None, description="What went wrong in this occurrence, in English.")
    instance: str | None = Field(None, description="The path of the request, through the gateway.")
    request_id: str | None = Field(None, description="Quote it when reporting a problem; it is in every log line.")
    errors: list[FieldError] | None = Field(None, description="The invalid fields (422 and some 400).")


PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "The request is malformed: a body that is not JSON, an unknown parameter, or a cursor that is not valid",
    401: "A valid access token is required",
    403: "Your role may not take this action",
    404: "Not found, or outside your reach",
    409: "Not allowed in the current state of the record",
    410: "Gone: the sync cursor is no longer valid for you; sync again from the start",
    412: "The record changed since you read it (If-Match); read it again",
    413: "The body is too large",
    415: "The media type is not accepted",
    422: "The data is not valid; `errors` names each field",
    428: "If-Match is required for this change",
    429: "Too many requests; wait for Retry-After seconds",
    503: "A service or the database is unavailable; retry after Retry-After seconds",
}


def problem_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The error answers a route really gives, for its `responses=`: each a `Problem` as application/problem+json.

    `descriptions` overrides the generic text of a status, keyed `s409="..."`. A description of a status not listed
    is refused: a success answer (a 200 replay, a 304) needs its own declaration, `responses={200: {"model": ...}}`.
    """
    stray = sorted(key for key in descriptions if key.removeprefix("s") not in {str(s) for s in statuses})
    if stray:
        raise TypeError(f"problem_responses: {', '.join(stray)} describe statuses not listed; declare a success "
                        "answer in responses= with its model")
    return {
        status: {"model": Problem,
                 "description": descriptions.get(f"s{status}", PROBLEM_DESCRIPTIONS.get(status, "Error"))}
        for status in statuses
    }


class AppError(Exception):
    """An error the client is meant to see. Subclasses carry their HTTP status."""

    status: int = 400
    title: str = "Bad request"
    type_suffix: str = "bad-request"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra


class BadRequest(AppError):
    status, title, type_suffix = 400, "Bad request", "bad-request"


class Unauthorized(AppError):
    status, title, type_suffix = 401, "Not authenticated", "unauthorized"

    def __init__(self, detail: str | None = None, **extra: Any):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}, **extra)


class Forbidden(AppError):
    status, title, type_suffix = 403, "Forbidden", "forbidden"


class NotFound(AppError):
    status, title, type_suffix = 404, "Not found", "not-found"


class Conflict(AppError):
    status, title, type_suffix = 409, "Conflict", "conflict"


class InvalidTransition(Conflict):
    title, type_suffix = "Action not allowed in the current state", "invalid-transition"


class Gone(AppError):
    status, title, type_suffix = 410, "Gone", "gone"


class PreconditionFailed(AppError):
    status, title, type_suffix = 412, "Precondition failed", "precondition-failed"


class PreconditionRequired(AppError):
    status, title, type_suffix = 428, "Precondition required", "precondition-required"


class PayloadTooLarge(AppError):
    status, title, type_suffix = 413, "Payload too large", "payload-too-large"


class UnprocessableContent(AppError):
    status, title, type_suffix = 422, "Invalid data", "validation-error"


class TooManyRequests(AppError):
    status, title, type_suffix = 429, "Too many requests", "rate-limited"


class ServiceUnavailable(AppError):
    status, title, type_suffix = 503, "Service unavailable", "service-unavailable"


LOST_CONNECTION_SQLSTATES = ("08", "57P")  # connection exceptions; operator intervention (shutdown, restart)
UNIQUE_VIOLATION = "23505"
# Another transaction holds or changed the same rows: waited past lock_timeout, chosen as a deadlock's victim, or a
# serialization failure. Nothing was written; reading again and retrying succeeds.
CONCURRENT_CHANGE_SQLSTATES = frozenset({"55P03", "40P01", "40001"})
# The database bounded the work: a statement past statement_timeout, a session ended for idling in a transaction.
TOO_SLOW_SQLSTATES = frozenset({"57014", "25P03"})


def connection_lost(exc: BaseException) -> bool:
    """The database went away or cannot take more work (a crash, a restart, a broken network, an exhausted pool), as
    opposed to a bad query. Looks through the exception's causes: drivers and ORMs wrap each other's errors."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | PoolTimeout | ConnectionError):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if _sqlstate(current).startswith(LOST_CONNECTION_SQLSTATES):
            return True
        # asyncpg's "connection is closed" carries no SQLSTATE; its subclasses (DataError, ...) are bad input.
        if type(current) is asyncpg.InterfaceError:
            return True
        current = current.__cause__ or current.__context__
    return False


def _sqlstate(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(getattr(exc, "sqlstate", None) or getattr(orig, "sqlstate", None) or "")


def _first_sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of the exception or of the first of its causes that has one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if state := _sqlstate(current):
            return state
        current = current.__cause__ or current.__context__
    return ""


def database_unavailable() -> "ServiceUnavailable":
    return ServiceUnavailable("the database is unavailable; retry shortly", headers={"Retry-After": "2"})


def problem_body(status: int, title: str, detail: str | None, type_suffix: str | None = None,
                 instance: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://child-protection.gov.vn/problems/{type_suffix}" if type_suffix else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    # The standard members keep their RFC 9457 meaning: an extra field named like one (`status=` for a record's
    # state, say) must not turn a 409 into "status": "cancelled".
    body.update({key: value for key, value in extra.items() if key not in PROBLEM_MEMBERS})
    return body


def problem_response(status: int, title: str, detail: str | None = None, *, type_suffix: str | None = None,
                     instance: str | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> JSONResponse:
    return JSONResponse(
        problem_body(status, title, detail, type_suffix, instance, **extra),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def app_error_response(exc: AppError, path: str) -> JSONResponse:
    """The answer to an `AppError` raised while serving `path` (also for code that runs outside the router)."""
    extra = {key: value for key, value in exc.extra.items() if key not in PROBLEM_MEMBERS | {"type_suffix"}}
    return problem_response(exc.status, exc.title, exc.detail, type_suffix=exc.type_suffix,
                            instance=public_path(path), headers=exc.headers, **extra)


def _clean_validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only the location, message and type: never echo the submitted value back (it may be personal data).
    return [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Render every failure, including framework ones, as problem+json."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return app_error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(422, "Invalid data", "The request does not match the expected shape.",
                                type_suffix="validation-error", instance=public_path(request.url.path),
                                errors=_clean_validation_errors(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTPStatus._value2member_map_ else "Error"
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem_response(exc.status_code, title, detail, instance=public_path(request.url.path),
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Last resort only: errors raised inside the middleware stack itself reach here, outside the request context.
        return _internal_error(request.scope, exc)

    app.add_middleware(UnexpectedErrorMiddleware)


def _internal_error(scope: Scope, exc: Exception) -> JSONResponse:
    # The exception text and the raw path may hold personal data: log the type and the route template only.
    route = getattr(scope.get("route"), "path", "unmatched")
    if connection_lost(exc):
        # The one place every path ends: whatever code met the lost database (a handler, a dependency, a cache that
        # reloads through its own session), the client is told to retry, never that the server is broken.
        logger.warning("database unavailable", extra={"error_type": type(exc).__name__, "route": route})
        unavailable = database_unavailable()
        return problem_response(unavailable.status, unavailable.title, unavailable.detail,
                                type_suffix=unavailable.type_suffix, headers=unavailable.headers)
    state = _first_sqlstate(exc)
    if state == UNIQUE_VIOLATION:
        # Two writers raced past every check and the database kept one: the other is told plainly, not a 500.
        logger.info("concurrent duplicate refused", extra={"route": route})
        return problem_response(409, Conflict.title, "a concurrent request made the same change; read and retry",
                                type_suffix="concurrent-change")
    if state in CONCURRENT_CHANGE_SQLSTATES:
        logger.info("concurrent change refused", extra={"route": route, "sqlstate": state})
        return problem_response(409, Conflict.title, "another request is changing the same record; read it again "
                                "and retry", type_suffix="concurrent-change", headers={"Retry-After": "1"})
    if state in TOO_SLOW_SQLSTATES:
        logger.warning("database work bounded", extra={"route": route, "sqlstate": state})
        unavailable = database_unavailable()
        return problem_response(unavailable.status, unavailable.title, "the database took too long; retry shortly",
                                type_suffix=unavailable.type_suffix, headers=unavailable.headers)
    logger.error("unhandled error", extra={"error_type": type(exc).__name__, "route": route})
    return problem_response(500, "Internal error", "An unexpected error occurred; it has been logged.",
                            type_suffix="internal-error")


class UnexpectedErrorMiddleware:
    """Answers an unexpected exception with a 500 problem from inside the request middleware.

    Starlette's own handler for `Exception` runs outside every middleware, so its answer would lack the request id
    and security headers, and its log line could not be tied to the request. `install_error_handlers` adds this
    before the service adds `RequestContextMiddleware`, which therefore wraps it.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late to answer with a problem; the server closes the connection
                raise
            await _internal_error(scope, exc)(scope, receive, send)
