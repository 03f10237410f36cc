"""Child-friendly communes (xã, phường, đặc khu phù hợp với trẻ em; Decision 06/QĐ-TTg of 03/01/2019).

The decision has 13 criteria; a commune is recognised when it meets all 13, none scores 0 points, and its total
reaches the pass mark of its kind (900 for a ward of a centrally-run city, 800 for a mountain, island or
extremely difficult commune, 850 for the others). What `shared/law` holds of the decision: the criteria and the pass
rule are complete; the points are known for criterion 1 (at most 100), 6 (at most 125: 50 for at least 95% of
children in special circumstances helped, 75 for 100% of sexual-abuse, abandonment and trafficking cases with a plan
approved in time) and 7 (at most 50); the rest was not found. So:
- criteria this system can measure show their measures, computed per commune from the same facts as the reports;
- a criterion whose scoring rule is configured (`REPORTING_CHILD_FRIENDLY_SCORING`, criterion 6 by default) gets its
  points computed; every other criterion's points are entered by the commune through the API, with the value it
  measured and the source of the evidence; who entered it and when is recorded, and entries are never overwritten;
- the commune's kind (which sets the pass mark) is entered the same way (criterion 0);
- the overall result is derived: passed, not passed, or incomplete (naming what is missing).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Subject
from services.common.clock import utcnow
from services.common.errors import Conflict, UnprocessableContent
from services.common.locations import communes
from services.common.preconditions import etag, require_match
from services.reporting.figures import Counts
from services.reporting.indicators import key
from services.reporting.models import CriterionEntry
from services.reporting.settings import ReportingSettings

KINDS = {"urban_ward": "Phường thuộc quận, thị xã, thành phố của thành phố trực thuộc trung ương",
         "mountain_island_or_difficult": "Xã, thị trấn thuộc miền núi, hải đảo; xã đặc biệt khó khăn",
         "other": "Xã, phường, thị trấn còn lại"}


@dataclass(frozen=True)
class Criterion:
    number: int
    name_vi: str
    name_en: str
    max_points: int | None  # None: not found in the sources held
    measures: tuple[str, ...]  # what this system computes for it


CRITERIA: tuple[Criterion, ...] = (
    Criterion(1, "Nguồn lực thực hiện quyền trẻ em", "Resources for children's rights", 100, ()),
    Criterion(2, "Trẻ em được khai sinh đúng quy định", "Birth registration", None, ("birth_registration_rate",)),
    Criterion(3, "Trẻ em bị xâm hại", "Abused children", None, ("abused_children", "abused_per_1000")),
    Criterion(4, "Trẻ em vi phạm pháp luật, nghiện ma túy", "Children in conflict with the law or drug-addicted",
              None, ("law_or_drugs_children", "law_or_drugs_per_1000")),
    Criterion(5, "Trẻ em bị tai nạn, thương tích", "Accidents and injuries", None, ()),
    Criterion(6, "Trẻ em có hoàn cảnh đặc biệt được trợ giúp", "Children in special circumstances helped", 125,
              ("special_supported_rate", "criterion_6_plan_rate")),
    Criterion(7, "Trẻ em dưới 1 tuổi được tiêm chủng đầy đủ các loại vắc xin thuộc chương trình tiêm chủng mở rộng",
              "Full immunisation under 1", 50, ()),
    Criterion(8, "Trẻ em dưới 5 tuổi bị suy dinh dưỡng thể nhẹ cân và thể thấp còi", "Under-5 malnutrition", None,
              ()),
    Criterion(9, "Trẻ em được khám sức khỏe định kỳ", "Periodic health checks", None, ()),
    Criterion(10, "Trẻ em đến trường, lớp mầm non", "Preschool attendance", None, ()),
    Criterion(11, "Trẻ em được thực hiện quyền tham gia của trẻ em", "Participation", None,
              ("child_views_rate",)),
    Criterion(12, "Hoạt động vui chơi, giải trí, văn hóa, thể dục, thể thao dành cho trẻ em",
              "Play, culture and sport", None, ()),
    Criterion(13, "Mức độ hài lòng của trẻ em và người dân về việc thực hiện quyền trẻ em", "Satisfaction", None,
              ()),
)
BY_NUMBER = {criterion.number: criterion for criterion in CRITERIA}


def _rate(counts: Counts, name: str) -> float | None:
    denominator = counts.get(name + "|d", 0)
    return round(100.0 * counts.get(name + "|n", 0) / denominator, 1) if denominator else None


def measures(counts: Counts) -> dict[str, float | int | None]:
    """What the facts say about the criteria, for one commune and the assessment period (exact: the assessment is
    the commune's own and the province's, not a publication)."""
    children = counts.get(key("HT-TE01"), 0)
    abused = counts.get(key("0101"), 0)
    law_or_drugs = counts.get(key("HT-TE02", "special_group", "e"), 0) + counts.get(
        key("HT-TE02", "special_group", "g"), 0)
    return {
        "birth_registration_rate": _rate(counts, key("HT-TE04")),
        "abused_children": abused,
        "abused_per_1000": round(1000.0 * abused / children, 2) if children else None,
        "law_or_drugs_children": law_or_drugs,
        "law_or_drugs_per_1000": round(1000.0 * law_or_drugs / children, 2) if children else None,
        "special_supported_rate": _rate(counts, key("HT-TE03")),
        # No case of those kinds: nothing was late, the requirement holds.
        "criterion_6_plan_rate": _rate(counts, key("HT-KT03")) if counts.get(key("HT-KT03") + "|d") else 100.0,
        "child_views_rate": _rate(counts, key("HT-KT06")),
    }


def computed_points(number: int, found: dict[str, float | int | None], settings: ReportingSettings) -> int | None:
    rules = settings.child_friendly_scoring.get(str(number))
    if not rules:
        return None
    points = 0
    for rule in rules:
        value = found.get(rule["measure"])
        if value is not None and value >= rule["min"]:
            points += int(rule["points"])
    return points


async def latest_entries(session: AsyncSession, commune_codes: list[str], year: int) -> dict[tuple[str, int],
                                                                                              CriterionEntry]:
    table = CriterionEntry.__table__
    rows = (await session.execute(
        select(table).where(table.c.commune_code.in_(commune_codes), table.c.year == year)
        .order_by(table.c.id)
    )).all()
    latest: dict[tuple[str, int], CriterionEntry] = {}
    for row in rows:
        latest[(row.commune_code, row.criterion)] = CriterionEntry.model_validate(row._mapping)
    return latest


def entry_etag(entry: CriterionEntry | None) -> str:
    return etag("criterion", entry.id if entry else 0)


def _entry(entry: CriterionEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"points": entry.points, "value": entry.value, "source": entry.source, "note": entry.note,
            "entered_by": entry.entered_by, "entered_at": entry.entered_at.isoformat(), "etag": entry_etag(entry)}


def assessment(commune: str, year: int, counts: Counts, entries: dict[tuple[str, int], CriterionEntry],
               settings: ReportingSettings) -> dict[str, Any]:
    found = measures(counts)
    results, missing, zero, total = [], [], [], 0
    for criterion in CRITERIA:
        entry = entries.get((commune, criterion.number))
        points = computed_points(criterion.number, found, settings)
        how = "computed" if points is not None else "entered" if entry else "missing"
        if points is None and entry is not None:
            points = entry.points
        if points is None:
            missing.append(criterion.number)
        else:
            total += points
            if points == 0:
                zero.append(criterion.number)
        results.append({
            "criterion": criterion.number, "name_vi": criterion.name_vi, "name_en": criterion.name_en,
            "max_points": criterion.max_points, "points": points, "points_from": how,
            "measures": {name: found[name] for name in criterion.measures}, "entry": _entry(entry),
        })
    kind_entry = entries.get((commune, 0))
    kind = kind_entry.value if kind_entry else None
    pass_mark = settings.child_friendly_pass_marks.get(kind) if kind else None
    if missing or pass_mark is None:
        outcome = "incomplete"
    else:
        outcome = "passed" if not zero and total >= pass_mark else "not_passed"
    return {
        "commune": {"code": commune, "name": communes()[commune].name}, "year": year,
        "kind": {"code": kind, "name_vi": KINDS.get(kind or ""), "entry": _entry(kind_entry)},
        "criteria": results, "total_points": total, "pass_mark": pass_mark,
        "result": {"outcome": outcome, "missing_criteria": missing, "zero_criteria": zero,
                   "missing_kind": kind is None,
                   "rule": "all 13 criteria scored, none with 0 points, total at least the pass mark of the "
                           "commune's kind (Decision 06/QĐ-TTg)"},
    }


async def enter_criterion(session: AsyncSession, subject: Subject, commune: str, year: int, number: int,
                          body: dict[str, Any], if_match: str | None, settings: ReportingSettings) -> CriterionEntry:
    """Record a criterion's points (or, for criterion 0, the commune's kind) with its evidence. A change of an
    existing entry must name the version it corrects (If-Match)."""
    if number != 0 and computed_points(number, {}, settings) is not None:
        raise Conflict(f"criterion {number} is scored by the system from the commune's figures")
    if number == 0:
        if body.get("value") not in KINDS:
            raise UnprocessableContent("give the commune's kind as value",
                                       errors=[{"loc": ["body", "value"], "msg": f"one of {sorted(KINDS)}",
                                                "type": "enum"}])
    else:
        maximum = BY_NUMBER[number].max_points or 1000
        if body.get("points") is None or not 0 <= body["points"] <= maximum:
            raise UnprocessableContent("points out of range",
                                       errors=[{"loc": ["body", "points"], "msg": f"between 0 and {maximum}",
                                                "type": "range"}])
    table = CriterionEntry.__table__
    current = (await session.execute(
        select(table).where(table.c.commune_code == commune, table.c.year == year, table.c.criterion == number)
        .order_by(table.c.id.desc()).limit(1).with_for_update()
    )).first()
    if current is not None:
        require_match(if_match, etag("criterion", current.id), what="criterion entry")
    entry = CriterionEntry(commune_code=commune, province_code=communes()[commune].province_code, year=year,
                           criterion=number, points=body.get("points") if number else None, value=body.get("value"),
                           source=body["source"], note=body.get("note"), entered_by=subject.id,
                           entered_at=_now())
    session.add(entry)
    await session.flush()
    return entry


def _now() -> datetime:
    return utcnow()
