"""The whole sign-in in a real browser (Debian's Chromium driven by Playwright, no browser download): open the
authorize URL, sign in, enrol the second factor from the page, enter a code, land on the client's redirect URI
with a code, exchange it with the verifier, call the API. Screenshots of the sign-in page, phone-sized and
desktop-sized, go to `docs/sign-in/` when `UPDATE_SCREENSHOTS=1`, else under `var/`."""

import os
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from scripts.stack import ROOT
from tests.gateway.signin import SignIn, code_at, new_user
from tests.helpers import Api

CHROMIUM = Path("/usr/bin/chromium")
# Flags that work on this kind of machine: as root, no GPU, and no background calls to a network that is closed.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "docs" / "sign-in" if os.environ.get("UPDATE_SCREENSHOTS") else ROOT / "var" / "sign-in"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                                reason="needs Debian's chromium (deploy/ci-prereqs.sh installs it)")


class ClientApp:
    """The client's redirect URI: a command-line app's loopback listener (RFC 8252), which records the query."""

    def __init__(self) -> None:
        app = self
        self.queries: list[dict[str, list[str]]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path == "/callback":  # not the browser's /favicon.ico
                    app.queries.append(parse_qs(urlsplit(self.path).query))
                body = b"<!doctype html><title>Signed in</title><p>You can close this window.</p>"
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def client_app() -> Iterator[ClientApp]:
    app = ClientApp()
    yield app
    app.server.shutdown()


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def test_sign_in_enrol_and_call_the_api_in_a_real_browser(api: Api, chromium: Browser,
                                                                client_app: ClientApp) -> None:
    _, username, password = await new_user(api)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with httpx.AsyncClient(base_url=api.stack.url("gateway"), timeout=30) as http:
        flow = SignIn(http, client_id="cp-cli", redirect_uri=client_app.redirect_uri)
        authorize_url = f"{api.stack.url('gateway')}/auth/authorize?" + str(
            httpx.QueryParams(flow.params()))

        # The page on a phone and on a desktop, for the documentation (before any input).
        for name, viewport in (("phone", {"width": 390, "height": 844}), ("desktop", {"width": 1280, "height": 800})):
            context = await chromium.new_context(viewport=viewport, device_scale_factor=1, locale="vi-VN")
            page = await context.new_page()
            await page.goto(authorize_url)
            await page.screenshot(path=str(SCREENSHOTS / f"sign-in-{name}.png"), full_page=True)
            await context.close()

        context = await chromium.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False)
        page = await context.new_page()
        await page.goto(authorize_url)
        assert await page.get_attribute("html", "lang") == "vi"
        # Labels name the fields (what a screen reader says), and the keyboard reaches them in order.
        await page.get_by_label("Tên đăng nhập").fill(username)
        await page.get_by_label("Mật khẩu").fill(password)
        await page.keyboard.press("Enter")
        await page.wait_for_selector("svg")  # the enrolment QR code, drawn by the server
        await page.screenshot(path=str(SCREENSHOTS / "enrol-phone.png"), full_page=True)
        secret = (await page.inner_text(".secret")).replace(" ", "")
        await page.get_by_label("Mã 6 chữ số từ ứng dụng").fill(code_at(secret))
        await page.get_by_role("button", name="Xác nhận").click()
        codes = await page.locator(".codes li").all_inner_texts()
        assert len(codes) == 10
        await page.get_by_role("button", name="Tiếp tục").click()
        await page.wait_for_url(f"{client_app.redirect_uri}*")
        await context.close()

        query = client_app.queries[-1]
        assert query["state"] == [flow.state]
        tokens = await flow.exchange(query["code"][0])
        assert tokens.status_code == 200, tokens.text
        headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
        children = await http.get("/registry/v1/children", headers=headers, params={"commune_code": "00070"})
        assert children.status_code == 200

        # The next sign-in asks for the code, in English when asked.
        again = SignIn(http, client_id="cp-cli", redirect_uri=client_app.redirect_uri)
        context = await chromium.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await page.goto(f"{api.stack.url('gateway')}/auth/authorize?" + str(httpx.QueryParams(
            again.params(ui_locales="en"))))
        await page.get_by_label("Username").fill(username)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_label("Verification code").fill(code_at(secret, 1))
        await page.screenshot(path=str(SCREENSHOTS / "second-factor-desktop-en.png"))
        await page.get_by_role("button", name="Confirm").click()
        await page.wait_for_url(f"{client_app.redirect_uri}*")
        await context.close()
        assert (await again.exchange(client_app.queries[-1]["code"][0])).status_code == 200
