"""Cursor pagination: opaque, stable under inserts, never an OFFSET scan. One contract for every list.

A list route takes `cursor` and `limit` and answers a `Page` whose `next_cursor` is null at the end. `Keyset` does
the whole job for a query ordered by a few columns: it decodes the client's cursor (400 when tampered), adds the
"after this row" condition and the order, and cuts the page.
"""

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Generic, TypeVar

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, Select, tuple_

from services.common.errors import BadRequest

T = TypeVar("T")
MAX_PAGE_SIZE = 200
MAX_CURSOR_LENGTH = 1000


def _printable(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("control characters")
    return value


# The types a cursor value may have, each bounded so a crafted value fails here (400), not in the database (500).
CursorInt = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
CursorText = Annotated[str, Field(max_length=500), AfterValidator(_printable)]
CursorTime = AwareDatetime


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null at the end.")


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values, default=str)).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int, types: Sequence[Any] = ()) -> list[Any] | None:
    """The values of a cursor from `encode_cursor`, or None for the first page.

    A cursor is client input: give `types` (for example `(CursorTime, uuid.UUID)`) to have each value checked and
    converted, so that a tampered value answers 400 instead of failing inside the query.
    """
    if not cursor:
        return None
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadRequest("the cursor is not valid")
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise BadRequest("the cursor is not valid") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise BadRequest("the cursor is not valid")
    if types:
        try:
            return [_adapter(kind).validate_python(value) for kind, value in zip(types, values, strict=True)]
        except (ValidationError, ValueError, TypeError) as exc:
            raise BadRequest("the cursor is not valid") from exc
    return values


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


@dataclass(frozen=True)
class Keyset(Generic[T]):
    """Keyset paging over `columns` (all ascending or all descending), whose last one is unique.

    `types` bound the cursor's values (`CursorInt`, `CursorText`, `CursorTime`, `uuid.UUID`); `key` gives a row's
    values of those columns, in that order.
    """

    columns: tuple[ColumnElement[Any], ...]
    types: tuple[Any, ...]
    key: Callable[[T], Sequence[Any]]
    descending: bool = False

    def query(self, query: Select[Any], cursor: str | None, limit: int) -> Select[Any]:
        after = decode_cursor(cursor, len(self.columns), self.types)
        query = query.order_by(*(column.desc() if self.descending else column.asc() for column in self.columns))
        if after is not None:
            row, last = tuple_(*self.columns), tuple_(*after)
            query = query.where(row < last if self.descending else row > last)
        return query.limit(limit + 1)

    def page(self, rows: Sequence[T], limit: int) -> tuple[list[T], str | None]:
        """The rows of this page and the cursor of the next (None at the end); `rows` came from `query`."""
        if len(rows) <= limit:
            return list(rows), None
        kept = list(rows[:limit])
        return kept, encode_cursor([_cursor_value(v) for v in self.key(kept[-1])])


def _cursor_value(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
