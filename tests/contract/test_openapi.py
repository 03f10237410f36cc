"""The combined OpenAPI document (gateway `/openapi.json`) is one a client generator can use, and every route keeps
the contract: a valid document whose references resolve, one `Problem` and one `FieldError`, no two models under
one name, nothing unreferenced, unique unprefixed operationIds, every error answer a problem+json `Problem`, 401
declared on (and answered by) every route that needs a token, no 413 promised on a GET, a media type on every
success with a body."""

import json
import re
import subprocess
import sys
import uuid
from typing import Any

import pytest
from openapi_spec_validator import validate

from gateway.openapi import HTTP_METHODS, combine, operation_clashes, referenced_schemas
from scripts.stack import ROOT
from services.cases import workflow
from services.cases.workflow_routes import camel
from tests.contract.conftest import combined_document
from tests.helpers import Api

PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}

# Routes that still declare a copied list of errors promising 413 on a GET, and the stream whose files they are in;
# each owner replaces the copy with `problem_responses(...)` of the statuses the route really returns. The test fails
# on a new offender and on a stale entry, so remove a route from here when it is fixed.
KNOWN_413_ON_GET: dict[str, str] = {}

# Success answers with a body whose media type is not declared (a generated client cannot read them: CSV, XLSX
# files), and whose files they are in; the same rules as above.
KNOWN_UNTYPED_ANSWERS: dict[str, str] = {}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation) for path, item in document["paths"].items()
            for method, operation in item.items() if method in HTTP_METHODS]


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for key, value in node.items() if key != "$ref" for ref in refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in refs(item)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref}: only references inside the document"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


@pytest.fixture(scope="module")
async def document(api: Api) -> dict[str, Any]:
    return dict((await combined_document(api)).json())


def test_the_document_is_valid_openapi_and_every_reference_resolves(document: dict[str, Any]) -> None:
    validate(document)
    found = refs(document)
    assert len(found) > 100
    for ref in set(found):
        resolve(document, ref)


def test_one_problem_and_one_field_error_shape(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    problem_like = sorted(name for name in schemas if "Problem" in name or "FieldError" in name or
                          "ValidationError" in name)
    assert problem_like == ["FieldError", "Problem"]
    assert schemas["Problem"]["properties"]["errors"]["anyOf"][0]["items"] == {
        "$ref": "#/components/schemas/FieldError"}
    assert set(schemas["FieldError"]["properties"]) == {"loc", "msg", "type"}


def test_no_model_and_no_operation_id_is_declared_twice(document: dict[str, Any]) -> None:
    # The document built from the code, as `python -m scripts.openapi` prints it, with the conflicts it reports.
    built = subprocess.run([sys.executable, "-m", "scripts.openapi"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout) == document, "the gateway serves the document the code declares"
    assert operation_clashes(document) == []


def test_unreferenced_models_and_internal_routes_are_left_out(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas) == referenced_schemas(document)
    assert not {"Event", "EventPage", "HTTPValidationError", "ValidationError"} & set(schemas)
    paths = set(document["paths"])
    assert not [p for p in paths if "/internal/" in p or p.endswith(("/metrics", "/openapi.json"))]
    # Each service's probes and vocabularies are reached through the gateway's own routes.
    assert {"/healthz", "/readyz", "/v1/vocabularies"} <= paths
    assert not [p for p in paths if p.count("/") >= 2 and p.split("/", 2)[2] in ("healthz", "readyz",
                                                                                 "v1/vocabularies")]


def test_operation_ids_are_unprefixed_lower_camel_case_and_unique(document: dict[str, Any]) -> None:
    ids = [operation.get("operationId", "") for _, _, operation in operations(document)]
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", name) for name in ids), ids
    assert len(ids) == len(set(ids))
    assert {"createCase", "getCase", "createChild", "getChild", "listVocabularies", "listIndicators"} <= set(ids)


def test_every_error_answer_is_a_problem(document: dict[str, Any]) -> None:
    wrong = [f"{method} {path} {status}" for method, path, operation in operations(document)
             for status, response in operation["responses"].items()
             if status[0] in "45" and response.get("content") != PROBLEM_CONTENT]
    assert not wrong, f"errors not declared as application/problem+json Problem: {wrong}"


def test_every_proxied_route_declares_what_the_gateway_answers(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        if path.split("/")[1] in ("registry", "cases", "reporting"):
            assert {"429", "503"} <= set(operation["responses"]), f"{method} {path}"
            assert ("413" in operation["responses"]) == ("requestBody" in operation) or method == "GET", \
                f"{method} {path}: 413 exactly on the routes that take a body"


def test_no_get_promises_413(document: dict[str, Any]) -> None:
    offenders = {operation["operationId"]: f"GET {path}" for method, path, operation in operations(document)
                 if method == "GET" and "413" in operation["responses"]}
    new = {name: where for name, where in offenders.items() if name not in KNOWN_413_ON_GET}
    assert not new, f"a GET promises 413 (declare problem_responses(...) of what it returns): {new}"
    fixed = set(KNOWN_413_ON_GET) - set(offenders)
    assert not fixed, f"fixed, remove from KNOWN_413_ON_GET: {sorted(fixed)}"


def test_every_success_with_a_body_declares_its_media_type(document: dict[str, Any]) -> None:
    untyped = {operation["operationId"]: f"{method} {path} {status}" for method, path, operation in operations(document)
               for status, response in operation["responses"].items()
               if status.startswith("2") and status != "204" and not response.get("content")}
    new = {name: where for name, where in untyped.items() if name not in KNOWN_UNTYPED_ANSWERS}
    assert not new, f"answers without a media type (declare response_class or responses={{200: {{content}}}}): {new}"
    fixed = set(KNOWN_UNTYPED_ANSWERS) - set(untyped)
    assert not fixed, f"fixed, remove from KNOWN_UNTYPED_ANSWERS: {sorted(fixed)}"


def sample_path(path: str) -> str:
    values = {"action": "begin_assessment", "period": "2025", "code": "01"}
    return re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1), str(uuid.uuid4())), path)


async def test_routes_that_need_a_token_declare_401_and_answer_it_without_one(api: Api,
                                                                             document: dict[str, Any]) -> None:
    secured, public = [], []
    for method, path, operation in operations(document):
        if operation.get("security"):
            assert "401" in operation["responses"], f"{method} {path} needs a token and must declare 401"
            secured.append((method, path))
        else:
            public.append((method, path))
    assert len(secured) > 30
    for method, path in secured:
        response = await api.client.request(method, sample_path(path))
        assert response.status_code == 401, f"{method} {path}: {response.status_code}"
        assert response.headers["content-type"].startswith("application/problem+json")
    # A route declared without a token must not ask for one.
    for method, path in public:
        response = await api.client.request(method, sample_path(path))
        assert response.status_code != 401, f"{method} {path} answers 401 but declares no security"


# --- the merge itself, on small documents -----------------------------------------------------------------------


def service_doc(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths,
            "components": {"schemas": schemas}}


def op(operation_id: str, response_ref: str | None = None, body: bool = False) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{response_ref}"}}} if response_ref \
        else {}
    operation: dict[str, Any] = {"operationId": operation_id, "tags": ["t"],
                                 "responses": {"200": {"description": "ok", "content": content}}}
    if body:
        operation["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
    return operation


PROBLEM = {"type": "object", "properties": {"errors": {"items": {"$ref": "#/components/schemas/FieldError"}}}}
FIELD_ERROR = {"type": "object", "properties": {"loc": {}, "msg": {}, "type": {}}}


def test_merge_keeps_one_copy_of_a_shared_model_and_renames_a_different_one_loudly() -> None:
    gateway = service_doc({"/auth/me": {"get": op("me", "Problem")}},
                          {"Problem": PROBLEM, "FieldError": FIELD_ERROR})
    cases = service_doc(
        {"/v1/cases": {"post": op("createCase", "Holder", body=True)},
         "/internal/v1/events": {"get": op("listEvents", "EventPage")},
         "/healthz": {"get": op("healthz")}},
        {"Problem": PROBLEM, "FieldError": FIELD_ERROR, "EventPage": {"type": "object"},
         "Agency": {"enum": ["police"]}, "Holder": {"properties": {"a": {"$ref": "#/components/schemas/Agency"}}}})
    registry = service_doc({"/v1/children": {"get": op("listChildren", "Agency")}},
                           {"Problem": PROBLEM, "FieldError": FIELD_ERROR, "Agency": {"enum": ["health"]}})
    combined = combine(gateway, {"cases": cases, "registry": registry})
    schemas = combined.document["components"]["schemas"]
    assert sorted(schemas) == ["Agency", "FieldError", "Holder", "Problem", "RegistryAgency"]
    assert combined.renamed_schemas == [
        "registry model 'Agency' differs from another service's; published as 'RegistryAgency': rename it"]
    listed = combined.document["paths"]["/registry/v1/children"]["get"]
    assert listed["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/RegistryAgency")
    assert set(combined.document["paths"]) == {"/auth/me", "/cases/v1/cases", "/registry/v1/children"}
    created = combined.document["paths"]["/cases/v1/cases"]["post"]
    assert {"413", "429", "503"} <= set(created["responses"]) and "413" not in listed["responses"]
    assert created["tags"] == ["cases: t"]


def test_a_model_referring_to_a_renamed_model_is_renamed_too() -> None:
    holder = {"properties": {"a": {"$ref": "#/components/schemas/Agency"}}}
    first = service_doc({"/a": {"get": op("getA", "Holder")}}, {"Holder": holder, "Agency": {"enum": ["x"]}})
    second = service_doc({"/b": {"get": op("getB", "Holder")}}, {"Holder": holder, "Agency": {"enum": ["y"]}})
    combined = combine(service_doc({}, {}), {"cases": first, "registry": second})
    schemas = combined.document["components"]["schemas"]
    assert schemas["RegistryHolder"] == {"properties": {"a": {"$ref": "#/components/schemas/RegistryAgency"}}}
    assert len(combined.renamed_schemas) == 2


def test_an_operation_id_clash_names_both_routes() -> None:
    cases = service_doc({"/v1/things": {"get": op("listThings")}}, {})
    registry = service_doc({"/v1/things": {"get": op("listThings")}}, {})
    combined = combine(service_doc({}, {}), {"cases": cases, "registry": registry})
    assert combined.operation_clashes == [
        "operationId 'listThings' is used by GET /cases/v1/things and GET /registry/v1/things: "
        "rename one route function"]


def test_every_workflow_action_is_an_operation_with_its_form_as_a_named_body(document: dict[str, Any]) -> None:
    """Generated from `workflow.TRANSITIONS`: a change of the table is a change of these operations."""
    for step in workflow.TRANSITIONS:
        operation = document["paths"][f"/cases/v1/cases/{{case_id}}/actions/{step.action}"]["post"]
        assert operation["operationId"] == f"takeAction{camel(step.action)}"
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert f"#/components/schemas/{step.form.__name__}" in refs(body), step.action
        assert operation["security"] == [{"HTTPBearer": [step.permission.value]}]
        assert {"401", "403", "404", "409", "412", "422", "428"} <= set(operation["responses"])
        assert "If-Match" in {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert "/cases/v1/cases/{case_id}/actions/{action}" not in document["paths"]
