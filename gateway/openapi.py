"""One OpenAPI document for the whole system, as a client generator needs it: the gateway's own routes plus every
service's public routes under its prefix (`/cases/v1/cases`), one schema per model name, nothing unreferenced.

- Models that several services share (the kit's `Problem`, `FieldError`, `Page_*`, vocabularies) appear once. A
  model whose name another service already uses for a different shape is kept under a prefixed name
  (`CasesAgency`) so the document stays valid, and the clash is reported: a test fails on it, and the owner renames
  the model.
- operationIds are the route functions' names (`createCase`), never prefixed: a clash is reported the same way and
  fixed by renaming a function.
- What clients never call through the gateway is left out: internal routes between services, each service's
  probes, and each service's `/v1/vocabularies` (the gateway serves them merged). Models only those used go too.
- The answers the gateway itself gives on every proxied route are declared there: 429 (rate limits), 503 (the
  service is down) and, on routes that take a body, 413.
"""

import asyncio
import copy
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.common.errors import PROBLEM_DESCRIPTIONS
from services.common.logging import get_logger
from services.common.openapi import PROBLEM_JSON, PROBLEM_REF

logger = get_logger("openapi")
SCHEMA_PREFIX = "#/components/schemas/"
SERVICE_DOC_TIMEOUT = 15.0
_REF = re.compile(r"^#/components/schemas/([A-Za-z0-9_.\-]+)$")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Paths of a service that clients never reach through the gateway, or reach through the gateway's own route.
SERVICE_ONLY_PREFIXES = ("/internal/",)
SERVICE_ONLY_PATHS = frozenset({"/healthz", "/readyz", "/v1/vocabularies"})
GATEWAY_ANSWERS = (429, 503)  # on every proxied route; 413 too on those that take a body


@dataclass
class Combined:
    document: dict[str, Any]
    renamed_schemas: list[str] = field(default_factory=list)  # "cases Agency -> CasesAgency"
    operation_clashes: list[str] = field(default_factory=list)

    @property
    def conflicts(self) -> list[str]:
        return [*self.renamed_schemas, *self.operation_clashes]


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if not renames:
        return node
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and (match := _REF.match(value)):
                result[key] = SCHEMA_PREFIX + renames.get(match.group(1), match.group(1))
            else:
                result[key] = _rename_refs(value, renames)
        return result
    if isinstance(node, list):
        return [_rename_refs(item, renames) for item in node]
    return node


def _free_name(service: str, name: str, taken: dict[str, Any]) -> str:
    candidate = f"{service.capitalize()}{name}"
    number = 2
    while candidate in taken:
        candidate, number = f"{service.capitalize()}{name}{number}", number + 1
    return candidate


def _schema_renames(service: str, theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, str]:
    """The names of `theirs` that must change because `ours` holds a different model under the same name. Repeated
    until nothing changes: a model identical in text but referring to a renamed one differs too."""
    renames: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for name, schema in theirs.items():
            if name in renames or name not in ours:
                continue
            if _rename_refs(schema, renames) != ours[name]:
                renames[name] = _free_name(service, name, ours | dict.fromkeys(renames.values()))
                changed = True
    return renames


def _public_paths(doc: dict[str, Any]) -> dict[str, Any]:
    return {path: item for path, item in doc.get("paths", {}).items()
            if path not in SERVICE_ONLY_PATHS and not path.startswith(SERVICE_ONLY_PREFIXES)}


def _operations(paths: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, item in paths.items() for method, operation in item.items()
            if method in HTTP_METHODS and isinstance(operation, dict)]


def _declare_gateway_answers(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    statuses = [*GATEWAY_ANSWERS, *((413,) if "requestBody" in operation else ())]
    for status in statuses:
        responses.setdefault(str(status), {"description": PROBLEM_DESCRIPTIONS[status],
                                           "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}})


def referenced_schemas(document: dict[str, Any]) -> set[str]:
    """The component schemas reachable from anything outside `components.schemas` (paths, other components)."""
    schemas = document.get("components", {}).get("schemas", {})
    roots = {key: value for key, value in document.items() if key != "components"}
    roots["components"] = {key: value for key, value in document.get("components", {}).items() if key != "schemas"}
    seen: set[str] = set()
    pending: list[Any] = [roots]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and (match := _REF.match(ref)) and match.group(1) not in seen:
                seen.add(match.group(1))
                pending.append(schemas.get(match.group(1)))
            pending.extend(value for key, value in node.items() if key != "$ref")
        elif isinstance(node, list):
            pending.extend(node)
    return seen


def operation_clashes(document: dict[str, Any]) -> list[str]:
    """Each operationId used by more than one route, naming every route that uses it."""
    routes: dict[str, list[str]] = {}
    for method, path, operation in _operations(document.get("paths", {})):
        routes.setdefault(operation.get("operationId", ""), []).append(f"{method.upper()} {path}")
    return [f"operationId {name!r} is used by {' and '.join(where)}: rename one route function"
            for name, where in sorted(routes.items()) if len(where) > 1]


def combine(gateway_doc: dict[str, Any], service_docs: dict[str, dict[str, Any]]) -> Combined:
    document = copy.deepcopy(gateway_doc)
    document["info"] = {**document.get("info", {}), "title": "Child protection API"}
    paths: dict[str, Any] = document.setdefault("paths", {})
    components = document.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    security_schemes: dict[str, Any] = components.get("securitySchemes", {})
    renamed: list[str] = []
    for service, doc in service_docs.items():
        theirs = doc.get("components", {}).get("schemas", {})
        renames = _schema_renames(service, theirs, schemas)
        renamed += [f"{service} model {old!r} differs from another service's; published as {new!r}: rename it"
                    for old, new in renames.items()]
        for name, schema in theirs.items():
            schemas.setdefault(renames.get(name, name), _rename_refs(copy.deepcopy(schema), renames))
        for path, item in _public_paths(doc).items():
            item = _rename_refs(copy.deepcopy(item), renames)
            for _, _, operation in _operations({path: item}):
                operation["tags"] = [f"{service}: {tag}" for tag in operation.get("tags", ["default"])]
                _declare_gateway_answers(operation)
            paths[f"/{service}{path}"] = item
        for name, scheme in doc.get("components", {}).get("securitySchemes", {}).items():
            security_schemes.setdefault(name, scheme)
    if security_schemes:
        components["securitySchemes"] = security_schemes
    reachable = referenced_schemas(document)
    components["schemas"] = {name: schema for name, schema in sorted(schemas.items()) if name in reachable}
    return Combined(document, renamed, operation_clashes(document))


def merge(gateway_doc: dict[str, Any], service_docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The combined document the gateway serves; conflicts are logged (and fail the contract tests)."""
    combined = combine(gateway_doc, service_docs)
    for conflict in combined.conflicts:
        logger.warning("openapi conflict", extra={"conflict": conflict})
    return combined.document


async def fetch_service_docs(client: httpx.AsyncClient, upstreams: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every service's own document, fetched at once. A service builds it on first request, which takes seconds on
    a loaded machine: the bound is generous, and a service that misses it is left out and asked again next time."""

    async def fetch(service: str, url: str) -> tuple[str, dict[str, Any] | None]:
        try:
            response = await client.get(f"{url}/openapi.json", timeout=SERVICE_DOC_TIMEOUT)
            response.raise_for_status()
            return service, response.json()
        except httpx.HTTPError as exc:
            logger.warning("service openapi unavailable", extra={"upstream": service,
                                                                   "error_type": type(exc).__name__})
            return service, None

    fetched = await asyncio.gather(*(fetch(service, url) for service, url in upstreams.items()))
    return {service: doc for service, doc in fetched if doc is not None}
