"""`GET /v1/vocabularies` at the gateway: every service's code lists merged into one public answer, cacheable with
ETag and 304; a service that serves none adds none; one never reached makes it 503, never a partial list."""

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from scripts.stack import Stack
from tests.helpers import Api


def vocabulary(name: str, *codes: str) -> dict[str, Any]:
    return {"name": name, "vi": f"Danh mục {name}", "en": f"List {name}", "source": "test",
            "terms": [{"code": code, "vi": f"Nhãn {code}", "en": f"Label {code}", "extra": {}} for code in codes]}


class VocabularyUpstreams:
    """Stand-in services under /<service>: each serves the lists set for it (404 when None), with an ETag."""

    def __init__(self) -> None:
        self.lists: dict[str, list[dict[str, Any]] | None] = {}
        self.requests: list[tuple[str, str | None]] = []
        upstreams = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service = self.path.split("/")[1]
                upstreams.requests.append((service, self.headers.get("if-none-match")))
                lists = upstreams.lists.get(service)
                if lists is None or not self.path.endswith("/v1/vocabularies"):
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"vocabularies": lists}).encode()
                tag = f'"{service}-{len(body)}"'
                if self.headers.get("if-none-match") == tag:
                    self.send_response(304)
                    self.send_header("etag", tag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("etag", tag)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[VocabularyUpstreams]:
    running = VocabularyUpstreams()
    yield running
    running.server.shutdown()


async def test_the_gateway_merges_every_service_lists_and_answers_304_to_a_current_etag(
        upstreams: VocabularyUpstreams, extra_gateway: Callable[[dict[str, str]], str]) -> None:
    upstreams.lists = {"registry": [vocabulary("sex", "male", "female"), vocabulary("ethnicity", "01")],
                       "cases": None,  # a service that serves no lists
                       "reporting": [vocabulary("indicator_category", "abused"), vocabulary("sex", "male", "female")]}
    gateway = extra_gateway({f"GATEWAY_{name.upper()}_URL": f"{upstreams.url}/{name}"
                             for name in ("registry", "cases", "reporting")})
    async with httpx.AsyncClient(base_url=gateway) as client:
        first = await client.get("/v1/vocabularies")  # public: no token
        assert first.status_code == 200, first.text
        assert first.headers["content-type"] == "application/json"
        assert first.headers["cache-control"] == "public, max-age=300"
        names = [v["name"] for v in first.json()["vocabularies"]]
        assert names == ["sex", "ethnicity", "indicator_category"]  # an identical list declared twice comes once
        etag = first.headers["etag"]

        again = await client.get("/v1/vocabularies", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag and again.headers["cache-control"] == "public, max-age=300"
        assert (await client.get("/v1/vocabularies", headers={"If-None-Match": '"old"'})).status_code == 200
    # The gateway asked each service once, and answered the rest from what it holds.
    assert sorted(service for service, _ in upstreams.requests) == ["cases", "registry", "reporting"]


async def test_a_service_never_reached_makes_the_answer_503_not_a_partial_list(
        upstreams: VocabularyUpstreams, extra_gateway: Callable[[dict[str, str]], str]) -> None:
    upstreams.lists = {"registry": [vocabulary("sex", "male")], "cases": [], "reporting": []}
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{closed.getsockname()[1]}"
    gateway = extra_gateway({"GATEWAY_REGISTRY_URL": f"{upstreams.url}/registry",
                             "GATEWAY_CASES_URL": down, "GATEWAY_REPORTING_URL": f"{upstreams.url}/reporting"})
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/v1/vocabularies")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "5" and "cases" in response.json()["detail"]


async def test_the_running_system_serves_each_service_lists_through_the_gateway(api: Api, stack: Stack) -> None:
    response = await api.client.get("/v1/vocabularies")
    assert response.status_code == 200, response.text
    merged = {v["name"]: v for v in response.json()["vocabularies"]}
    owners: dict[str, str] = {}
    async with httpx.AsyncClient() as client:
        for service in ("registry", "cases", "reporting"):
            own = await client.get(f"{stack.url(service)}/v1/vocabularies")
            assert own.status_code == 200, own.text
            for listed in own.json()["vocabularies"]:
                # Each list has one owner: the same name from two services would be two truths about one code list.
                assert listed["name"] not in owners, \
                    f"{listed['name']} is declared by {owners[listed['name']]} and {service}"
                owners[listed["name"]] = service
                assert merged[listed["name"]] == listed
    assert set(merged) == set(owners)
    # What a case screen shows is labelled too, by the cases service.
    assert {name for name, owner in owners.items() if owner == "cases"} >= {
        "case_state", "case_category", "abuse_form", "environment", "intake_channel", "danger_indicator",
        "perpetrator_relationship", "closure_reason", "separation_ground", "review_item", "risk_rating",
        "task_agency", "task_status", "measure", "deadline", "attachment_kind", "decision_form"}
    assert merged["case_state"]["terms"][0] == {"code": "received", "vi": "Đã tiếp nhận", "en": "Received",
                                                "extra": {}}
    not_modified = await api.client.get("/v1/vocabularies", headers={"If-None-Match": response.headers["etag"]})
    assert not_modified.status_code == 304
