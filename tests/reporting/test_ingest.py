"""Applying events: newer revisions only, moves bump both places, and a malformed event is set aside."""

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from services.common.db import Database
from services.common.outbox import Event
from services.reporting.ingest import Ingestor
from services.reporting.models import CaseFact, CaseSeparation, ChildFact, DataVersion, RejectedEvent


def event(seq: int, type: str, payload: dict[str, Any]) -> Event:
    return Event(seq=seq, id=uuid.uuid4(), type=type, version=1, occurred_at=datetime(2025, 3, 1, tzinfo=UTC),
                 agency="peoples_committee", source="registry", payload=payload)


def child(child_id: str, revision: int, commune: str, **changes: Any) -> dict[str, Any]:
    return {"child_id": child_id, "revision": revision, "sex": "male", "birth_month": "2018-02",
            "province_code": commune[:2], "commune_code": commune, "status": "active", "status_date": None,
            "birth_registered": True, "birth_registered_on": None, "health_insurance_valid_until": None,
            "disability": False, "special_groups": [], "at_risk": False, **changes}


async def apply(database: Database, events: list[Event]) -> None:
    async with database.sessionmaker() as session, session.begin():
        await Ingestor().apply_registry_events(session, events)


async def versions(database: Database) -> dict[str, int]:
    async with database.sessionmaker() as session:
        table = DataVersion.__table__
        return dict((await session.execute(select(table.c.location_code, table.c.version))).all())


async def test_only_a_newer_revision_replaces_a_fact_and_a_move_bumps_both_communes(reporting_db: Database) -> None:
    child_id = str(uuid.uuid4())
    await apply(reporting_db, [event(1, "child.registered", child(child_id, 1, "00070"))])
    await apply(reporting_db, [event(2, "child.changed", child(child_id, 3, "07210"))])
    assert await versions(reporting_db) == {"00070": 2, "01": 2, "07210": 1, "24": 1, "VN": 2}

    # A late, older snapshot changes nothing and bumps nothing.
    await apply(reporting_db, [event(3, "child.changed", child(child_id, 2, "00004", sex="female"))])
    async with reporting_db.sessionmaker() as session:
        fact = (await session.execute(select(ChildFact).where(ChildFact.child_id == uuid.UUID(child_id)))).scalar_one()
    assert (fact.revision, fact.commune_code, fact.province_code, fact.sex) == (3, "07210", "24", "male")
    assert await versions(reporting_db) == {"00070": 2, "01": 2, "07210": 1, "24": 1, "VN": 2}


async def test_a_malformed_event_is_set_aside_without_its_content_and_the_rest_applies(
        reporting_db: Database) -> None:
    good = str(uuid.uuid4())
    await apply(reporting_db, [
        event(1, "child.registered", {"child_id": "not-a-uuid", "full_name": "Nguyễn Văn A"}),
        event(2, "child.registered", child(str(uuid.uuid4()), 1, "99999")),  # no such commune
        event(3, "child.registered", child(good, 1, "00070")),
        event(4, "child.unknown_type", {"anything": 1}),
    ])
    async with reporting_db.sessionmaker() as session:
        rejected = (await session.execute(select(RejectedEvent).order_by(RejectedEvent.seq))).scalars().all()
        facts = (await session.execute(select(ChildFact.child_id))).scalars().all()
    assert [r.seq for r in rejected] == [1, 2]
    assert "commune_code" in rejected[1].reason
    assert all("Nguyễn" not in r.reason and "not-a-uuid" not in r.reason for r in rejected)
    assert facts == [uuid.UUID(good)]


def case(case_id: str, **changes: Any) -> dict[str, Any]:
    return {"case_id": case_id, "revision": 1, "province_code": "01", "commune_code": "00070",
            "received_at": "2025-03-01T02:00:00+00:00", "child_sex": "female", "child_age_group": "6-10",
            "child_id": None, "abuse_forms": ["neglect"], "environment": "home", "state": "received",
            "emergency": None, "closure_reason": None, "closed_at": None,
            "deadlines": {"assessment": {"due_at": "2025-03-02T02:00:00+00:00", "met_at": None, "missed": False}},
            **changes}


async def test_values_that_would_break_the_database_are_refused_one_event_at_a_time(reporting_db: Database) -> None:
    """A value that fits no column must be refused by validation: a database error would fail its batch forever."""
    good = str(uuid.uuid4())
    hostile = [
        {"revision": 2**40}, {"abuse_forms": ["x" * 31]}, {"deadlines": {"d" * 41: {"due_at": "2025-03-02T00:00Z"}}},
        {"received_at": "9999-12-31T23:59:59-12:00"}, {"received_at": "2025-03-01T02:00:00"},
        {"closed_at": "0001-01-01T00:00:00+14:00"}, {"child_sex": "x" * 11},
    ]
    events = [Event(seq=n + 1, id=uuid.uuid4(), type="case.changed", version=1, occurred_at=datetime.now(UTC),
                    agency=None, source="cases", payload=case(str(uuid.uuid4()), **changes))
              for n, changes in enumerate(hostile)]
    events.append(Event(seq=len(hostile) + 1, id=uuid.uuid4(), type="case.received", version=1,
                        occurred_at=datetime.now(UTC), agency=None, source="cases", payload=case(good)))
    async with reporting_db.sessionmaker() as session, session.begin():
        await Ingestor().apply_cases_events(session, events)
    async with reporting_db.sessionmaker() as session:
        rejected = (await session.execute(select(RejectedEvent.seq))).scalars().all()
        kept = (await session.execute(select(CaseFact.case_id))).scalars().all()
    assert sorted(rejected) == list(range(1, len(hostile) + 1))
    assert kept == [uuid.UUID(good)]

    registry_hostile = [child(str(uuid.uuid4()), 1, "00070", birth_month="0000-05"),
                        child(str(uuid.uuid4()), 2**31, "00070"), child(str(uuid.uuid4()), 1, "00070", status="x" * 21)]
    await apply(reporting_db, [event(n + 1, "child.registered", p) for n, p in enumerate(registry_hostile)])
    async with reporting_db.sessionmaker() as session:
        assert (await session.execute(select(ChildFact.child_id))).scalars().all() == []
        assert len((await session.execute(select(RejectedEvent))).scalars().all()) == len(hostile) + 3


async def test_the_2026_case_fields_are_applied_and_their_absence_means_unknown(reporting_db: Database) -> None:
    old, new, unfounded = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    received = "2025-03-01T02:00:00+00:00"
    payloads = [
        case(old),  # an event from before 2026: no category, channel or separations
        case(new, category="abused", channel="phone", intake_agency="hotline", perpetrator_relationship="parent",
             child_age_years=9, child_views_taken=True, parent_views="not_asked_alleged_abuser",
             incident_commune_code="00070", residence_commune_code="00004", emergency=True,
             emergency_measure={"taken_at": "2025-03-01T13:59:00+00:00", "agency": "police"},
             separations=[{"decided_at": "2025-03-01T05:00:00+00:00", "ends_at": "2025-03-16T05:00:00+00:00",
                           "ended_at": "2025-03-21T05:00:00+00:00", "extended_days": 5,
                           "competent_authority_extension": False}],
             plan_approved_at="2025-03-08T02:00:00+00:00", received_at=received),
        case(unfounded, category="abused", state="closed", closure_reason="unfounded",
             closed_at="2025-03-05T02:00:00+00:00", closure_kind="early"),
    ]
    events = [Event(seq=n + 1, id=uuid.uuid4(), type="case.changed", version=1, occurred_at=datetime.now(UTC),
                    agency=None, source="cases", payload=p) for n, p in enumerate(payloads)]
    async with reporting_db.sessionmaker() as session, session.begin():
        await Ingestor().apply_cases_events(session, events)
    async with reporting_db.sessionmaker() as session:
        facts = {str(f.case_id): f for f in (await session.execute(select(CaseFact))).scalars()}
        separations = (await session.execute(select(CaseSeparation))).scalars().all()
        rejected = (await session.execute(select(RejectedEvent))).scalars().all()
    assert not rejected
    legacy = facts[old]
    assert (legacy.category, legacy.channel, legacy.intake_agency, legacy.perpetrator) == ("unknown",) * 4
    assert legacy.counted_abused  # before 2026 a case with a form of abuse was an abuse case
    fresh = facts[new]
    assert (fresh.category, fresh.channel, fresh.intake_agency, fresh.perpetrator) == ("abused", "phone", "hotline",
                                                                                       "parent")
    assert fresh.child_age_years == 9 and fresh.child_views_taken and fresh.supported and fresh.counted_abused
    assert fresh.emergency_kept is True  # taken 11 h 59 min after receipt: within Decree 56 Art. 26(3)'s 12 hours
    assert not facts[unfounded].counted_abused and facts[unfounded].closure_kind == "early"
    assert [(s.days, s.extended_days, s.competent_authority_extension) for s in separations] == [(20, 5, False)]


async def test_an_emergency_protection_taken_after_12_hours_is_late_whatever_the_deadline_said(
        reporting_db: Database) -> None:
    late = str(uuid.uuid4())
    payload = case(late, emergency=True, emergency_measure={"taken_at": "2025-03-01T14:01:00+00:00"},
                   deadlines={"emergency_protection": {"due_at": "2025-03-02T02:00:00+00:00",
                                                       "met_at": "2025-03-01T14:01:00+00:00", "missed": False}})
    async with reporting_db.sessionmaker() as session, session.begin():
        await Ingestor().apply_cases_events(session, [Event(seq=1, id=uuid.uuid4(), type="case.changed", version=1,
                                                            occurred_at=datetime.now(UTC), agency=None,
                                                            source="cases", payload=payload)])
    async with reporting_db.sessionmaker() as session:
        fact = (await session.execute(select(CaseFact))).scalar_one()
    assert fact.emergency_kept is False


def test_local_days_match_the_zone_on_every_day_including_offset_changes() -> None:
    """The day a timestamp falls on, computed from a cached offset per day, is the zone's calendar day; on a day the
    offset changes (daylight saving, or Vietnam's own past changes) each timestamp is converted by itself."""
    moments = [datetime(1975, 6, 12, 16, 59, 59, tzinfo=UTC), datetime(1975, 6, 12, 17, 0, tzinfo=UTC),
               datetime(2025, 5, 31, 16, 59, 59, tzinfo=UTC), datetime(2025, 5, 31, 17, 0, tzinfo=UTC),
               datetime(2025, 3, 30, 0, 59, 59, tzinfo=UTC), datetime(2025, 3, 30, 1, 0, tzinfo=UTC),
               datetime(2025, 10, 26, 0, 30, tzinfo=UTC), datetime(2025, 10, 26, 22, 59, 59, tzinfo=UTC),
               datetime(2025, 10, 26, 23, 0, tzinfo=UTC)]
    moments += [moment + timedelta(minutes=37 * step) for moment in moments for step in range(-50, 50)]
    moments += [moment.astimezone(timezone(timedelta(hours=-9, minutes=-30))) for moment in moments[:100]]
    for zone in ("Asia/Ho_Chi_Minh", "Europe/Paris", "America/St_Johns"):
        ingestor = Ingestor(zone)
        for moment in moments:
            assert ingestor.local_day(moment) == moment.astimezone(ZoneInfo(zone)).date(), (zone, moment)
