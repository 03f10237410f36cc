"""Registry logic. Every read goes through `readable()`, the one place that filters by jurisdiction, and every
answer through `project()`, the one place that decides which fields a caller sees."""

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import orjson
from pydantic_core import to_jsonable_python
from sqlalchemy import Select, and_, delete, false, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.age import birth_month
from services.common.auth import Jurisdiction, Subject
from services.common.clock import utcnow
from services.common.db import Database, UnitOfWorkSession
from services.common.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    TooManyRequests,
    UnprocessableContent,
)
from services.common.links import public_path
from services.common.locations import province_of
from services.common.pagination import CursorInt, CursorText, Keyset
from services.common.permissions import Action, Agency, Role, Scope
from services.common.preconditions import etag as version_tag
from services.common.preconditions import require_match
from services.registry.cases import CasesClient
from services.registry.models import Child, ChildRevision, CreationRequest, MatchQuota, audit, outbox
from services.registry.reference import (
    BHYT_ENTITLED_UNDER_AGE,
    ascii_digits,
    given_name,
    id_number_disagreements,
    normalize_name,
    normalize_phone,
)
from services.registry.schemas import ChildCreate, ChildUpdate, DuplicateCandidate
from services.registry.vocabulary import ChildStatus

# A child is a person under 16 (Law on Children 2016, Art. 1).
CHILD_AGE_LIMIT = 16
VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")  # no daylight saving time
LOCK_TIMEOUT = "5s"
SYSTEM = Subject(id="registry:aged-out-check", role=Role.SERVICE, agency=Agency.SYSTEM,
                 jurisdiction=Jurisdiction(level="national"), token_id="")


def today() -> date:
    """The date in Vietnam now: ages and the aged-out check turn at local midnight."""
    return utcnow().astimezone(VIETNAM_TIME).date()


# --- who reaches which children -------------------------------------------------------------------------------


def access_scope(subject: Subject, action: Action) -> Scope | None:
    """The scope of `action` for this caller. Service accounts read children through `registry:service_read`."""
    if subject.is_service and action == Action.CHILD_READ:
        return subject.scope(Action.REGISTRY_SERVICE_READ)
    return subject.scope(action)


def readable(subject: Subject, action: Action = Action.CHILD_READ) -> Select[tuple[Child]]:
    """The children `subject` may take `action` on: every query of child records starts here."""
    query = select(Child)
    if access_scope(subject, action) in (Scope.JURISDICTION, Scope.INVOLVED, Scope.MATCH):
        return query.where(subject.jurisdiction.filter(Child.province_code, Child.commune_code))
    return query.where(false())


# --- what each caller sees -------------------------------------------------------------------------------------

CORE = ("id", "revision", "full_name", "sex", "date_of_birth", "date_of_birth_estimated", "age", "province_code",
        "commune_code", "status", "status_date")
FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "identity": ("ethnicity", "nationality", "personal_id", "address"),
    "birth_registration": ("birth_registered", "birth_registered_on", "birth_registration_commune_code",
                           "birth_certificate_number"),
    "guardians": ("guardians",),
    "school": ("school_name", "school_level", "school_grade", "school_status"),
    "health": ("health_insurance_number", "health_insurance_valid_from", "health_insurance_valid_until",
               "health_insurance_entitled", "disability", "disability_level"),
    "protection": ("special_groups", "at_risk", "at_risk_flags"),
    "record": ("merged_ids", "created_at", "updated_at"),
}
# An agency assigned to a case sees the core of the record and what its task needs (need-to-know, Decree 56
# Art. 33): health the health card and disability, education the school, justice the civil status, police the
# identity and the family.
INVOLVED_GROUPS: dict[Agency, tuple[str, ...]] = {
    Agency.HEALTH: ("health",),
    Agency.EDUCATION: ("school",),
    Agency.JUSTICE: ("identity", "birth_registration"),
    Agency.POLICE: ("identity", "guardians"),
}
MATCH_FIELDS = ("id", "full_name", "birth_year", "province_code", "commune_code")
ALL_FIELDS = CORE + tuple(field for group in FIELD_GROUPS.values() for field in group)


def visible_fields(subject: Subject, scope: Scope | None) -> tuple[str, ...]:
    if scope == Scope.JURISDICTION:
        return ALL_FIELDS
    if scope == Scope.INVOLVED:
        return CORE + tuple(f for g in INVOLVED_GROUPS.get(subject.agency, ()) for f in FIELD_GROUPS[g])
    if scope == Scope.MATCH:
        return MATCH_FIELDS
    return ()


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def sixteenth_birthday(born: date) -> date:
    """The day a child stops being one (Law Art. 1). Born on 29 February: 1 March of a common year."""
    try:
        return born.replace(year=born.year + CHILD_AGE_LIMIT)
    except ValueError:
        return date(born.year + CHILD_AGE_LIMIT, 3, 1)


def _derived(child: Child, day: date) -> dict[str, Any]:
    age = age_on(child.date_of_birth, day)
    return {"age": age, "birth_year": child.date_of_birth.year, "at_risk": bool(child.at_risk_flags),
            "health_insurance_entitled": age < BHYT_ENTITLED_UNDER_AGE}


def project(child: Child, subject: Subject, scope: Scope | None, *, merged_ids: list[uuid.UUID] | None = None,
            resolved_from: uuid.UUID | None = None, day: date | None = None) -> dict[str, Any]:
    """The one place that turns a record into what this caller may see (the fields of `ChildView`).

    A plain dict, serialised once by orjson: list pages are the hot path, and a model per child would be built and
    checked twice.
    """
    derived = _derived(child, day or today()) | {"merged_ids": merged_ids}
    values = {name: derived[name] if name in derived else getattr(child, name)
              for name in visible_fields(subject, scope)}
    if merged_ids is None:  # not looked up (list pages)
        values.pop("merged_ids", None)
    if resolved_from is not None:
        values["resolved_from"] = resolved_from
    return values


def etag(child: Child) -> str:
    return version_tag(child.id, child.revision)


# --- events ----------------------------------------------------------------------------------------------------


def snapshot(child: Child | SimpleNamespace) -> dict[str, Any]:
    """The statistical state of a child for the event feed (docs/events.md): no name, number, address or text."""
    return {
        "child_id": str(child.id),
        "revision": child.revision,
        "sex": child.sex,
        "birth_month": birth_month(child.date_of_birth),
        "province_code": child.province_code,
        "commune_code": child.commune_code,
        "status": child.status,
        "status_date": _iso(child.status_date),
        "birth_registered": child.birth_registered,
        "birth_registered_on": _iso(child.birth_registered_on),
        "health_insurance_valid_until": _iso(child.health_insurance_valid_until),
        "disability": child.disability,
        "special_groups": [{"group": g["group"], "start": g["start"], "end": g.get("end"),
                            "supported": bool(g.get("supported"))} for g in child.special_groups],
        "at_risk": bool(child.at_risk_flags),
    }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _statistics_changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return {k: v for k, v in before.items() if k != "revision"} != {k: v for k, v in after.items() if k != "revision"}


# --- validation across fields ----------------------------------------------------------------------------------


def _error(field: str, message: str, kind: str) -> dict[str, Any]:
    return FieldError(loc=["body", *field.split(".")], msg=message, type=kind).model_dump()


def _within(problems: list[dict[str, Any]], field: str, day: date | None, earliest: date, latest: date,
            what: str) -> None:
    if day is not None and not earliest <= day <= latest:
        problems.append(_error(field, f"must lie between {earliest.isoformat()} and {latest.isoformat()} ({what})",
                               "date.out_of_range"))


def check_record(child: Child | SimpleNamespace, day: date, registered_on: date) -> None:
    """Rules that involve several fields, each date within the range that makes sense for a child. 422 with one
    `FieldError` per problem.

    The child must have been under 16 when the record was made (`registered_on`; Law on Children Art. 1); a child
    who turns 16 later is marked aged out, not refused.
    """
    problems: list[dict[str, Any]] = []
    born = child.date_of_birth
    if born > day:
        problems.append(_error("date_of_birth", "is in the future", "date.future"))
    elif age_on(born, registered_on) >= CHILD_AGE_LIMIT:
        problems.append(_error("date_of_birth", "the person was 16 or older when registered: the registry keeps "
                                                "children under 16 (Law on Children 2016, Art. 1)",
                               "date_of_birth.over_age_limit"))
    if child.status == ChildStatus.AGED_OUT and born <= day and age_on(born, day) < CHILD_AGE_LIMIT:
        problems.append(_error("status", "a child under 16 is not aged out", "status.under_age_limit"))
    _within(problems, "birth_registered_on", child.birth_registered_on, born, day, "from birth to today")
    if child.birth_registered_on and not child.birth_registered:
        problems.append(_error("birth_registered_on", "is set but birth_registered is false", "value.inconsistent"))
    _within(problems, "health_insurance_valid_from", child.health_insurance_valid_from, born,
            day + timedelta(days=366), "from birth to a year ahead")
    _within(problems, "health_insurance_valid_until", child.health_insurance_valid_until, born,
            day + timedelta(days=3660), "from birth to ten years ahead")
    if (child.health_insurance_valid_from and child.health_insurance_valid_until
            and child.health_insurance_valid_until < child.health_insurance_valid_from):
        problems.append(_error("health_insurance_valid_until", "is before the start of validity", "date.order"))
    _within(problems, "status_date", child.status_date, born, day, "from birth to today")
    if child.disability_level and not child.disability:
        problems.append(_error("disability_level", "is set but disability is false", "value.inconsistent"))
    for index, group in enumerate(child.special_groups):
        _within(problems, f"special_groups.{index}.start", date.fromisoformat(group["start"]), born, day,
                "from birth to today")
        if group.get("end"):
            _within(problems, f"special_groups.{index}.end", date.fromisoformat(group["end"]), born,
                    day + timedelta(days=3660), "from birth to ten years ahead")
    if child.personal_id:
        birth_province = (province_of(child.birth_registration_commune_code)
                          if child.birth_registration_commune_code else None)
        for part in id_number_disagreements(child.personal_id, sex=child.sex,
                                            date_of_birth_year=born.year,
                                            year_is_estimated=child.date_of_birth_estimated,
                                            birth_province_code=birth_province):
            problems.append(_error("personal_id", part["detail"], f"personal_id.{part['part']}"))
    if problems:
        raise UnprocessableContent("the record is not consistent", errors=problems)


# --- create ----------------------------------------------------------------------------------------------------


def stamp_groups(groups: list[dict[str, Any]], previous: list[dict[str, Any]], subject: Subject,
                 now: datetime) -> list[dict[str, Any]]:
    """Keep who recorded each unchanged group entry; stamp new or changed entries with the caller."""
    known = {(g["group"], g["start"], g.get("end"), bool(g.get("supported"))): g for g in previous}
    stamped = []
    for group in groups:
        key = (group["group"], group["start"], group.get("end"), bool(group.get("supported")))
        old = known.get(key) or (group if "recorded_by" in group else None)
        stamped.append(dict(group, recorded_by=old["recorded_by"], recorded_at=old["recorded_at"]) if old
                       else dict(group, recorded_by=subject.id, recorded_at=now.isoformat()))
    return stamped


def identify_guardians(guardians: list[dict[str, Any]], previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each new guardian a stable id and keep the ids of those already on the record. An id the record does
    not hold is refused: a case names guardians by these ids."""
    known = {g["id"] for g in previous if g.get("id")}
    problems = [_error(f"guardians.{index}.id", "is not a guardian of this record; leave it out for a new one",
                       "guardian.unknown_id")
                for index, g in enumerate(guardians) if g.get("id") and str(g["id"]) not in known]
    if problems:
        raise UnprocessableContent("unknown guardian ids", errors=problems)
    return [dict(g, id=str(g["id"]) if g.get("id") else str(uuid.uuid4())) for g in guardians]


def derive_columns(child: Child) -> None:
    """Columns kept for search: the diacritics-free name, its given name and the guardians' phone numbers."""
    child.name_search = normalize_name(child.full_name)
    child.given_name_search = given_name(child.name_search)
    child.guardian_phones = sorted({g["phone"] for g in child.guardians if g.get("phone")})


def child_record(data: ChildCreate, subject: Subject, now: datetime, *,
                 confirmed_distinct: bool = False) -> dict[str, Any]:
    """The column values of a new record from validated input (the import stages these without ORM objects)."""
    values = data.model_dump(exclude={"confirm_not_duplicate", "guardians", "special_groups", "at_risk_flags"})
    province = province_of(data.commune_code)
    assert province is not None  # the schema accepts official codes only
    guardians = identify_guardians(to_jsonable_python(data.guardians), [])
    name_search = normalize_name(data.full_name)
    return values | {
        "id": uuid.uuid4(), "revision": 1, "province_code": province, "name_search": name_search,
        "given_name_search": given_name(name_search), "guardians": guardians,
        "guardian_phones": sorted({g["phone"] for g in guardians if g.get("phone")}),
        "special_groups": stamp_groups(to_jsonable_python(data.special_groups), [], subject, now),
        "at_risk_flags": sorted(set(data.at_risk_flags)),
        "status_date": data.status_date or (now.astimezone(VIETNAM_TIME).date() if data.status != "active" else None),
        "merged_into_id": None, "confirmed_distinct": confirmed_distinct, "created_by": subject.id,
        "created_at": now, "updated_by": subject.id, "updated_at": now,
    }


async def find_duplicates(session: AsyncSession, subject: Subject, child: Child) -> list[DuplicateCandidate]:
    """Likely duplicates: the same ID number anywhere, or the same normalised name and birth date in the commune.

    A record outside the caller's reach is named by nothing but the reason: not its id, not its commune.
    """
    same_id = Child.personal_id == child.personal_id if child.personal_id else false()
    same_person = and_(Child.commune_code == child.commune_code, Child.name_search == child.name_search,
                       Child.date_of_birth == child.date_of_birth)
    rows = (await session.execute(
        select(Child).where(Child.merged_into_id.is_(None), Child.id != child.id, or_(same_id, same_person)).limit(10)
    )).scalars().all()
    candidates = []
    for row in rows:
        reason = "same_personal_id" if child.personal_id and row.personal_id == child.personal_id \
            else "same_name_birth_date_commune"
        if subject.jurisdiction.contains(row.province_code, row.commune_code):
            candidates.append(DuplicateCandidate(id=row.id, reason=reason, commune_code=row.commune_code,
                                                 full_name=row.full_name, date_of_birth=row.date_of_birth))
        else:
            candidates.append(DuplicateCandidate(id=None, reason=reason))
    return candidates


async def refuse_same_personal_id(session: AsyncSession, subject: Subject, child: Child,
                                  duplicates: list[DuplicateCandidate]) -> None:
    """409 when the ID number is already registered. Outside the caller's jurisdiction the answer says only that:
    the province resolves it (Law Art. 51: the provincial child-protection body), and the refusal is written to the
    audit log, in a transaction of its own, so that it outlives this request's rollback."""
    same = [d for d in duplicates if d.reason == "same_personal_id"]
    if not same:
        return
    visible = [d for d in same if d.id is not None]
    if visible:
        raise Conflict("a child with this personal ID number is already registered",
                       candidates=to_jsonable_python(visible))
    existing = (await session.execute(select(Child.id, Child.province_code).where(
        Child.personal_id == child.personal_id, Child.merged_into_id.is_(None)))).first()
    if existing is not None:
        # A session of the kit's kind, so the audit line it holds is written with its commit.
        async with AsyncSession(session.bind, sync_session_class=UnitOfWorkSession) as trace:
            await audit.record(trace, subject, "duplicate_refused", "child", str(existing.id),
                               purpose="personal_id", detail={"attempted_commune": child.commune_code,
                                                              "route_to_province": existing.province_code})
            await trace.commit()
    raise Conflict("this personal ID number is already registered outside your jurisdiction; the provincial "
                   "child-protection office resolves such conflicts: send them this answer's request_id",
                   reason="same_personal_id", route_to="province")


def _constraint(exc: BaseException) -> str:
    current: BaseException | None = exc
    while current is not None:
        name = getattr(current, "constraint_name", None)
        if name:
            return str(name)
        current = current.__cause__ or getattr(current, "orig", None)
    return ""


async def flush_unique(session: AsyncSession, subject: Subject, child: Child) -> None:
    """Flush; a concurrent request that registered the same child first makes this one a conflict, not a 500 and
    never a second record: the unique indexes decide between two requests that both passed the checks."""
    try:
        await session.flush()
    except IntegrityError as exc:
        constraint = _constraint(exc)
        if constraint == "ix_child_same_person":
            raise Conflict("a child with the same name, date of birth and commune was registered at the same "
                           "moment; read it, or send confirm_not_duplicate=true if this is another child",
                           reason="same_name_birth_date_commune") from exc
        if constraint == "ix_child_personal_id":
            raise Conflict("a child with this personal ID number was registered at the same moment",
                           reason="same_personal_id") from exc
        raise


def _in_reach(subject: Subject, action: Action, commune_code: str) -> None:
    if access_scope(subject, action) != Scope.JURISDICTION or \
            not subject.jurisdiction.contains(province_of(commune_code), commune_code):
        raise NotFound("no such commune in your jurisdiction")


def record_revision(session: AsyncSession, child: Child, subject: Subject, change: str,
                    changes: dict[str, Any], now: datetime) -> None:
    session.add(ChildRevision(child_id=child.id, revision=child.revision, at=now, actor_id=subject.id,
                              actor_role=subject.role.value, actor_agency=subject.agency.value, change=change,
                              changes=changes))


def request_hash(data: ChildCreate) -> str:
    return hashlib.sha256(orjson.dumps(data.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()


async def create_child(session: AsyncSession, subject: Subject, data: ChildCreate,
                       idempotency_key: str | None = None) -> tuple[Child, bool]:
    """Register a child. Returns (child, created): with an `Idempotency-Key` already used by this caller for the same
    body, the child that request created (422 for another body)."""
    _in_reach(subject, Action.CHILD_CREATE, data.commune_code)
    now = utcnow()
    child_id = uuid.uuid4()
    if idempotency_key is not None:
        # Claim the key first: a second request with the same key waits here for the first to commit.
        digest = request_hash(data)
        claimed = (await session.execute(
            insert(CreationRequest).values(created_by=subject.id, idempotency_key=idempotency_key,
                                           request_hash=digest, child_id=child_id, created_at=now)
            .on_conflict_do_nothing().returning(CreationRequest.child_id))).scalar_one_or_none()
        if claimed is None:
            first = (await session.execute(select(CreationRequest).where(
                CreationRequest.created_by == subject.id,
                CreationRequest.idempotency_key == idempotency_key))).scalar_one()
            if first.request_hash != digest:
                raise UnprocessableContent(
                    "this Idempotency-Key was used for another child; use a new key for a new request",
                    errors=[FieldError(loc=["header", "Idempotency-Key"], msg="was used with a different body",
                                       type="idempotency_key.reused").model_dump()])
            child, _ = await resolve(session, subject, first.child_id, Action.CHILD_CREATE)
            await audit.record(session, subject, "read", "child", str(child.id), purpose="idempotent retry")
            return child, False
    day = now.astimezone(VIETNAM_TIME).date()
    child = Child(**child_record(data, subject, now) | {"id": child_id})
    check_record(child, day, day)
    duplicates = await find_duplicates(session, subject, child)
    await refuse_same_personal_id(session, subject, child, duplicates)
    if duplicates and not data.confirm_not_duplicate:
        raise Conflict("a child with the same name, date of birth and commune is already registered; "
                       "send confirm_not_duplicate=true if this is another child",
                       candidates=to_jsonable_python(duplicates))
    child.confirmed_distinct = bool(duplicates)
    session.add(child)
    await flush_unique(session, subject, child)
    record_revision(session, child, subject, "create", {name: {"old": None, "new": value} for name, value in
                                                        record_values(child).items() if value not in (None, [])},
                    now)
    outbox.emit(session, "child.registered", snapshot(child), agency=subject.agency.value)
    await audit.record(session, subject, "create", "child", str(child.id))
    return child, True


# --- read ------------------------------------------------------------------------------------------------------

PURPOSE = re.compile(r"^(case|task):[0-9a-fA-F-]{36}$")
MAX_MERGE_HOPS = 10


def check_purpose(scope: Scope | None, purpose: str | None) -> None:
    """Agencies involved in a case read a child only for a case or a task, which the audit log records."""
    if purpose is not None and not PURPOSE.match(purpose):
        raise BadRequest("purpose must be case:<uuid> or task:<uuid>")
    if scope == Scope.INVOLVED and purpose is None:
        raise BadRequest("a purpose (case:<uuid> or task:<uuid>) is required to read a child record")


async def resolve(session: AsyncSession, subject: Subject | None, child_id: uuid.UUID,
                  action: Action = Action.CHILD_READ) -> tuple[Child, uuid.UUID | None]:
    """The child with this id, or the record it was merged into, inside the caller's reach (any record when
    `subject` is None: the caller's reach was established otherwise); else 404."""
    requested, current_id = child_id, child_id
    for _ in range(MAX_MERGE_HOPS):
        query = (readable(subject, action) if subject is not None else select(Child)).where(Child.id == current_id)
        child = (await session.execute(query)).scalar_one_or_none()
        if child is None:
            raise NotFound("no such child")
        if child.merged_into_id is None:
            return child, (requested if child.id != requested else None)
        current_id = child.merged_into_id
    raise NotFound("no such child")


async def lock(session: AsyncSession, child_ids: list[uuid.UUID], subject: Subject,
               action: Action) -> dict[uuid.UUID, Child]:
    """Lock records for a change, always in id order (two crossed merges cannot deadlock), waiting at most
    `LOCK_TIMEOUT`: a request never hangs behind another, it is told to retry."""
    await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    try:
        rows = (await session.execute(
            readable(subject, action).where(Child.id.in_(sorted(child_ids))).order_by(Child.id)
            .with_for_update().execution_options(populate_existing=True))).scalars()
        return {row.id: row for row in rows}
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
            raise Conflict("the record is being changed by another request; read it again and retry",
                           headers={"Retry-After": "1"}) from exc
        raise


async def merged_ids(session: AsyncSession, child_id: uuid.UUID) -> list[uuid.UUID]:
    return list((await session.execute(
        select(Child.id).where(Child.merged_into_id == child_id).order_by(Child.id))).scalars())


async def get_child(session: AsyncSession, subject: Subject, child_id: uuid.UUID,
                    purpose: str | None, cases: CasesClient) -> tuple[Child, dict[str, Any]]:
    """A child as this caller may see it. Out of reach, merged away from reach, or unknown: the same 404.

    - the commune officer or chairman reads the children of the commune; outside it, a child that a case led by
      their commune is about (Law Art. 52(2): the commune where the child lives leads; a handover moves the lead),
      when they name that case (`purpose=case:<id>`) and the cases service confirms it, read-only;
    - an agency on a case reads the child of that case or task, inside its jurisdiction, when the cases service
      confirms the case involves it (Decree 56 Art. 33: need-to-know).
    The cases service is asked before the record is looked at, so whether an id exists never changes the answer.
    """
    scope = access_scope(subject, Action.CHILD_READ)
    if scope == Scope.MATCH:
        # The hotline finds a child through the match search; it does not open records.
        raise NotFound("no such child")
    check_purpose(scope, purpose)
    detail = None
    if scope == Scope.INVOLVED:
        assert purpose is not None
        if not await cases.involves(purpose, subject.agency.value, child_id):
            child, _ = await resolve(session, subject, child_id)
            if child.id == child_id or not await cases.involves(purpose, subject.agency.value, child.id):
                raise NotFound("no such child")
        child, resolved_from = await resolve(session, subject, child_id)
    else:
        try:
            child, resolved_from = await resolve(session, subject, child_id)
        except NotFound:
            if not leads_cases(subject, scope, purpose):
                raise
            assert purpose is not None and subject.jurisdiction.commune is not None
            if not await cases.involves(purpose, subject.agency.value, child_id,
                                        commune=subject.jurisdiction.commune):
                raise
            child, resolved_from = await resolve(session, None, child_id)
            detail = {"access": "leading_commune"}
    await audit.record(session, subject, "read", "child", str(child.id), purpose=purpose, detail=detail)
    return child, project(child, subject, scope, merged_ids=await merged_ids(session, child.id),
                          resolved_from=resolved_from)


def leads_cases(subject: Subject, scope: Scope | None, purpose: str | None) -> bool:
    """A commune's officer or chairman naming a case: the case may give them the child of another commune."""
    return (scope == Scope.JURISDICTION and subject.agency == Agency.PEOPLES_COMMITTEE
            and subject.jurisdiction.level == "commune" and purpose is not None and purpose.startswith("case:"))


# --- list, search and the hotline's match ----------------------------------------------------------------------


@dataclass
class ChildFilters:
    q: str | None = None
    birth_year: int | None = None
    commune_code: str | None = None
    province_code: str | None = None
    special_group: str | None = None
    status: str | None = None
    age_min: int | None = None
    age_max: int | None = None
    birth_registered: bool | None = None
    has_health_insurance: bool | None = None


@dataclass
class MatchQuery:
    """What a hotline operator knows of a child: the ID number, or the whole given name with an age or a birth year
    and a place (Law Art. 33, Decree 56 Art. 33: the hotline sees no more than it needs to attach a report)."""

    q: str | None = None
    first_name: str | None = None
    birth_year: int | None = None
    age: int | None = None
    commune_code: str | None = None
    province_code: str | None = None


ID_QUERY = re.compile(r"^[0-9]{12}$")
PHONE_QUERY = re.compile(r"^\+?[0-9 .-]{9,16}$")
MATCH_LIMIT = 5
CHILD_PAGES: Keyset[Child] = Keyset((Child.name_search, Child.id), (CursorText, uuid.UUID),
                                    lambda child: (child.name_search, child.id))
HISTORY_PAGES: Keyset[ChildRevision] = Keyset((ChildRevision.id,), (CursorInt,), lambda revision: (revision.id,),
                                              descending=True)


def parse_day(text_value: str) -> date | None:
    """An ISO date or a Vietnamese dd/mm/yyyy date, or None."""
    for pattern in (r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$", r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})$"):
        found = re.match(pattern, text_value)
        if found:
            parts = [int(p) for p in found.groups()]
            year, month, day = parts if pattern.startswith("^([0-9]{4})") else parts[::-1]
            try:
                return date(year, month, day)
            except ValueError:
                return None
    return None


def search_condition(q: str) -> tuple[str, Any]:
    """What a free-text query means: an ID number, a date of birth, a guardian's phone, or a name prefix."""
    query_text = ascii_digits(q)
    if ID_QUERY.match(query_text):
        return "personal_id", Child.personal_id == query_text
    day = parse_day(query_text)
    if day is not None:
        return "date_of_birth", Child.date_of_birth == day
    if PHONE_QUERY.match(query_text):
        return "phone", Child.guardian_phones.contains([normalize_phone(query_text)])
    name = normalize_name(query_text)
    if not name:
        raise BadRequest("the search text has no letters or digits")
    return "name", Child.name_search.startswith(name, autoescape=True)


def years_ago(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


async def list_children(session: AsyncSession, subject: Subject, filters: ChildFilters, cursor: str | None,
                        limit: int) -> tuple[list[dict[str, Any]], str | None]:
    # Agencies on a task read a child only by id, for that case or task: the table gives them no child:search.
    scope = access_scope(subject, Action.CHILD_SEARCH)
    if scope != Scope.JURISDICTION:
        raise Forbidden("your role may not list children")
    query = readable(subject, Action.CHILD_SEARCH).where(Child.merged_into_id.is_(None))
    if filters.q:
        query = query.where(search_condition(filters.q)[1])
    day = today()
    if filters.birth_year:
        query = query.where(Child.date_of_birth >= date(filters.birth_year, 1, 1),
                            Child.date_of_birth <= date(filters.birth_year, 12, 31))
    if filters.commune_code:
        query = query.where(Child.commune_code == filters.commune_code)
    if filters.province_code:
        query = query.where(Child.province_code == filters.province_code)
    if filters.special_group:
        query = query.where(Child.special_groups.contains([{"group": filters.special_group}]))
    if filters.status:
        query = query.where(Child.status == filters.status)
    if filters.age_min is not None:
        query = query.where(Child.date_of_birth <= years_ago(day, filters.age_min))
    if filters.age_max is not None:
        query = query.where(Child.date_of_birth > years_ago(day, filters.age_max + 1))
    if filters.birth_registered is not None:
        query = query.where(Child.birth_registered.is_(filters.birth_registered))
    if filters.has_health_insurance is True:
        query = query.where(Child.health_insurance_valid_until >= day)
    elif filters.has_health_insurance is False:
        query = query.where(or_(Child.health_insurance_valid_until.is_(None),
                                Child.health_insurance_valid_until < day))
    rows, next_cursor = CHILD_PAGES.page(
        list((await session.execute(CHILD_PAGES.query(query, cursor, limit))).scalars()), limit)
    if rows:
        await audit.record(session, subject, "search" if filters.q else "list", "child", [str(r.id) for r in rows])
    return [project(row, subject, scope, day=day) for row in rows], next_cursor


async def take_match_quota(session: AsyncSession, subject: Subject, per_hour: int) -> None:
    """Count one match search of this operator in the current hour; 429 past the limit. The counter is a row of
    the registry's database, so every replica sees the same count."""
    now = utcnow()
    window = now.replace(minute=0, second=0, microsecond=0)
    count = (await session.execute(
        insert(MatchQuota).values(subject_id=subject.id, window_start=window, count=1)
        .on_conflict_do_update(index_elements=["subject_id", "window_start"],
                               set_={"count": MatchQuota.count + 1})
        .returning(MatchQuota.count))).scalar_one()
    if count > per_hour:
        retry = int((window + timedelta(hours=1) - now).total_seconds()) + 1
        raise TooManyRequests(f"at most {per_hour} match searches an hour; try again later",
                              headers={"Retry-After": str(retry)})


async def match_children(session: AsyncSession, subject: Subject, match: MatchQuery,
                         per_hour: int) -> list[dict[str, Any]]:
    """The hotline's match: a few candidates with a few fields, never a list to browse.

    It needs what identifies a child: the 12-digit ID number, or the whole given name (not a prefix) with an
    approximate age (one year either side) or the birth year, in a commune or a province. Rate-limited per operator
    and audited, with the criteria used (never their values) and the number of candidates.
    """
    if access_scope(subject, Action.CHILD_SEARCH) != Scope.MATCH:
        raise Forbidden("your role may not match children")
    query = readable(subject, Action.CHILD_SEARCH).where(Child.merged_into_id.is_(None))
    criteria = sorted(name for name, value in vars(match).items() if value is not None)
    if match.q is not None:
        number = ascii_digits(match.q)
        if not ID_QUERY.match(number) or match.first_name is not None:
            raise BadRequest("the hotline searches by a 12-digit ID number, or by first_name with age or "
                             "birth_year and commune_code or province_code")
        query = query.where(Child.personal_id == number)
    else:
        name = normalize_name(match.first_name or "")
        if not name or (match.birth_year is None and match.age is None) or \
                (match.commune_code is None and match.province_code is None):
            raise BadRequest("a match needs the whole first_name, an age or a birth_year, and a commune_code or a "
                             "province_code")
        query = query.where(Child.given_name_search == given_name(name))
        if " " in name:  # a given name of several words: "Ngọc Anh"
            query = query.where(or_(Child.name_search == name, Child.name_search.endswith(" " + name,
                                                                                          autoescape=True)))
        if match.birth_year is not None:
            query = query.where(Child.date_of_birth >= date(match.birth_year, 1, 1),
                                Child.date_of_birth <= date(match.birth_year, 12, 31))
        if match.age is not None:
            day = today()
            query = query.where(Child.date_of_birth > years_ago(day, match.age + 2),
                                Child.date_of_birth <= years_ago(day, max(match.age - 1, 0)))
        if match.commune_code is not None:
            query = query.where(Child.commune_code == match.commune_code)
        if match.province_code is not None:
            query = query.where(Child.province_code == match.province_code)
    await take_match_quota(session, subject, per_hour)
    rows = list((await session.execute(query.order_by(Child.name_search, Child.id).limit(MATCH_LIMIT))).scalars())
    await audit.record(session, subject, "match", "child", [str(r.id) for r in rows] or None,
                       detail={"criteria": criteria, "candidates": len(rows)})
    scope = Scope.MATCH
    return [project(row, subject, scope) for row in rows]


async def forget_old_quotas(session: AsyncSession) -> None:
    await session.execute(delete(MatchQuota).where(MatchQuota.window_start < utcnow() - timedelta(days=1)))


# --- update, history, merge ------------------------------------------------------------------------------------

WRITABLE = tuple(ChildUpdate.model_fields)


def record_values(child: Child) -> dict[str, Any]:
    """The writable fields of a record as JSON values, for history."""
    return {name: to_jsonable_python(getattr(child, name)) for name in WRITABLE}


def apply_changes(child: Child, values: dict[str, Any], subject: Subject, now: datetime) -> dict[str, Any]:
    """Set the given fields and return {field: {old, new}} for those that really changed. A record whose child is
    16 or older becomes aged out (Law Art. 1)."""
    before = record_values(child)
    for name, value in values.items():
        if name == "special_groups":
            value = stamp_groups(value, child.special_groups, subject, now)
        elif name == "guardians":
            value = identify_guardians(value, child.guardians)
        elif name == "at_risk_flags":
            value = sorted(set(value))
        setattr(child, name, value)
    if "commune_code" in values:
        child.province_code = province_of(child.commune_code) or child.province_code
    day = now.astimezone(VIETNAM_TIME).date()
    if child.status == ChildStatus.ACTIVE and age_on(child.date_of_birth, day) >= CHILD_AGE_LIMIT:
        child.status, child.status_date = ChildStatus.AGED_OUT.value, sixteenth_birthday(child.date_of_birth)
    elif "status" in values and values["status"] != before["status"] and "status_date" not in values:
        child.status_date = day
    derive_columns(child)
    after = record_values(child)
    return {name: {"old": before[name], "new": after[name]} for name in after if before[name] != after[name]}


async def update_child(session: AsyncSession, subject: Subject, child_id: uuid.UUID, data: ChildUpdate,
                       if_match: str | None) -> Child:
    found, resolved_from = await resolve(session, subject, child_id, Action.CHILD_UPDATE)
    if resolved_from is not None:
        raise Conflict("this record was merged; update the surviving record", surviving_id=str(found.id))
    # One row, locked only now: a change never holds a lock while it follows merges.
    child = (await lock(session, [found.id], subject, Action.CHILD_UPDATE)).get(found.id)
    if child is None:
        raise NotFound("no such child")
    if child.merged_into_id is not None:
        raise Conflict("this record was merged; update the surviving record", surviving_id=str(child.merged_into_id))
    require_match(if_match, etag(child), what="child record",
                  location=public_path(f"/v1/children/{child.id}"))
    values = {name: to_jsonable_python(value) if name in ("guardians", "special_groups") else value
              for name, value in data.model_dump(exclude_unset=True).items()}
    if "commune_code" in values:
        _in_reach(subject, Action.CHILD_UPDATE, values["commune_code"])
    now = utcnow()
    before = snapshot(child)
    changes = apply_changes(child, values, subject, now)
    if not changes:
        return child
    check_record(child, now.astimezone(VIETNAM_TIME).date(), child.created_at.astimezone(VIETNAM_TIME).date())
    if "personal_id" in changes and child.personal_id:
        with session.no_autoflush:  # look before writing the new number
            await refuse_same_personal_id(session, subject, child, await find_duplicates(session, subject, child))
    child.revision += 1
    child.updated_by, child.updated_at = subject.id, now
    record_revision(session, child, subject, "update", changes, now)
    await flush_unique(session, subject, child)
    if _statistics_changed(before, snapshot(child)):
        outbox.emit(session, "child.changed", snapshot(child), agency=subject.agency.value)
    await audit.record(session, subject, "update", "child", str(child.id), detail={"fields": sorted(changes)})
    return child


async def history(session: AsyncSession, subject: Subject, child_id: uuid.UUID, cursor: str | None,
                  limit: int) -> tuple[list[ChildRevision], str | None]:
    child, _ = await resolve(session, subject, child_id, Action.CHILD_HISTORY)
    ids = [child.id, *await merged_ids(session, child.id)]
    query = select(ChildRevision).where(ChildRevision.child_id.in_(ids))
    rows, next_cursor = HISTORY_PAGES.page(
        list((await session.execute(HISTORY_PAGES.query(query, cursor, limit))).scalars()), limit)
    await audit.record(session, subject, "history", "child", str(child.id))
    return rows, next_cursor


MERGE_FILL = ("ethnicity", "personal_id", "address", "birth_registered_on",
              "birth_registration_commune_code", "birth_certificate_number", "school_name", "school_level",
              "school_grade", "school_status", "health_insurance_number", "health_insurance_valid_from",
              "health_insurance_valid_until", "disability_level")


def merged_values(survivor: Child, retired: Child) -> dict[str, Any]:
    """The survivor keeps its values; what it lacks comes from the retired record; lists are united (guardians keep
    their ids, which cases may name)."""
    values: dict[str, Any] = {name: getattr(retired, name) for name in MERGE_FILL
                              if getattr(survivor, name) is None and getattr(retired, name) is not None}
    if retired.birth_registered and not survivor.birth_registered:
        values["birth_registered"] = True
    if retired.disability and not survivor.disability:
        values["disability"] = True
    guardians = list(survivor.guardians)
    known = {(normalize_name(g["full_name"]), g.get("phone")) for g in guardians}
    guardians += [g for g in retired.guardians if (normalize_name(g["full_name"]), g.get("phone")) not in known]
    if len(guardians) != len(survivor.guardians):
        values["guardians"] = guardians
    groups = list(survivor.special_groups)
    seen = {(g["group"], g["start"]) for g in groups}
    groups += [g for g in retired.special_groups if (g["group"], g["start"]) not in seen]
    if len(groups) != len(survivor.special_groups):
        values["special_groups"] = groups
    flags = sorted(set(survivor.at_risk_flags) | set(retired.at_risk_flags))
    if flags != sorted(survivor.at_risk_flags):
        values["at_risk_flags"] = flags
    return values


async def merge_children(session: AsyncSession, subject: Subject, survivor_id: uuid.UUID, merged_id: uuid.UUID,
                         if_match: str | None) -> Child:
    """Merge a duplicate into the surviving record (hợp nhất hồ sơ). The retired id keeps resolving.

    `If-Match` names the version of the survivor the officer compared (428 without it, 412 when stale): a merge
    decided on an old reading of the record is refused.
    """
    if survivor_id == merged_id:
        raise UnprocessableContent("a record cannot be merged into itself", errors=[
            _error("merged_child_id", "is the record itself", "merge.self")])
    locked = await lock(session, [survivor_id, merged_id], subject, Action.CHILD_MERGE)
    survivor, retired = locked.get(survivor_id), locked.get(merged_id)
    if survivor is None or retired is None or survivor.merged_into_id or retired.merged_into_id:
        raise NotFound("no such child")
    require_match(if_match, etag(survivor), what="surviving record",
                  location=public_path(f"/v1/children/{survivor.id}"))
    now = utcnow()
    retired.merged_into_id = survivor.id
    retired.revision += 1
    retired.updated_by, retired.updated_at = subject.id, now
    record_revision(session, retired, subject, "merged_into", {"merged_into_id": {"old": None,
                                                                                "new": str(survivor.id)}}, now)
    await session.flush()  # the retired record leaves the unique indexes before the survivor takes its values
    changes = apply_changes(survivor, merged_values(survivor, retired), subject, now)
    changes["merged_child_id"] = {"old": None, "new": str(retired.id)}
    survivor.revision += 1
    survivor.updated_by, survivor.updated_at = subject.id, now
    check_record(survivor, now.astimezone(VIETNAM_TIME).date(),
                 survivor.created_at.astimezone(VIETNAM_TIME).date())
    record_revision(session, survivor, subject, "merge", changes, now)
    agency = subject.agency.value
    outbox.emit(session, "child.merged", {"child_id": str(survivor.id), "merged_child_id": str(retired.id),
                                          "revision": survivor.revision}, agency=agency)
    outbox.emit(session, "child.changed", snapshot(survivor), agency=agency)
    await audit.record(session, subject, "merge", "child", [str(survivor.id), str(retired.id)])
    await session.flush()
    return survivor


# --- children who turn 16 ---------------------------------------------------------------------------------------


async def mark_aged_out(database: Database, batch: int = 500) -> int:
    """Mark the active records of children who turned 16 as aged out (Law Art. 1), with the 16th birthday as
    status date, a revision, an audit line and a `child.changed` event each. Returns how many were marked.

    Safe in several replicas at once: rows are taken with SKIP LOCKED, and a marked record is no longer active.
    """
    now = utcnow()
    cutoff = years_ago(now.astimezone(VIETNAM_TIME).date(), CHILD_AGE_LIMIT)
    async with database.sessionmaker() as session:
        try:
            rows = list((await session.execute(
                select(Child).where(Child.merged_into_id.is_(None), Child.status == ChildStatus.ACTIVE.value,
                                    Child.date_of_birth <= cutoff)
                .order_by(Child.date_of_birth, Child.id).limit(batch).with_for_update(skip_locked=True)
            )).scalars())
            for child in rows:
                before = record_values(child)
                child.status = ChildStatus.AGED_OUT.value
                child.status_date = sixteenth_birthday(child.date_of_birth)
                child.revision += 1
                child.updated_by, child.updated_at = SYSTEM.id, now
                after = record_values(child)
                record_revision(session, child, SYSTEM, "aged_out",
                                {k: {"old": before[k], "new": after[k]} for k in after if before[k] != after[k]},
                                now)
                outbox.emit(session, "child.changed", snapshot(child), agency=Agency.SYSTEM.value)
            if rows:
                await audit.record(session, SYSTEM, "age_out", "child", [str(child.id) for child in rows])
            await forget_old_quotas(session)
            await session.flush()
            await database.commit(session)
        except BaseException:
            await session.rollback()
            raise
    return len(rows)


# --- export ----------------------------------------------------------------------------------------------------


async def export_rows(session: AsyncSession, subject: Subject, commune_code: str) -> list[Child]:
    if access_scope(subject, Action.CHILD_EXPORT) != Scope.JURISDICTION or \
            not subject.jurisdiction.contains(province_of(commune_code), commune_code):
        raise NotFound("no such commune in your jurisdiction")
    rows = list((await session.execute(
        readable(subject, Action.CHILD_EXPORT)
        .where(Child.commune_code == commune_code, Child.merged_into_id.is_(None))
        .order_by(Child.name_search, Child.id))).scalars())
    await audit.record(session, subject, "export", "commune", commune_code, detail={"children": len(rows)})
    return rows
