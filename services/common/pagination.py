"""Cursor pagination: opaque, stable under inserts, never an OFFSET scan."""

import base64
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, Field

from services.common.errors import BadRequest

T = TypeVar("T")
MAX_PAGE_SIZE = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null at the end.")


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values, default=str)).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    if not cursor:
        return None
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise BadRequest("the cursor is not valid") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise BadRequest("the cursor is not valid")
    return values
