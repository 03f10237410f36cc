"""Links are the gateway's: every `Location` and `Content-Location`, problem `instance` and link in a body that a
service hands out is a path a client follows through the gateway, and it answers there."""

import asyncio
import time
import uuid

import httpx
import orjson
import pytest
import yaml

from scripts.stack import ROOT, SERVICES, Stack
from tests.helpers import DEMO_COMMUNE, Api

PUBLISHED = ("registry", "cases", "reporting")  # each under /<name> at the gateway


async def follow(api: Api, link: str, headers: dict[str, str]) -> httpx.Response:
    assert link.startswith("/") and link.split("/")[1] in PUBLISHED, f"{link} is not a path through the gateway"
    response = await api.client.get(link, headers=headers)
    assert response.status_code == 200, f"{link}: {response.status_code} {response.text}"
    return response


async def test_a_new_case_location_answers_through_the_gateway(api: Api) -> None:
    hotline = await api.as_demo("hotline_operator")
    officer = await api.as_demo("child_protection_officer")
    created = await api.client.post("/cases/v1/cases", headers=hotline, json={
        "incident_commune_code": DEMO_COMMUNE, "abuse_forms": ["neglect"], "environment": "home",
        "description": "A link test report", "child": {"first_name": "Lan", "sex": "female"}})
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location == f"/cases/v1/cases/{created.json()['id']}"
    assert (await follow(api, location, officer)).json()["id"] == created.json()["id"]


async def test_a_new_child_and_an_import_link_answer_through_the_gateway(api: Api) -> None:
    officer = await api.as_demo("child_protection_officer")
    created = await api.client.post("/registry/v1/children", headers=officer, json={
        "full_name": f"Nguyễn Thị Liên {uuid.uuid4().hex[:6]}", "sex": "female", "date_of_birth": "2016-05-01",
        "commune_code": DEMO_COMMUNE})
    assert created.status_code == 201, created.text
    for header in ("location", "content-location"):
        assert (await follow(api, created.headers[header], officer)).json()["id"] == created.json()["id"]

    upload = b"full_name,sex,date_of_birth,commune_code\nTr\xe1\xba\xa7n V\xc4\x83n B,male,2015-01-02,00070\n"
    started = await api.client.post("/registry/v1/imports", headers=officer, files={"file": ("list.csv", upload)},
                                    data={"mode": "row_by_row", "mapping": orjson.dumps({}).decode()})
    assert started.status_code == 202, started.text
    job = (await follow(api, started.headers["location"], officer)).json()
    deadline = time.monotonic() + 30
    while job["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        job = (await follow(api, started.headers["location"], officer)).json()
    report = await follow(api, job["errors_url"], officer)
    assert report.headers["content-type"].startswith("text/csv")


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", f"/cases/v1/cases/{uuid.UUID(int=7)}", 404),
    ("POST", "/registry/v1/children", 422),
    ("GET", "/reporting/v1/indicators?colour=red", 400),
    ("GET", "/cases/v1/no-such-route", 404),
])
async def test_a_problem_instance_is_the_path_through_the_gateway(api: Api, method: str, path: str,
                                                                  status: int) -> None:
    officer = await api.as_demo("child_protection_officer")
    headers = officer if not path.startswith("/reporting") else await api.as_demo("province_statistician")
    response = await api.client.request(method, path, headers=headers, json={} if method == "POST" else None)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["instance"] == path.split("?")[0]


def test_every_way_of_running_publishes_each_service_under_its_gateway_prefix(stack: Stack) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    kubernetes = {document["metadata"]["name"]: document["data"]
                  for document in yaml.safe_load_all((ROOT / "deploy/k8s/config.yaml").read_text())}
    for service in SERVICES:
        variable = f"{service.env_prefix}PUBLIC_PATH_PREFIX"
        expected = f"/{service.name}" if service.name in PUBLISHED else None
        assert stack.env_for(service).get(variable) == expected, f"scripts/stack.py {variable}"
        assert compose[service.name]["environment"].get(variable) == expected, f"docker-compose.yml {variable}"
        assert kubernetes[f"{service.name}-config"].get(variable) == expected, f"deploy/k8s/config.yaml {variable}"


def test_gateway_prefixes_match_the_published_services() -> None:
    from gateway.routes import SERVICES as GATEWAY_SERVICES

    assert tuple(GATEWAY_SERVICES) == PUBLISHED
