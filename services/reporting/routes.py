"""Reporting HTTP routes: the indicator catalogue, values, and periodic reports for pollers.

Every figure response carries a weak ETag computed from the data version of the place (no figures needed), a
Last-Modified, and the freshness of each feed; `If-None-Match` with the current ETag answers 304 at the cost of
one indexed row read.
"""

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Annotated, Any, Literal

import anyio
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from services.common.auth import Subject, require
from services.common.db import DbSession
from services.common.errors import BadRequest
from services.common.permissions import Action
from services.reporting import formats
from services.reporting.indicators import BREAKDOWN_NAMES, INDICATORS
from services.reporting.periods import parse_period
from services.reporting.schemas import CatalogueRead, ReportRead, ValuesRead
from services.reporting.service import (
    Place,
    PollState,
    ProvinceViews,
    indicator_list,
    poll_state,
    readable_location,
    report_rows,
)
from services.reporting.settings import ReportingSettings

router = APIRouter(prefix="/v1", tags=["statistics"])
StatsReader = Annotated[Subject, Depends(require(Action.STATS_READ))]
LocationCode = Annotated[str | None, Query(pattern=r"^(VN|\d{2}|\d{5})$",
                                           description="VN, a province (2 digits) or a commune (5 digits)")]
MAX_PERIODS = 24
Format = Literal["json", "csv", "xlsx", "dhis2"]
MEDIA_TYPES = {"json": "application/json", "csv": formats.CSV_TYPE, "xlsx": formats.XLSX_TYPE,
               "dhis2": "application/json"}
PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/problem+json": {}}}
    for code, text in {400: "Unknown period or breakdown", 403: "Your role may not read statistics",
                       404: "Location outside your jurisdiction, or unknown indicator",
                       422: "Invalid parameters"}.items()
}


def _settings(request: Request) -> ReportingSettings:
    settings: ReportingSettings = request.app.state.settings
    return settings


def _views(request: Request) -> ProvinceViews:
    views: ProvinceViews = request.app.state.province_views
    return views


def _not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    # Weak comparison (RFC 9110 13.1.2): opaque tags compared without the W/ prefix.
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in header.split(","))


def _validators(state: PollState, etag: str) -> dict[str, str]:
    freshness_header = ", ".join(
        f"{feed};position={feed_state.get('position')};last-event={feed_state.get('last_event_at') or '-'}"
        for feed, feed_state in sorted(state.freshness.items())
    )
    last_modified = format_datetime(state.version.changed_at.astimezone(UTC), usegmt=True)
    return {"ETag": etag, "Last-Modified": last_modified,
            "Cache-Control": "private, no-cache", "Data-Freshness": freshness_header or "none", "Vary": "Accept"}


def _choose_format(request: Request, requested: Format | None) -> Format:
    if requested:
        return requested
    accept = request.headers.get("accept", "")
    if formats.XLSX_TYPE in accept:
        return "xlsx"
    if "text/csv" in accept:
        return "csv"
    return "json"


def _suppression_info(settings: ReportingSettings, where: Place) -> dict[str, Any]:
    # Below province level: the whole of a commune's figures, the locality rows of a province's.
    return {"applies": where.level != "national", "threshold": settings.suppression_threshold,
            "suppressed_label": settings.suppressed_label, "complementary_label": settings.complementary_label}


@router.get("/indicators", summary="The indicator catalogue", response_model=CatalogueRead,
            responses={403: PROBLEMS[403]})
async def list_indicators(request: Request, _: StatsReader) -> dict[str, Any]:
    settings = _settings(request)
    return {
        "indicators": [indicator.describe() for indicator in INDICATORS],
        "periods": {
            "formats": {"month": "202405", "quarter": "2024Q2", "half_year": "2024S1", "year": "2024",
                        "admin_half_year": "2024AS1 (15 Dec 2023 - 14 Jun 2024), 2024AS2",
                        "admin_year": "2024AY (15 Dec 2023 - 14 Dec 2024)"},
            "due_dates": settings.report_due_dates,
        },
        "locations": "VN (national), a province code (2 digits) or a commune code (5 digits)",
    }


@router.get("/values", summary="Values of indicators for one place and one or more periods",
            responses={**PROBLEMS, 200: {"model": ValuesRead, "description": "The values, with ETag"},
                       304: {"description": "Not modified since the ETag sent in If-None-Match"}})
async def values(
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
    periods = [parse_period(p.strip()) for p in dict.fromkeys(period.split(",")) if p.strip()]
    if not periods or len(periods) > MAX_PERIODS:
        raise BadRequest(f"give between 1 and {MAX_PERIODS} periods")
    wanted = indicator_list(indicator)
    if breakdown is not None and breakdown != "total" and breakdown not in BREAKDOWN_NAMES:
        raise BadRequest(f"unknown breakdown {breakdown[:30]!r}: see GET /v1/indicators")
    only = "" if breakdown == "total" else breakdown
    state = await poll_state(session, where)
    version = state.version
    etag = version.etag("values", where.code, ",".join(p.id for p in periods), ",".join(i.code for i in wanted),
                        str(only), settings.representation_key)
    headers = _validators(state, etag)
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    result = []
    for one in periods:
        rows = await report_rows(session, one, where, version, settings, _views(request), wanted, only)
        result += [row.as_dict(one.id, where.code) for row in rows]
    body = {"location": {"code": where.code, "level": where.level, "name": where.name},
            "freshness": state.freshness, "suppression": _suppression_info(settings, where),
            "values": result}
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


@router.get("/reports/{period}", summary="The periodic report of one place (JSON, CSV, XLSX or DHIS2)",
            responses={**PROBLEMS,
                       200: {"model": ReportRead, "description": "JSON (or a DHIS2 dataValueSet), CSV or XLSX",
                             "content": {"text/csv": {}, formats.XLSX_TYPE: {}}},
                       304: {"description": "Not modified since the ETag sent in If-None-Match"}})
async def report(
    request: Request,
    session: DbSession,
    subject: StatsReader,
    period: str,
    location: LocationCode = None,
    format: Annotated[Format | None, Query(description="Overrides the Accept header")] = None,
) -> Response:
    settings = _settings(request)
    where = readable_location(subject, location)
    the_period = parse_period(period[:20])
    chosen = _choose_format(request, format)
    state = await poll_state(session, where)
    version = state.version
    etag = version.etag("report", where.code, the_period.id, chosen, settings.representation_key)
    headers = _validators(state, etag)
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    rows = await report_rows(session, the_period, where, version, settings, _views(request))
    described = the_period.describe(settings.report_due_dates)
    if chosen == "csv":
        headers["Content-Disposition"] = f'attachment; filename="bao-cao-{the_period.id}-{where.code}.csv"'
        return Response(formats.csv_report(rows, the_period.id, where), media_type=formats.CSV_TYPE,
                        headers=headers)
    if chosen == "xlsx":
        title = f"Báo cáo số liệu bảo vệ trẻ em kỳ {the_period.id} - {where.name}"
        content = await anyio.to_thread.run_sync(formats.xlsx_report, rows, the_period.id, where, title)
        headers["Content-Disposition"] = f'attachment; filename="bao-cao-{the_period.id}-{where.code}.xlsx"'
        return Response(content, media_type=formats.XLSX_TYPE, headers=headers)
    if chosen == "dhis2":
        body = formats.dhis2_data_value_set(rows, the_period.id, where, datetime.now(UTC).date().isoformat())
        return Response(orjson.dumps(body), media_type="application/json", headers=headers)
    body = formats.json_report(rows, described, where, state.freshness, _suppression_info(settings, where))
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)
