"""The kit's share of the client contract: unknown query parameters refused, errors declared as problem+json
`Problem`s with 401 on token routes, operationIds from route names, conditional requests, keyset cursors."""

import base64
import uuid
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response

from services.common.auth import current_subject
from services.common.errors import (
    BadRequest,
    PreconditionFailed,
    PreconditionRequired,
    install_error_handlers,
    problem_responses,
)
from services.common.openapi import operation_id, use_problem_details
from services.common.pagination import CursorInt, CursorText, decode_cursor, encode_cursor
from services.common.parameters import reject_unknown_query_parameters
from services.common.preconditions import conditional, etag, require_match


def build_app() -> FastAPI:
    app = FastAPI(generate_unique_id_function=operation_id, dependencies=[Depends(reject_unknown_query_parameters)])
    install_error_handlers(app)
    use_problem_details(app)
    router = APIRouter(prefix="/v1")

    @router.get("/cases")
    async def list_cases(state: str | None = None, limit: Annotated[int, Query(ge=1, le=10)] = 5) -> dict[str, str]:
        return {"state": state or "", "limit": str(limit)}

    @router.get("/cases/{case_id}")
    async def get_case(request: Request, case_id: uuid.UUID,
                       subject: Annotated[object, Depends(current_subject)]) -> Response:
        return conditional(request, etag(3)) or Response("{}", media_type="application/json",
                                                          headers={"ETag": etag(3)})

    app.include_router(router)
    return app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_unknown_query_parameters_are_refused_with_their_names(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/cases", params={"state": "open", "limit": 3})).status_code == 200
    response = await client.get("/v1/cases", params={"status": "open"})  # a misspelt filter
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"] == [{"loc": ["query", "status"], "msg": "not a parameter of this route",
                                          "type": "unknown_parameter"}]


def test_errors_are_problems_in_problem_json_and_token_routes_declare_401() -> None:
    document = build_app().openapi()
    operations = {op["operationId"]: op for item in document["paths"].values() for op in item.values()}
    assert set(operations) == {"listCases", "getCase"}
    invalid = operations["listCases"]["responses"]["422"]["content"]
    assert invalid == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert "401" in operations["getCase"]["responses"] and "401" not in operations["listCases"]["responses"]
    schemas = document["components"]["schemas"]
    assert "Problem" in schemas and "HTTPValidationError" not in schemas and "ValidationError" not in schemas


def test_if_match_is_required_and_must_name_the_current_version() -> None:
    with pytest.raises(PreconditionRequired):
        require_match(None, etag(3))
    with pytest.raises(PreconditionFailed) as stale:
        require_match('"2"', etag(3))
    assert stale.value.extra["current_etag"] == '"3"'
    require_match('W/"3", "4"', etag(3))


@pytest.mark.parametrize("raw", [b'["abc"]', b"[null]", b"[1e30]", b"[1180591620717411303424]", b"[1", b"{}"])
def test_crafted_integer_cursors_are_bad_requests(raw: bytes) -> None:
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with pytest.raises(BadRequest):
        decode_cursor(cursor, 1, (CursorInt,))


def test_text_cursors_refuse_control_characters() -> None:
    with pytest.raises(BadRequest):
        decode_cursor(encode_cursor(["Nguy\x00n"]), 1, (CursorText,))
    assert decode_cursor(encode_cursor(["Nguyễn"]), 1, (CursorText,)) == ["Nguyễn"]


def test_problem_responses_refuses_a_description_of_a_status_it_does_not_declare() -> None:
    assert set(problem_responses(404, 409, s409="Merged")) == {404, 409}
    with pytest.raises(TypeError, match="s200"):
        problem_responses(401, 404, s200="A retry: the first answer")
