"""The papers as a reader gets them, without the services: every template fills, both formats carry the case's
words with their diacritics, fonts are embedded, page 1 is not blank, and the same input gives the same bytes."""

import io
from collections import Counter
from pathlib import Path

import docx
import pytest

from services.cases import documents, documents_render, vocabulary
from services.cases.settings import CasesSettings
from services.common import terms
from tests.documents.papers import docx_text, ink, normalized, page_one_png, pdf_text, unembedded_fonts
from tests.documents.samples import CHILD, REPORTER, sample_case

MOTTO = ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc")
# What each filled paper must say, from the sample case's data (tests/documents/samples.py).
EXPECTED = {
    "01": ["BÁO CÁO", "TIẾP NHẬN THÔNG TIN TRẺ EM BỊ XÂM HẠI", CHILD, "15/04/2017", "Nguyễn Văn Dũng", "Thợ xây",
           "Phạm Thị Hường", "Cha mẹ ly thân; trẻ ở với mẹ và cha dượng.", "Bà ngoại", "Ngõ 12 phố Hàng Bạc",
           "Nhiều vết bầm tím ở tay và lưng.", "Trẻ tiếp tục bị đánh đập, hoảng sợ, bỏ học.", "Tổng đài 111",
           "Lê Thu Hà", "Điện thoại", "Hàng xóm đưa trẻ sang nhà mình tạm lánh.", "Số: 01/BC-UBND",
           "Hà Nội, ngày 02 tháng 03 năm 2026", "Trần Văn Bảo", "0912345678",
           "Hàng xóm nghe tiếng trẻ khóc và bị đánh.", "Đối tượng xâm hại vẫn tiếp cận được trẻ em",
           "08 giờ 30 ngày 02/03/2026", "Nữ", "CÁN BỘ TIẾP NHẬN THÔNG TIN"],
    "02": ["ĐÁNH GIÁ NGUY CƠ BAN ĐẦU", "Trẻ có vết thương mới; cha dượng vẫn sống cùng nhà.",
           "Trẻ em bị tổn hại nghiêm trọng về thân thể", "Báo cáo tiếp nhận thông tin số 01/BC-UBND",
           "ỦY BAN NHÂN DÂN", "PHƯỜNG HOÀN KIẾM", "Hoàn Kiếm, ngày 04 tháng 03 năm 2026",
           "Nơi cư trú của trẻ em: Phường Hoàn Kiếm"],
    "03": ["Trẻ sợ hãi, ít nói, vết bầm đang lành.", "Cha dượng nghiện rượu, có tiền sử bạo lực.",
           "Trị liệu tâm lý", "Cháu muốn ở với mẹ khi cha dượng không còn ở nhà.",
           "Mẹ đồng ý để trẻ ở với bà ngoại một thời gian.", "Biên bản số 01/BB-UBND"],
    "03-minutes": ["BIÊN BẢN HỌP", "05/03/2026", "Hoàng Minh Tuấn", "Vũ Thị Nga (Công an phường)",
                   "Đặng Quốc Việt (Trường tiểu học)", "Trợ giúp pháp lý",
                   "Cuộc họp thống nhất các biện pháp tư vấn và trợ giúp pháp lý."],
    "04": ["KẾ HOẠCH", "Bảo đảm an toàn cho trẻ ở nhà và ở trường", "Tư vấn hằng tuần cho mẹ và trẻ",
           "Điều tra hành vi của cha dượng", "Trị liệu tâm lý cho trẻ", "Trung tâm Công tác xã hội", "1.500.000",
           "Số: 01/KH-UBND"],
    "05": ["QUYẾT ĐỊNH", "Số: 02/QĐ-UBND", "CHỦ TỊCH ỦY BAN NHÂN DÂN PHƯỜNG HOÀN KIẾM",
           "Kế hoạch hỗ trợ, can thiệp số 01/KH-UBND", "Y tế; Công an", "Bà Phạm Thị Hường",
           "TM. ỦY BAN NHÂN DÂN", "Hoàn Kiếm, ngày 10 tháng 03 năm 2026"],
    "06": ["RÀ SOÁT, ĐÁNH GIÁ TÌNH TRẠNG CỦA TRẺ EM", "Khả năng tiếp cận trẻ em của đối tượng xâm hại",
           "Trung bình", "Còn khó khăn kinh tế", "Cao: 0; Trung bình: 1; Thấp: 3", "Cha dượng đã chuyển đi nơi khác.",
           "đề nghị Chủ tịch Ủy ban nhân dân kết thúc kế hoạch", "30/04/2026"],
    "07": ["QUYẾT ĐỊNH", "tạm thời cách ly trẻ em", "Nhà bà ngoại, số 5 phố Hàng Bè", "Bà ngoại Đỗ Thị Gấm",
           "trong thời hạn 10 ngày", "Trẻ em cần được bảo vệ khẩn cấp", "Số: 01/QĐ-UBND"],
}
# What a paper must never say (the reporter is on the intake report only).
NEVER = {paper: [REPORTER, "0912345678"] for paper in EXPECTED if paper != "01"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[bytes, bytes]]:
    sample = sample_case()
    return {d.paper: documents.render_paper(d.paper, sample.context(d.paper), d.issued_on, None)
            for d in sample.documents}


def test_the_sample_case_makes_every_paper(rendered: dict[str, tuple[bytes, bytes]]) -> None:
    assert set(rendered) == set(documents.PAPERS)


@pytest.mark.parametrize("paper", documents.PAPERS)
def test_filled_paper_says_what_the_case_says(rendered: dict[str, tuple[bytes, bytes]], paper: str) -> None:
    pdf, word = rendered[paper]
    for text in (pdf_text(pdf), docx_text(word)):
        for expected in [*MOTTO, f"Mẫu số {paper.removesuffix('-minutes')}", *EXPECTED[paper]]:
            assert normalized(expected) in text, f"{paper}: {expected!r} missing"
        for secret in NEVER.get(paper, []):
            assert secret not in text
    # The two formats carry the same words; the PDF also prints the page numbers from page 2 (the DOCX has them
    # as a field in its header).
    in_pdf, in_docx = Counter(pdf_text(pdf).split()), Counter(docx_text(word).split())
    assert not in_docx - in_pdf
    assert set(in_pdf - in_docx) <= {str(page) for page in range(2, 10)}


@pytest.mark.parametrize("paper", documents.PAPERS)
def test_filled_paper_embeds_its_fonts_and_page_one_is_drawn(rendered: dict[str, tuple[bytes, bytes]], paper: str,
                                                            tmp_path: Path) -> None:
    pdf, _ = rendered[paper]
    assert pdf.startswith(b"%PDF")
    assert unembedded_fonts(pdf) == []
    assert ink(page_one_png(pdf, tmp_path / f"{paper}.png")) > 0.01


def test_a_blank_page_is_told_apart(tmp_path: Path) -> None:
    """The ink check can fail: a page with no text has none."""
    paper = documents_render.Paper(title="", blocks=[documents_render.Para()], dated=sample_case().case.received_at)
    assert ink(page_one_png(documents_render.render_pdf(paper), tmp_path / "blank.png")) < 0.001


def test_same_input_same_bytes_and_a_change_shows() -> None:
    sample = sample_case()
    first = documents.render_paper("05", sample.context("05"), sample.document("05").issued_on, None)
    again = documents.render_paper("05", sample.context("05"), sample.document("05").issued_on, None)
    assert first == again
    changed = sample_case(child_first_name="Hoa")
    other = documents.render_paper("05", changed.context("05"), changed.document("05").issued_on, None)
    assert other[0] != first[0] and other[1] != first[1]
    assert "trẻ em Hoa, 8 tuổi" in pdf_text(other[0])


def test_an_agency_gets_its_part_of_the_plan_only() -> None:
    sample = sample_case()
    values = sample.context("04", audience="police")
    pdf, word = documents.render_paper("04", values, sample.document("04").issued_on, None)
    for text in (pdf_text(pdf), docx_text(word)):
        assert "TRÍCH KẾ HOẠCH" in text and "Điều tra hành vi của cha dượng" in text
        assert "Trị liệu tâm lý cho trẻ" not in text and "Bảo đảm an toàn cho trẻ ở nhà" not in text


def test_field_text_is_printed_as_written_never_as_markup() -> None:
    hostile = 'Trẻ <b>nói</b> "sợ" & <table><script>alert(1)</script> Đ₫'
    sample = sample_case(description=hostile + " ☐😀")
    pdf, word = documents.render_paper("01", sample.context("01"), sample.document("01").issued_on, None)
    # A character the font lacks prints as a box in both formats, rather than vanishing from the PDF.
    printed = normalized(hostile + " □□")
    assert printed in pdf_text(pdf) and printed in docx_text(word)


@pytest.mark.parametrize("paper", documents.PAPERS)
def test_blank_form_prints(paper: str, tmp_path: Path) -> None:
    settings = CasesSettings()
    pdf, word = documents.blank_form(paper, "pdf", settings), documents.blank_form(paper, "docx", settings)
    for text in (pdf_text(pdf), docx_text(word)):
        assert MOTTO[0] in text and documents_render.BLANK in text
        assert documents.symbol(settings, paper, "peoples_committee", None, None) in text
    assert unembedded_fonts(pdf) == []
    assert ink(page_one_png(pdf, tmp_path / f"{paper}.png")) > 0.01


def test_docx_is_a4_in_a_times_compatible_serif() -> None:
    sample = sample_case()
    _, word = documents.render_paper("05", sample.context("05"), sample.document("05").issued_on, None)
    document = docx.Document(io.BytesIO(word))
    section = document.sections[0]
    assert (round(section.page_width.mm), round(section.page_height.mm)) == (210, 297)
    assert round(section.left_margin.mm) == 30 and document.styles["Normal"].font.name == "Times New Roman"
    assert document.styles["Normal"].font.size.pt == 13
    assert document.core_properties.created.date().isoformat() == "2026-03-10"


@pytest.mark.parametrize("markup", [
    "<script>x</script>", "<p><img src=x></p>", "<table><tr><td>a</td></tr><tr><td>a</td><td>b</td></tr></table>",
    "<td>a</td>", "<table widths='1,2'><tr><td>a</td></tr></table>", "<table><tr><td>a</td>",
])
def test_markup_outside_the_subset_is_refused(markup: str) -> None:
    with pytest.raises(documents_render.TemplateError):
        documents_render.parse(markup)


@pytest.mark.parametrize(("vocabulary_name", "enum"), [
    ("abuse_form", vocabulary.AbuseForm), ("environment", vocabulary.Environment),
    ("perpetrator", vocabulary.PerpetratorRelationship), ("danger", vocabulary.DangerIndicator),
    ("measure", vocabulary.Measure), ("rating", vocabulary.RiskRating), ("sex", vocabulary.ChildSex),
    ("closure", vocabulary.ClosureReason), ("agency", vocabulary.TaskAgency),
    ("category", vocabulary.CaseCategory), ("channel", vocabulary.Channel), ("risk_form", vocabulary.RiskForm),
    ("special_group", terms.SpecialGroup), ("parent_views", vocabulary.ParentViews),
    ("separation_ground", vocabulary.SeparationGround), ("review_item", vocabulary.ReviewItem),
    ("recipient_kind", vocabulary.RecipientKind),
])
def test_every_code_a_paper_prints_has_its_vietnamese_words(vocabulary_name: str, enum: type) -> None:
    words = documents_render.labels()[vocabulary_name]
    assert {member.value for member in enum} <= set(words)


def test_a_province_template_replaces_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "_chairman.html").write_text(
        '<p align="center"><b>KT. CHỦ TỊCH</b></p><p align="center"><b>PHÓ CHỦ TỊCH</b></p>', encoding="utf-8")
    (tmp_path / "labels.json").write_text('{"agency": {"police": "Công an phường", "health": "Trạm y tế"}}',
                                          encoding="utf-8")
    sample = sample_case()
    override = str(tmp_path)
    values = documents.context(sample.document("05"), "", sample.case, sample.history, sample.documents, override)
    pdf, _ = documents.render_paper("05", values, sample.document("05").issued_on, override)
    said = pdf_text(pdf)
    assert "KT. CHỦ TỊCH" in said and "TM. ỦY BAN NHÂN DÂN" not in said
    assert "Trạm y tế; Công an phường" in said and "ỦY BAN NHÂN DÂN" in said  # other lists stay as shipped


def test_every_paper_has_its_template_and_title() -> None:
    for paper in documents.PAPERS:
        assert (documents_render.TEMPLATES / documents.template_of(paper)).is_file()
        assert documents.paper_title(paper)
    # The workflow's forms name exactly these papers (the intake report is made by the intake itself).
    made = {p for step in documents.workflow.TRANSITIONS for p in documents.step_papers(step.action)}
    assert made | {"01"} == set(documents.PAPERS)


@pytest.mark.parametrize("paper", documents.PAPERS)
def test_every_paper_has_its_picture_in_the_docs(paper: str) -> None:
    """docs/forms/ shows every paper (python -m scripts.gen_form_pictures), small and not blank."""
    picture = Path(__file__).parents[2] / "docs" / "forms" / f"mau-{paper}.png"
    assert picture.is_file() and picture.stat().st_size < 150_000
    assert ink(picture) > 0.01
    assert f"mau-{paper}.png" in (picture.parent / "README.md").read_text(encoding="utf-8")


def test_numbering_settings_name_some_papers_and_keep_the_others() -> None:
    settings = CasesSettings(document_series={"05": "VB", "07": "VB"},
                             document_symbols={"05": "{number}/{year}/QĐ-UBND"})
    assert settings.document_series["05"] == settings.document_series["07"] == "VB"
    assert settings.document_series["04"] == "KH"
    assert documents.symbol(settings, "05", "peoples_committee", 7, 2026) == "7/2026/QĐ-UBND"
    assert documents.symbol(settings, "01", "hotline", 3, 2026) == "03/BC-TĐ111"
    for wrong in ({"05": "{nr}/QĐ"}, {"08": "{number}/QĐ"}):
        with pytest.raises(ValueError, match=r"papers|may appear"):
            CasesSettings(document_symbols=wrong)
