"""The papers of a case through the gateway, with the real services: a hotline report walked through every step that
makes a paper (Forms 01-07 and the needs-meeting minutes), each paper fetched as PDF and DOCX and read back against
the case's data; numbering, versions, need-to-know and the audit of every download."""

from pathlib import Path

import httpx
from sqlalchemy import text

from services.common.db import Database
from tests.cases.conftest import Cases
from tests.cases.samples import FORMS, intake
from tests.documents.papers import docx_text, ink, normalized, page_one_png, pdf_text, unembedded_fonts
from tests.helpers import DEMO_COMMUNE, Api

PDF, DOCX = "application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
REPORTER = "Nguyễn Văn Báo"
ASSESSMENT = FORMS["assess_emergency"] | {"findings": "Trẻ có nhiều vết bầm; cha dượng vẫn ở cùng nhà."}
SEPARATION = FORMS["separate_child"] | {"place": "Nhà bà ngoại ở phố Hàng Bè",
                                        "alternative_carer": "Bà ngoại Đỗ Thị Gấm"}
SPECIFIC = FORMS["complete_specific_assessment"] | {
    "risk_factors": "Cha dượng nghiện rượu và vẫn sống trong nhà.",
    "needs_meeting": FORMS["complete_specific_assessment"]["needs_meeting"] | {
        "minutes": "Cuộc họp thống nhất tư vấn cho gia đình và trị liệu tâm lý cho trẻ."}}
PLAN = FORMS["submit_plan"] | {"objectives": "Giữ an toàn cho trẻ ở nhà và ở trường."}
# What each paper says, from the data sent above.
SAYS = {
    "01": ["TIẾP NHẬN THÔNG TIN TRẺ EM BỊ XÂM HẠI", REPORTER, "0912345678", "Trần Văn Hùng", "Tổng đài viên 111",
           "TỔNG ĐÀI ĐIỆN THOẠI QUỐC GIA BẢO VỆ TRẺ EM", "/BC-TĐ111"],
    "02": ["Trẻ có nhiều vết bầm; cha dượng vẫn ở cùng nhà.", "Trẻ em bị tổn hại nghiêm trọng về thân thể",
           "PHƯỜNG HOÀN KIẾM", "/BC-UBND"],
    "07": ["Nhà bà ngoại ở phố Hàng Bè", "Bà ngoại Đỗ Thị Gấm", "trong thời hạn 7 ngày", "/QĐ-UBND",
           "CHỦ TỊCH ỦY BAN NHÂN DÂN PHƯỜNG HOÀN KIẾM"],
    "03": ["Cha dượng nghiện rượu và vẫn sống trong nhà.", "Lan wants to stay with her mother and grandmother.",
           "/BC-UBND"],
    "03-minutes": ["Cuộc họp thống nhất tư vấn cho gia đình và trị liệu tâm lý cho trẻ.", "Trần Thị Hoa",
                   "Chủ tịch UBND phường", "/BB-UBND"],
    "04": ["Giữ an toàn cho trẻ ở nhà và ở trường.", "Investigate the step-parent", "Therapy sessions",
           "Trung tâm công tác xã hội", "2.000.000", "/KH-UBND"],
    "05": ["Phê duyệt Kế hoạch hỗ trợ, can thiệp số", "/KH-UBND", "Phạm Thị Mai (mẹ)", "/QĐ-UBND", "Y tế; Công an"],
    "06": ["RÀ SOÁT, ĐÁNH GIÁ TÌNH TRẠNG CỦA TRẺ EM", "The step-parent has left the home.", "Thấp",
           "Cao: 0; Trung bình: 0; Thấp: 4", "/BC-UBND"],
}


async def fetch(api: Api, headers: dict[str, str], url: str, **params: int) -> httpx.Response:
    return await api.client.get(url, headers=headers, params=params)


async def test_the_papers_of_a_case_from_report_to_closure(api: Api, cases: Cases, cases_db: Database,
                                                           tmp_path: Path) -> None:
    hotline = await api.as_demo("hotline_operator")
    officer = await api.as_demo("child_protection_officer")
    chairman = await api.as_demo("commune_chairman")
    police = await api.province_user("police_officer")
    health = await api.commune_user("health_officer")
    education = await api.province_user("education_officer")

    created = await cases.create(hotline, intake(channel="phone", receiving_officer="Tổng đài viên 111",
                                                 father={"full_name": "Trần Văn Hùng", "age": 38}))
    assert created.status_code == 201, created.text
    case_id = created.json()["id"]
    await cases.step(officer, case_id, "begin_assessment")
    await cases.step(officer, case_id, "assess_emergency", ASSESSMENT)
    await cases.step(chairman, case_id, "separate_child", SEPARATION)
    await cases.step(officer, case_id, "end_emergency_protection")
    await cases.step(officer, case_id, "complete_specific_assessment", SPECIFIC)
    await cases.step(officer, case_id, "submit_plan", PLAN)
    approved = await cases.step(chairman, case_id, "approve_plan")
    for task in [t for t in approved["tasks"] if t["kind"] == "plan"]:
        worker = police if task["agency"] == "police" else health
        for status in ("in_progress", "done"):
            changed = await api.client.patch(f"/cases/v1/tasks/{task['id']}", json={"status": status},
                                             headers=worker | {"If-Match": f'"{task["version"]}"'})
            assert changed.status_code == 200, changed.text
            task = changed.json()
    await cases.step(officer, case_id, "start_review")
    await cases.step(officer, case_id, "propose_closure")

    # The managers see every paper, each numbered in its series.
    listed = await api.client.get(f"/cases/v1/cases/{case_id}/documents", headers=officer)
    assert listed.status_code == 200, listed.text
    papers = {d["paper"]: d for d in listed.json()}
    assert set(papers) == set(SAYS)
    assert all(d["extract_for"] is None and d["versions"] == [] for d in papers.values())
    assert (await api.client.get(f"/cases/v1/cases/{case_id}/documents", headers=chairman)).json() == listed.json()
    # A decision has one number, the register's: the one its paper prints is the one the case answers.
    state = (await cases.get(officer, case_id)).json()
    assert state["plan"]["decision_number"] == papers["05"]["reference"]
    assert [s["decision_number"] for s in state["separations"]] == [papers["07"]["reference"]]

    for paper, document in papers.items():
        got = {}
        for url, media in ((document["pdf_url"], PDF), (document["docx_url"], DOCX)):
            response = await fetch(api, officer, url)
            assert response.status_code == 200, f"{paper}: {response.text}"
            assert response.headers["content-type"] == media
            assert response.headers["cache-control"] == "private, no-store"
            got[media] = response.content
        for said in (pdf_text(got[PDF]), docx_text(got[DOCX])):
            for expected in [document["reference"], *SAYS[paper]]:
                assert normalized(expected) in said, f"{paper}: {expected!r} missing"
            if paper != "01":
                assert REPORTER not in said
        assert unembedded_fonts(got[PDF]) == []
        assert ink(page_one_png(got[PDF], tmp_path / f"{paper}.png")) > 0.01
        again = await fetch(api, chairman, document["pdf_url"])
        assert again.content == got[PDF]  # kept: the same bytes, not a new rendition

    # Numbers: gapless in every series of every register this run wrote.
    async with cases_db.sessionmaker() as session:
        series = (await session.execute(text(
            "SELECT s.issuer, s.year, s.series, s.last_number, array_agg(d.number ORDER BY d.number) AS numbers "
            "FROM document_sequence s JOIN case_document d USING (issuer, year, series) "
            "GROUP BY s.issuer, s.year, s.series, s.last_number"))).all()
    assert series and all(row.numbers == list(range(1, row.last_number + 1)) for row in series)
    mine = {(d["paper"], d["reference"]) for d in papers.values()}
    assert ("07", papers["07"]["reference"]) in mine and papers["05"]["reference"] != papers["07"]["reference"]

    # A later change of the case gives a new version of the papers that print it; the old version stays readable.
    decision = papers["05"]
    versions = (await api.client.get(f"/cases/v1/cases/{case_id}/documents", headers=officer)).json()
    before = next(d for d in versions if d["paper"] == "05")["versions"]
    assert len(before) == 1
    async with cases_db.sessionmaker() as session:  # a correction of the child's name (no route changes it yet)
        await session.execute(text("UPDATE case_record SET child_first_name = 'Hoa', version = version + 1 "
                                   "WHERE id = :id"), {"id": case_id})
        await session.commit()
    newer = await fetch(api, officer, decision["pdf_url"])
    assert "trẻ em Hoa" in pdf_text(newer.content) and newer.headers["etag"] != f'"{before[0]["pdf_sha256"]}"'
    old = await fetch(api, officer, decision["pdf_url"], case_version=before[0]["case_version"])
    assert old.status_code == 200 and old.headers["etag"] == f'"{before[0]["pdf_sha256"]}"'
    assert "trẻ em Lan" in pdf_text(old.content)
    after = next(d for d in (await api.client.get(f"/cases/v1/cases/{case_id}/documents", headers=officer)).json()
                 if d["paper"] == "05")["versions"]
    assert [v["case_version"] for v in after] == [before[0]["case_version"], before[0]["case_version"] + 1]
    gone = await fetch(api, officer, decision["pdf_url"], case_version=1)
    assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"

    # An agency with a task gets the decision and its own part of the plan, never the intake report.
    seen = (await api.client.get(f"/cases/v1/cases/{case_id}/documents", headers=police)).json()
    assert sorted((d["paper"], d["extract_for"]) for d in seen) == [("04", "police"), ("05", None)]
    extract = await fetch(api, police, next(d for d in seen if d["paper"] == "04")["pdf_url"])
    said = pdf_text(extract.content)
    assert "TRÍCH KẾ HOẠCH" in said and "Investigate the step-parent" in said and "Therapy sessions" not in said
    assert REPORTER not in said
    intake_report = papers["01"]["pdf_url"]
    assert (await fetch(api, police, intake_report)).status_code == 404
    assert (await api.client.get(f"/cases/v1/cases/{case_id}/documents", headers=education)).status_code == 404
    assert (await api.client.get(f"/cases/v1/cases/{case_id}/documents", headers=hotline)).status_code == 403

    # Every list and download is in the audit trail, with the paper and the format (never the paper's text).
    async with cases_db.sessionmaker() as session:
        audited = (await session.execute(text(
            "SELECT action, purpose, detail FROM audit_entry WHERE object_type = 'case_document' AND object_id = :id"),
            {"id": case_id})).all()
    downloads = [row for row in audited if row.action == "download"]
    assert len(downloads) == 2 * len(papers) + len(papers) + 3  # both formats, the refetches, versions, police
    assert {row.detail["format"] for row in downloads} == {"pdf", "docx"}
    assert not any(REPORTER in str(row) for row in audited)


async def test_blank_forms_print_for_whoever_fills_them_by_hand(api: Api) -> None:
    hotline = await api.as_demo("hotline_operator")
    response = await api.client.get("/cases/v1/forms/07/blank.pdf", headers=hotline)
    assert response.status_code == 200 and response.headers["content-type"] == PDF
    assert "Số: ……/QĐ-UBND" in pdf_text(response.content) and unembedded_fonts(response.content) == []
    word = await api.client.get("/cases/v1/forms/03-minutes/blank.docx", headers=hotline)
    assert word.status_code == 200 and "BIÊN BẢN HỌP" in docx_text(word.content)
    unknown = await api.client.get("/cases/v1/forms/08/blank.pdf", headers=hotline)
    assert unknown.status_code == 422
    statistician = await api.as_demo("province_statistician")
    assert (await api.client.get("/cases/v1/forms/07/blank.pdf", headers=statistician)).status_code == 403


async def test_a_commune_numbers_its_papers_as_its_steps_are_taken(api: Api, cases: Cases,
                                                                   cases_db: Database) -> None:
    """The number is given in the step's own transaction, in the register of the commune that leads the case."""
    officer = await api.as_demo("child_protection_officer")
    created = await cases.create(officer, intake())
    case_id = created.json()["id"]
    await cases.step(officer, case_id, "begin_assessment")
    await cases.step(officer, case_id, "assess_no_emergency")
    async with cases_db.sessionmaker() as session:
        rows = (await session.execute(text(
            "SELECT paper, issuer, issuer_agency, signer_name FROM case_document WHERE case_id = :id"),
            {"id": case_id})).all()
    assert [(r.paper, r.issuer, r.issuer_agency) for r in rows] == [("02", DEMO_COMMUNE, "peoples_committee")]
    assert rows[0].signer_name  # the officer who took the step signs the paper
    listed = (await api.client.get(f"/cases/v1/cases/{case_id}/documents", headers=officer)).json()
    assert [d["paper"] for d in listed] == ["01", "02"]  # the intake report is numbered when first listed
