"""The closed lists of the registry, each with its Vietnamese and English labels (`GET /v1/vocabularies`).

Codes travel in the API, events, imports and exports; labels are what a person reads. Add values, never rename
them: codes are part of the contract with the frontends and the statistics.
"""

from enum import StrEnum

from services.common.guardians import Relationship
from services.common.terms import GROUP_LETTER, SEX_LABELS, SPECIAL_GROUP_LABELS, SpecialGroup
from services.common.vocabulary import Vocabulary, from_enum


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


class ChildStatus(StrEnum):
    """Where the record stands. A child turning 16 is no longer a child (Law on Children 2016 Art. 1)."""

    ACTIVE = "active"
    MOVED_AWAY = "moved_away"
    DECEASED = "deceased"
    AGED_OUT = "aged_out"


class SchoolLevel(StrEnum):
    PRESCHOOL = "preschool"
    PRIMARY = "primary"
    LOWER_SECONDARY = "lower_secondary"
    UPPER_SECONDARY = "upper_secondary"
    VOCATIONAL = "vocational"


class SchoolStatus(StrEnum):
    ENROLLED = "enrolled"
    DROPPED_OUT = "dropped_out"
    NOT_ENROLLED = "not_enrolled"


class DisabilityLevel(StrEnum):
    """Mức độ khuyết tật (Law on Persons with Disabilities 2010, Art. 3(2))."""

    MILD = "mild"
    SEVERE = "severe"
    ESPECIALLY_SEVERE = "especially_severe"


class AtRiskFlag(StrEnum):
    """Risk factors that put a child at risk of falling into special circumstances (Decree 56 Arts. 3-16, the
    support level of Law Art. 48)."""

    POOR_HOUSEHOLD = "poor_household"
    PARENTS_WORKING_AWAY = "parents_working_away"
    SINGLE_PARENT = "single_parent"
    DOMESTIC_VIOLENCE = "domestic_violence"
    SUBSTANCE_ABUSE_IN_FAMILY = "substance_abuse_in_family"
    PARENT_IN_PRISON = "parent_in_prison"
    SCHOOL_DROPOUT_RISK = "school_dropout_risk"
    CHILD_LABOUR_RISK = "child_labour_risk"
    ONLINE_RISK = "online_risk"
    OTHER = "other"


class ImportStatus(StrEnum):
    QUEUED = "queued"
    VALIDATING = "validating"
    APPLYING = "applying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# The 54 ethnic groups with the General Statistics Office's codes, in the order and with the codes of "Danh mục
# các thành phần dân tộc Việt Nam", Quyết định 121-TCTK/PPCĐ of 2 March 1979 (checked against the list as the
# Đà Nẵng statistics office publishes it, codes 01-09, and two independent transcriptions of all 54 codes).
# Decision 1019/QĐ-TCTK of 2008 lists the same 54 groups in another order (04 Mường, 05 Khơ-me, 06 Hoa, 11 Ê-đê,
# ...): these codes are the 1979 ones, so "04" here is Hoa. Values: (Vietnamese name, English name).
ETHNIC_GROUP_LABELS: dict[str, tuple[str, str]] = {
    "01": ("Kinh (Việt)", "Kinh (Viet)"), "02": ("Tày", "Tay"), "03": ("Thái", "Thai"),
    "04": ("Hoa (Hán)", "Hoa (Chinese)"), "05": ("Khơ-me", "Khmer"), "06": ("Mường", "Muong"),
    "07": ("Nùng", "Nung"), "08": ("HMông (Mèo)", "Hmong"), "09": ("Dao", "Dao"), "10": ("Gia-rai", "Jarai"),
    "11": ("Ngái", "Ngai"), "12": ("Ê-đê", "Ede"), "13": ("Ba-na", "Bahnar"), "14": ("Xơ-đăng", "Sedang"),
    "15": ("Sán Chay", "San Chay"), "16": ("Cơ-ho", "Koho"), "17": ("Chăm", "Cham"), "18": ("Sán Dìu", "San Diu"),
    "19": ("Hrê", "Hre"), "20": ("Mnông", "Mnong"), "21": ("Ra-glai", "Raglai"), "22": ("Xtiêng", "Stieng"),
    "23": ("Bru-Vân Kiều", "Bru-Van Kieu"), "24": ("Thổ", "Tho"), "25": ("Giáy", "Giay"),
    "26": ("Cơ-tu", "Katu"), "27": ("Gié-Triêng", "Gie-Trieng"), "28": ("Mạ", "Ma"), "29": ("Khơ-mú", "Khmu"),
    "30": ("Co", "Co"), "31": ("Tà-ôi", "Ta Oi"), "32": ("Chơ-ro", "Cho Ro"), "33": ("Kháng", "Khang"),
    "34": ("Xinh-mun", "Xinh Mun"), "35": ("Hà Nhì", "Ha Nhi"), "36": ("Chu-ru", "Chu Ru"), "37": ("Lào", "Lao"),
    "38": ("La Chí", "La Chi"), "39": ("La Ha", "La Ha"), "40": ("Phù Lá", "Phu La"), "41": ("La Hủ", "La Hu"),
    "42": ("Lự", "Lu"), "43": ("Lô Lô", "Lo Lo"), "44": ("Chứt", "Chut"), "45": ("Mảng", "Mang"),
    "46": ("Pà Thẻn", "Pa Then"), "47": ("Co Lao", "Co Lao"), "48": ("Cống", "Cong"), "49": ("Bố Y", "Bo Y"),
    "50": ("Si La", "Si La"), "51": ("Pu Péo", "Pu Peo"), "52": ("Brâu", "Brau"), "53": ("Ơ Đu", "O Du"),
    "54": ("Rơ-măm", "Ro Mam"),
}
Ethnicity = StrEnum("Ethnicity", {f"E{code}": code for code in ETHNIC_GROUP_LABELS})  # type: ignore[misc]
ETHNIC_GROUPS: dict[str, str] = {code: vi for code, (vi, _) in ETHNIC_GROUP_LABELS.items()}

SPECIAL_GROUPS: dict[str, str] = {code: en for code, (_, en) in SPECIAL_GROUP_LABELS.items()}

AT_RISK_FLAG_LABELS: dict[str, tuple[str, str]] = {
    "poor_household": ("Hộ nghèo hoặc cận nghèo", "Poor or near-poor household"),
    "parents_working_away": ("Cha mẹ đi làm ăn xa", "Parents working away from home"),
    "single_parent": ("Sống với cha hoặc mẹ", "Living with one parent"),
    "domestic_violence": ("Gia đình có bạo lực", "Violence in the family"),
    "substance_abuse_in_family": ("Gia đình có người nghiện ma túy, rượu", "Drug or alcohol abuse in the family"),
    "parent_in_prison": ("Cha hoặc mẹ đang chấp hành án phạt tù", "Parent serving a prison sentence"),
    "school_dropout_risk": ("Có nguy cơ bỏ học", "At risk of dropping out of school"),
    "child_labour_risk": ("Có nguy cơ lao động trẻ em", "At risk of child labour"),
    "online_risk": ("Có nguy cơ trên môi trường mạng", "At risk online"),
    "other": ("Nguy cơ khác", "Other risk"),
}
AT_RISK_FLAGS: dict[str, str] = {code: en for code, (_, en) in AT_RISK_FLAG_LABELS.items()}

SEXES = from_enum("sex", Sex, SEX_LABELS, vi="Giới tính", en="Sex")
STATUSES = from_enum("child_status", ChildStatus, {
    "active": ("Đang theo dõi", "Active"),
    "moved_away": ("Đã chuyển đi nơi khác", "Moved away"),
    "deceased": ("Đã mất", "Deceased"),
    "aged_out": ("Đã đủ 16 tuổi", "Aged out (16 or older)"),
}, vi="Tình trạng hồ sơ", en="Record status", source="Luật Trẻ em 2016, Điều 1 (trẻ em là người dưới 16 tuổi)")
RELATIONSHIPS = from_enum("guardian_relationship", Relationship, {
    "mother": ("Mẹ", "Mother"),
    "father": ("Cha", "Father"),
    "step_mother": ("Mẹ kế", "Step-mother"),
    "step_father": ("Cha dượng", "Step-father"),
    "adoptive_parent": ("Cha mẹ nuôi", "Adoptive parent"),
    "paternal_grandfather": ("Ông nội", "Paternal grandfather"),
    "paternal_grandmother": ("Bà nội", "Paternal grandmother"),
    "maternal_grandfather": ("Ông ngoại", "Maternal grandfather"),
    "maternal_grandmother": ("Bà ngoại", "Maternal grandmother"),
    "grandparent": ("Ông bà (không rõ nội, ngoại)", "Grandparent (side not recorded)"),
    "sibling": ("Anh, chị ruột", "Sibling"),
    "aunt_uncle": ("Cô, dì, chú, bác, cậu", "Aunt or uncle"),
    "relative": ("Người thân thích khác", "Other relative"),
    "foster_parent": ("Người nhận chăm sóc thay thế", "Foster carer"),
    "guardian": ("Người giám hộ", "Legal guardian"),
    "other": ("Khác", "Other"),
}, vi="Quan hệ với trẻ em", en="Relationship to the child",
    source="Luật Trẻ em 2016, Điều 4(3)-(4) (chăm sóc thay thế, người chăm sóc trẻ em)")
SCHOOL_LEVELS = from_enum("school_level", SchoolLevel, {
    "preschool": ("Mầm non", "Preschool"),
    "primary": ("Tiểu học", "Primary"),
    "lower_secondary": ("Trung học cơ sở", "Lower secondary"),
    "upper_secondary": ("Trung học phổ thông", "Upper secondary"),
    "vocational": ("Giáo dục nghề nghiệp", "Vocational"),
}, vi="Cấp học", en="School level", source="Luật Giáo dục 2019, Điều 6")
SCHOOL_STATUSES = from_enum("school_status", SchoolStatus, {
    "enrolled": ("Đang đi học", "Enrolled"),
    "dropped_out": ("Đã bỏ học", "Dropped out"),
    "not_enrolled": ("Không đi học", "Not enrolled"),
}, vi="Tình trạng đi học", en="School status")
DISABILITY_LEVELS = from_enum("disability_level", DisabilityLevel, {
    "mild": ("Khuyết tật nhẹ", "Mild"),
    "severe": ("Khuyết tật nặng", "Severe"),
    "especially_severe": ("Khuyết tật đặc biệt nặng", "Especially severe"),
}, vi="Mức độ khuyết tật", en="Disability level", source="Luật Người khuyết tật 2010, Điều 3(2)")
SPECIAL_GROUP_VOCABULARY = from_enum(
    "special_group", SpecialGroup, SPECIAL_GROUP_LABELS, vi="Nhóm trẻ em có hoàn cảnh đặc biệt",
    en="Children in special circumstances", source="Luật Trẻ em 2016, Điều 10(1)",
    extra={code: {"letter": letter} for code, letter in GROUP_LETTER.items()})
AT_RISK_FLAG_VOCABULARY = from_enum(
    "at_risk_flag", AtRiskFlag, AT_RISK_FLAG_LABELS, vi="Yếu tố nguy cơ", en="At-risk factors",
    source="Nghị định 56/2017/NĐ-CP, Điều 3-16; Luật Trẻ em 2016, Điều 48")
ETHNICITIES = from_enum(
    "ethnicity", Ethnicity, ETHNIC_GROUP_LABELS, vi="Dân tộc", en="Ethnic group",
    source="Tổng cục Thống kê, Quyết định 121-TCTK/PPCĐ ngày 02/3/1979, Danh mục các thành phần dân tộc Việt Nam")
IMPORT_STATUSES = from_enum("import_status", ImportStatus, {
    "queued": ("Đang chờ", "Queued"),
    "validating": ("Đang kiểm tra", "Validating"),
    "applying": ("Đang ghi vào sổ", "Applying"),
    "succeeded": ("Hoàn thành", "Succeeded"),
    "failed": ("Không thành công", "Failed"),
}, vi="Tình trạng nhập danh sách", en="Import status")

VOCABULARIES: tuple[Vocabulary, ...] = (
    SEXES, STATUSES, RELATIONSHIPS, ETHNICITIES, SPECIAL_GROUP_VOCABULARY, AT_RISK_FLAG_VOCABULARY, SCHOOL_LEVELS,
    SCHOOL_STATUSES, DISABILITY_LEVELS, IMPORT_STATUSES,
)
