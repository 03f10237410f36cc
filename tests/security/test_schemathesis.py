"""Schemathesis against every service's OpenAPI document, through the gateway, with real tokens of several roles.

Each operation of the combined document (`/openapi.json` at the gateway) is called with data that fits its schema
as each role, and with data that does not as the roles that get past its role check. Every answer must be below 500
and conform to the document: a documented status code, a documented content type, a body that matches the
documented schema. The run is bounded for CI: a few examples per operation, mode and role, derandomized (the same
cases on every run), no shrinking, no example database. Set SECURITY_FUZZ_EXAMPLES for a longer run.

Operations left out: sign-in, refresh and logout (random passwords would lock the demo accounts, random refresh
tokens exercise nothing that tests/gateway/test_tokens.py does not), and the signing-key rotation.
"""

import os
from collections import defaultdict
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.openapi import SERVICE_ONLY_PATHS, SERVICE_ONLY_PREFIXES
from scripts.stack import Stack
from tests.helpers import Api

ROLES = ("child_protection_officer", "commune_chairman", "hotline_operator", "health_officer", "police_officer",
         "province_statistician")
EXCLUDED = {("POST", "/auth/token"), ("POST", "/auth/refresh"), ("POST", "/auth/logout"),
            ("POST", "/admin/v1/keys/rotate")}
# Invalid data must get past the role check to reach validation, which is the same for every role: the commune
# officer reaches every registry and cases route, the statistician every reporting route.
NEGATIVE_ROLES = ("child_protection_officer", "province_statistician")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("SECURITY_FUZZ_EXAMPLES", "4"))
PARTS = {"gateway": ("/auth/", "/admin/", "/.well-known/", "/healthz", "/readyz", "/v1/"), "registry": ("/registry/",),
         "cases": ("/cases/",), "reporting": ("/reporting/",)}


@pytest.fixture(scope="session")
def combined_schema(stack: Stack) -> BaseSchema:
    document = httpx.get(f"{stack.url('gateway')}/openapi.json", timeout=30).json()
    return schemathesis.openapi.from_dict(document, config=SchemathesisConfig())


@pytest.fixture(scope="session")
async def role_headers(api: Api) -> dict[str, dict[str, str]]:
    return {role: await api.as_demo(role) for role in ROLES}


def fuzz(operation: Any, mode: GenerationMode, base_url: str, role: str, headers: dict[str, str],
         session: requests.Session, findings: dict[str, set[str]]) -> int:
    """Call one operation with generated cases; record what fails. Returns the number of calls."""
    calls = 0

    # The token is fixed: negative generation would otherwise replace it and test only the 401 path.
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    def run(case: Any) -> None:
        nonlocal calls
        calls += 1
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except BaseExceptionGroup as group:
            for failure in group.exceptions:
                lines = [*str(getattr(failure, "message", "")).splitlines(), "", ""]
                detail = f"{type(failure).__name__}: {lines[0]} {lines[1]}".strip()
                findings[f"{operation.method.upper()} {operation.path}: {detail}"].add(
                    f"as {role}, {mode.value} data, e.g. {response.status_code} {case.as_curl_command()[:240]}")

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters or body has no invalid input to make; its valid calls ran.
        if mode is GenerationMode.POSITIVE:
            raise
    return calls


@pytest.mark.parametrize("part", ["gateway", "registry", "cases", "reporting"])
def test_every_answer_conforms_to_the_documents(part: str, combined_schema: BaseSchema,
                                                role_headers: dict[str, dict[str, str]], stack: Stack) -> None:
    findings: dict[str, set[str]] = defaultdict(set)
    operations = [result.ok() for result in combined_schema.get_all_operations()]
    selected = [op for op in operations if op.path.startswith(PARTS[part])
                and (op.method.upper(), op.path) not in EXCLUDED]
    assert selected, part
    calls = 0
    with requests.Session() as session:
        for role, headers in role_headers.items():
            for operation in selected:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:2 if role in NEGATIVE_ROLES else 1]:
                    calls += fuzz(operation, mode, stack.url("gateway"), role, headers, session, findings)
    assert calls >= len(selected) * len(ROLES)
    report = "\n".join(f"{what}\n    {sorted(cases)[0]}" for what, cases in sorted(findings.items()))
    assert not findings, f"{len(findings)} kinds of non-conforming answers in {calls} calls:\n{report}"


@pytest.mark.parametrize("service", ["registry", "cases", "reporting"])
def test_the_fuzzed_document_covers_every_service_operation(service: str, combined_schema: BaseSchema,
                                                            stack: Stack) -> None:
    """The combined document is what is fuzzed: it must hold every public operation of each service's own one (its
    probes and vocabularies are the gateway's own routes there)."""
    own = httpx.get(f"{stack.url('gateway')}/{service}/openapi.json", timeout=30).json()
    expected = {(method.upper(), f"/{service}{path}") for path, item in own["paths"].items()
                if not path.startswith(SERVICE_ONLY_PREFIXES) and path not in SERVICE_ONLY_PATHS
                for method in item if method != "parameters"}
    fuzzed = {(op.method.upper(), op.path) for op in (r.ok() for r in combined_schema.get_all_operations())}
    assert expected and expected <= fuzzed
