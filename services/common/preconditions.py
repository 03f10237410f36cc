"""Conditional requests (RFC 9110 section 13): one ETag rule for every versioned record.

A change needs `If-Match` with the ETag the client read (428 without it, 412 with the current ETag when stale), so
two officers editing at once, or a phone replaying offline work, never overwrite each other unseen. A read with a
matching `If-None-Match` answers 304 without a body.
"""

from collections.abc import Iterable
from typing import Annotated

from fastapi import Header, Request, Response

from services.common.errors import PreconditionFailed, PreconditionRequired

IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=200,
                                       description="The ETag of the version you read; required for changes.")]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=200,
                                           description="An ETag you hold; 304 if it is still current.")]


def etag(*parts: object) -> str:
    """A strong ETag from the parts that identify a version (for example a record's version number)."""
    return '"' + ".".join(str(part) for part in parts) + '"'


def _tags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def require_sent(if_match: str | None, *, what: str = "record") -> None:
    """428 at once when a change comes without If-Match: before any lock is taken or any other service called."""
    if not if_match:
        raise PreconditionRequired(f"send If-Match with the ETag of the {what} you read")


def require_match(if_match: str | None, current: str, *, what: str = "record", location: str | None = None) -> None:
    """Refuse a change made without, or against an old, version of the record. The 412 names the current version
    (`current_etag`) and, given the record's path through the gateway (`location`), links to it (`current`): an
    offline client reads it there, merges its own change in and sends it again with the new ETag."""
    require_sent(if_match, what=what)
    tags = _tags(if_match or "")
    if "*" not in tags and current not in tags:
        raise PreconditionFailed(f"the {what} changed since you read it; read it again", current_etag=current,
                                 **({"current": location} if location else {}))


def not_modified(if_none_match: str | None, current: str) -> bool:
    if not if_none_match:
        return False
    tags = _tags(if_none_match)
    return "*" in tags or current in tags


def not_modified_response(current: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status_code=304, headers={"ETag": current, **dict(headers)})


def conditional(request: Request, current: str) -> Response | None:
    """A 304 when the client's `If-None-Match` names the current version, else None (send the body)."""
    if not_modified(request.headers.get("if-none-match"), current):
        return not_modified_response(current)
    return None
