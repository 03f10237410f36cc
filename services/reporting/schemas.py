"""Response shapes of the reporting API, for the OpenAPI document and for clients.

Responses are serialised directly (they can hold thousands of values); these models describe them.
"""

from pydantic import BaseModel, Field


class LocationRead(BaseModel):
    code: str = Field(description="VN, a province (2 digits) or a commune (5 digits)")
    level: str = Field(description="national, province or commune")
    name: str


class FeedState(BaseModel):
    position: int | None = Field(description="The last event position applied")
    checked_at: str | None = Field(description="When the feed was last read")
    last_event_at: str | None = Field(description="When the last applied event happened at the producer")


class SuppressionRead(BaseModel):
    applies: bool = Field(description="Whether this response holds figures below province level (a commune's, or "
                                       "the locality rows of a province)")
    threshold: int = Field(description="Counts from 1 to threshold - 1 are suppressed")
    suppressed_label: str
    complementary_label: str


class ValueRead(BaseModel):
    indicator: str
    period: str
    location: str
    breakdown: str | None = Field(description="Null for the total")
    category: str | None
    value: float | int | None = Field(description="A count, a percentage, or null when suppressed or undefined")
    display: str = Field(description="The published text: the number, or the suppression label")
    numerator: int | None = Field(description="Rates only")
    denominator: int | None = Field(description="Rates only")
    suppressed: str | None = Field(description="primary, complementary, or null")


class ValuesRead(BaseModel):
    location: LocationRead
    freshness: dict[str, FeedState]
    suppression: SuppressionRead
    values: list[ValueRead]


class PeriodRead(BaseModel):
    id: str
    kind: str
    start: str
    end: str
    due_date: str | None


class ReportValue(BaseModel):
    breakdown: str | None
    category: str | None
    value: float | int | None
    display: str
    numerator: int | None
    denominator: int | None
    suppressed: str | None


class ReportIndicator(BaseModel):
    code: str
    name_vi: str
    name_en: str
    unit: str
    values: list[ReportValue]


class ReportRead(BaseModel):
    period: PeriodRead
    location: LocationRead
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
    name_vi: str
    name_en: str
    definition: str
    unit: str
    source: str
    breakdowns: list[BreakdownRead]


class CatalogueRead(BaseModel):
    indicators: list[IndicatorRead]
    periods: dict[str, object]
    locations: str
