"""The sign-in page of the authorization code flow: server-rendered HTML that works without JavaScript, in
Vietnamese by default and in English, usable on a phone and with a keyboard or a screen reader.

Protections: each form carries the sign-in's id and a CSRF token that must equal the browser's `cp_signin` cookie
(HttpOnly, SameSite=Strict), whose hash the sign-in stored, so a form posted from another site, or in another
browser, is refused; the page cannot be framed (`frame-ancestors 'none'`, X-Frame-Options DENY); its CSP allows
only its own inline style (by nonce), no script, and form submission only to itself and the client's redirect URI.
Failed passwords and codes are throttled (`throttle.py`), and a wrong password and an unknown username get the
same answer.
"""

import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from gateway import mfa
from gateway.models import AuthorizationRequest, User
from gateway.oauth import (
    AuthorizationServer,
    AuthorizeParams,
    PageError,
    RedirectError,
    Stage,
    redirect_target,
)
from gateway.routes import client_address, limit_address
from services.common.db import DbSession
from services.common.errors import TooManyRequests, Unauthorized

router = APIRouter(include_in_schema=False)
COOKIE = "cp_signin"
templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(["html"]), auto_reload=False)

TEXT: dict[str, tuple[str, str]] = {
    "system": ("Hệ thống bảo vệ trẻ em", "Child protection system"),
    "title": ("Đăng nhập", "Sign in"),
    "language": ("Ngôn ngữ", "Language"),
    "for_client": ("Đăng nhập vào", "Signing in to"),
    "username": ("Tên đăng nhập", "Username"),
    "password": ("Mật khẩu", "Password"),
    "sign_in": ("Đăng nhập", "Sign in"),
    "cancel": ("Hủy", "Cancel"),
    "wrong": ("Tên đăng nhập hoặc mật khẩu không đúng.", "The username or password is wrong."),
    "throttled": ("Quá nhiều lần thử không thành công. Vui lòng thử lại sau {seconds} giây.",
                  "Too many failed attempts. Please try again in {seconds} seconds."),
    "totp_title": ("Xác thực hai bước", "Two-step verification"),
    "code": ("Mã xác thực", "Verification code"),
    "code_hint": ("Nhập mã 6 chữ số trong ứng dụng xác thực, hoặc một mã khôi phục.",
                  "Enter the 6-digit code from your authenticator app, or a recovery code."),
    "confirm": ("Xác nhận", "Confirm"),
    "bad_code": ("Mã không đúng hoặc đã được dùng.", "The code is wrong or has already been used."),
    "enrol_title": ("Thiết lập xác thực hai bước", "Set up two-step verification"),
    "enrol_step1": ("Mở ứng dụng xác thực trên điện thoại (ví dụ Google Authenticator, Microsoft Authenticator, "
                    "FreeOTP).",
                    "Open an authenticator app on your phone (for example Google Authenticator, Microsoft "
                    "Authenticator, FreeOTP)."),
    "enrol_step2": ("Quét mã QR dưới đây, rồi nhập mã 6 chữ số mà ứng dụng hiển thị.",
                    "Scan the QR code below, then enter the 6-digit code the app shows."),
    "enrol_manual": ("Không quét được? Nhập khóa này vào ứng dụng:", "Cannot scan? Enter this key in the app:"),
    "secret_label": ("Khóa bí mật", "Secret key"),
    "open_app": ("Mở trong ứng dụng xác thực trên thiết bị này", "Open in the authenticator app on this device"),
    "enrol_code": ("Mã 6 chữ số từ ứng dụng", "6-digit code from the app"),
    "qr_title": ("Mã QR để thiết lập xác thực hai bước", "QR code to set up two-step verification"),
    "recovery_title": ("Mã khôi phục", "Recovery codes"),
    "recovery_hint": ("Hãy in hoặc chép các mã này và cất ở nơi an toàn. Mỗi mã dùng được một lần khi bạn không có "
                      "điện thoại. Các mã sẽ không hiển thị lại.",
                      "Print or copy these codes and keep them somewhere safe. Each works once when you do not have "
                      "your phone. They will not be shown again."),
    "continue": ("Tiếp tục", "Continue"),
    "error_title": ("Không thể đăng nhập", "Cannot sign in"),
    "error_hint": ("Hãy quay lại ứng dụng và bắt đầu đăng nhập lại.", "Go back to the app and start signing in again."),
    "unknown_client": ("Ứng dụng này chưa được đăng ký.", "This application is not registered."),
    "redirect_uri": ("Địa chỉ chuyển hướng không được đăng ký cho ứng dụng này.",
                     "The redirect address is not registered for this application."),
    "expired": ("Phiên đăng nhập không còn hiệu lực.", "This sign-in is no longer valid."),
    "csrf": ("Biểu mẫu không hợp lệ hoặc được gửi từ trang khác.",
             "The form is not valid or was sent from another site."),
    "footer": ("Chỉ dành cho cán bộ được cấp tài khoản. Mọi truy cập đều được ghi nhật ký.",
               "For officers with an account only. Every access is logged."),
}
LANGUAGE_NAMES = {"vi": "Tiếng Việt", "en": "English"}


def texts(lang: str) -> dict[str, str]:
    index = 1 if lang == "en" else 0
    return {key: pair[index] for key, pair in TEXT.items()}


def server(request: Request) -> AuthorizationServer:
    return request.app.state.authorization_server


def render(request: Request, *, stage: str, lang: str, status: int = 200, row: AuthorizationRequest | None = None,
           request_token: str = "", csrf_token: str = "", message_key: str | None = None, seconds: int = 0,
           set_cookie: str | None = None, **values: Any) -> HTMLResponse:
    t = texts(lang)
    nonce = secrets.token_urlsafe(16)
    other = "en" if lang == "vi" else "vi"
    client = server(request).client(row.client_id) if row is not None else None
    html = templates.get_template("sign_in.html").render(
        t=t, lang=lang, stage=stage, nonce=nonce, request_token=request_token, csrf_token=csrf_token,
        message=t[message_key].format(seconds=seconds) if message_key else "",
        client_name=client.name if client else "",
        other_lang=other, other_lang_name=LANGUAGE_NAMES[other],
        other_lang_url=f"/auth/sign-in?{urlencode({'request': request_token, 'lang': other})}" if request_token
        else "", **values)
    form_action = "'self'" + (f" {redirect_target(row.redirect_uri)}" if row is not None else "")
    headers = {
        "Content-Security-Policy": f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
                                   f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'",
        "Content-Language": lang,
    }
    if seconds:
        headers["Retry-After"] = str(seconds)
    response = HTMLResponse(html, status_code=status, headers=headers)
    if set_cookie is not None:
        secure = server(request).settings.public_url.startswith("https://")
        response.set_cookie(COOKIE, set_cookie, max_age=server(request).settings.sign_in_ttl_seconds,
                            path="/auth", httponly=True, samesite="strict", secure=secure)
    return response


def error_page(request: Request, reason: str, lang: str = "vi") -> HTMLResponse:
    status = 403 if reason == "csrf" else 400
    return render(request, stage="error", lang=lang, status=status, message_key=reason)


async def stage_page(request: Request, session: DbSession, row: AuthorizationRequest, request_token: str,
                     csrf_token: str, *, message_key: str | None = None, status: int = 200, seconds: int = 0,
                     recovery_codes: tuple[str, ...] = (), username: str = "") -> HTMLResponse:
    values: dict[str, Any] = {"username": username, "recovery_codes": recovery_codes}
    if row.stage == "enrol" and row.user_id is not None:
        user = await session.get(User, row.user_id)
        uri, secret = server(request).enrolment(row, user.username if user else "")
        # segno's own markup of our secret and fixed title; nothing from the request.
        svg = Markup(mfa.qr_svg(uri, texts(row.lang)["qr_title"]))  # noqa: S704
        values |= {"qr_svg": svg, "otpauth_uri": uri,
                   "secret_grouped": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))}
    return render(request, stage=row.stage, lang=row.lang, status=status, row=row, request_token=request_token,
                  csrf_token=csrf_token, message_key=message_key, seconds=seconds, **values)


def done(stage: Stage) -> Response:
    # 303: the browser follows with a GET (RFC 9110 15.4.4), never re-posting the form to the client.
    return RedirectResponse(stage.location or "", status_code=303)


@router.get("/auth/authorize")
async def authorize(
    request: Request,
    session: DbSession,
    client_id: Annotated[str, Query(max_length=100)] = "",
    redirect_uri: Annotated[str, Query(max_length=500)] = "",
    response_type: Annotated[str, Query(max_length=50)] = "",
    scope: Annotated[str, Query(max_length=500)] = "",
    state: Annotated[str | None, Query(max_length=500)] = None,
    code_challenge: Annotated[str | None, Query(max_length=128)] = None,
    code_challenge_method: Annotated[str | None, Query(max_length=20)] = None,
    nonce: Annotated[str | None, Query(max_length=500)] = None,
    ui_locales: Annotated[str | None, Query(max_length=50)] = None,
) -> Response:
    """The authorization endpoint (RFC 6749 4.1.1): validate the client's request, then show the sign-in page."""
    await limit_address(request)
    lang = "en" if (ui_locales or "").split()[:1] == ["en"] else "vi"
    params = AuthorizeParams(client_id=client_id, redirect_uri=redirect_uri, response_type=response_type,
                             scope=scope, state=state, code_challenge=code_challenge,
                             code_challenge_method=code_challenge_method, nonce=nonce, ui_locales=ui_locales)
    try:
        request_token, csrf, row = await server(request).begin(session, params)
    except PageError as exc:
        return error_page(request, exc.reason, lang)
    except RedirectError as exc:
        return RedirectResponse(exc.location, status_code=302)
    return render(request, stage="password", lang=row.lang, row=row, request_token=request_token,
                  csrf_token=csrf, set_cookie=csrf, username="")


@router.get("/auth/sign-in")
async def show_sign_in(request: Request, session: DbSession, request_token: Annotated[str, Query(
        alias="request", max_length=100)], lang: Annotated[str, Query(pattern="^(vi|en)$")] = "vi") -> Response:
    """The current step of a sign-in, in another language."""
    csrf = request.cookies.get(COOKIE)
    try:
        row = await server(request).load(session, request_token, csrf, None)
    except PageError as exc:
        return error_page(request, exc.reason, lang)
    row.lang = lang
    if row.stage == "recovery_codes":
        return error_page(request, "expired", lang)  # the codes are shown once
    return await stage_page(request, session, row, request_token, csrf or "")


RequestToken = Annotated[str, Form(alias="request", max_length=100)]
CsrfToken = Annotated[str, Form(max_length=100)]


async def _load(request: Request, session: DbSession, request_token: str,
                csrf_token: str) -> AuthorizationRequest | HTMLResponse:
    try:
        return await server(request).load(session, request_token, request.cookies.get(COOKIE), csrf_token)
    except PageError as exc:
        return error_page(request, exc.reason)


@router.post("/auth/sign-in")
async def submit_password(request: Request, session: DbSession, request_token: RequestToken, csrf_token: CsrfToken,
                          username: Annotated[str, Form(max_length=200)],
                          password: Annotated[str, Form(max_length=200)]) -> Response:
    await limit_address(request)
    row = await _load(request, session, request_token, csrf_token)
    if isinstance(row, HTMLResponse):
        return row
    shown = username if username.isprintable() else ""
    try:
        stage = await server(request).password(session, row, username, password, client_address(request))
    except TooManyRequests as exc:
        seconds = int(exc.headers.get("Retry-After", "1"))
        return await stage_page(request, session, row, request_token, csrf_token, message_key="throttled",
                                status=429, seconds=seconds, username=shown)
    except Unauthorized:
        return await stage_page(request, session, row, request_token, csrf_token, message_key="wrong", status=401,
                                username=shown)
    except PageError as exc:
        return error_page(request, exc.reason, row.lang)
    if stage.name == "done":
        return done(stage)
    return await stage_page(request, session, row, request_token, csrf_token)


async def _code_step(request: Request, session: DbSession, request_token: str, csrf_token: str, code: str,
                     enrol: bool) -> Response:
    await limit_address(request)
    row = await _load(request, session, request_token, csrf_token)
    if isinstance(row, HTMLResponse):
        return row
    authorization = server(request)
    try:
        stage = await (authorization.enrol if enrol else authorization.second_factor)(session, row, code)
    except TooManyRequests as exc:
        seconds = int(exc.headers.get("Retry-After", "1"))
        return await stage_page(request, session, row, request_token, csrf_token, message_key="throttled",
                                status=429, seconds=seconds)
    except Unauthorized:
        return await stage_page(request, session, row, request_token, csrf_token, message_key="bad_code",
                                status=401)
    except PageError as exc:
        return error_page(request, exc.reason, row.lang)
    if stage.name == "done":
        return done(stage)
    return await stage_page(request, session, row, request_token, csrf_token, recovery_codes=stage.recovery_codes)


@router.post("/auth/sign-in/second-factor")
async def submit_second_factor(request: Request, session: DbSession, request_token: RequestToken,
                               csrf_token: CsrfToken, code: Annotated[str, Form(max_length=20)]) -> Response:
    return await _code_step(request, session, request_token, csrf_token, code, enrol=False)


@router.post("/auth/sign-in/enrol")
async def submit_enrolment(request: Request, session: DbSession, request_token: RequestToken, csrf_token: CsrfToken,
                           code: Annotated[str, Form(max_length=20)]) -> Response:
    return await _code_step(request, session, request_token, csrf_token, code, enrol=True)


@router.post("/auth/sign-in/continue")
async def continue_after_recovery_codes(request: Request, session: DbSession, request_token: RequestToken,
                                        csrf_token: CsrfToken) -> Response:
    row = await _load(request, session, request_token, csrf_token)
    if isinstance(row, HTMLResponse):
        return row
    try:
        return done(await server(request).after_recovery_codes(session, row))
    except PageError as exc:
        return error_page(request, exc.reason, row.lang)


@router.post("/auth/sign-in/cancel")
async def cancel_sign_in(request: Request, session: DbSession, request_token: RequestToken,
                         csrf_token: CsrfToken) -> Response:
    row = await _load(request, session, request_token, csrf_token)
    if isinstance(row, HTMLResponse):
        return row
    return RedirectResponse(server(request).cancel(row), status_code=303)
