"""The sample report committed under docs/reports/: a synthetic province's half-year report as the PDF and XLSX a
provincial officer hands up, and the PDF's first page as a PNG (pdftoppm, from Debian's poppler-utils).

    .venv/bin/python -m bench.reporting_sample

The population is random (tests/reporting/population.py), published as events and applied with the service's own
ingest code into a fresh database; the documents are made by the same functions the API calls.
"""

import asyncio
import subprocess
from datetime import date
from pathlib import Path

from scripts.stack import ROOT, choose_postgres, create_databases, drop_databases, migrate
from services.common.db import Database
from services.common.locations import communes
from services.common.outbox import Event
from services.reporting.app import MIGRATIONS
from services.reporting.documents import Report, pdf_document, xlsx_document
from services.reporting.figures import add_counts, commune_counts
from services.reporting.formats import marking_for
from services.reporting.ingest import Ingestor
from services.reporting.periods import parse_period
from services.reporting.service import ProvinceViews, Revisions, place, place_figures, poll_state
from services.reporting.settings import ReportingSettings
from tests.reporting.population import generate

OUT = ROOT / "docs" / "reports"
PROVINCE, PERIOD = "24", "2024S1"


def _events(feed: list[dict]) -> list[Event]:
    return [Event.model_validate(event) for event in feed]


async def build(url: str) -> None:
    database = Database(url, pool_size=2)
    try:
        places = [code for code, unit in communes().items() if unit.province_code == PROVINCE][:24]
        population = generate(seed=2024, communes_used=places, children=3000, cases=900)
        ingestor = Ingestor()
        for feed, apply in ((population.registry.events, ingestor.apply_registry_events),
                            (population.cases.events, ingestor.apply_cases_events)):
            for start in range(0, len(feed), 1000):
                async with database.sessionmaker() as session, session.begin():
                    await apply(session, _events(feed[start:start + 1000]))
        settings, period, where = ReportingSettings(), parse_period(PERIOD), place(PROVINCE)
        assert where is not None
        async with database.sessionmaker() as session:
            state = await poll_state(session, where)
            figures = await place_figures(session, period, where, state.version, settings, ProvinceViews())
            revision = await Revisions().of(session, period, where, state.version, figures)
            trend = []
            for one in period.previous(12):
                total = add_counts(list((await commune_counts(session, places, one, include_children=False))
                                        .values()))
                trend.append((one.id, {"0101": total.get("0101||", 0), "HT-VV01": total.get("HT-VV01||", 0)}))
            await session.commit()
        marking = marking_for(False, state, revision, settings.marking_public, settings.marking_commune_own)
        report = Report(where, period.describe(settings.report_due_lag_days), figures, False, marking, settings,
                        trend, date(2024, 7, 15))
        OUT.mkdir(parents=True, exist_ok=True)
        pdf = OUT / f"bao-cao-{PERIOD}-{PROVINCE}.pdf"
        pdf.write_bytes(pdf_document(report))
        (OUT / f"bao-cao-{PERIOD}-{PROVINCE}.xlsx").write_bytes(xlsx_document(report))
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "2", str(pdf), str(OUT / "trang")],
                       check=True)
    finally:
        await database.dispose()


def main() -> None:
    pg = choose_postgres(ROOT / "var" / "pg-bench", prefer_local=True)
    create_databases(pg, ["sample_reporting"], drop_first=True)
    try:
        url = pg.url("sample_reporting")
        migrate(url, MIGRATIONS)
        asyncio.run(build(url))
    finally:
        drop_databases(pg, ["sample_reporting"])


if __name__ == "__main__":
    main()
    print("\n".join(sorted(str(p.relative_to(ROOT)) for p in Path(OUT).iterdir())))
