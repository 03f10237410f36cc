"""Request and response shapes of the reporting API, for the OpenAPI document and for clients.

Responses are serialised directly (they can hold thousands of values); these models describe them.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class LocationRead(BaseModel):
    code: str = Field(description="VN, a province (2 digits) or a commune (5 digits)")
    level: str = Field(description="national, province or commune")
    name: str


class FeedState(BaseModel):
    position: int | None = Field(description="The last event position applied")
    checked_at: str | None = Field(description="When the feed was last read")
    last_event_at: str | None = Field(description="When the last applied event happened at the producer")


class SuppressionRead(BaseModel):
    applies: bool = Field(description="Whether hidden cells can occur here: figures below province level read by "
                                      "someone outside the commune")
    own_view: bool = Field(description="A commune's own officers reading their commune: nothing hidden, marked for "
                                       "use inside the commune")
    threshold: int = Field(description="Counts from 1 to threshold - 1 are never published below province level")
    suppressed_label: str = Field(description="What a hidden cell shows, whatever the reason it is hidden")
    commune_periods: list[str] = Field(description="Kinds of period whose commune figures are published")


class ReportRevisionRead(BaseModel):
    number: int = Field(description="1 when first published; grows when the period's figures change (a case later "
                                    "found unfounded, a late correction)")
    first_published_at: str
    revised_at: str


class ReportMarkingRead(BaseModel):
    level: str = Field(description="restricted (published figures) or commune_only (a commune's own figures)")
    text_vi: str = Field(description="Mức độ mật và phạm vi cung cấp (Decree 56/2017 Art. 24(3))")
    data_as_of: str | None = Field(description="The figures include every event the producers recorded before this")
    checked_at: str | None = None
    revision: ReportRevisionRead | None = None


class ValueRead(BaseModel):
    indicator: str
    period: str
    location: str
    breakdown: str | None = Field(description="Null for the total")
    category: str | None
    category_vi: str = Field(description="Nhãn tiếng Việt của nhóm")
    category_en: str = Field(description="English label of the category")
    value: float | int | None = Field(description="A count, a percentage or a mean, or null when hidden or "
                                                   "undefined")
    display: str = Field(description="The published text: the number, or the suppression label")
    numerator: int | None = Field(description="Ratios only")
    denominator: int | None = Field(description="Ratios only")
    suppressed: bool


class ValuesRead(BaseModel):
    location: LocationRead
    marking: dict[str, Any]
    freshness: dict[str, FeedState]
    suppression: SuppressionRead
    values: list[ValueRead]


class PeriodRead(BaseModel):
    id: str
    kind: str
    start: str
    end: str
    due_date: str | None
    due_rule: str = Field(description="lag (days after the period's end) or province (the province's own date)")


class ReportValue(BaseModel):
    breakdown: str | None
    category: str | None
    category_vi: str
    category_en: str
    value: float | int | None
    display: str
    numerator: int | None
    denominator: int | None
    suppressed: bool


class ReportIndicator(BaseModel):
    code: str
    group: str
    group_vi: str
    name_vi: str
    name_en: str
    unit: str
    values: list[ReportValue]


class ReportRead(BaseModel):
    period: PeriodRead
    location: LocationRead
    marking: ReportMarkingRead
    freshness: dict[str, FeedState]
    suppression: SuppressionRead
    indicators: list[ReportIndicator]


class BreakdownRead(BaseModel):
    code: str
    name_vi: str
    name_en: str
    categories: list[str]
    additive: bool


class IndicatorRead(BaseModel):
    code: str
    group: str
    name_vi: str
    name_en: str
    definition: str
    unit: str
    source: str
    legal: str
    counted: str
    circular_13_2021: dict[str, Any] | None
    targets: list[str]
    breakdowns: list[BreakdownRead]


class CatalogueRead(BaseModel):
    indicators: list[IndicatorRead]
    groups: list[dict[str, str]]
    categories: dict[str, list[dict[str, str]]] = Field(description="Every category a report can contain, with "
                                                                    "its Vietnamese and English labels")
    breakdowns: list[dict[str, str]]
    periods: dict[str, object]
    locations: str


def _printable(value: str | None) -> str | None:
    if value is not None and any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        raise ValueError("control characters are not allowed")
    return value


class CriterionWrite(BaseModel):
    """A criterion's points and their evidence, as the commune recorded them (or, for criterion 0, its kind)."""

    model_config = ConfigDict(extra="forbid")

    points: int | None = Field(default=None, ge=0, le=1000, description="Points scored (criteria 1-13)")
    value: str | None = Field(default=None, min_length=1, max_length=200,
                              description="What was measured (for example '98,5%'); for criterion 0 the commune's "
                                          "kind: urban_ward, mountain_island_or_difficult or other")
    source: str = Field(min_length=3, max_length=500, description="Where the evidence is: document, register, "
                                                                  "survey, with its number and date")
    note: str | None = Field(default=None, max_length=1000)

    _check = field_validator("value", "source", "note")(_printable)


class AssessmentRead(BaseModel):
    commune: dict[str, str]
    year: int
    kind: dict[str, Any]
    criteria: list[dict[str, Any]]
    total_points: int
    pass_mark: int | None
    result: dict[str, Any]


class AssessmentList(BaseModel):
    year: int
    period: str
    assessments: list[AssessmentRead]
