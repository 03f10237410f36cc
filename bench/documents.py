"""Papers benchmark: how long one Decree 56 paper takes to generate (the template filled, laid out as a PDF with
its fonts embedded and as a DOCX), for each of the eight papers of a case walked to its closure proposal.

Baseline from the same run, alternated with the papers in rounds: the floor of each library, a one-line PDF with
the same embedded serif (reportlab) and an empty DOCX (python-docx), so the cost of the templates and the layout
shows apart from the cost of the libraries.

    .venv/bin/python -m bench.documents --rounds 15

Writes bench/results/documents.md.
"""

import argparse
import io
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from docx import Document
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from bench.common import load_remark
from services.cases import documents, documents_render
from services.common.fonts import SERIF, register_serif
from tests.documents.samples import sample_case

RESULTS = Path(__file__).parent / "results" / "documents.md"
TARGET_MS = 300.0


def timed(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def floor_pdf() -> bytes:
    register_serif()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1)
    canvas.setFont(SERIF, 13)
    canvas.drawString(100, 700, "Cộng hòa xã hội chủ nghĩa Việt Nam")
    canvas.save()
    return buffer.getvalue()


def floor_docx() -> bytes:
    buffer = io.BytesIO()
    Document().save(buffer)
    return buffer.getvalue()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    sample = sample_case()
    papers = [(d.paper, sample.context(d.paper), d.issued_on) for d in sample.documents]
    for paper, values, dated in papers:  # warm: fonts registered, templates compiled
        documents.render_paper(paper, values, dated, None)
    floor_pdf(), floor_docx()
    both: dict[str, list[float]] = {p: [] for p, _, _ in papers}
    pdf_only: dict[str, list[float]] = {p: [] for p, _, _ in papers}
    docx_only: dict[str, list[float]] = {p: [] for p, _, _ in papers}
    floors: dict[str, list[float]] = {"pdf": [], "docx": []}
    for _ in range(args.rounds):
        for paper, values, dated in papers:
            both[paper].append(timed(lambda: documents.render_paper(paper, values, dated, None)))  # noqa: B023
            laid = documents_render.compose(documents.template_of(paper), values, title=paper, dated=dated)
            pdf_only[paper].append(timed(lambda: documents_render.render_pdf(laid)))  # noqa: B023
            docx_only[paper].append(timed(lambda: documents_render.render_docx(laid)))  # noqa: B023
            floors["pdf"].append(timed(floor_pdf))
            floors["docx"].append(timed(floor_docx))
    load_end = os.getloadavg()[0]
    rows = []
    for paper, _, _ in papers:
        rows.append(f"| {paper} | {statistics.median(both[paper]):.0f} ms (p95 {percentile(both[paper], 95):.0f}) | "
                    f"{statistics.median(pdf_only[paper]):.0f} ms | {statistics.median(docx_only[paper]):.0f} ms |")
    worst = max(statistics.median(v) for v in both.values())
    worst_p95 = max(percentile(v, 95) for v in both.values())
    pdf_floor, docx_floor = statistics.median(floors["pdf"]), statistics.median(floors["docx"])
    verdict = "met" if worst < TARGET_MS else "NOT met"
    floor = pdf_floor + docx_floor
    summary = (f"| slowest paper, PDF and DOCX, median | {worst:.0f} ms (worst p95 {worst_p95:.0f} ms) | "
               f"the libraries' "
               f"floor: a one-line PDF with the same embedded serif {pdf_floor:.0f} ms + an empty DOCX "
               f"{docx_floor:.0f} ms = {floor:.0f} ms; ratio {worst / floor:.1f}x | < {TARGET_MS:.0f} ms: {verdict} |")
    text = f"""# Papers benchmark

Command: `.venv/bin/python -m bench.documents --rounds {args.rounds}`

Machine: {os.cpu_count()} cores, Python {platform.python_version()}. Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC;
load average at the start {load_start:.1f}, at the end {load_end:.1f} ({load_remark(load_start, load_end)}).

What is timed: one paper of the sample case (tests/documents/samples.py, a hotline report walked to a closure
proposal), generated in process as the service does it on a fetch: the template filled (Jinja2), the markup parsed,
then the PDF laid out with its fonts embedded (reportlab) and the DOCX written (python-docx); {args.rounds} rounds,
each paper once per round, alternated with the baseline. The database round trips of a fetch (a few indexed reads
and one insert) are not included.

| paper | PDF and DOCX, median | PDF alone | DOCX alone |
|---|---|---|---|
{chr(10).join(rows)}

| measure | result | baseline in the same run | target |
|---|---|---|---|
{summary}

Each rendition is kept (`case_document_version`), so a paper is generated once per case version whose text changed;
later downloads read the stored bytes.
"""
    RESULTS.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
