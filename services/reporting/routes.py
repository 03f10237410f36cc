"""Reporting HTTP routes: the indicator catalogue, values, periodic reports for pollers (JSON, CSV, XLSX, PDF,
DHIS2), the DHIS2 metadata package, and the child-friendly commune assessment.

Every figure response carries a weak ETag computed from the data version of the place (no figures needed), a
Last-Modified, the freshness of each feed, its confidentiality marking and the revision of the period's figures;
`If-None-Match` with the current ETag answers 304 at the cost of one indexed row read.
"""

import hashlib
from email.utils import format_datetime
from typing import Annotated, Any, Literal

import anyio
import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from services.common.auth import Subject, require
from services.common.clock import utcnow
from services.common.db import DbSession
from services.common.errors import BadRequest, NotFound, problem_responses
from services.common.locations import communes
from services.common.permissions import Action
from services.common.preconditions import IfMatch, conditional
from services.reporting import child_friendly, dhis2, formats
from services.reporting.documents import Report, pdf_document, xlsx_document
from services.reporting.figures import commune_counts
from services.reporting.indicators import GROUPS, INDICATORS
from services.reporting.periods import Period, parse_period
from services.reporting.schemas import (
    AssessmentList,
    AssessmentRead,
    CatalogueRead,
    CriterionWrite,
    ReportRead,
    ValuesRead,
)
from services.reporting.service import (
    Place,
    PollState,
    ProvinceViews,
    Revisions,
    check_publishable,
    indicator_list,
    is_own_view,
    period_list,
    place,
    place_figures,
    place_totals,
    poll_state,
    readable_location,
    rows_of,
)
from services.reporting.settings import ReportingSettings
from services.reporting.vocabulary import BREAKDOWNS, CATEGORY_LISTS

router = APIRouter(prefix="/v1", tags=["statistics"])
StatsReader = Annotated[Subject, Depends(require(Action.STATS_READ))]
CriteriaWriter = Annotated[Subject, Depends(require(Action.CRITERIA_ENTER))]
# [0-9], not \d: the pattern engine's \d also accepts other scripts' digits.
LocationCode = Annotated[str | None, Query(pattern=r"^(VN|[0-9]{2}|[0-9]{5})$", max_length=5,
                                           description="VN, a province (2 digits) or a commune (5 digits)")]
PeriodPath = Annotated[str, Path(max_length=10, description="202405, 2024Q2, 2024S1, 2024, 2024AS1 or 2024AY")]
MAX_PERIODS = 24
TREND_PERIODS = 12
Format = Literal["json", "csv", "xlsx", "pdf", "dhis2"]
MEDIA_TYPES = {"json": "application/json", "csv": formats.CSV_TYPE, "xlsx": formats.XLSX_TYPE,
               "pdf": formats.PDF_TYPE, "dhis2": "application/json"}
NOT_MODIFIED = {304: {"description": "Not modified since the ETag sent in If-None-Match"}}
READ_PROBLEMS = problem_responses(400, 401, 403, 404, 422,
                                  s400="Unknown or non-ASCII period, unknown breakdown, or commune figures asked for "
                                       "a period they are not published for",
                                  s403="Your role may not read statistics",
                                  s404="Location outside your jurisdiction, or unknown indicator")


def _settings(request: Request) -> ReportingSettings:
    settings: ReportingSettings = request.app.state.settings
    return settings


def _views(request: Request) -> ProvinceViews:
    views: ProvinceViews = request.app.state.province_views
    return views


def _revisions(request: Request) -> Revisions:
    revisions: Revisions = request.app.state.revisions
    return revisions


def _validators(state: PollState, etag: str) -> dict[str, str]:
    freshness_header = ", ".join(
        f"{feed};position={feed_state.get('position')};last-event={feed_state.get('last_event_at') or '-'}"
        for feed, feed_state in sorted(state.freshness.items())
    )
    last_modified = format_datetime(state.version.changed_at.astimezone(), usegmt=True) \
        if state.version.number else format_datetime(utcnow(), usegmt=True)
    return {"ETag": etag, "Last-Modified": last_modified, "Cache-Control": "private, no-cache",
            "Data-Freshness": freshness_header or "none", "Vary": "Accept, Authorization"}


def _not_modified(request: Request, etag: str, headers: dict[str, str]) -> Response | None:
    # Weak comparison (RFC 9110 13.1.2): the kit compares tags without their W/ prefix.
    unchanged = conditional(request, etag.removeprefix("W/"))
    if unchanged is not None:
        unchanged.headers.update(headers)
    return unchanged


def _choose_format(request: Request, requested: Format | None) -> Format:
    if requested:
        return requested
    accept = request.headers.get("accept", "")
    for chosen in ("xlsx", "pdf", "csv"):
        if MEDIA_TYPES[chosen].split(";")[0] in accept:
            return chosen  # type: ignore[return-value]
    return "json"


def _suppression_info(settings: ReportingSettings, where: Place, own: bool) -> dict[str, Any]:
    return {"applies": where.level != "national" and not own, "own_view": own,
            "threshold": settings.suppression_threshold, "suppressed_label": settings.suppressed_label,
            "commune_periods": list(settings.commune_period_kinds)}


def _own_dates(settings: ReportingSettings, where: Place) -> dict[str, str] | None:
    return settings.province_due_dates.get(where.province or "")


@router.get("/indicators", summary="The indicator catalogue", response_model=CatalogueRead,
            responses=problem_responses(401, 403))
async def list_indicators(request: Request, _: StatsReader) -> dict[str, Any]:
    settings = _settings(request)
    return {
        "indicators": [indicator.describe() for indicator in INDICATORS],
        "groups": [{"code": code, "name_vi": vi, "name_en": en} for code, (vi, en) in GROUPS.items()],
        "categories": {code: [{"code": t.code, "vi": t.vi, "en": t.en} for t in vocabulary.terms]
                       for code, vocabulary in CATEGORY_LISTS.items()},
        "breakdowns": [{"code": t.code, "vi": t.vi, "en": t.en} for t in BREAKDOWNS.terms],
        "periods": {
            "formats": {"month": "202405", "quarter": "2024Q2", "half_year": "2024S1", "year": "2024",
                        "admin_half_year": "2024AS1 (15 Dec 2023 - 14 Jun 2024), 2024AS2",
                        "admin_year": "2024AY (15 Dec 2023 - 14 Dec 2024)"},
            "due_lag_days": settings.report_due_lag_days,
            "province_due_dates": settings.province_due_dates,
            "commune_periods": list(settings.commune_period_kinds),
        },
        "locations": "VN (national), a province code (2 digits) or a commune code (5 digits)",
    }


@router.get("/values", summary="Values of indicators for one place and one or more periods",
            responses={**READ_PROBLEMS, **NOT_MODIFIED, 200: {"model": ValuesRead, "description": "The values"}})
async def list_values(
    request: Request,
    session: DbSession,
    subject: StatsReader,
    period: Annotated[str, Query(max_length=300, description="One or more periods, comma-separated")],
    indicator: Annotated[str | None, Query(max_length=300, description="Indicator codes, comma-separated")] = None,
    location: LocationCode = None,
    breakdown: Annotated[str | None, Query(max_length=30, description="A breakdown code, or `total`")] = None,
) -> Response:
    settings = _settings(request)
    where = readable_location(subject, location)
    own = is_own_view(subject, where)
    periods = period_list(period, MAX_PERIODS)
    for one in periods:
        check_publishable(one, where, own, settings)
    wanted = indicator_list(indicator)
    if breakdown is not None and breakdown != "total" and breakdown not in {t.code for t in BREAKDOWNS.terms}:
        raise BadRequest("unknown breakdown: see GET /v1/indicators")
    only = "" if breakdown == "total" else breakdown
    state = await poll_state(session, where)
    etag = state.version.etag("values", where.code, ",".join(p.id for p in periods),
                              ",".join(i.code for i in wanted), str(only), str(own), settings.representation_key)
    headers = _validators(state, etag)
    if (unchanged := _not_modified(request, etag, headers)) is not None:
        return unchanged
    result, revisions = [], {}
    for one in periods:
        figures = await place_figures(session, one, where, state.version, settings, _views(request))
        revision = await _revisions(request).of(session, one, where, state.version, figures)
        revisions[one.id] = revision.describe()
        result += [row.as_dict(one.id, where.code) for row in rows_of(figures, settings, wanted, only, own)]
    marking = settings.marking_commune_own if own else settings.marking_public
    body = {"location": {"code": where.code, "level": where.level, "name": where.name},
            "marking": {"level": "commune_only" if own else "restricted", "text_vi": marking,
                        "data_as_of": state.data_as_of, "revisions": revisions},
            "freshness": state.freshness, "suppression": _suppression_info(settings, where, own), "values": result}
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


async def _trend(session: DbSession, where: Place, period: Period, own: bool) -> list[tuple[str, dict[str, Any]]]:
    """Totals of the trend chart's indicators over the last 12 periods of the same kind, from the stored counts. A
    commune's published report shows its province's trend: the commune's own past figures would need every past
    period's suppression."""
    scope = where if own or where.level != "commune" else place(where.province or "")
    assert scope is not None
    periods = period.previous(TREND_PERIODS)
    totals = await place_totals(session, periods, scope)
    return [(one.id, {"0101": totals[one.id].get("0101||", 0), "HT-VV01": totals[one.id].get("HT-VV01||", 0)})
            for one in periods]


@router.get(
    "/reports/{period}", summary="The periodic report of one place: JSON, CSV, XLSX, PDF or a DHIS2 dataValueSet",
    responses={**READ_PROBLEMS, **NOT_MODIFIED, 200: {
        "model": ReportRead,
        "description": "JSON (or a DHIS2 dataValueSet with format=dhis2), CSV, XLSX or PDF as asked",
        "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}},
                    formats.XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
                    formats.PDF_TYPE: {"schema": {"type": "string", "format": "binary"}}}}})
async def get_report(
    request: Request,
    session: DbSession,
    subject: StatsReader,
    period: PeriodPath,
    location: LocationCode = None,
    format: Annotated[Format | None, Query(description="Overrides the Accept header")] = None,
) -> Response:
    settings = _settings(request)
    where = readable_location(subject, location)
    own = is_own_view(subject, where)
    the_period = parse_period(period)
    check_publishable(the_period, where, own, settings)
    chosen = _choose_format(request, format)
    if chosen == "dhis2" and the_period.dhis2_period_type is None:
        raise BadRequest("DHIS2 has no period type for administrative periods: ask for a calendar period")
    state = await poll_state(session, where)
    etag = state.version.etag("report", where.code, the_period.id, chosen, str(own), settings.representation_key)
    headers = _validators(state, etag)
    if (unchanged := _not_modified(request, etag, headers)) is not None:
        return unchanged
    figures = await place_figures(session, the_period, where, state.version, settings, _views(request))
    revision = await _revisions(request).of(session, the_period, where, state.version, figures)
    marking = formats.marking_for(own, state, revision, settings.marking_public, settings.marking_commune_own)
    headers.update(marking.headers())
    rows = rows_of(figures, settings, own=own)
    described = the_period.describe(settings.report_due_lag_days, _own_dates(settings, where))
    name = f"bao-cao-{the_period.id}-{where.code}"
    if chosen == "csv":
        headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return Response(formats.csv_report(rows, the_period.id, where, marking), media_type=formats.CSV_TYPE,
                        headers=headers)
    if chosen in ("xlsx", "pdf"):
        report = Report(where, described, figures, own, marking, settings,
                        await _trend(session, where, the_period, own) if chosen == "pdf" else [], utcnow().date())
        build = xlsx_document if chosen == "xlsx" else pdf_document
        content = await anyio.to_thread.run_sync(build, report)
        headers["Content-Disposition"] = f'attachment; filename="{name}.{chosen}"'
        return Response(content, media_type=MEDIA_TYPES[chosen], headers=headers)
    if chosen == "dhis2":
        body = dhis2.data_value_set(rows, the_period, where, utcnow().date().isoformat())
        return Response(orjson.dumps(body), media_type="application/json", headers=headers)
    body = formats.json_report(rows, described, where, state.freshness, _suppression_info(settings, where, own),
                               marking)
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


@router.get("/dhis2/metadata", summary="The DHIS2 metadata package of the catalogue (import with idScheme=CODE)",
            responses={**problem_responses(401, 403), **NOT_MODIFIED})
async def get_dhis2_metadata(request: Request, _: StatsReader) -> Response:
    body = orjson.dumps(dhis2.metadata_package())
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=3600",
               "Content-Disposition": 'attachment; filename="bvte-dhis2-metadata.json"'}
    if (unchanged := _not_modified(request, etag, headers)) is not None:
        return unchanged
    return Response(body, media_type="application/json", headers=headers)


# --- child-friendly communes (Decision 06/QĐ-TTg) ---

Year = Annotated[int, Path(ge=2019, le=2100, description="The assessment year")]
CriterionNumber = Annotated[int, Path(ge=0, le=13, description="1-13, or 0 for the commune's kind")]
CommunePath = Annotated[str, Path(pattern=r"^[0-9]{5}$", max_length=5)]


async def _criteria_counts(session: DbSession, request: Request, where: Place, year: int) -> dict[str, Any]:
    settings = _settings(request)
    period = parse_period(f"{year}{settings.child_friendly_period if settings.child_friendly_period != 'Y' else ''}")
    wanted = [where.code] if where.level == "commune" else sorted(
        code for code, unit in communes().items() if unit.province_code == where.province)
    return await commune_counts(session, wanted, period)


@router.get("/child-friendly/{year}", summary="Child-friendly commune assessment of a commune or of every commune "
                                              "of a province", response_model=AssessmentList,
            responses=problem_responses(401, 403, 404, 422))
async def list_child_friendly_assessments(request: Request, session: DbSession, subject: StatsReader, year: Year,
                                          location: LocationCode = None) -> dict[str, Any]:
    where = readable_location(subject, location)
    if where.level == "national":
        raise NotFound("ask for a province or a commune")
    counts = await _criteria_counts(session, request, where, year)
    entries = await child_friendly.latest_entries(session, list(counts), year)
    return {"year": year, "period": _settings(request).child_friendly_period,
            "assessments": [child_friendly.assessment(code, year, counts[code], entries, _settings(request))
                            for code in sorted(counts)]}


@router.put("/child-friendly/{year}/communes/{commune}/criteria/{criterion}",
            summary="Enter a criterion's points (or the commune's kind, criterion 0) with its evidence",
            response_model=AssessmentRead, responses=problem_responses(401, 403, 404, 409, 412, 422, 428))
async def enter_child_friendly_criterion(request: Request, session: DbSession, subject: CriteriaWriter,
                                         year: Year, commune: CommunePath, criterion: CriterionNumber,
                                         body: CriterionWrite, if_match: IfMatch = None) -> Response:
    where = readable_location(subject, commune)
    if where.level != "commune":
        raise NotFound("no such commune in your jurisdiction")
    entry = await child_friendly.enter_criterion(session, subject, commune, year, criterion, body.model_dump(),
                                                 if_match, _settings(request))
    counts = await _criteria_counts(session, request, where, year)
    entries = await child_friendly.latest_entries(session, [commune], year)
    result = child_friendly.assessment(commune, year, counts[commune], entries, _settings(request))
    return Response(orjson.dumps(result), media_type="application/json",
                    headers={"ETag": child_friendly.entry_etag(entry)})
