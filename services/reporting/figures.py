"""Counting: every figure of a set of communes for one period, by aggregate queries over the fact rows.

The result per commune is a sparse dict of integer counts keyed as `indicators.key()` describes; provinces and
the nation are sums of these dicts, so figures roll up exactly. Ratios keep numerator and denominator apart until
they are shown.
"""

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.locations import communes as official
from services.reporting.indicators import CRITERION_6_FORMS, key
from services.reporting.periods import Period

Counts = dict[str, int]

# Children followed on the last day of the period, with their age in whole years from the first day of their birth
# month (services/common/age.py): with months numbered year * 12 + month - 1, that is (as_of - birth) div 12.
# The stock counts are written once for the three ways they are asked: the communes of one period, the provinces
# of one period, and the provinces of several periods in one pass over the children (each row joined to every
# period, `p`): grouping a million children into 34 provinces rather than 3,321 communes, for many periods at once,
# is what keeps the national figures cheap to make. `commune_code` in their results holds the place counted.
_IN_COMMUNES = "IN (SELECT unnest(CAST(:communes AS varchar[])))"
_IN_PROVINCES = "IN (SELECT unnest(CAST(:provinces AS varchar[])))"
_PERIODS = ("unnest(CAST(:period_ids AS varchar[]), CAST(:as_ofs AS date[]), CAST(:as_of_indexes AS integer[])) "
            "AS p(period_id, as_of, as_of_index)")


def _stock_statements(by_province: bool, many: bool) -> tuple[TextClause, TextClause]:
    """(children, special circumstances) counting statements; each result row carries `period_id` ('' unless
    `many`)."""
    place = "c.province_code" if by_province else "c.commune_code"
    wanted = f"c.province_code {_IN_PROVINCES}" if by_province else f"c.commune_code {_IN_COMMUNES}"
    spells_wanted = "TRUE" if by_province else f"g.commune_code {_IN_COMMUNES}"
    as_of, as_of_index = ("p.as_of", "p.as_of_index") if many else (":as_of", ":as_of_index")
    period = "p.period_id" if many else "''"
    joined = f"CROSS JOIN {_PERIODS}" if many else ""
    followed = f"""c.merged_into IS NULL AND c.birth_index <= {as_of_index} AND c.followed_since <= {as_of}
        AND (c.status = 'active' OR c.status_date > {as_of}) AND ({as_of_index} - c.birth_index) < 192"""
    age = f"({as_of_index} - c.birth_index) / 12"
    age_group = f"CASE WHEN {age} <= 5 THEN '0-5' WHEN {age} <= 10 THEN '6-10' ELSE '11-15' END"
    children = f"""
SELECT {period} AS period_id, {place} AS commune_code, c.sex, {age_group} AS age_group, least({age}, 5) AS age,
       count(*) AS children,
       count(*) FILTER (WHERE c.birth_registered AND (c.birth_registered_on IS NULL
                                                      OR c.birth_registered_on <= {as_of})) AS registered,
       count(*) FILTER (WHERE c.health_insurance_valid_until >= {as_of}) AS insured,
       count(*) FILTER (WHERE c.disability) AS disabled
FROM child_fact c {joined}
WHERE {wanted} AND {followed}
GROUP BY 1, 2, 3, 4, 5"""  # noqa: S608 (only constants are interpolated)
    # Driven from the spells (a tenth of the children have one), joined to the child by its key.
    period_of_spell = f"JOIN {_PERIODS} ON p.period_id = s.period_id" if many else ""
    special = f"""
WITH spells AS (
    SELECT {period} AS period_id, g.child_id, g.group_code, bool_or(g.supported) AS supported
    FROM child_special_group g {joined}
    WHERE {spells_wanted} AND g.start <= {as_of} AND (g."end" IS NULL OR g."end" >= {as_of})
    GROUP BY 1, 2, 3
),
followed AS (
    SELECT s.period_id, s.child_id, s.group_code, s.supported, {place} AS commune_code, c.sex, c.disability,
           {age_group} AS age_group
    FROM spells s JOIN child_fact c ON c.child_id = s.child_id {period_of_spell}
    WHERE {wanted} AND {followed}
)
SELECT period_id, 'group' AS level, commune_code, group_code, NULL AS sex, NULL AS age_group,
       count(*) AS children, count(*) FILTER (WHERE supported) AS supported,
       count(*) FILTER (WHERE NOT disability) AS unflagged
FROM followed GROUP BY period_id, commune_code, group_code
UNION ALL
SELECT period_id, 'disability', commune_code, NULL, sex, NULL, count(*), count(*) FILTER (WHERE supported),
       count(*) FILTER (WHERE NOT disability)
FROM followed WHERE group_code = 'd' GROUP BY period_id, commune_code, sex
UNION ALL
SELECT period_id, 'child', commune_code, NULL, sex, age_group, count(*), count(*) FILTER (WHERE supported), 0
FROM (SELECT period_id, child_id, commune_code, sex, age_group, bool_or(supported) AS supported
      FROM followed GROUP BY period_id, child_id, commune_code, sex, age_group) children
GROUP BY period_id, commune_code, sex, age_group"""  # noqa: S608
    return text(children), text(special)


COMMUNE_STOCKS = _stock_statements(by_province=False, many=False)
COMMUNE_STOCKS_OF_PERIODS = _stock_statements(by_province=False, many=True)
PROVINCE_STOCKS = _stock_statements(by_province=True, many=True)

_RECEIVED = "c.commune_code IN (SELECT unnest(CAST(:communes AS varchar[]))) AND c.received_on BETWEEN :start AND :end"

# One pass over the cases received, each counted once in the total and once in every additive breakdown.
CASES_RECEIVED = text(f"""
SELECT c.commune_code, b.breakdown, b.category, count(*) AS cases,
       count(*) FILTER (WHERE c.intervened) AS intervened,
       count(*) FILTER (WHERE c.emergency_kept IS NOT NULL) AS emergency_settled,
       count(*) FILTER (WHERE c.emergency_kept) AS emergency_kept,
       count(*) FILTER (WHERE c.child_age_years >= 7 AND c.child_views_taken IS NOT NULL) AS views_recorded,
       count(*) FILTER (WHERE c.child_age_years >= 7 AND c.child_views_taken) AS views_taken
FROM case_fact c CROSS JOIN LATERAL (VALUES
    ('', ''), ('category', c.category), ('channel', c.channel), ('intake_agency', c.intake_agency),
    ('sex', c.child_sex), ('age_group', c.child_age_group), ('environment', c.environment),
    ('perpetrator', c.perpetrator)) AS b(breakdown, category)
WHERE {_RECEIVED}
GROUP BY 1, 2, 3
""")  # noqa: S608

CASE_FORMS = text(f"""
SELECT c.commune_code, form, count(*) AS cases, count(*) FILTER (WHERE c.intervened) AS intervened
FROM case_fact c, unnest(c.abuse_forms) AS form WHERE {_RECEIVED}
GROUP BY 1, 2
""")  # noqa: S608


def _distinct_children(condition: str, extra_columns: str = "") -> str:
    """Distinct children (the linked child, else the case) of the cases received in the period that match
    `condition`, each counted once: in the commune of its latest such case, anywhere in the country, so communes
    add up to provinces and the nation. The CTE `children` has one row per child of the wanted communes, with its
    latest case's columns; `cases` has every matching case of those children."""
    return f"""
mine AS (
    SELECT DISTINCT c.child_id, CASE WHEN c.child_id IS NULL THEN c.case_id END AS lone_case
    FROM case_fact c WHERE {_RECEIVED} AND {condition}
),
cases AS (
    SELECT c.*, coalesce(c.child_id, c.case_id) AS child_key
    FROM case_fact c
    WHERE c.received_on BETWEEN :start AND :end AND {condition}
      AND (c.child_id IN (SELECT child_id FROM mine WHERE child_id IS NOT NULL)
           OR c.case_id IN (SELECT lone_case FROM mine WHERE lone_case IS NOT NULL))
),
latest AS (
    SELECT DISTINCT ON (child_key) child_key, commune_code, child_sex, child_age_group, perpetrator{extra_columns}
    FROM cases ORDER BY child_key, received_at DESC, case_id DESC
),
children AS (SELECT * FROM latest WHERE commune_code IN (SELECT unnest(CAST(:communes AS varchar[]))))"""  # noqa: S608


ABUSED_CHILDREN = text(f"""
WITH {_distinct_children("c.counted_abused")},
timeliness AS (
    SELECT child_key, bool_or(intervention_settled) AS settled,
           bool_and(intervention_timely) FILTER (WHERE intervention_settled) AS timely
    FROM cases GROUP BY child_key
)
SELECT 'child' AS level, ch.commune_code, b.breakdown AS category, b.category AS extra, count(*) AS children,
       count(*) FILTER (WHERE t.settled) AS settled, count(*) FILTER (WHERE t.settled AND t.timely) AS timely
FROM children ch JOIN timeliness t USING (child_key) CROSS JOIN LATERAL (VALUES
    ('', ''), ('sex', ch.child_sex), ('age_group', ch.child_age_group), ('perpetrator', ch.perpetrator)
) AS b(breakdown, category)
GROUP BY 1, 2, 3, 4
UNION ALL
SELECT 'abuse_form', ch.commune_code, form, NULL, count(DISTINCT ch.child_key), 0, 0
FROM children ch JOIN cases c USING (child_key), unnest(c.abuse_forms) AS form GROUP BY 1, 2, 3
UNION ALL
SELECT 'environment', ch.commune_code, c.environment, NULL, count(DISTINCT ch.child_key), 0, 0
FROM children ch JOIN cases c USING (child_key) GROUP BY 1, 2, 3
""")  # noqa: S608

SUPPORTED_CHILDREN = text(f"""
WITH {_distinct_children("c.category = :category AND c.supported")}
SELECT ch.commune_code, '' AS category, count(*) AS children FROM children ch GROUP BY 1
UNION ALL
SELECT ch.commune_code, item, count(DISTINCT ch.child_key)
FROM children ch JOIN cases c USING (child_key),
     unnest(CASE WHEN :category = 'at_risk' THEN c.risk_forms ELSE c.special_groups END) AS item
GROUP BY 1, 2
""")  # noqa: S608

CASES_CLOSED = text("""
SELECT commune_code, closure_reason, coalesce(closure_kind, 'unknown') AS closure_kind, count(*) AS cases
FROM case_fact WHERE commune_code IN (SELECT unnest(CAST(:communes AS varchar[])))
  AND closed_on BETWEEN :start AND :end
GROUP BY 1, 2, 3
""")

# A deadline is settled once met or declared missed; it was kept when met no later than due.
TIMELINESS = text("""
SELECT c.commune_code, d.name, c.abuse_forms && CAST(:criterion_6 AS varchar[]) AS criterion_6,
       count(*) AS settled, count(*) FILTER (WHERE d.met_at <= d.due_at) AS on_time
FROM case_fact c JOIN case_deadline d ON d.case_id = c.case_id
WHERE c.commune_code IN (SELECT unnest(CAST(:communes AS varchar[]))) AND c.received_on BETWEEN :start AND :end
  AND d.name IN ('plan_drafted', 'plan_approval') AND (d.met_at IS NOT NULL OR d.missed)
GROUP BY 1, 2, 3
""")

CRITERION_6 = text("""
SELECT c.commune_code, form, count(*) AS settled, count(*) FILTER (WHERE d.met_at <= d.due_at) AS on_time
FROM case_fact c JOIN case_deadline d ON d.case_id = c.case_id, unnest(c.abuse_forms) AS form
WHERE c.commune_code IN (SELECT unnest(CAST(:communes AS varchar[]))) AND c.received_on BETWEEN :start AND :end
  AND d.name = 'plan_approval' AND (d.met_at IS NOT NULL OR d.missed)
  AND form = ANY(CAST(:criterion_6 AS varchar[]))
GROUP BY 1, 2
""")

OVERDUE = text("""
SELECT commune_code, name, count(*) AS steps
FROM case_deadline
WHERE commune_code IN (SELECT unnest(CAST(:communes AS varchar[])))
  AND due_on BETWEEN :start AND :end AND (missed OR met_at > due_at)
GROUP BY 1, 2
""")

SEPARATIONS = text("""
SELECT commune_code, 'decided' AS kind,
       CASE WHEN days IS NULL THEN 'ongoing' WHEN days <= 15 THEN 'within_15_days' ELSE 'over_15_days' END AS duration,
       CASE WHEN competent_authority_extension THEN 'authority_request'
            WHEN extended_days > 0 THEN 'extended' ELSE 'not_extended' END AS extension,
       count(*) AS separations, 0 AS days
FROM case_separation WHERE commune_code IN (SELECT unnest(CAST(:communes AS varchar[])))
  AND decided_on BETWEEN :start AND :end
GROUP BY 1, 2, 3, 4
UNION ALL
SELECT commune_code, 'ended', NULL, NULL, count(*), sum(days)
FROM case_separation WHERE commune_code IN (SELECT unnest(CAST(:communes AS varchar[])))
  AND ended_on BETWEEN :start AND :end
GROUP BY 1
""")


def _add(counts: Counts, name: str, value: int) -> None:
    if value:
        counts[name] = counts.get(name, 0) + value


def _ratio(counts: Counts, name: str, numerator: int, denominator: int) -> None:
    _add(counts, name + "|n", numerator)
    _add(counts, name + "|d", denominator)


def month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _derived_ratios(counts: Counts) -> None:
    """Ratios whose parts are other indicators' totals."""
    _ratio(counts, key("HT-TE08"), counts.get(key("HT-TE02"), 0), counts.get(key("HT-TE01"), 0))
    _ratio(counts, key("HT-VV05"), counts.get(key("HT-VV04"), 0), counts.get(key("HT-TE01"), 0))


def _params(period: Period) -> dict[str, Any]:
    return {"start": period.start, "end": period.end, "as_of": period.end, "as_of_index": month_index(period.end),
            "criterion_6": list(CRITERION_6_FORMS)}


async def commune_counts(session: AsyncSession, communes: list[str], period: Period,
                         include_children: bool = True) -> dict[str, Counts]:
    """All counts of `communes` for `period`; communes with nothing to count get an empty dict. Without
    `include_children`, only the case figures (a trend over many periods needs no more)."""
    result: dict[str, Counts] = {code: {} for code in communes}
    if not communes:
        return result
    params = {"communes": communes, **_params(period)}
    if include_children:
        await _children(session, params, {"": result}, COMMUNE_STOCKS)
    await _cases(session, params, result)
    for counts in result.values():
        _derived_ratios(counts)
    return result


async def commune_counts_of_periods(session: AsyncSession, communes: list[str],
                                    periods: list[Period]) -> dict[str, dict[str, Counts]]:
    """All counts of `communes` for each of `periods` (period id -> commune -> counts), the children of every period
    counted in one pass over the communes' child rows."""
    result: dict[str, dict[str, Counts]] = {p.id: {code: {} for code in communes} for p in periods}
    if not communes or not periods:
        return result
    await _children(session, {"communes": communes, "period_ids": [p.id for p in periods],
                              "as_ofs": [p.end for p in periods],
                              "as_of_indexes": [month_index(p.end) for p in periods]}, result,
                    COMMUNE_STOCKS_OF_PERIODS)
    for period in periods:
        await _cases(session, {"communes": communes, **_params(period)}, result[period.id])
        for counts in result[period.id].values():
            _derived_ratios(counts)
    return result


async def province_counts(session: AsyncSession, wanted: list[str],
                          periods: list[Period]) -> dict[str, dict[str, Counts]]:
    """All counts of the provinces `wanted` for each of `periods` (period id -> province -> counts), each the exact
    sum of its communes' (the same facts, the same rules). The children of every period are counted by province in
    one pass over the child rows."""
    result: dict[str, dict[str, Counts]] = {p.id: {code: {} for code in wanted} for p in periods}
    if not wanted or not periods:
        return result
    members = sorted(code for code, unit in official().items() if unit.province_code in wanted)
    await _children(session, {"provinces": wanted, "period_ids": [p.id for p in periods],
                              "as_ofs": [p.end for p in periods],
                              "as_of_indexes": [month_index(p.end) for p in periods]}, result, PROVINCE_STOCKS)
    for period in periods:
        by_commune: dict[str, Counts] = {code: {} for code in members}
        await _cases(session, {"communes": members, **_params(period)}, by_commune)
        totals = result[period.id]
        for code, counts in by_commune.items():
            total = totals[official()[code].province_code]
            for name, value in counts.items():
                total[name] = total.get(name, 0) + value
        for counts in totals.values():
            _derived_ratios(counts)
    return result


async def _children(session: AsyncSession, params: dict[str, Any], results: dict[str, dict[str, Counts]],
                    statements: tuple[TextClause, TextClause]) -> None:
    """Adds the stock counts to `results` (period id, '' for a single period -> place -> counts)."""
    children, special = statements
    for row in await session.execute(children, params):
        c = results[row.period_id][row.commune_code]
        for breakdown, category in (("", ""), ("sex", row.sex), ("age_group", row.age_group)):
            _add(c, key("HT-TE01", breakdown, category), row.children)
            _ratio(c, key("HT-TE04", breakdown, category), row.registered, row.children)
        if row.age < 5:
            for breakdown, category in (("", ""), ("sex", row.sex), ("age_years", str(row.age))):
                _ratio(c, key("HT-TE06", breakdown, category), row.registered, row.children)
        if row.age_group == "0-5":
            for breakdown, category in (("", ""), ("sex", row.sex)):
                _ratio(c, key("HT-TE05", breakdown, category), row.insured, row.children)
        for breakdown, category in (("", ""), ("sex", row.sex)):
            _add(c, key("HT-TE07", breakdown, category) + "|d", row.disabled)

    for row in await session.execute(special, params):
        c = results[row.period_id][row.commune_code]
        if row.level == "group":
            _add(c, key("HT-TE02", "special_group", row.group_code), row.children)
            _ratio(c, key("HT-TE03", "special_group", row.group_code), row.supported, row.children)
        elif row.level == "disability":
            # Children in group d: supported for it (numerator); those without the registry's flag join the
            # denominator, which already holds every flagged child.
            for breakdown, category in (("", ""), ("sex", row.sex)):
                _ratio(c, key("HT-TE07", breakdown, category), row.supported, row.unflagged)
        else:
            for breakdown, category in (("", ""), ("sex", row.sex), ("age_group", row.age_group)):
                _add(c, key("HT-TE02", breakdown, category), row.children)
            _ratio(c, key("HT-TE03"), row.supported, row.children)


async def _cases(session: AsyncSession, params: dict[str, Any], result: dict[str, Counts]) -> None:
    for row in await session.execute(CASES_RECEIVED, params):
        c = result[row.commune_code]
        _add(c, key("HT-VV01", row.breakdown, row.category), row.cases)
        if row.breakdown == "":
            _add(c, key("HT-VV02"), row.intervened)
            _ratio(c, key("HT-KT01"), row.emergency_kept, row.emergency_settled)
            _ratio(c, key("HT-KT06"), row.views_taken, row.views_recorded)
        elif row.breakdown == "sex":
            _ratio(c, key("HT-KT06", "sex", row.category), row.views_taken, row.views_recorded)

    for row in await session.execute(CASE_FORMS, params):
        c = result[row.commune_code]
        _add(c, key("HT-VV01", "abuse_form", row.form), row.cases)
        _add(c, key("HT-VV02", "abuse_form", row.form), row.intervened)

    for row in await session.execute(ABUSED_CHILDREN, params):
        c = result[row.commune_code]
        if row.level == "child":
            _add(c, key("0101", row.category, row.extra), row.children)
            if row.category == "":
                _ratio(c, key("HT-KT05"), row.timely, row.settled)
        else:
            _add(c, key("0101", row.level, row.category), row.children)

    for category, code, breakdown in (("at_risk", "HT-VV04", "risk_form"),
                                      ("special_circumstances", "HT-VV06", "special_group")):
        for row in await session.execute(SUPPORTED_CHILDREN, {**params, "category": category}):
            c = result[row.commune_code]
            _add(c, key(code, breakdown if row.category else "", row.category), row.children)

    for row in await session.execute(CASES_CLOSED, params):
        c = result[row.commune_code]
        _add(c, key("HT-VV03"), row.cases)
        _add(c, key("HT-VV03", "closure_reason", row.closure_reason), row.cases)
        _add(c, key("HT-VV03", "closure_kind", row.closure_kind), row.cases)

    for row in await session.execute(TIMELINESS, params):
        c = result[row.commune_code]
        indicator = {"plan_drafted": "HT-KT02", "plan_approval": "HT-KT03" if row.criterion_6 else None}[row.name]
        if indicator:
            _ratio(c, key(indicator), row.on_time, row.settled)

    for row in await session.execute(CRITERION_6, params):
        _ratio(result[row.commune_code], key("HT-KT03", "abuse_form", row.form), row.on_time, row.settled)

    for row in await session.execute(OVERDUE, params):
        c = result[row.commune_code]
        _add(c, key("HT-KT04"), row.steps)
        _add(c, key("HT-KT04", "deadline", row.name), row.steps)

    for row in await session.execute(SEPARATIONS, params):
        c = result[row.commune_code]
        if row.kind == "decided":
            _add(c, key("HT-CL01"), row.separations)
            _add(c, key("HT-CL01", "duration", row.duration), row.separations)
            _add(c, key("HT-CL01", "extension", row.extension), row.separations)
        else:
            _ratio(c, key("HT-CL02"), int(row.days or 0), row.separations)


def add_counts(parts: list[Counts]) -> Counts:
    total: defaultdict[str, int] = defaultdict(int)
    for part in parts:
        for name, value in part.items():
            total[name] += value
    return dict(total)
