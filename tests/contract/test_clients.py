"""Clients generated from the running system's combined OpenAPI document, as a frontend team would make them
(docs/clients.md): a TypeScript client (openapi-typescript, locked in clients/package-lock.json) that `tsc` accepts
together with clients/example.ts, and a Python client (openapi-python-client) that walks a hotline report to its
closure through the gateway, reading every error as a `Problem`. Neither client is kept: both go to a temp dir."""

import hashlib
import importlib
import json
import pkgutil
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from scripts.stack import ROOT
from services.cases import workflow
from services.cases.workflow_routes import camel
from services.common.permissions import PERMISSIONS, Role
from tests.cases.samples import FORMS, intake
from tests.contract.conftest import combined_document
from tests.helpers import Api

CLIENTS = ROOT / "clients"
PACKAGE = "cp_client"  # the generated Python package

COMMUNE_ROLES = (Role.CHILD_PROTECTION_OFFICER, Role.COMMUNE_CHAIRMAN)


def walk_to_closure() -> list[tuple[str, str]]:
    """Who takes which step, in order, on the shortest way the workflow table gives from an intake to a closure
    that is not an early one (steps that keep the state left out). A change of the table changes the walk; the
    step bodies are the cases tests' own samples (tests/cases/samples.py), kept true to the table."""
    start = workflow.initial_position()
    paths: dict[workflow.Position, list[str]] = {start: []}
    queue = [start]
    while queue:
        position = queue.pop(0)
        if position.state == workflow.State.CLOSED:
            steps = [workflow.STEPS[action] for action in paths[position]]
            return [(next(r.value for r in COMMUNE_ROLES if s.permission in PERMISSIONS[r]), s.action) for s in steps]
        for step in workflow.allowed_steps(position):
            if step.target is None or step.action == "close_early":
                continue
            following = workflow.advance(position, step.action)
            if following not in paths:
                paths[following] = [*paths[position], step.action]
                queue.append(following)
    raise AssertionError("the workflow table leads no case to a closure")


WALK = walk_to_closure()
# Merged into a valid intake: two invalid fields that the generated client sends as they are.
INVALID_INTAKE = {"incident_commune_code": "7", "description": ""}


def step_body(client: "Generated", action: str) -> Any:
    """The step's form as the generated client's model of it: the schema the typed route names."""
    return client.model(workflow.STEPS[action].form.__name__).from_dict(FORMS[action])


def run(command: list[str], cwd: Path, timeout: float = 300) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


def npm_ci() -> Path:
    """clients/node_modules as clients/package-lock.json pins it: `npm ci` once per lock file (a stamp in
    node_modules records which)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("Node.js 20+ and npm are needed for the TypeScript client (Debian: apt-get install nodejs npm)")
    digest = hashlib.sha256((CLIENTS / "package-lock.json").read_bytes()).hexdigest()
    stamp = CLIENTS / "node_modules" / ".installed-from-lock"
    if not stamp.is_file() or stamp.read_text() != digest:
        run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], CLIENTS)
        stamp.write_text(digest)
    return CLIENTS / "node_modules"


@pytest.fixture(scope="module")
async def document(api: Api, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    response = await combined_document(api)
    path = tmp_path_factory.mktemp("openapi") / "openapi.json"
    path.write_bytes(response.content)
    return path, dict(response.json())


def test_the_typescript_client_generates_and_type_checks(document: tuple[Path, dict[str, Any]],
                                                         tmp_path: Path) -> None:
    modules = npm_ci()
    (tmp_path / "generated").mkdir()
    (tmp_path / "node_modules").symlink_to(modules, target_is_directory=True)
    for name in ("tsconfig.json", "example.ts"):
        shutil.copy(CLIENTS / name, tmp_path / name)
    path, openapi = document
    run([str(modules / ".bin" / "openapi-typescript"), str(path), "--output", "generated/api.ts"], tmp_path)
    generated = (tmp_path / "generated" / "api.ts").read_text()
    operation_ids = {operation["operationId"] for item in openapi["paths"].values() for operation in item.values()}
    missing = {name for name in operation_ids if not re.search(rf"^\s+{name}: {{$", generated, re.MULTILINE)}
    assert not missing, f"operations missing from the TypeScript client: {sorted(missing)}"
    run([str(modules / ".bin" / "tsc"), "--noEmit", "--project", "."], tmp_path)


BINARY_MEDIA_TYPES = {media_type: "application/octet-stream" for media_type in (
    "application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document")}


@pytest.fixture(scope="module")
def python_client(document: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[ModuleType]:
    where = tmp_path_factory.mktemp("python-client")
    config = where / "config.json"
    # The papers answer PDF or DOCX: bytes to the client (docs/clients.md, "Generating a client").
    config.write_text(json.dumps({"package_name_override": PACKAGE, "project_name_override": "cp-client",
                                  "post_hooks": [], "content_type_overrides": BINARY_MEDIA_TYPES}))
    run([sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document[0]), "--output-path",
         str(where / PACKAGE), "--meta", "none", "--config", str(config), "--fail-on-warning"], where)
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


class Generated:
    """The generated client's operations by operationId, wherever its tags put them."""

    def __init__(self, package: ModuleType, base_url: str):
        self.package, self.base_url = package, base_url
        api = importlib.import_module(f"{PACKAGE}.api")
        self.modules = {info.name.rsplit(".", 1)[1]: info.name
                        for info in pkgutil.walk_packages(api.__path__, f"{PACKAGE}.api.") if not info.ispkg}

    def operation(self, operation_id: str) -> Any:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()
        return importlib.import_module(self.modules[snake])

    def model(self, name: str) -> Any:
        return getattr(importlib.import_module(f"{PACKAGE}.models"), name)

    async def sign_in(self, role: str) -> Any:
        body = self.model("BodyToken")(grant_type="password", username=f"demo-{role}", password="demo")
        async with self.package.Client(base_url=self.base_url) as anonymous:
            answer = await self.operation("token").asyncio_detailed(client=anonymous, body=body)
        assert answer.status_code == 200, answer.content
        return self.package.AuthenticatedClient(base_url=self.base_url, token=answer.parsed.access_token)


def problem_of(answer: Any, status: int, model: type) -> Any:
    assert answer.status_code == status, answer.content
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert isinstance(answer.parsed, model), type(answer.parsed)
    assert answer.parsed.status == status and answer.parsed.type_.startswith("https://")  # `type` is `type_` in Python
    return answer.parsed


async def waive(client: Generated, officer: Any, case_id: Any, task_ids: list[str]) -> None:
    # A plan has at most 100 tasks: one page of 200 holds them all.
    page = (await client.operation("listTasks").asyncio_detailed(case_id, client=officer, limit=200)).parsed
    assert page.next_cursor is None
    tasks = {str(task.id): task for task in page.items}
    TaskUpdate = client.model("TaskUpdate")
    for task_id in task_ids:
        answer = await client.operation("updateTask").asyncio_detailed(
            task_id, client=officer, if_match=f'"{tasks[task_id].version}"',
            body=TaskUpdate.from_dict({"status": "waived", "reason": "Không còn cần thiết"}))
        assert answer.status_code == 200, answer.content


async def test_the_python_client_walks_a_hotline_report_to_closure(api: Api, python_client: ModuleType,
                                                                   document: tuple[Path, dict[str, Any]]) -> None:
    client = Generated(python_client, str(api.client.base_url).rstrip("/"))
    # The intake's model, by the name the document gives the body of createCase.
    intake_schema = document[1]["paths"]["/cases/v1/cases"]["post"]["requestBody"]["content"]["application/json"]
    Problem, CaseCreate = client.model("Problem"), client.model(intake_schema["schema"]["$ref"].rsplit("/", 1)[1])
    create_case, get_case = client.operation("createCase"), client.operation("getCase")
    # One operation per workflow action, named from the table: takeActionBeginAssessment, takeActionSubmitPlan, ...
    take = {action: client.operation(f"takeAction{camel(action)}") for action in workflow.STEPS}
    roles = {role: await client.sign_in(role) for role in ("hotline_operator", *dict(WALK))}

    # Intake by the hotline; a resend with the same Idempotency-Key answers the same case.
    key = f"walk-{uuid.uuid4()}"
    report = CaseCreate.from_dict(intake())
    created = await create_case.asyncio_detailed(client=roles["hotline_operator"], body=report, idempotency_key=key)
    assert created.status_code == 201, created.content
    case_id = created.parsed.id
    assert created.headers["location"] == f"/cases/v1/cases/{case_id}"
    resent = await create_case.asyncio_detailed(client=roles["hotline_operator"], body=report, idempotency_key=key)
    assert resent.status_code == 200 and resent.parsed.id == case_id

    # A deliberate 422: the Problem names each invalid field, in the one FieldError shape, without the values.
    invalid = await create_case.asyncio_detailed(client=roles["hotline_operator"],
                                                 body=CaseCreate.from_dict(intake() | INVALID_INTAKE))
    problem = problem_of(invalid, 422, Problem)
    assert {tuple(error.loc) for error in problem.errors} == {("body", "incident_commune_code"),
                                                               ("body", "description")}
    assert all(error.msg and error.type_ for error in problem.errors)
    assert '"7"' not in invalid.content.decode()

    # The commune's steps to closure, each with the ETag of the version read before it (If-Match).
    read = await get_case.asyncio_detailed(case_id, client=roles["child_protection_officer"])
    assert read.status_code == 200, read.content
    etag, stale = read.headers["etag"], None
    for role, action in WALK:
        answer = await take[action].asyncio_detailed(case_id, client=roles[role], body=step_body(client, action),
                                                     if_match=etag)
        if answer.status_code == 409 and "waiting_tasks" in answer.parsed:
            # The review waits for the plan's tasks (Decree 56 Art. 30(1)): the officer waives those still open.
            await waive(client, roles["child_protection_officer"], case_id, answer.parsed["waiting_tasks"])
            etag = (await get_case.asyncio_detailed(case_id, client=roles[role])).headers["etag"]
            answer = await take[action].asyncio_detailed(case_id, client=roles[role],
                                                         body=step_body(client, action), if_match=etag)
        assert answer.status_code == 200, f"{action}: {answer.content!r}"
        stale, etag = etag, answer.headers["etag"]
        if action == "begin_assessment":
            # A deliberate 412: the same step sent again with the version it replaced.
            again = await take["assess_no_emergency"].asyncio_detailed(
                case_id, client=roles[role], body=step_body(client, "assess_no_emergency"), if_match=stale)
            conflict = problem_of(again, 412, Problem)
            assert conflict["current_etag"] == etag and conflict["current"] == f"/cases/v1/cases/{case_id}"
            assert conflict.instance == f"/cases/v1/cases/{case_id}/actions/assess_no_emergency"

    closed = await get_case.asyncio_detailed(case_id, client=roles["commune_chairman"])
    assert closed.status_code == 200 and closed.parsed.state == "closed"
    assert closed.parsed.allowed_actions == []
    for session in roles.values():
        await session.get_async_httpx_client().aclose()
