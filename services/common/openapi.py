"""What every service's OpenAPI document shares, so a generated client can use it: stable operationIds taken
from the route functions' names (`create_case` becomes `createCase`), every error declared as a `Problem` in
`application/problem+json` (FastAPI declares its own 422 shape and puts error models under application/json), 401
declared on every route that needs a token, and 400 on every route of an app that refuses unknown query
parameters."""

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from services.common.errors import PROBLEM_DESCRIPTIONS, FieldError, Problem

PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_JSON = "application/problem+json"


def operation_id(route: APIRoute) -> str:
    """The operationId of a route: its function name in lowerCamelCase. Names are unique per document (a test checks
    the combined one), and renaming a route function changes the client API, so it is a deliberate act."""
    head, *rest = route.name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def use_problem_details(app: FastAPI, *, refuses_unknown_query: bool = False) -> None:
    """Post-process the app's OpenAPI document once: errors as problem+json `Problem`s. `refuses_unknown_query`:
    the app answers 400 to an unknown query parameter on any route (services/common/parameters.py), so every
    operation declares 400."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            rewrite_error_responses(schema, every_operation=(400,) if refuses_unknown_query else ())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def rewrite_error_responses(schema: dict[str, Any], every_operation: tuple[int, ...] = ()) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    uses_problem = False
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            if operation.get("security") and "401" not in responses:
                responses["401"] = {"description": PROBLEM_DESCRIPTIONS[401]}
            for status in every_operation:
                responses.setdefault(str(status), {"description": PROBLEM_DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status[:1] not in ("4", "5"):
                    continue
                content = response.setdefault("content", {})
                content.pop("application/json", None)
                content[PROBLEM_JSON] = {"schema": {"$ref": PROBLEM_REF}}
                uses_problem = True
    if uses_problem:
        # Always the kit's own rendering, whether FastAPI rendered the models for a route's `responses=` or not:
        # every service's document then holds the same two schemas, which the gateway merges into one.
        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}",
                                                          mode="serialization")
        components["Problem"].pop("$defs", None)
        components["FieldError"] = FieldError.model_json_schema(mode="serialization")
    # FastAPI's own validation shapes are replaced by Problem everywhere.
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
