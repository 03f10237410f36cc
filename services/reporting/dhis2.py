"""The catalogue as DHIS2 would model it, and a report as a DHIS2 `dataValueSet` matching that model.

In DHIS2 a data element has exactly one category combination, and a value's category option combination must
belong to it. So each indicator becomes several data elements: one for its total (the `default` combination) and
one per breakdown (a combination of that breakdown's single category). A ratio becomes numerator and denominator
elements (`_N`, `_D`) and a DHIS2 indicator dividing them. Totals travel as their own element rather than being left
to DHIS2 to add up, because some breakdowns are not additive (a child in several forms of abuse) and below province
level a hidden cell is left out, so a sum would be wrong. The `locality` breakdown is DHIS2's own organisation-unit
dimension: the nation, its provinces and communes, with their official codes.

Everything is identified by `code` (import with `idScheme=CODE`); the `id`s are stable UIDs derived from the codes.
"""

import hashlib
from functools import cache
from typing import Any

from services.common.locations import communes, provinces
from services.reporting.indicators import INDICATORS, LOCALITY, Breakdown, Indicator
from services.reporting.periods import DHIS2_PERIOD_KINDS, Period
from services.reporting.service import Place, ValueRow
from services.reporting.vocabulary import BREAKDOWNS, CATEGORY_LISTS

PREFIX = "BVTE"
DEFAULT_COMBO = "bjDvmb4bfuf"  # every DHIS2 instance's built-in `default` category combination
OPENING_DATE = "2025-07-01"  # the two-level local government's units (Resolution 202/2025/QH15)
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
DATA_SET_CODES = {kind: f"{PREFIX}_{period_type.upper()}" for kind, period_type in DHIS2_PERIOD_KINDS.items()}


def uid(code: str) -> str:
    """A DHIS2 UID (a letter, then ten letters or digits) that is the same for the same code, everywhere."""
    number = int.from_bytes(hashlib.sha256(f"bvte:{code}".encode()).digest()[:16], "big")
    letters = [_ALPHABET[10 + number % 52]]
    number //= 52
    for _ in range(10):
        letters.append(_ALPHABET[number % 62])
        number //= 62
    return "".join(letters)


def _part(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).upper()


def _short(text: str) -> str:
    return text if len(text) <= 50 else text[:49] + "…"


def category_code(breakdown: Breakdown) -> str:
    return f"{PREFIX}_{_part(breakdown.code)}_{len(breakdown.categories)}"


def combo_code(breakdown: Breakdown) -> str:
    return f"{PREFIX}_CC_{_part(breakdown.code)}_{len(breakdown.categories)}"


def option_code(breakdown: str, category: str) -> str:
    return f"{PREFIX}_{_part(breakdown)}_{_part(category)}"


def option_combo_code(breakdown: Breakdown, category: str) -> str:
    return f"{combo_code(breakdown)}_{_part(category)}"


def element_code(indicator: Indicator, breakdown: str | None, part: str = "") -> str:
    """`BVTE_0101`, `BVTE_0101_SEX`, and for a ratio `BVTE_HT_TE04_N`, `BVTE_HT_TE04_SEX_D`."""
    name = f"{PREFIX}_{_part(indicator.code)}"
    if breakdown:
        name += f"_{_part(breakdown)}"
    return f"{name}_{part}" if part else name


def _disaggregations(indicator: Indicator) -> list[Breakdown]:
    return [b for b in indicator.breakdowns if b.code != LOCALITY and b.categories]


def _label(breakdown: str, category: str) -> str:
    vocabulary = CATEGORY_LISTS.get(breakdown)
    return vocabulary.label(category) if vocabulary else category


@cache
def metadata_package() -> dict[str, Any]:
    """The DHIS2 metadata of the whole catalogue (POST to /api/metadata), generated from the indicators."""
    options: dict[str, dict[str, Any]] = {}
    categories: dict[str, dict[str, Any]] = {}
    combos: dict[str, dict[str, Any]] = {}
    option_combos: dict[str, dict[str, Any]] = {}
    elements: list[dict[str, Any]] = []
    dhis2_indicators: list[dict[str, Any]] = []

    def element(indicator: Indicator, breakdown: Breakdown | None, part: str) -> dict[str, Any]:
        code = element_code(indicator, breakdown.code if breakdown else None, part)
        suffix = {"N": " (tử số)", "D": " (mẫu số)", "": ""}[part]
        name = indicator.name_vi + (f" — theo {BREAKDOWNS.label(breakdown.code).lower()}" if breakdown else "")
        return {
            "id": uid(code), "code": code, "name": f"{name}{suffix}"[:230], "shortName": _short(code),
            "formName": f"{name}{suffix}"[:230], "description": indicator.definition,
            "domainType": "AGGREGATE", "valueType": "INTEGER_ZERO_OR_POSITIVE",
            "aggregationType": "LAST" if indicator.stock else "SUM", "zeroIsSignificant": True,
            "categoryCombo": {"id": uid(combo_code(breakdown)) if breakdown else DEFAULT_COMBO},
        }

    for indicator in INDICATORS:
        parts = ("N", "D") if indicator.is_ratio else ("",)
        for breakdown in [None, *_disaggregations(indicator)]:
            if breakdown is not None and combo_code(breakdown) not in combos:
                category = category_code(breakdown)
                for value in breakdown.categories:
                    code = option_code(breakdown.code, value)
                    options.setdefault(code, {"id": uid(code), "code": code, "name": _label(breakdown.code, value)
                                              if breakdown.code != "age_years" else f"{value} tuổi",
                                              "shortName": _short(_label(breakdown.code, value) + f" ({code})")})
                categories[category] = {
                    "id": uid(category), "code": category, "name": f"{BREAKDOWNS.label(breakdown.code)} "
                    f"({len(breakdown.categories)} nhóm)", "shortName": _short(category),
                    "dataDimensionType": "DISAGGREGATION", "dataDimension": True,
                    "categoryOptions": [{"id": uid(option_code(breakdown.code, v))} for v in breakdown.categories]}
                combos[combo_code(breakdown)] = {
                    "id": uid(combo_code(breakdown)), "code": combo_code(breakdown),
                    "name": categories[category]["name"], "dataDimensionType": "DISAGGREGATION",
                    "skipTotal": False, "categories": [{"id": uid(category)}]}
                for value in breakdown.categories:
                    code = option_combo_code(breakdown, value)
                    option_combos[code] = {"id": uid(code), "code": code, "name": _label(breakdown.code, value),
                                           "categoryCombo": {"id": uid(combo_code(breakdown))},
                                           "categoryOptions": [{"id": uid(option_code(breakdown.code, value))}]}
            for part in parts:
                elements.append(element(indicator, breakdown, part))
        if indicator.is_ratio:
            numerator, denominator = element_code(indicator, None, "N"), element_code(indicator, None, "D")
            dhis2_indicators.append({
                "id": uid(f"{PREFIX}_IND_{_part(indicator.code)}"), "code": f"{PREFIX}_IND_{_part(indicator.code)}",
                "name": indicator.name_vi[:230], "shortName": _short(f"{PREFIX}_IND_{_part(indicator.code)}"),
                "indicatorType": {"id": uid(f"{PREFIX}_TYPE_{indicator.unit.upper()}")},
                "numerator": f"#{{{uid(numerator)}}}", "numeratorDescription": f"{numerator}",
                "denominator": f"#{{{uid(denominator)}}}", "denominatorDescription": f"{denominator}",
                "annualized": False})

    units = [{"id": uid("VN"), "code": "VN", "name": "Việt Nam", "shortName": "Việt Nam",
              "openingDate": OPENING_DATE}]
    units += [{"id": uid(code), "code": code, "name": p.name, "shortName": _short(p.name),
               "openingDate": OPENING_DATE, "parent": {"id": uid("VN")}} for code, p in sorted(provinces().items())]
    units += [{"id": uid(code), "code": code, "name": f"{c.name}, {provinces()[c.province_code].name}"[:230],
               "shortName": _short(c.name), "openingDate": OPENING_DATE, "parent": {"id": uid(c.province_code)}}
              for code, c in sorted(communes().items())]
    data_sets = [{"id": uid(code), "code": code, "name": f"Số liệu bảo vệ trẻ em ({period_type})",
                  "shortName": code, "periodType": period_type, "categoryCombo": {"id": DEFAULT_COMBO},
                  "dataSetElements": [{"dataElement": {"id": e["id"]}} for e in elements],
                  "organisationUnits": [{"id": unit["id"]} for unit in units]}
                 for kind, period_type in DHIS2_PERIOD_KINDS.items() for code in [DATA_SET_CODES[kind]]]
    return {
        "system": {"name": "Child protection backend (Vietnam): statistics catalogue"},
        "indicatorTypes": [{"id": uid(f"{PREFIX}_TYPE_PERCENT"), "code": f"{PREFIX}_TYPE_PERCENT",
                            "name": "Phần trăm (%)", "factor": 100, "number": False},
                           {"id": uid(f"{PREFIX}_TYPE_DAYS"), "code": f"{PREFIX}_TYPE_DAYS",
                            "name": "Số ngày bình quân", "factor": 1, "number": True}],
        "categoryOptions": list(options.values()),
        "categories": list(categories.values()),
        "categoryCombos": list(combos.values()),
        "categoryOptionCombos": list(option_combos.values()),
        "dataElements": elements,
        "indicators": dhis2_indicators,
        "organisationUnits": units,
        "dataSets": data_sets,
    }


def data_value_set(rows: list[ValueRow], period: Period, where: Place, complete_date: str) -> dict[str, Any]:
    """The report's published values, shaped for `POST /api/dataValueSets?idScheme=CODE`. Hidden cells and
    categories the catalogue does not list are left out (the total element still counts them)."""
    by_code = {indicator.code: indicator for indicator in INDICATORS}
    values: list[dict[str, Any]] = []
    for row in rows:
        if row.suppressed or (row.value is None and row.numerator is None):
            continue
        indicator = by_code[row.indicator]
        org_unit, breakdown = where.code, None
        if row.breakdown == LOCALITY:
            org_unit = row.category or where.code
        elif row.breakdown:
            breakdown = indicator.breakdown(row.breakdown)
            if breakdown is None or row.category not in breakdown.categories:
                continue
        base = {"period": period.id, "orgUnit": org_unit}
        if breakdown is not None:
            base["categoryOptionCombo"] = option_combo_code(breakdown, row.category or "")
        name = breakdown.code if breakdown else None
        if indicator.is_ratio:
            values.append({"dataElement": element_code(indicator, name, "N"), **base, "value": str(row.numerator)})
            values.append({"dataElement": element_code(indicator, name, "D"), **base,
                           "value": str(row.denominator)})
        else:
            values.append({"dataElement": element_code(indicator, name), **base, "value": str(row.value)})
    return {"dataSet": DATA_SET_CODES[period.kind], "period": period.id, "orgUnit": where.code,
            "completeDate": complete_date, "dataValues": values}
