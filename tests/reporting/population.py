"""A random population of children and cases, published as registry and cases events (docs/events.md), and the
figures expected from it, computed here independently of the service's SQL.

The generator keeps the final snapshot of every child and case, the day each child was first published, and the
children retired by merges; `expected_counts()` derives every indicator from those with plain Python loops.
"""

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.common.locations import communes
from tests.reporting.feeds import ProducerFeed

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
GROUPS = ["a", "b", "c", "d", "dd", "e", "g", "h", "i", "k", "l", "m", "n", "o"]
FORMS = ["violence", "exploitation", "sexual_abuse", "trafficking", "abandonment", "neglect", "other"]
ENVIRONMENTS = ["home", "school", "community", "online", "workplace", "other"]
REASONS = ["safe_and_stable", "unfounded", "aged_out", "deceased", "transferred", "duplicate"]
STATES = ["received", "assessing", "emergency_protection", "specific_assessment", "plan_drafting",
          "awaiting_approval", "implementing", "reviewing"]
START, END = datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 6, 30, tzinfo=UTC)


def local_day(moment: datetime) -> date:
    return moment.astimezone(VIETNAM).date()


@dataclass
class Population:
    communes: list[str]
    registry: ProducerFeed = field(default_factory=lambda: ProducerFeed("registry"))
    cases: ProducerFeed = field(default_factory=lambda: ProducerFeed("cases"))
    children: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_seen: dict[str, date] = field(default_factory=dict)
    retired: set[str] = field(default_factory=set)
    case_snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)


def _moment(rng: random.Random, start: datetime = START, end: datetime = END) -> datetime:
    return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def _day(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randrange((end - start).days + 1))


def _child_snapshot(rng: random.Random, child_id: str, revision: int, commune: str) -> dict[str, Any]:
    born = date(rng.randrange(2007, 2025), rng.randrange(1, 13), 1)
    status = rng.choice(["active"] * 6 + ["moved_away", "deceased", "aged_out"])
    groups = []
    for group in rng.sample(GROUPS, rng.choice([0, 0, 1, 1, 2])):
        start = _day(rng, date(2022, 1, 1), date(2025, 6, 1))
        end = rng.choice([None, None, _day(rng, start, date(2025, 12, 31))])
        groups.append({"group": group, "start": start.isoformat(), "end": end and end.isoformat(),
                       "supported": rng.random() < 0.7})
    registered = rng.random() < 0.85
    return {
        "child_id": child_id, "revision": revision, "sex": rng.choice(["male", "female"]),
        "birth_month": born.strftime("%Y-%m"), "province_code": communes()[commune].province_code,
        "commune_code": commune, "status": status,
        "status_date": None if status == "active" or rng.random() < 0.1 else
        _day(rng, date(2023, 1, 1), date(2025, 12, 31)).isoformat(),
        "birth_registered": registered,
        "birth_registered_on": _day(rng, born, born + timedelta(days=400)).isoformat()
        if registered and rng.random() < 0.8 else None,
        "health_insurance_valid_until": rng.choice([None, _day(rng, date(2023, 1, 1), date(2026, 12, 31)).isoformat()]),
        "disability": rng.random() < 0.05, "special_groups": groups, "at_risk": rng.random() < 0.1,
    }


def _deadline(rng: random.Random, due: datetime) -> dict[str, Any]:
    outcome = rng.choice(["on_time", "late", "missed", "pending"])
    met = {"on_time": due - timedelta(hours=rng.randrange(1, 48)), "late": due + timedelta(hours=rng.randrange(1, 72)),
           "missed": None, "pending": None}[outcome]
    return {"due_at": due.isoformat(), "met_at": met and met.isoformat(), "missed": outcome in ("late", "missed")}


def _case_snapshot(rng: random.Random, case_id: str, revision: int, commune: str, received: datetime,
                   child_ids: list[str]) -> dict[str, Any]:
    emergency = rng.choice([True, False, False, None])  # null until the emergency test is made
    forms = rng.sample(FORMS, rng.choice([0, 1, 1, 1, 2]))
    deadlines = {"assessment": _deadline(rng, received + timedelta(days=1)),
                 "plan_drafted": _deadline(rng, received + timedelta(days=7))}
    if emergency:
        deadlines["emergency_protection"] = _deadline(rng, received + timedelta(hours=12))
    if rng.random() < 0.7:
        deadlines["plan_approval"] = _deadline(rng, received + timedelta(days=12))
    closed = _moment(rng, received, received + timedelta(days=200)) if rng.random() < 0.4 else None
    new_fields: dict[str, Any] = {}
    if rng.random() < 0.8:  # events from before 2026 lack these fields: counted as unknown
        category = rng.choice(["abused", "abused", "at_risk", "special_circumstances"])
        if category != "abused":
            forms = []
        elif not forms:
            forms = [rng.choice(FORMS)]
        separations = []
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            decided = _moment(rng, received, received + timedelta(days=30))
            ended = rng.choice([None, decided + timedelta(days=rng.randrange(1, 40))])
            separations.append({"decided_at": decided.isoformat(),
                                "ends_at": (decided + timedelta(days=15)).isoformat(),
                                "ended_at": ended and ended.isoformat(), "extended_days": rng.choice([0, 0, 5]),
                                "competent_authority_extension": rng.random() < 0.2})
        new_fields = {
            "category": category, "risk_forms": rng.sample(["violence", "exploitation", "abandonment"],
                                                           rng.choice([1, 2])) if category == "at_risk" else [],
            "special_groups": rng.sample(GROUPS, rng.choice([1, 2])) if category == "special_circumstances" else [],
            "channel": rng.choice(["phone", "in_person", "through_another_person", "other"]),
            "intake_agency": rng.choice(["hotline", "police", "peoples_committee", "health"]),
            "incident_commune_code": commune, "residence_commune_code": rng.choice([None, commune]),
            "perpetrator_relationship": rng.choice(["parent", "step_parent", "stranger", "unknown", "teacher"]),
            "child_age_years": rng.choice([None, 3, 7, 9, 12, 15]),
            "child_views_taken": rng.choice([None, True, False]),
            "parent_views": rng.choice([None, "taken", "not_taken"]),
            "emergency_measure": {"taken_at": (received + timedelta(hours=rng.choice([2, 11, 13, 30]))).isoformat(),
                                  "agency": "police"} if emergency and rng.random() < 0.6 else None,
            "separations": separations,
            "plan_approved_at": (received + timedelta(days=9)).isoformat() if rng.random() < 0.4 else None,
            "closure_kind": rng.choice(["review", "early"]) if closed else None,
        }
    return {
        "case_id": case_id, "revision": revision, "province_code": communes()[commune].province_code,
        "commune_code": commune, "received_at": received.isoformat(),
        "child_sex": rng.choice(["male", "female", "unknown"]),
        "child_age_group": rng.choice(["0-5", "6-10", "11-15", "unknown"]),
        "child_id": rng.choice(child_ids) if child_ids and rng.random() < 0.6 else None,
        "abuse_forms": forms, "environment": rng.choice([*ENVIRONMENTS, None]),
        "state": "closed" if closed else rng.choice(STATES), "emergency": emergency,
        "closure_reason": rng.choice([*REASONS, None]) if closed else None,
        "closed_at": closed and closed.isoformat(), "deadlines": deadlines, **new_fields,
    }


def generate(seed: int, communes_used: list[str], children: int, cases: int) -> Population:
    """Children and cases with several revisions each, moves between communes, merges, and events in time order."""
    rng = random.Random(seed)
    population = Population(communes_used)
    intents: list[tuple[datetime, str, str, dict[str, Any]]] = []
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(children)]
    for child_id in ids:
        when = _moment(rng)
        snapshot = _child_snapshot(rng, child_id, 1, rng.choice(communes_used))
        intents.append((when, "registry", "child.registered", snapshot))
        for revision in range(2, 2 + rng.choice([0, 0, 1, 2])):
            when = _moment(rng, when, when + timedelta(days=300))
            snapshot = _child_snapshot(rng, child_id, revision, rng.choice([snapshot["commune_code"],
                                                                           rng.choice(communes_used)]))
            intents.append((when, "registry", "child.changed", snapshot))
    for _ in range(max(1, children // 40)):
        survivor, retired = rng.sample(ids, 2)
        intents.append((END + timedelta(days=rng.randrange(1, 30)), "registry", "child.merged",
                        {"child_id": survivor, "merged_child_id": retired, "revision": 0}))
    for _ in range(cases):
        case_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        received = _moment(rng)
        if rng.random() < 0.2:  # the evening of a month's last day in UTC is the next month in Vietnam
            month_end = received.replace(day=1, hour=0, minute=0, second=0) - timedelta(days=1)
            received = month_end.replace(hour=rng.randrange(17, 24), minute=rng.randrange(60))
        commune = rng.choice(communes_used)
        first = _case_snapshot(rng, case_id, 1, commune, received, ids)
        first.update(state="received", closure_reason=None, closed_at=None,
                     deadlines={name: {**d, "met_at": None, "missed": False} for name, d in first["deadlines"].items()})
        if "separations" in first:
            first.update(separations=[], emergency_measure=None, plan_approved_at=None, closure_kind=None)
        intents.append((received, "cases", "case.received", first))
        when = received
        for revision in range(2, 2 + rng.choice([1, 1, 2])):
            when = when + timedelta(hours=rng.randrange(1, 500))
            later = _case_snapshot(rng, case_id, revision, rng.choice([commune, commune, rng.choice(communes_used)]),
                                   received, ids)
            type = "case.deadline_missed" if rng.random() < 0.2 else "case.changed"
            intents.append((when, "cases", type, {**later, "action": "assess"}))
    intents.sort(key=lambda intent: intent[0])
    survivors_revision: dict[str, int] = {}
    for when, source, type, payload in intents:
        if source == "registry":
            if type == "child.merged":
                survivor = population.children.get(payload["child_id"])
                retired = payload["merged_child_id"]
                if survivor is None or retired not in population.children or retired in population.retired \
                        or payload["child_id"] in population.retired:
                    continue
                revision = survivor["revision"] + 1
                population.registry.emit(type, {**payload, "revision": revision}, when)
                population.retired.add(retired)
                population.children[payload["child_id"]] = {**survivor, "revision": revision}
                population.registry.emit("child.changed", population.children[payload["child_id"]], when)
                survivors_revision[payload["child_id"]] = revision
                continue
            child_id = payload["child_id"]
            if child_id in survivors_revision:  # keep revisions growing after a merge
                survivors_revision[child_id] += 1
                payload = {**payload, "revision": survivors_revision[child_id]}
            population.registry.emit(type, payload, when)
            population.children[child_id] = payload
            population.first_seen.setdefault(child_id, local_day(when))
        else:
            population.cases.emit(type, payload, when)
            population.case_snapshots[payload["case_id"]] = payload
    # A producer may deliver an event again (at least once): re-send a few old ones at the end.
    for event in rng.sample(population.registry.events, min(5, len(population.registry.events))):
        population.registry.emit(event["type"], event["payload"], datetime.fromisoformat(event["occurred_at"]))
    for event in rng.sample(population.cases.events, min(5, len(population.cases.events))):
        population.cases.emit(event["type"], event["payload"], datetime.fromisoformat(event["occurred_at"]))
    return population


def _age(birth_month: str, on: date) -> int:
    year, month = int(birth_month[:4]), int(birth_month[5:7])
    return on.year - year - (1 if on.month < month else 0)


def _child_group(age: int) -> str:
    return "0-5" if age <= 5 else "6-10" if age <= 10 else "11-15"


Expected = dict[tuple[str, str, str], Any]  # (indicator, breakdown, category) -> count or (numerator, denominator)
INTERVENTION_STATES = ("emergency_protection", "implementing", "reviewing")


def _kept(deadline: dict[str, Any] | None) -> bool | None:
    if deadline is None or not (deadline["met_at"] or deadline["missed"]):
        return None
    return bool(deadline["met_at"]) and datetime.fromisoformat(deadline["met_at"]) <= \
        datetime.fromisoformat(deadline["due_at"])


def _emergency_kept(case: dict[str, Any]) -> bool | None:
    if not case["emergency"]:
        return None
    measure = case.get("emergency_measure")
    if measure:
        return datetime.fromisoformat(measure["taken_at"]) - datetime.fromisoformat(case["received_at"]) \
            <= timedelta(hours=12)
    return _kept(case["deadlines"].get("emergency_protection"))


def _intervened(case: dict[str, Any]) -> bool:
    deadlines = case["deadlines"]
    approved = case.get("plan_approved_at") or deadlines.get("plan_approval", {}).get("met_at")
    return case["state"] in INTERVENTION_STATES or bool(approved) or any(
        deadlines.get(name, {}).get("met_at") for name in ("emergency_protection", "plan_approval"))


def _timeliness(case: dict[str, Any]) -> tuple[bool, bool]:
    parts = [_kept(case["deadlines"].get("plan_drafted")), _kept(case["deadlines"].get("plan_approval"))]
    if case["emergency"]:
        parts.append(_emergency_kept(case))
    if any(part is None for part in parts):
        return False, False
    return True, all(parts)


def _abused(case: dict[str, Any]) -> bool:
    category = case.get("category")
    abuse = category == "abused" or (category is None and bool(case["abuse_forms"]))
    return abuse and case["closure_reason"] not in ("unfounded", "duplicate")


def expected_counts(population: Population, start: date, end: date, places: set[str]) -> Expected:
    """Every figure of the communes `places` for the period `start`..`end`, by direct counting."""
    counts: defaultdict[tuple[str, str, str], int] = defaultdict(int)
    rates: defaultdict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])

    def rate(cell: tuple[str, str, str], hit: bool) -> None:
        rates[cell][1] += 1
        rates[cell][0] += int(hit)

    for child_id, child in population.children.items():
        if child_id in population.retired or child["commune_code"] not in places:
            continue
        born = date(int(child["birth_month"][:4]), int(child["birth_month"][5:7]), 1)
        ended = child["status"] != "active" and (child["status_date"] is None
                                                 or date.fromisoformat(child["status_date"]) <= end)
        age = _age(child["birth_month"], end)
        if born > end or population.first_seen[child_id] > end or ended or age >= 16:
            continue
        sex, group = child["sex"], _child_group(age)
        registered = child["birth_registered"] and (child["birth_registered_on"] is None
                                                    or date.fromisoformat(child["birth_registered_on"]) <= end)
        for breakdown, category in (("", ""), ("sex", sex), ("age_group", group)):
            counts[("HT-TE01", breakdown, category)] += 1
            rate(("HT-TE04", breakdown, category), registered)
        if age < 5:
            for breakdown, category in (("", ""), ("sex", sex), ("age_years", str(age))):
                rate(("HT-TE06", breakdown, category), registered)
        if age <= 5:
            insured = child["health_insurance_valid_until"] is not None and \
                date.fromisoformat(child["health_insurance_valid_until"]) >= end
            for breakdown, category in (("", ""), ("sex", sex)):
                rate(("HT-TE05", breakdown, category), insured)
        active: dict[str, bool] = {}
        for spell in child.get("special_groups", []):
            if date.fromisoformat(spell["start"]) <= end and (spell["end"] is None
                                                              or date.fromisoformat(spell["end"]) >= end):
                active[spell["group"]] = active.get(spell["group"], False) or spell["supported"]
        if child.get("disability") or "d" in active:
            for breakdown, category in (("", ""), ("sex", sex)):
                rate(("HT-TE07", breakdown, category), active.get("d", False))
        if active:
            for breakdown, category in (("", ""), ("sex", sex), ("age_group", group)):
                counts[("HT-TE02", breakdown, category)] += 1
            rate(("HT-TE03", "", ""), any(active.values()))
            for name, supported in active.items():
                counts[("HT-TE02", "special_group", name)] += 1
                rate(("HT-TE03", "special_group", name), supported)

    everywhere: dict[str, list[dict[str, Any]]] = defaultdict(list)  # matching cases anywhere, per kind
    for case in population.case_snapshots.values():
        received = local_day(datetime.fromisoformat(case["received_at"]))
        if start <= received <= end:
            if _abused(case):
                everywhere["abused"].append(case)
            if case.get("category") in ("at_risk", "special_circumstances") and _intervened(case):
                everywhere[case["category"]].append(case)
        if case["commune_code"] not in places:
            continue
        if case["closed_at"] and start <= local_day(datetime.fromisoformat(case["closed_at"])) <= end:
            counts[("HT-VV03", "", "")] += 1
            counts[("HT-VV03", "closure_reason", case["closure_reason"] or "unknown")] += 1
            counts[("HT-VV03", "closure_kind", case.get("closure_kind") or "unknown")] += 1
        for name, deadline in case["deadlines"].items():
            due = datetime.fromisoformat(deadline["due_at"])
            met = deadline["met_at"] and datetime.fromisoformat(deadline["met_at"])
            if start <= local_day(due) <= end and (deadline["missed"] or (met and met > due)):
                counts[("HT-KT04", "", "")] += 1
                counts[("HT-KT04", "deadline", name)] += 1
        for separation in case.get("separations", []):
            decided = local_day(datetime.fromisoformat(separation["decided_at"]))
            ended_day = separation["ended_at"] and local_day(datetime.fromisoformat(separation["ended_at"]))
            days = (ended_day - decided).days if ended_day else None
            if start <= decided <= end:
                duration = "ongoing" if days is None else "within_15_days" if days <= 15 else "over_15_days"
                extension = ("authority_request" if separation["competent_authority_extension"]
                             else "extended" if separation["extended_days"] > 0 else "not_extended")
                for breakdown, category in (("", ""), ("duration", duration), ("extension", extension)):
                    counts[("HT-CL01", breakdown, category)] += 1
            if ended_day and start <= ended_day <= end:
                rates[("HT-CL02", "", "")][0] += days or 0
                rates[("HT-CL02", "", "")][1] += 1
        if not start <= received <= end:
            continue
        intervened = _intervened(case)
        for breakdown, category in (("", ""), ("category", case.get("category") or "unknown"),
                                    ("channel", case.get("channel") or "unknown"),
                                    ("intake_agency", case.get("intake_agency") or "unknown"),
                                    ("sex", case["child_sex"]), ("age_group", case["child_age_group"]),
                                    ("environment", case["environment"] or "unknown"),
                                    ("perpetrator", case.get("perpetrator_relationship") or "unknown")):
            counts[("HT-VV01", breakdown, category)] += 1
        for form in case["abuse_forms"]:
            counts[("HT-VV01", "abuse_form", form)] += 1
        if intervened:
            counts[("HT-VV02", "", "")] += 1
            for form in case["abuse_forms"]:
                counts[("HT-VV02", "abuse_form", form)] += 1
        kept = _emergency_kept(case)
        if kept is not None:
            rate(("HT-KT01", "", ""), kept)
        if (case.get("child_age_years") or 0) >= 7 and case.get("child_views_taken") is not None:
            for breakdown, category in (("", ""), ("sex", case["child_sex"])):
                rate(("HT-KT06", breakdown, category), case["child_views_taken"])
        if (outcome := _kept(case["deadlines"].get("plan_drafted"))) is not None:
            rate(("HT-KT02", "", ""), outcome)
        serious = [form for form in case["abuse_forms"] if form in ("sexual_abuse", "abandonment", "trafficking")]
        if serious and (outcome := _kept(case["deadlines"].get("plan_approval"))) is not None:
            rate(("HT-KT03", "", ""), outcome)
            for form in serious:
                rate(("HT-KT03", "abuse_form", form), outcome)

    def children_of(kind: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Each child (linked, else the case) with matching cases anywhere, counted in the commune of its latest."""
        by_child: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for case in everywhere[kind]:
            by_child[case["child_id"] or case["case_id"]].append(case)
        found = []
        for cases in by_child.values():
            latest = max(cases, key=lambda c: (datetime.fromisoformat(c["received_at"]), uuid.UUID(c["case_id"])))
            if latest["commune_code"] in places:
                found.append((latest, cases))
        return found

    for latest, cases in children_of("abused"):
        for breakdown, category in (("", ""), ("sex", latest["child_sex"]), ("age_group", latest["child_age_group"]),
                                    ("perpetrator", latest.get("perpetrator_relationship") or "unknown")):
            counts[("0101", breakdown, category)] += 1
        for form in {form for case in cases for form in case["abuse_forms"]}:
            counts[("0101", "abuse_form", form)] += 1
        for environment in {case["environment"] or "unknown" for case in cases}:
            counts[("0101", "environment", environment)] += 1
        outcomes = [_timeliness(case) for case in cases]
        if any(settled for settled, _ in outcomes):
            rate(("HT-KT05", "", ""), all(timely for settled, timely in outcomes if settled))
    for kind, code, field_name, breakdown in (("at_risk", "HT-VV04", "risk_forms", "risk_form"),
                                               ("special_circumstances", "HT-VV06", "special_groups",
                                                "special_group")):
        for _, cases in children_of(kind):
            counts[(code, "", "")] += 1
            for item in {item for case in cases for item in case[field_name]}:
                counts[(code, breakdown, item)] += 1

    result: Expected = dict(counts)
    result.update({cell: tuple(value) for cell, value in rates.items()})
    result[("HT-TE08", "", "")] = (counts.get(("HT-TE02", "", ""), 0), counts.get(("HT-TE01", "", ""), 0))
    result[("HT-VV05", "", "")] = (counts.get(("HT-VV04", "", ""), 0), counts.get(("HT-TE01", "", ""), 0))
    return {cell: value for cell, value in result.items() if value not in (0, (0, 0))}
