"""Sign in from the command line with the authorization code flow and PKCE, as a native app does (RFC 8252):

    .venv/bin/python -m scripts.sign_in [--gateway http://127.0.0.1:8000]

Reads the gateway's discovery document, listens on a loopback port for the redirect, prints the sign-in URL to open
in a browser (the page asks for the password and, for most roles, the second factor), exchanges the code with the
verifier and prints the token response as JSON. The client is `cp-cli`, registered for development systems.
"""

import argparse
import base64
import hashlib
import json
import secrets
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

CLIENT_ID = "cp-cli"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the sign-in")
    args = parser.parse_args()
    metadata = httpx.get(f"{args.gateway}/.well-known/openid-configuration", timeout=10).json()
    received: dict[str, list[str]] = {}
    done = threading.Event()

    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if urlsplit(self.path).path != "/callback":
                self.send_response(404)
                self.end_headers()
                return
            received.update(parse_qs(urlsplit(self.path).query))
            body = "Đăng nhập xong, có thể đóng cửa sổ này. / Signed in; you can close this window.".encode()
            self.send_response(200)
            self.send_header("content-type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)
            done.set()

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
    verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    url = metadata["authorization_endpoint"] + "?" + urlencode({
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect_uri, "scope": "openid profile",
        "state": state, "code_challenge": challenge, "code_challenge_method": "S256"})
    print(f"Open this address in a browser to sign in:\n\n  {url}\n", file=sys.stderr)
    webbrowser.open(url)
    if not done.wait(args.timeout):
        print("no sign-in arrived in time", file=sys.stderr)
        return 1
    server.shutdown()
    if received.get("state") != [state] or "code" not in received:
        print(f"sign-in refused: {received.get('error', ['state mismatch'])[0]}", file=sys.stderr)
        return 1
    answer = httpx.post(metadata["token_endpoint"], timeout=10, data={
        "grant_type": "authorization_code", "code": received["code"][0], "redirect_uri": redirect_uri,
        "client_id": CLIENT_ID, "code_verifier": verifier})
    print(json.dumps(answer.json(), indent=2))
    return 0 if answer.status_code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
