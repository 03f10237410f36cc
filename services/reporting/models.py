"""Reporting tables: pseudonymous facts (opaque ids, no names) and the figures derived from them.

The facts are the latest statistical snapshot of each child and case, exactly as the producers publish them
(docs/events.md). Figures are materialised per commune and period, and per province and period, and tagged with
the data version they were computed from, so a report is read, not recomputed, while nothing changed.
"""

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, String
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.common.consumer import feed_cursor_table
from services.common.db import new_metadata


class ReportingTable(SQLModel, registry=registry(metadata=new_metadata())):
    pass


metadata = ReportingTable.metadata
feed_cursors = feed_cursor_table(metadata)


class ChildFact(ReportingTable, table=True):
    """The latest snapshot of a child followed by the registry (tre em duoc theo doi), without identity."""

    __tablename__ = "child_fact"
    __table_args__ = (Index("ix_child_fact_commune", "commune_code", "birth_month"),)

    child_id: uuid.UUID = Field(primary_key=True)
    revision: int
    province_code: str = Field(max_length=2)
    commune_code: str = Field(max_length=5)
    sex: str = Field(max_length=10)
    birth_month: date  # first day of the birth month
    # The same month as a number (year * 12 + month - 1): whole years of age on a day are then integer arithmetic.
    birth_index: int = 0
    status: str = Field(max_length=20)
    status_date: date | None = None
    birth_registered: bool = False
    birth_registered_on: date | None = None
    health_insurance_valid_until: date | None = None
    disability: bool = False
    at_risk: bool = False
    # The Vietnamese calendar day the registry first published this child: it is counted from then on.
    followed_since: date
    # A record retired by a merge is never counted again.
    merged_into: uuid.UUID | None = None


class ChildSpecialGroup(ReportingTable, table=True):
    """One spell of a child in one of the 14 groups of Law Art. 10 (tre em co hoan canh dac biet)."""

    __tablename__ = "child_special_group"
    __table_args__ = (Index("ix_child_special_group_commune", "commune_code"),)

    child_id: uuid.UUID = Field(primary_key=True)
    group_code: str = Field(primary_key=True, max_length=2)
    start: date = Field(primary_key=True)
    end: date | None = None
    supported: bool = False
    commune_code: str = Field(max_length=5)


class CaseFact(ReportingTable, table=True):
    """The latest snapshot of a protection case (vu viec xam hai tre em), without identity or free text."""

    __tablename__ = "case_fact"
    __table_args__ = (
        Index("ix_case_fact_commune_received", "commune_code", "received_on"),
        Index("ix_case_fact_commune_closed", "commune_code", "closed_on"),
        Index("ix_case_fact_child", "child_id"),
    )

    case_id: uuid.UUID = Field(primary_key=True)
    revision: int
    province_code: str = Field(max_length=2)
    commune_code: str = Field(max_length=5)
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    received_on: date  # Vietnamese calendar day
    child_sex: str = Field(max_length=10)
    child_age_group: str = Field(max_length=10)
    child_id: uuid.UUID | None = None
    abuse_forms: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(String(30)), nullable=False))
    environment: str = Field(max_length=30)
    state: str = Field(max_length=40)
    emergency: bool = False
    intervened: bool = False
    closure_reason: str | None = Field(default=None, max_length=40)
    closed_on: date | None = None
    # Fields added to the case events in 2026 (docs/events.md); "unknown" (or null) in facts from older events.
    category: str = Field(default="unknown", max_length=30)
    risk_forms: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(String(30)), nullable=False))
    special_groups: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(String(2)), nullable=False))
    channel: str = Field(default="unknown", max_length=30)
    intake_agency: str = Field(default="unknown", max_length=30)
    perpetrator: str = Field(default="unknown", max_length=40)
    incident_commune_code: str | None = Field(default=None, max_length=5)
    residence_commune_code: str | None = Field(default=None, max_length=5)
    child_age_years: int | None = None
    child_views_taken: bool | None = None
    parent_views: str | None = Field(default=None, max_length=40)
    plan_approved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    closure_kind: str | None = Field(default=None, max_length=20)
    # Derived when the snapshot is applied, so counting stays a plain filter:
    # an abuse case that was not closed as unfounded or duplicate counts towards indicator 0101;
    counted_abused: bool = False
    # support was given (a plan approved, or the case intervened);
    supported: bool = False
    # emergency protection within 12 hours of receipt (Decree 56 Art. 26(3)): null while not settled;
    emergency_kept: bool | None = None
    # the intervention as a whole (emergency protection if needed, plan drafted and approved) is settled / in time.
    intervention_settled: bool = False
    intervention_timely: bool = False


class CaseDeadline(ReportingTable, table=True):
    """One named deadline of a case's workflow and whether it was met in time."""

    __tablename__ = "case_deadline"
    __table_args__ = (Index("ix_case_deadline_commune_due", "commune_code", "due_on"),)

    case_id: uuid.UUID = Field(primary_key=True)
    name: str = Field(primary_key=True, max_length=40)
    commune_code: str = Field(max_length=5)
    due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    due_on: date
    met_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    missed: bool = False


class CaseSeparation(ReportingTable, table=True):
    """A temporary separation of the child from its parents or carers (tam thoi cach ly, Decree 56 Art. 32)."""

    __tablename__ = "case_separation"
    __table_args__ = (Index("ix_case_separation_commune_decided", "commune_code", "decided_on"),
                      Index("ix_case_separation_commune_ended", "commune_code", "ended_on"))

    case_id: uuid.UUID = Field(primary_key=True)
    number: int = Field(primary_key=True)  # its place in the case's list
    commune_code: str = Field(max_length=5)
    decided_on: date
    ended_on: date | None = None
    days: int | None = None  # calendar days from decision to end, once ended
    extended_days: int = 0
    competent_authority_extension: bool = False


class DataVersion(ReportingTable, table=True):
    """A counter per place (commune, province, `VN`) bumped in the transaction that changes its facts.

    ETags come from it, so a poll that changed nothing is answered without computing anything.
    """

    __tablename__ = "data_version"

    location_code: str = Field(primary_key=True, max_length=5)
    province_code: str | None = Field(default=None, max_length=2, index=True)
    version: int = Field(sa_column=Column(BigInteger, nullable=False))
    changed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class FeedProgress(ReportingTable, table=True):
    """How far each feed has been applied: the last event's position and when it happened at the producer."""

    __tablename__ = "feed_progress"

    feed: str = Field(primary_key=True, max_length=50)
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_event_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    applied_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class RejectedEvent(ReportingTable, table=True):
    """An event that did not match the contract: skipped (so one bad event cannot stop the feed) and kept for
    investigation by position and reason only, never its payload."""

    __tablename__ = "rejected_event"

    feed: str = Field(primary_key=True, max_length=50)
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True))
    event_type: str = Field(max_length=100)
    reason: str = Field(max_length=500)
    rejected_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CommuneFigures(ReportingTable, table=True):
    """All counts of one commune for one period, computed from the facts at `version` of the commune."""

    __tablename__ = "commune_figures"

    period_id: str = Field(primary_key=True, max_length=10)
    commune_code: str = Field(primary_key=True, max_length=5)
    province_code: str = Field(max_length=2, index=True)
    version: int = Field(sa_column=Column(BigInteger, nullable=False))
    figures: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))


class ProvinceFigures(ReportingTable, table=True):
    """The sum of a province's commune figures for one period, at `version` of the province."""

    __tablename__ = "province_figures"

    period_id: str = Field(primary_key=True, max_length=10)
    province_code: str = Field(primary_key=True, max_length=2)
    version: int = Field(sa_column=Column(BigInteger, nullable=False))
    figures: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))


class ReportRevision(ReportingTable, table=True):
    """The published versions of one place's report for one period (lan sua doi so lieu).

    A report is first published at revision 1; whenever its figures differ from the last published ones (a case
    found unfounded, a late correction), the revision grows by one and `revised_at` moves.
    """

    __tablename__ = "report_revision"

    period_id: str = Field(primary_key=True, max_length=10)
    location_code: str = Field(primary_key=True, max_length=5)
    revision: int
    digest: str = Field(max_length=64)
    first_published_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revised_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CriterionEntry(ReportingTable, table=True):
    """A child-friendly commune criterion (Decision 06/QD-TTg, 2019) entered by the commune, with its evidence.

    Entries are never updated: a correction is a new entry, so who entered what, when and from which source stays
    on record. The latest entry of a (commune, year, criterion) counts.
    """

    __tablename__ = "criterion_entry"
    __table_args__ = (Index("ix_criterion_entry_commune_year", "commune_code", "year", "criterion"),)

    id: int | None = Field(default=None, primary_key=True)
    commune_code: str = Field(max_length=5)
    province_code: str = Field(max_length=2)
    year: int
    criterion: int  # 1-13; 0 is the commune's type, which sets the pass mark
    points: int | None = None
    value: str | None = Field(default=None, max_length=200)
    source: str = Field(max_length=500)
    note: str | None = Field(default=None, max_length=1000)
    entered_by: str = Field(max_length=100)
    entered_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
