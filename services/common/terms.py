"""Labels of the code lists more than one service shows: the 14 groups of Law Art. 10, a child's sex, and the case
lists the cases service records and the reporting service counts. One table each, so a screen, a paper and a
statistical table never name the same code two ways. Each service builds its own `Vocabulary` from these (with
`from_enum`), adding the codes only it has (the statistics' `unknown`).

Values are (Vietnamese, English).
"""

from enum import StrEnum

Labels = dict[str, tuple[str, str]]

UNKNOWN: tuple[str, str] = ("Không rõ", "Unknown")



class SpecialGroup(StrEnum):
    """Nhóm trẻ em có hoàn cảnh đặc biệt: the 14 groups of Law on Children 2016 Art. 10(1), by the article's
    letter in ASCII (`dd` is the letter đ)."""

    A = "a"
    B = "b"
    C = "c"
    D = "d"
    DD = "dd"
    E = "e"
    G = "g"
    H = "h"
    I = "i"  # noqa: E741 (the letter of the article)
    K = "k"
    L = "l"
    M = "m"
    N = "n"
    O = "o"  # noqa: E741


# Law on Children 2016 Art. 10(1), in its own words, and in English.
SPECIAL_GROUP_LABELS: Labels = {
    "a": ("Trẻ em mồ côi cả cha và mẹ", "Orphaned of both parents"),
    "b": ("Trẻ em bị bỏ rơi", "Abandoned"),
    "c": ("Trẻ em không nơi nương tựa", "Without anyone to rely on"),
    "d": ("Trẻ em khuyết tật", "With disabilities"),
    "dd": ("Trẻ em nhiễm HIV/AIDS", "Living with HIV/AIDS"),
    "e": ("Trẻ em vi phạm pháp luật", "In conflict with the law"),
    "g": ("Trẻ em nghiện ma túy", "Drug-addicted"),
    "h": ("Trẻ em phải bỏ học kiếm sống chưa hoàn thành phổ cập giáo dục trung học cơ sở",
          "Dropped out of school to earn a living before completing lower secondary education"),
    "i": ("Trẻ em bị tổn hại nghiêm trọng về thể chất và tinh thần do bị bạo lực",
          "Seriously harmed physically and mentally by violence"),
    "k": ("Trẻ em bị bóc lột", "Exploited"),
    "l": ("Trẻ em bị xâm hại tình dục", "Sexually abused"),
    "m": ("Trẻ em bị mua bán", "Trafficked"),
    "n": ("Trẻ em mắc bệnh hiểm nghèo hoặc bệnh phải điều trị dài ngày thuộc hộ nghèo hoặc hộ cận nghèo",
          "Seriously or long-term ill in a poor or near-poor household"),
    "o": ("Trẻ em di cư, trẻ em lánh nạn, tị nạn chưa xác định được cha mẹ hoặc không có người chăm sóc",
          "Migrant, displaced or refugee without identified parents or caregiver"),
}
# The letter as the article prints it (đ for dd).
GROUP_LETTER: dict[str, str] = {code: "đ" if code == "dd" else code for code in SPECIAL_GROUP_LABELS}


def special_group_headings() -> Labels:
    """The groups as a statistical table heads its columns: the letter, then the group without "Trẻ em"
    ("a. Mồ côi cả cha và mẹ")."""
    headings: Labels = {}
    for code, (vi, en) in SPECIAL_GROUP_LABELS.items():
        short = vi.removeprefix("Trẻ em ")
        headings[code] = (f"{GROUP_LETTER[code]}. {short[0].upper()}{short[1:]}", f"{GROUP_LETTER[code]}. {en}")
    return headings


SEX_LABELS: Labels = {"male": ("Nam", "Male"), "female": ("Nữ", "Female")}

# Đối tượng trẻ em của vụ việc (Decree 56 Arts. 25-30; Form 01 note (4)).
CASE_CATEGORY_LABELS: Labels = {
    "abused": ("Trẻ em bị xâm hại", "Abused child"),
    "at_risk": ("Trẻ em có nguy cơ bị bạo lực, bóc lột, bỏ rơi",
                "Child at risk of violence, exploitation, abandonment"),
    "special_circumstances": ("Trẻ em có hoàn cảnh đặc biệt", "Child in special circumstances"),
}
# Hình thức xâm hại trẻ em (Law on Children 2016 Art. 4).
ABUSE_FORM_LABELS: Labels = {
    "violence": ("Bạo lực", "Violence"), "exploitation": ("Bóc lột", "Exploitation"),
    "sexual_abuse": ("Xâm hại tình dục", "Sexual abuse"), "trafficking": ("Mua bán", "Trafficking"),
    "abandonment": ("Bỏ rơi", "Abandonment"), "neglect": ("Bỏ mặc", "Neglect"),
    "other": ("Hình thức gây tổn hại khác", "Other harm"),
}
# Nguy cơ (Law Art. 49(1); Decree 56 Art. 25).
RISK_FORM_LABELS: Labels = {
    "violence": ("Nguy cơ bị bạo lực", "At risk of violence"),
    "exploitation": ("Nguy cơ bị bóc lột", "At risk of exploitation"),
    "abandonment": ("Nguy cơ bị bỏ rơi", "At risk of abandonment"),
}
# Môi trường xảy ra xâm hại (Circular 13/2021 indicator 0101 breakdown).
ENVIRONMENT_LABELS: Labels = {
    "home": ("Gia đình", "Home"), "school": ("Trường học", "School"), "community": ("Cộng đồng", "Community"),
    "online": ("Môi trường mạng", "Online"), "workplace": ("Nơi làm việc", "Workplace"),
    "other": ("Khác", "Other"),
}
# Nguồn nhận thông tin, "thông qua" (Form 01, A.1).
CHANNEL_LABELS: Labels = {
    "phone": ("Điện thoại", "Phone"), "in_person": ("Gặp trực tiếp", "In person"),
    "through_another_person": ("Người khác báo", "Through another person"),
}
# Quan hệ của người bị nghi gây tổn hại với trẻ em.
PERPETRATOR_LABELS: Labels = {
    "parent": ("Cha, mẹ", "Parent"), "step_parent": ("Cha dượng, mẹ kế", "Step-parent"),
    "relative": ("Người thân", "Relative"), "caregiver": ("Người chăm sóc", "Carer"),
    "teacher": ("Giáo viên", "Teacher"), "acquaintance": ("Người quen", "Acquaintance"),
    "stranger": ("Người lạ", "Stranger"), "other_child": ("Trẻ em khác", "Another child"),
    "unknown": UNKNOWN,
}
# Lý do kết thúc (Decree 56 Art. 30).
CLOSURE_REASON_LABELS: Labels = {
    "safe_and_stable": ("An toàn, ổn định", "Safe and stable"), "unfounded": ("Không có căn cứ", "Unfounded"),
    "duplicate": ("Trùng lặp", "Duplicate"), "aged_out": ("Đủ 16 tuổi", "Aged out"),
    "deceased": ("Đã mất", "Deceased"), "moved_abroad": ("Ra nước ngoài", "Moved abroad"),
    "transferred": ("Chuyển nơi khác", "Transferred"),
}
CLOSURE_KIND_LABELS: Labels = {
    "review": ("Sau rà soát, đánh giá (Mẫu 06)", "After a review (Form 06)"),
    "early": ("Kết thúc sớm", "Closed early"),
}
# The named deadlines of the workflow (Decree 56 Arts. 26-32); two are internal targets, not law.
DEADLINE_LABELS: Labels = {
    "assessment": ("Đánh giá ban đầu", "Initial assessment"),
    "emergency_protection": ("Bảo vệ khẩn cấp", "Emergency protection"),
    "separation": ("Tạm thời cách ly", "Temporary separation"),
    "specific_assessment": ("Đánh giá cụ thể (chỉ tiêu nội bộ)", "Specific assessment (internal target)"),
    "plan_drafted": ("Xây dựng kế hoạch", "Plan drafted"), "plan_approval": ("Phê duyệt kế hoạch", "Plan approved"),
    "plan_revision": ("Điều chỉnh kế hoạch", "Plan revised"), "review": ("Rà soát, đánh giá", "Review"),
    "closure_decision": ("Quyết định kết thúc (chỉ tiêu nội bộ)", "Closure decision (internal target)"),
}
