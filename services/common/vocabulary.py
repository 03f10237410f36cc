"""Code lists with their labels in Vietnamese and English, served to the frontends (`GET /v1/vocabularies`).

Every closed list a screen shows (case states, abuse forms, the 14 groups of Law Art. 10, ethnicities, ...) is a
`Vocabulary`: its codes travel in the API, events and statistics; its labels are what a person reads. Each service
declares its own and serves them; the gateway merges them. `from_enum` refuses a list whose labels miss a code, so
a new value cannot reach a screen unlabelled.
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from services.common.preconditions import conditional


@dataclass(frozen=True)
class Term:
    code: str
    vi: str
    en: str
    extra: Mapping[str, str] = field(default_factory=dict)  # for example the letter of a group, an official code


@dataclass(frozen=True)
class Vocabulary:
    name: str
    vi: str
    en: str
    terms: tuple[Term, ...]
    source: str = ""

    def label(self, code: str, language: str = "vi") -> str:
        term = next((t for t in self.terms if t.code == code), None)
        if term is None:
            return code
        return term.vi if language == "vi" else term.en


def from_enum(name: str, enum: type[StrEnum], labels: Mapping[str, tuple[str, str]], *, vi: str, en: str,
              source: str = "", extra: Mapping[str, Mapping[str, str]] | None = None) -> Vocabulary:
    """A vocabulary of every member of `enum`, in its order; `labels` maps each code to (vi, en)."""
    codes = [member.value for member in enum]
    missing, unknown = set(codes) - set(labels), set(labels) - set(codes)
    if missing or unknown:
        raise ValueError(f"vocabulary {name}: unlabelled codes {sorted(missing)}, unknown codes {sorted(unknown)}")
    extra = extra or {}
    return Vocabulary(name, vi, en, tuple(Term(c, labels[c][0], labels[c][1], extra.get(c, {})) for c in codes),
                      source)


class TermRead(BaseModel):
    code: str
    vi: str = Field(description="Nhãn tiếng Việt")
    en: str = Field(description="English label")
    extra: dict[str, str] = Field(default_factory=dict)


class VocabularyRead(BaseModel):
    name: str
    vi: str
    en: str
    source: str
    terms: list[TermRead]


class Vocabularies(BaseModel):
    vocabularies: list[VocabularyRead]


def render(vocabularies: Sequence[Vocabulary]) -> bytes:
    return orjson.dumps({"vocabularies": [
        {"name": v.name, "vi": v.vi, "en": v.en, "source": v.source,
         "terms": [{"code": t.code, "vi": t.vi, "en": t.en, "extra": dict(t.extra)} for t in v.terms]}
        for v in vocabularies
    ]})


def body_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


NOT_MODIFIED = {304: {"description": "Not modified: the lists you hold (If-None-Match) are current"}}


def vocabularies_response(request: Request, body: bytes, current: str) -> Response:
    """The lists (`render`ed) as public JSON that may be cached five minutes; 304 when If-None-Match is current."""
    headers = {"ETag": current, "Cache-Control": "public, max-age=300"}
    unchanged = conditional(request, current)
    if unchanged is not None:
        unchanged.headers.update(headers)
        return unchanged
    return Response(body, media_type="application/json", headers=headers)


def vocabularies_router(vocabularies: Sequence[Vocabulary]) -> APIRouter:
    """`GET /v1/vocabularies`: public (labels are not personal data), cacheable, 304 on a matching ETag."""
    names = [v.name for v in vocabularies]
    if len(set(names)) != len(names):
        raise ValueError("vocabulary names must be unique")
    body = render(vocabularies)
    current = body_etag(body)
    router = APIRouter(prefix="/v1", tags=["vocabularies"])

    @router.get("/vocabularies", response_model=Vocabularies, responses=NOT_MODIFIED,
                summary="Code lists with their Vietnamese and English labels")
    async def list_vocabularies(request: Request) -> Response:
        return vocabularies_response(request, body, current)

    return router
