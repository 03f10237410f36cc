"""Cursor pagination: opaque, stable under inserts, never an OFFSET scan."""

import base64
from collections.abc import Sequence
from functools import cache
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from services.common.errors import BadRequest

T = TypeVar("T")
MAX_PAGE_SIZE = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null at the end.")


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values, default=str)).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int, types: Sequence[Any] = ()) -> list[Any] | None:
    """The values of a cursor from `encode_cursor`, or None for the first page.

    A cursor is client input: give `types` (for example `(datetime, uuid.UUID)`) to have each value checked and
    converted, so that a tampered value answers 400 instead of failing inside the query.
    """
    if not cursor:
        return None
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise BadRequest("the cursor is not valid") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise BadRequest("the cursor is not valid")
    if types:
        try:
            return [_adapter(kind).validate_python(value) for kind, value in zip(types, values, strict=True)]
        except ValidationError as exc:
            raise BadRequest("the cursor is not valid") from exc
    return values


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)
