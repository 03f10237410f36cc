"""Registry logic. Every read goes through `readable()`, the one place that filters by jurisdiction, and every
answer through `project()`, the one place that decides which fields a caller sees."""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import Select, and_, false, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.age import birth_month
from services.common.auth import Subject
from services.common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    UnprocessableContent,
)
from services.common.locations import province_of
from services.common.pagination import MAX_PAGE_SIZE, decode_cursor, encode_cursor
from services.common.permissions import Action, Agency, Scope
from services.registry.cases import CasesClient
from services.registry.models import Child, ChildRevision, audit, outbox
from services.registry.reference import BHYT_ENTITLED_UNDER_AGE, id_number_disagreements, normalize_name
from services.registry.schemas import EARLIEST_BIRTH, ChildCreate, ChildUpdate, DuplicateCandidate

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


def _derived(child: Child, today: date) -> dict[str, Any]:
    age = age_on(child.date_of_birth, today)
    return {"age": age, "birth_year": child.date_of_birth.year, "at_risk": bool(child.at_risk_flags),
            "health_insurance_entitled": age < BHYT_ENTITLED_UNDER_AGE}


def project(child: Child, subject: Subject, scope: Scope | None, *, merged_ids: list[uuid.UUID] | None = None,
            resolved_from: uuid.UUID | None = None) -> dict[str, Any]:
    """The one place that turns a record into what this caller may see (the fields of `ChildView`).

    A plain dict, serialised once by orjson: list pages are the hot path, and a model per child would be built and
    checked twice.
    """
    derived = _derived(child, date.today()) | {"merged_ids": merged_ids}
    values = {name: derived[name] if name in derived else getattr(child, name)
              for name in visible_fields(subject, scope)}
    if merged_ids is None:  # not looked up (list pages)
        values.pop("merged_ids", None)
    if resolved_from is not None:
        values["resolved_from"] = resolved_from
    return values


def etag(child: Child) -> str:
    return f'"{child.id}.{child.revision}"'


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


def check_record(child: Child | SimpleNamespace, today: date | None = None) -> None:
    """Rules that involve several fields: dates in order, the ID number agrees with the record. 422 names them."""
    today = today or date.today()
    problems: list[dict[str, str]] = []
    if child.date_of_birth > today:
        problems.append({"field": "date_of_birth", "detail": "is in the future"})
    if child.date_of_birth < EARLIEST_BIRTH:
        problems.append({"field": "date_of_birth", "detail": f"is before {EARLIEST_BIRTH.isoformat()}"})
    if child.birth_registered_on and child.birth_registered_on < child.date_of_birth:
        problems.append({"field": "birth_registered_on", "detail": "is before the date of birth"})
    if child.birth_registered_on and not child.birth_registered:
        problems.append({"field": "birth_registered_on", "detail": "is set but birth_registered is false"})
    if (child.health_insurance_valid_from and child.health_insurance_valid_until
            and child.health_insurance_valid_until < child.health_insurance_valid_from):
        problems.append({"field": "health_insurance_valid_until", "detail": "is before the start of validity"})
    if child.disability_level and not child.disability:
        problems.append({"field": "disability_level", "detail": "is set but disability is false"})
    for index, group in enumerate(child.special_groups):
        if date.fromisoformat(group["start"]) < child.date_of_birth:
            problems.append({"field": f"special_groups.{index}.start", "detail": "is before the date of birth"})
    if child.personal_id:
        birth_province = (province_of(child.birth_registration_commune_code)
                          if child.birth_registration_commune_code else None)
        for part in id_number_disagreements(child.personal_id, sex=child.sex,
                                            date_of_birth_year=child.date_of_birth.year,
                                            year_is_estimated=child.date_of_birth_estimated,
                                            birth_province_code=birth_province):
            problems.append({"field": "personal_id", "part": part["part"], "detail": part["detail"]})
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


def derive_columns(child: Child) -> None:
    """Columns kept for search: the diacritics-free name and the guardians' phone numbers."""
    child.name_search = normalize_name(child.full_name)
    child.guardian_phones = sorted({g["phone"] for g in child.guardians if g.get("phone")})


def child_record(data: ChildCreate, subject: Subject, now: datetime) -> dict[str, Any]:
    """The column values of a new record from validated input (the import stages these without ORM objects)."""
    values = data.model_dump(exclude={"confirm_not_duplicate", "guardians", "special_groups", "at_risk_flags"})
    province = province_of(data.commune_code)
    assert province is not None  # the schema accepts official codes only
    guardians = to_jsonable_python(data.guardians)
    return values | {
        "id": uuid.uuid4(), "revision": 1, "province_code": province, "name_search": normalize_name(data.full_name),
        "guardians": guardians, "guardian_phones": sorted({g["phone"] for g in guardians if g.get("phone")}),
        "special_groups": stamp_groups(to_jsonable_python(data.special_groups), [], subject, now),
        "at_risk_flags": sorted(set(data.at_risk_flags)),
        "status_date": data.status_date or (now.date() if data.status != "active" else None),
        "merged_into_id": None, "created_by": subject.id, "created_at": now, "updated_by": subject.id,
        "updated_at": now,
    }


def new_child(data: ChildCreate, subject: Subject, now: datetime) -> Child:
    return Child(**child_record(data, subject, now))


async def find_duplicates(session: AsyncSession, subject: Subject, child: Child) -> list[DuplicateCandidate]:
    """Likely duplicates: the same ID number anywhere, or the same normalised name and birth date in the commune.

    A record outside the caller's reach is named only by its commune, so nobody learns another commune's data.
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
            candidates.append(DuplicateCandidate(id=None, reason=reason, commune_code=row.commune_code))
    return candidates


async def flush_unique(session: AsyncSession) -> None:
    """Flush; a concurrent request that registered the same ID number first makes this one a conflict, not a 500."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("a child with this personal ID number is already registered") from exc


def _in_reach(subject: Subject, action: Action, commune_code: str) -> None:
    if access_scope(subject, action) != Scope.JURISDICTION or \
            not subject.jurisdiction.contains(province_of(commune_code), commune_code):
        raise NotFound("no such commune in your jurisdiction")


def record_revision(session: AsyncSession, child: Child, subject: Subject, change: str,
                    changes: dict[str, Any], now: datetime) -> None:
    session.add(ChildRevision(child_id=child.id, revision=child.revision, at=now, actor_id=subject.id,
                              actor_role=subject.role.value, actor_agency=subject.agency.value, change=change,
                              changes=changes))


async def create_child(session: AsyncSession, subject: Subject, data: ChildCreate) -> Child:
    _in_reach(subject, Action.CHILD_CREATE, data.commune_code)
    now = datetime.now(UTC)
    child = new_child(data, subject, now)
    check_record(child)
    duplicates = await find_duplicates(session, subject, child)
    if any(d.reason == "same_personal_id" for d in duplicates):
        raise Conflict("a child with this personal ID number is already registered",
                       candidates=to_jsonable_python([d for d in duplicates if d.reason == "same_personal_id"]))
    if duplicates and not data.confirm_not_duplicate:
        raise Conflict("a child with the same name, date of birth and commune is already registered; "
                       "send confirm_not_duplicate=true if this is another child",
                       candidates=to_jsonable_python(duplicates))
    session.add(child)
    await flush_unique(session)
    record_revision(session, child, subject, "create", {name: {"old": None, "new": value} for name, value in
                                                        record_values(child).items() if value not in (None, [])},
                    now)
    outbox.emit(session, "child.registered", snapshot(child), agency=subject.agency.value)
    await audit.record(session, subject, "create", "child", str(child.id))
    return child


# --- read ------------------------------------------------------------------------------------------------------

PURPOSE = re.compile(r"^(case|task):[0-9a-fA-F-]{36}$")
MAX_MERGE_HOPS = 10


def check_purpose(scope: Scope | None, purpose: str | None) -> None:
    """Agencies involved in a case read a child only for a case or a task, which the audit log records."""
    if purpose is not None and not PURPOSE.match(purpose):
        raise BadRequest("purpose must be case:<uuid> or task:<uuid>")
    if scope == Scope.INVOLVED and purpose is None:
        raise BadRequest("a purpose (case:<uuid> or task:<uuid>) is required to read a child record")


async def resolve(session: AsyncSession, subject: Subject, child_id: uuid.UUID, action: Action,
                  *, lock: bool = False) -> tuple[Child, uuid.UUID | None]:
    """The child with this id, or the record it was merged into, inside the caller's reach; else 404."""
    requested, current_id = child_id, child_id
    for _ in range(MAX_MERGE_HOPS):
        query = readable(subject, action).where(Child.id == current_id)
        child = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
        if child is None:
            raise NotFound("no such child")
        if child.merged_into_id is None:
            return child, (requested if child.id != requested else None)
        current_id = child.merged_into_id
    raise NotFound("no such child")


async def merged_ids(session: AsyncSession, child_id: uuid.UUID) -> list[uuid.UUID]:
    return list((await session.execute(
        select(Child.id).where(Child.merged_into_id == child_id).order_by(Child.id))).scalars())


async def get_child(session: AsyncSession, subject: Subject, child_id: uuid.UUID,
                    purpose: str | None, cases: CasesClient) -> tuple[Child, dict[str, Any]]:
    scope = access_scope(subject, Action.CHILD_READ)
    if scope == Scope.MATCH:
        # The hotline finds a child through the match search; it does not open records.
        raise NotFound("no such child")
    check_purpose(scope, purpose)
    child, resolved_from = await resolve(session, subject, child_id, Action.CHILD_READ)
    if scope == Scope.INVOLVED and purpose is not None:
        ids = {child_id, child.id}
        if not any([await cases.involves(purpose, subject.agency.value, one) for one in ids]):
            raise NotFound("no such child")
    await audit.record(session, subject, "read", "child", str(child.id), purpose=purpose)
    return child, project(child, subject, scope, merged_ids=await merged_ids(session, child.id),
                          resolved_from=resolved_from)


# --- list and search -------------------------------------------------------------------------------------------


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


ID_QUERY = re.compile(r"^\d{12}$")
PHONE_QUERY = re.compile(r"^\+?[\d .-]{9,16}$")
MATCH_LIMIT = 10


def parse_day(text: str) -> date | None:
    """An ISO date or a Vietnamese dd/mm/yyyy date, or None."""
    for pattern in (r"^(\d{4})-(\d{2})-(\d{2})$", r"^(\d{1,2})/(\d{1,2})/(\d{4})$"):
        found = re.match(pattern, text)
        if found:
            parts = [int(p) for p in found.groups()]
            year, month, day = parts if pattern.startswith("^(\\d{4})") else parts[::-1]
            try:
                return date(year, month, day)
            except ValueError:
                return None
    return None


def search_condition(q: str) -> tuple[str, Any]:
    """What a free-text query means: an ID number, a date of birth, a guardian's phone, or a name prefix."""
    from services.registry.reference import normalize_phone

    text = q.strip()
    if ID_QUERY.match(text):
        return "personal_id", Child.personal_id == text
    day = parse_day(text)
    if day is not None:
        return "date_of_birth", Child.date_of_birth == day
    if PHONE_QUERY.match(text):
        return "phone", Child.guardian_phones.contains([normalize_phone(text)])
    name = normalize_name(text)
    if not name:
        raise BadRequest("the search text has no letters or digits")
    return "name", Child.name_search.startswith(name, autoescape=True)


def years_ago(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


async def list_children(session: AsyncSession, subject: Subject, filters: ChildFilters, cursor: str | None,
                        limit: int) -> tuple[list[dict[str, Any]], str | None]:
    # Agencies on a task read a child only by id, for that case or task: the table gives them no child:search.
    scope = access_scope(subject, Action.CHILD_SEARCH)
    if scope is None:
        raise Forbidden("your role may not child:search")
    query = readable(subject, Action.CHILD_SEARCH).where(Child.merged_into_id.is_(None))
    kind = None
    if filters.q:
        kind, condition = search_condition(filters.q)
        query = query.where(condition)
    if scope == Scope.MATCH:
        # The hotline matches a caller's description to at most a few children; it cannot browse.
        if kind != "personal_id" and not (kind == "name" and filters.birth_year):
            raise BadRequest("search with a name and a birth year, or with an ID number")
        # Other filters would reveal what the match fields hide (a group, a status, registration, insurance).
        hidden = (filters.special_group, filters.status, filters.age_min, filters.age_max, filters.birth_registered,
                  filters.has_health_insurance)
        if any(value is not None for value in hidden):
            raise BadRequest("the match search takes only q, birth_year, province_code and commune_code")
        limit, cursor = MATCH_LIMIT, None
    today = date.today()
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
        query = query.where(Child.date_of_birth <= years_ago(today, filters.age_min))
    if filters.age_max is not None:
        query = query.where(Child.date_of_birth > years_ago(today, filters.age_max + 1))
    if filters.birth_registered is not None:
        query = query.where(Child.birth_registered.is_(filters.birth_registered))
    if filters.has_health_insurance is True:
        query = query.where(Child.health_insurance_valid_until >= today)
    elif filters.has_health_insurance is False:
        query = query.where(or_(Child.health_insurance_valid_until.is_(None),
                                Child.health_insurance_valid_until < today))
    after = decode_cursor(cursor, 2)
    if after is not None:
        query = query.where(tuple_(Child.name_search, Child.id) > (str(after[0]), _cursor_uuid(after[1])))
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    rows = list((await session.execute(query.order_by(Child.name_search, Child.id).limit(limit + 1))).scalars())
    next_cursor = encode_cursor([rows[limit - 1].name_search, rows[limit - 1].id]) if len(rows) > limit else None
    rows = rows[:limit]
    if rows:
        await audit.record(session, subject, "search" if filters.q else "list", "child", [str(r.id) for r in rows])
    return [project(row, subject, scope) for row in rows], next_cursor


def _cursor_uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise BadRequest("the cursor is not valid") from exc


# --- update, history, merge ------------------------------------------------------------------------------------

WRITABLE = tuple(ChildUpdate.model_fields)


def record_values(child: Child) -> dict[str, Any]:
    """The writable fields of a record as JSON values, for history."""
    return {name: to_jsonable_python(getattr(child, name)) for name in WRITABLE}


def check_if_match(child: Child, if_match: str | None) -> None:
    if if_match is None:
        raise PreconditionRequired("send If-Match with the ETag of the version you edited")
    if etag(child) not in [tag.strip().removeprefix("W/") for tag in if_match.split(",")]:
        raise PreconditionFailed("the record changed since you read it; read it again", current_etag=etag(child))


def apply_changes(child: Child, values: dict[str, Any], subject: Subject, now: datetime) -> dict[str, Any]:
    """Set the given fields and return {field: {old, new}} for those that really changed."""
    before = record_values(child)
    for name, value in values.items():
        if name == "special_groups":
            value = stamp_groups(value, child.special_groups, subject, now)
        elif name == "at_risk_flags":
            value = sorted(set(value))
        setattr(child, name, value)
    if "commune_code" in values:
        child.province_code = province_of(child.commune_code) or child.province_code
    if "status" in values and values["status"] != before["status"] and "status_date" not in values:
        child.status_date = now.date()
    derive_columns(child)
    after = record_values(child)
    return {name: {"old": before[name], "new": after[name]} for name in after if before[name] != after[name]}


async def update_child(session: AsyncSession, subject: Subject, child_id: uuid.UUID, data: ChildUpdate,
                       if_match: str | None) -> Child:
    child, resolved_from = await resolve(session, subject, child_id, Action.CHILD_UPDATE, lock=True)
    if resolved_from is not None:
        raise Conflict("this record was merged; update the surviving record", surviving_id=str(child.id))
    check_if_match(child, if_match)
    values = {name: to_jsonable_python(value) if name in ("guardians", "special_groups") else value
              for name, value in data.model_dump(exclude_unset=True).items()}
    if "commune_code" in values:
        _in_reach(subject, Action.CHILD_UPDATE, values["commune_code"])
    now = datetime.now(UTC)
    before = snapshot(child)
    changes = apply_changes(child, values, subject, now)
    if not changes:
        return child
    check_record(child)
    if "personal_id" in changes and child.personal_id:
        with session.no_autoflush:  # look before writing the new number
            duplicates = await find_duplicates(session, subject, child)
        if any(d.reason == "same_personal_id" for d in duplicates):
            raise Conflict("a child with this personal ID number is already registered")
    child.revision += 1
    child.updated_by, child.updated_at = subject.id, now
    record_revision(session, child, subject, "update", changes, now)
    await flush_unique(session)
    if _statistics_changed(before, snapshot(child)):
        outbox.emit(session, "child.changed", snapshot(child), agency=subject.agency.value)
    await audit.record(session, subject, "update", "child", str(child.id), detail={"fields": sorted(changes)})
    return child


async def history(session: AsyncSession, subject: Subject, child_id: uuid.UUID, cursor: str | None,
                  limit: int) -> tuple[list[ChildRevision], str | None]:
    child, _ = await resolve(session, subject, child_id, Action.CHILD_HISTORY)
    ids = [child.id, *await merged_ids(session, child.id)]
    query = select(ChildRevision).where(ChildRevision.child_id == child.id if len(ids) == 1
                                        else ChildRevision.child_id.in_(ids))
    after = decode_cursor(cursor, 1)
    if after is not None:
        query = query.where(ChildRevision.id < int(after[0]))
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    rows = list((await session.execute(query.order_by(ChildRevision.id.desc()).limit(limit + 1))).scalars())
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    await audit.record(session, subject, "history", "child", str(child.id))
    return rows[:limit], next_cursor


MERGE_FILL = ("ethnicity", "personal_id", "address", "birth_registered_on",
              "birth_registration_commune_code", "birth_certificate_number", "school_name", "school_level",
              "school_grade", "school_status", "health_insurance_number", "health_insurance_valid_from",
              "health_insurance_valid_until", "disability_level")


def merged_values(survivor: Child, retired: Child) -> dict[str, Any]:
    """The survivor keeps its values; what it lacks comes from the retired record; lists are united."""
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
    """Merge a duplicate into the surviving record (hop nhat ho so). The retired id keeps resolving."""
    if survivor_id == merged_id:
        raise UnprocessableContent("a record cannot be merged into itself")
    # Lock both rows in a fixed order so that two crossed merges cannot deadlock.
    locked = {c.id: c for c in (await session.execute(
        readable(subject, Action.CHILD_MERGE).where(Child.id.in_(sorted([survivor_id, merged_id])))
        .order_by(Child.id).with_for_update())).scalars()}
    survivor, retired = locked.get(survivor_id), locked.get(merged_id)
    if survivor is None or retired is None or survivor.merged_into_id or retired.merged_into_id:
        raise NotFound("no such child")
    if if_match is not None:
        check_if_match(survivor, if_match)
    now = datetime.now(UTC)
    retired.merged_into_id = survivor.id
    retired.revision += 1
    retired.updated_by, retired.updated_at = subject.id, now
    record_revision(session, retired, subject, "merged_into", {"merged_into_id": {"old": None,
                                                                                "new": str(survivor.id)}}, now)
    await session.flush()  # the retired record leaves the unique ID-number index before the survivor takes it
    changes = apply_changes(survivor, merged_values(survivor, retired), subject, now)
    changes["merged_child_id"] = {"old": None, "new": str(retired.id)}
    survivor.revision += 1
    survivor.updated_by, survivor.updated_at = subject.id, now
    check_record(survivor)
    record_revision(session, survivor, subject, "merge", changes, now)
    agency = subject.agency.value
    outbox.emit(session, "child.merged", {"child_id": str(survivor.id), "merged_child_id": str(retired.id),
                                          "revision": survivor.revision}, agency=agency)
    outbox.emit(session, "child.changed", snapshot(survivor), agency=agency)
    await audit.record(session, subject, "merge", "child", [str(survivor.id), str(retired.id)])
    await session.flush()
    return survivor


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

