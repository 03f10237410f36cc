"""A provincial identity provider for tests: its own ES256 key and a JWKS served over real HTTP."""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.common import tokens


class ProvinceIdp:
    audience = "child-protection"

    def __init__(self) -> None:
        self.key = tokens.SigningKey.generate()
        jwks = json.dumps({"keys": [self.key.public_jwk()]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(jwks)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"https://idp.province-test.example/{uuid.uuid4().hex[:6]}"
        self.jwks_url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def config(self) -> str:
        return json.dumps([{
            "issuer": self.issuer, "jwks_url": self.jwks_url, "audience": self.audience,
            "claims": {"role": "vai_tro", "agency": "co_quan", "jurisdiction": "dia_ban"},
            "role_values": {"can_bo_bao_ve_tre_em": "child_protection_officer", "chu_tich_xa": "commune_chairman"},
        }])

    def token(self, role: str, jurisdiction: dict[str, Any], agency: str = "peoples_committee",
              **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.audience, "sub": f"idp-{uuid.uuid4().hex[:8]}", "iat": now,
                  "exp": now + 600, "jti": uuid.uuid4().hex, "vai_tro": role, "co_quan": agency,
                  "dia_ban": jurisdiction} | overrides
        return tokens.sign(claims, self.key)

    def close(self) -> None:
        self.server.shutdown()
