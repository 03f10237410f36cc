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
    return {
        "case_id": case_id, "revision": revision, "province_code": communes()[commune].province_code,
        "commune_code": commune, "received_at": received.isoformat(),
        "child_sex": rng.choice(["male", "female", "unknown"]),
        "child_age_group": rng.choice(["0-5", "6-10", "11-15", "unknown"]),
        "child_id": rng.choice(child_ids) if child_ids and rng.random() < 0.6 else None,
        "abuse_forms": forms, "environment": rng.choice([*ENVIRONMENTS, None]),
        "state": "closed" if closed else rng.choice(STATES), "emergency": emergency,
        "closure_reason": rng.choice([*REASONS, None]) if closed else None,
        "closed_at": closed and closed.isoformat(), "deadlines": deadlines,
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
        for breakdown, category in (("", ""), ("sex", sex), ("age_group", group)):
            counts[("TE01", breakdown, category)] += 1
        registered = child["birth_registered"] and (child["birth_registered_on"] is None
                                                    or date.fromisoformat(child["birth_registered_on"]) <= end)
        rate(("TE04", "", ""), registered)
        rate(("TE04", "sex", sex), registered)
        if age <= 5:
            insured = child["health_insurance_valid_until"] is not None and \
                date.fromisoformat(child["health_insurance_valid_until"]) >= end
            rate(("TE05", "", ""), insured)
            rate(("TE05", "sex", sex), insured)
        active: dict[str, bool] = {}
        for spell in child["special_groups"]:
            if date.fromisoformat(spell["start"]) <= end and (spell["end"] is None
                                                              or date.fromisoformat(spell["end"]) >= end):
                active[spell["group"]] = active.get(spell["group"], False) or spell["supported"]
        if active:
            for breakdown, category in (("", ""), ("sex", sex), ("age_group", group)):
                counts[("TE02", breakdown, category)] += 1
            rate(("TE03", "", ""), any(active.values()))
            for name, supported in active.items():
                counts[("TE02", "special_group", name)] += 1
                rate(("TE03", "special_group", name), supported)

    abused: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for case in population.case_snapshots.values():
        if case["commune_code"] not in places:
            continue
        received = local_day(datetime.fromisoformat(case["received_at"]))
        if case["closed_at"] and start <= local_day(datetime.fromisoformat(case["closed_at"])) <= end:
            counts[("VV03", "", "")] += 1
            counts[("VV03", "closure_reason", case["closure_reason"] or "unknown")] += 1
        for name, deadline in case["deadlines"].items():
            due = datetime.fromisoformat(deadline["due_at"])
            met = deadline["met_at"] and datetime.fromisoformat(deadline["met_at"])
            if start <= local_day(due) <= end and (deadline["missed"] or (met and met > due)):
                counts[("KT04", "", "")] += 1
                counts[("KT04", "deadline", name)] += 1
        if not start <= received <= end:
            continue
        environment = case["environment"] or "unknown"
        deadlines = case["deadlines"]
        intervened = case["state"] in ("emergency_protection", "implementing", "reviewing") or any(
            deadlines.get(name, {}).get("met_at") for name in ("emergency_protection", "plan_approval"))
        for breakdown, category in (("", ""), ("sex", case["child_sex"]), ("age_group", case["child_age_group"]),
                                    ("environment", environment)):
            counts[("VV01", breakdown, category)] += 1
        for form in case["abuse_forms"]:
            counts[("VV01", "abuse_form", form)] += 1
        if intervened:
            counts[("VV02", "", "")] += 1
            for form in case["abuse_forms"]:
                counts[("VV02", "abuse_form", form)] += 1
        if case["abuse_forms"]:
            abused[(case["commune_code"], case["child_id"] or case["case_id"])].append(case)

        def settled(name: str, deadlines: dict[str, Any] = deadlines) -> tuple[bool, bool] | None:
            deadline = deadlines.get(name)
            if deadline is None or not (deadline["met_at"] or deadline["missed"]):
                return None
            return True, bool(deadline["met_at"]) and datetime.fromisoformat(deadline["met_at"]) <= \
                datetime.fromisoformat(deadline["due_at"])

        if case["emergency"] and (outcome := settled("emergency_protection")):
            rate(("KT01", "", ""), outcome[1])
        if outcome := settled("plan_drafted"):
            rate(("KT02", "", ""), outcome[1])
        serious = [form for form in case["abuse_forms"] if form in ("sexual_abuse", "abandonment", "trafficking")]
        if serious and (outcome := settled("plan_approval")):
            rate(("KT03", "", ""), outcome[1])
            for form in serious:
                rate(("KT03", "abuse_form", form), outcome[1])

    for child_cases in abused.values():
        latest = max(child_cases, key=lambda c: (datetime.fromisoformat(c["received_at"]), uuid.UUID(c["case_id"])))
        counts[("0101", "", "")] += 1
        counts[("0101", "sex", latest["child_sex"])] += 1
        counts[("0101", "age_group", latest["child_age_group"])] += 1
        for form in {form for case in child_cases for form in case["abuse_forms"]}:
            counts[("0101", "abuse_form", form)] += 1
        for environment in {case["environment"] or "unknown" for case in child_cases}:
            counts[("0101", "environment", environment)] += 1

    result: Expected = dict(counts)
    result.update({cell: tuple(value) for cell, value in rates.items()})
    return result
