"""A small app on the kit's error handlers and request middleware, with routes that fail in every way a real one
can. Names and phone numbers here are made up and distinctive, so a test can look for them anywhere."""

from typing import Annotated

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field

from services.common.errors import Conflict, InvalidTransition, Unauthorized, install_error_handlers
from services.common.http import RequestContextMiddleware
from services.common.pagination import Page, decode_cursor, encode_cursor

NAME = "Nguyễn Thị Bích Ngọc"
PHONE = "0987654321"


class PersonCreate(BaseModel):
    full_name: str = Field(max_length=30)
    phone: str = Field(pattern=r"^0\d{9}$")
    age: int = Field(ge=0, le=17)


class PersonRead(BaseModel):
    id: int
    full_name: str


def build_sample_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.post("/people", status_code=201)
    async def create_person(body: PersonCreate) -> PersonRead:
        return PersonRead(id=1, full_name=body.full_name)

    @app.get("/people")
    async def list_people(cursor: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=50)] = 2) -> Page[PersonRead]:
        after = decode_cursor(cursor, 2, (str, int))
        start = after[1] if after else 0
        people = [PersonRead(id=n, full_name=f"Person {n}") for n in range(start + 1, start + 1 + limit)]
        return Page(items=people, next_cursor=encode_cursor(["person", people[-1].id]))

    @app.get("/people/{person_id}")
    async def read_person(person_id: int) -> PersonRead:
        return PersonRead(id=person_id, full_name="Someone")

    @app.get("/people/{phone}/explode")
    async def explode(phone: str, q: str | None = None) -> None:
        raise RuntimeError(f"cannot read the record of {q} ({phone})")

    @app.post("/duplicates")
    async def duplicate() -> None:
        raise Conflict("a child with these details may already exist", candidates=[{"id": "c-1", "score": 0.9}])

    @app.post("/cases/close")
    async def close_case() -> None:
        raise InvalidTransition("a case under assessment cannot be closed", state="assessment", action="close",
                                status="open", title="not the title")

    @app.get("/private")
    async def private() -> None:
        raise Unauthorized("the token has expired")

    @app.get("/framework-error")
    async def framework_error() -> None:
        raise HTTPException(status_code=403, detail="not for you")

    return app
