"""Counting: every figure of a set of communes for one period, by aggregate queries over the fact rows.

The result per commune is a sparse dict of integer counts keyed as `indicators.key()` describes; provinces and
the nation are sums of these dicts, so figures roll up exactly. Rates keep numerator and denominator apart until
they are shown.
"""

from collections import defaultdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.age import AGE_GROUPS
from services.reporting.indicators import CHILD_AGE_GROUPS, CRITERION_6_FORMS, key
from services.reporting.periods import Period

Counts = dict[str, int]

_AGE_GROUP_SQL = "CASE " + " ".join(
    f"WHEN age BETWEEN {low} AND {high} THEN '{name}'" for name, low, high in AGE_GROUPS if high < 16
) + " END"

# Children followed on the last day of the period (`:as_of`), with their age in whole years from the first day
# of their birth month (services/common/age.py).
_FOLLOWED = f"""
followed_raw AS (
    SELECT c.child_id, c.commune_code, c.sex,
           date_part('year', age(:as_of, c.birth_month))::int AS age,
           c.birth_registered AND (c.birth_registered_on IS NULL OR c.birth_registered_on <= :as_of) AS registered,
           coalesce(c.health_insurance_valid_until >= :as_of, false) AS insured
    FROM child_fact c
    WHERE c.commune_code = ANY(:communes) AND c.merged_into IS NULL
      AND c.birth_month <= :as_of AND c.followed_since <= :as_of
      AND (c.status = 'active' OR c.status_date > :as_of)
),
followed AS (
    SELECT child_id, commune_code, sex, registered, insured, {_AGE_GROUP_SQL} AS age_group
    FROM followed_raw WHERE age < 16
)"""  # noqa: S608 (only constants are interpolated)

CHILDREN = text(f"""
WITH {_FOLLOWED}
SELECT commune_code, sex, age_group, count(*) AS children,
       count(*) FILTER (WHERE registered) AS registered, count(*) FILTER (WHERE insured) AS insured
FROM followed GROUP BY commune_code, sex, age_group
""")  # noqa: S608

SPECIAL = text(f"""
WITH {_FOLLOWED},
spells AS (
    SELECT f.child_id, f.commune_code, f.sex, f.age_group, g.group_code, bool_or(g.supported) AS supported
    FROM followed f JOIN child_special_group g ON g.child_id = f.child_id
    WHERE g.start <= :as_of AND (g."end" IS NULL OR g."end" >= :as_of)
    GROUP BY f.child_id, f.commune_code, f.sex, f.age_group, g.group_code
)
SELECT 'group' AS level, commune_code, group_code, NULL AS sex, NULL AS age_group,
       count(*) AS children, count(*) FILTER (WHERE supported) AS supported
FROM spells GROUP BY commune_code, group_code
UNION ALL
SELECT 'child', commune_code, NULL, sex, age_group, count(*), count(*) FILTER (WHERE supported)
FROM (SELECT child_id, commune_code, sex, age_group, bool_or(supported) AS supported
      FROM spells GROUP BY child_id, commune_code, sex, age_group) children
GROUP BY commune_code, sex, age_group
""")  # noqa: S608

_RECEIVED = "commune_code = ANY(:communes) AND received_on BETWEEN :start AND :end"

CASES_RECEIVED = text(f"""
SELECT commune_code, child_sex, child_age_group, environment, count(*) AS cases,
       count(*) FILTER (WHERE intervened) AS intervened
FROM case_fact WHERE {_RECEIVED}
GROUP BY commune_code, child_sex, child_age_group, environment
""")  # noqa: S608

CASE_FORMS = text(f"""
SELECT commune_code, form, count(*) AS cases, count(*) FILTER (WHERE intervened) AS intervened
FROM case_fact, unnest(abuse_forms) AS form WHERE {_RECEIVED}
GROUP BY commune_code, form
""")  # noqa: S608

# Indicator 0101: a child (or an unlinked case) counts once per commune; sex and age from its latest case.
ABUSED_CHILDREN = text(f"""
WITH abused AS (
    SELECT commune_code, coalesce(child_id::text, case_id::text) AS child_key, case_id, received_at,
           child_sex, child_age_group, abuse_forms, environment
    FROM case_fact WHERE {_RECEIVED} AND cardinality(abuse_forms) > 0
)
SELECT 'child' AS level, commune_code, child_sex AS category, child_age_group AS extra, count(*) AS children
FROM (SELECT DISTINCT ON (commune_code, child_key) commune_code, child_sex, child_age_group
      FROM abused ORDER BY commune_code, child_key, received_at DESC, case_id DESC) latest
GROUP BY commune_code, child_sex, child_age_group
UNION ALL
SELECT 'form', commune_code, form, NULL, count(DISTINCT child_key)
FROM abused, unnest(abuse_forms) AS form GROUP BY commune_code, form
UNION ALL
SELECT 'environment', commune_code, environment, NULL, count(DISTINCT child_key)
FROM abused GROUP BY commune_code, environment
""")  # noqa: S608

CASES_CLOSED = text("""
SELECT commune_code, closure_reason, count(*) AS cases
FROM case_fact WHERE commune_code = ANY(:communes) AND closed_on BETWEEN :start AND :end
GROUP BY commune_code, closure_reason
""")

# A deadline is settled once met or declared missed; it was kept when met no later than due.
TIMELINESS = text("""
SELECT c.commune_code, d.name, c.emergency, c.abuse_forms && CAST(:criterion_6 AS varchar[]) AS criterion_6,
       count(*) AS settled, count(*) FILTER (WHERE d.met_at <= d.due_at) AS on_time
FROM case_fact c JOIN case_deadline d ON d.case_id = c.case_id
WHERE c.commune_code = ANY(:communes) AND c.received_on BETWEEN :start AND :end
  AND d.name IN ('emergency_protection', 'plan_drafted', 'plan_approval')
  AND (d.met_at IS NOT NULL OR d.missed)
GROUP BY 1, 2, 3, 4
""")

CRITERION_6 = text("""
SELECT c.commune_code, form, count(*) AS settled, count(*) FILTER (WHERE d.met_at <= d.due_at) AS on_time
FROM case_fact c JOIN case_deadline d ON d.case_id = c.case_id, unnest(c.abuse_forms) AS form
WHERE c.commune_code = ANY(:communes) AND c.received_on BETWEEN :start AND :end
  AND d.name = 'plan_approval' AND (d.met_at IS NOT NULL OR d.missed)
  AND form = ANY(CAST(:criterion_6 AS varchar[]))
GROUP BY 1, 2
""")

OVERDUE = text("""
SELECT commune_code, name, count(*) AS steps
FROM case_deadline
WHERE commune_code = ANY(:communes) AND due_on BETWEEN :start AND :end AND (missed OR met_at > due_at)
GROUP BY 1, 2
""")


def _add(counts: Counts, name: str, value: int) -> None:
    if value:
        counts[name] = counts.get(name, 0) + value


async def commune_counts(session: AsyncSession, communes: list[str], period: Period) -> dict[str, Counts]:
    """All counts of `communes` for `period`; communes with nothing to count get an empty dict."""
    result: dict[str, Counts] = {code: {} for code in communes}
    if not communes:
        return result
    params: dict[str, Any] = {"communes": communes, "start": period.start, "end": period.end,
                              "as_of": period.end, "criterion_6": list(CRITERION_6_FORMS)}

    for row in await session.execute(CHILDREN, params):
        c = result[row.commune_code]
        for code, value in (("TE01", row.children),):
            _add(c, key(code), value)
            _add(c, key(code, "sex", row.sex), value)
            _add(c, key(code, "age_group", row.age_group), value)
        _add(c, key("TE04") + "|n", row.registered)
        _add(c, key("TE04") + "|d", row.children)
        _add(c, key("TE04", "sex", row.sex) + "|n", row.registered)
        _add(c, key("TE04", "sex", row.sex) + "|d", row.children)
        if row.age_group == CHILD_AGE_GROUPS[0]:
            _add(c, key("TE05") + "|n", row.insured)
            _add(c, key("TE05") + "|d", row.children)
            _add(c, key("TE05", "sex", row.sex) + "|n", row.insured)
            _add(c, key("TE05", "sex", row.sex) + "|d", row.children)

    for row in await session.execute(SPECIAL, params):
        c = result[row.commune_code]
        if row.level == "group":
            _add(c, key("TE02", "special_group", row.group_code), row.children)
            _add(c, key("TE03", "special_group", row.group_code) + "|n", row.supported)
            _add(c, key("TE03", "special_group", row.group_code) + "|d", row.children)
        else:
            _add(c, key("TE02"), row.children)
            _add(c, key("TE02", "sex", row.sex), row.children)
            _add(c, key("TE02", "age_group", row.age_group), row.children)
            _add(c, key("TE03") + "|n", row.supported)
            _add(c, key("TE03") + "|d", row.children)

    for row in await session.execute(CASES_RECEIVED, params):
        c = result[row.commune_code]
        _add(c, key("VV01"), row.cases)
        _add(c, key("VV01", "sex", row.child_sex), row.cases)
        _add(c, key("VV01", "age_group", row.child_age_group), row.cases)
        _add(c, key("VV01", "environment", row.environment), row.cases)
        _add(c, key("VV02"), row.intervened)

    for row in await session.execute(CASE_FORMS, params):
        c = result[row.commune_code]
        _add(c, key("VV01", "abuse_form", row.form), row.cases)
        _add(c, key("VV02", "abuse_form", row.form), row.intervened)

    for row in await session.execute(ABUSED_CHILDREN, params):
        c = result[row.commune_code]
        if row.level == "child":
            _add(c, key("0101"), row.children)
            _add(c, key("0101", "sex", row.category), row.children)
            _add(c, key("0101", "age_group", row.extra), row.children)
        elif row.level == "form":
            _add(c, key("0101", "abuse_form", row.category), row.children)
        else:
            _add(c, key("0101", "environment", row.category), row.children)

    for row in await session.execute(CASES_CLOSED, params):
        c = result[row.commune_code]
        _add(c, key("VV03"), row.cases)
        _add(c, key("VV03", "closure_reason", row.closure_reason), row.cases)

    for row in await session.execute(TIMELINESS, params):
        c = result[row.commune_code]
        indicator = {"emergency_protection": "KT01" if row.emergency else None, "plan_drafted": "KT02",
                     "plan_approval": "KT03" if row.criterion_6 else None}[row.name]
        if indicator:
            _add(c, key(indicator) + "|n", row.on_time)
            _add(c, key(indicator) + "|d", row.settled)

    for row in await session.execute(CRITERION_6, params):
        c = result[row.commune_code]
        _add(c, key("KT03", "abuse_form", row.form) + "|n", row.on_time)
        _add(c, key("KT03", "abuse_form", row.form) + "|d", row.settled)

    for row in await session.execute(OVERDUE, params):
        c = result[row.commune_code]
        _add(c, key("KT04"), row.steps)
        _add(c, key("KT04", "deadline", row.name), row.steps)
    return result


def add_counts(parts: list[Counts]) -> Counts:
    total: defaultdict[str, int] = defaultdict(int)
    for part in parts:
        for name, value in part.items():
            total[name] += value
    return dict(total)
