"""Extra gateway processes with their own settings, beside the main stack (same database, real HTTP)."""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from scripts.stack import ROOT, SERVICES, Stack, free_port


class EchoUpstream:
    """A stand-in service that answers with the headers it received; `/slow` waits 20 s before answering,
    `/redirect` answers 307 to its own address. `calls` counts the requests it received."""

    def __init__(self) -> None:
        upstream = self
        self.calls = 0

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                upstream.calls += 1
                if self.path.startswith("/slow"):
                    time.sleep(20)
                if self.path.startswith("/redirect"):
                    self.send_response(307)
                    self.send_header("location", f"{upstream.url}/elsewhere")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("content-length") or 0)
                body = json.dumps({"headers": {k.lower(): v for k, v in self.headers.items()},
                                   "path": self.path, "body_bytes": len(self.rfile.read(length))}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="session")
def echo_upstream() -> Iterator[EchoUpstream]:
    upstream = EchoUpstream()
    yield upstream
    upstream.server.shutdown()


@pytest.fixture(scope="module")
def extra_gateway(stack: Stack) -> Iterator[Callable[[dict[str, str]], str]]:
    """Start another gateway; they stop when the test module ends, and each keeps a small connection pool (the
    PostgreSQL of a CI machine is shared by every test run on it)."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(overrides: dict[str, str], *, forwarded_from_loopback: bool = False) -> str:
        """Another gateway on the same database. `forwarded_from_loopback`: believe X-Forwarded-For from 127.0.0.1,
        as behind a reverse proxy on the same host, so a test can speak from several client addresses."""
        port = free_port()
        gateway = next(s for s in SERVICES if s.name == "gateway")
        env = os.environ | stack.env_for(gateway) | {"GATEWAY_PORT": str(port), "GATEWAY_SEED_DEMO_USERS": "false",
                                                     "GATEWAY_DATABASE_POOL_SIZE": "3"}
        env |= overrides
        log = (ROOT / "var" / "test-logs" / f"extra-gateway-{port}.log").open("ab")
        proxy_headers = ["--forwarded-allow-ips", "127.0.0.1"] if forwarded_from_loopback else ["--no-proxy-headers"]
        process = subprocess.Popen([sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory",
                                    "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                                    *proxy_headers],
                                   cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120  # a fresh process on a loaded machine: imports alone take seconds
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"extra gateway exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("extra gateway did not start")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)
