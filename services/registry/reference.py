"""Reference data of the registry: ethnic groups, special-circumstance groups, the province codes inside personal
identification numbers, and the name normalisation that search relies on.

Lists that the law or the statistics office publishes are kept as data here (one table each), never scattered
through the code.
"""

import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache

# The 54 ethnic groups of Vietnam with the codes of the General Statistics Office (Danh muc cac dan toc Viet Nam,
# Decision 121-TCTK/PPCD of 2 March 1979).
ETHNIC_GROUPS: dict[str, str] = {
    "01": "Kinh", "02": "Tày", "03": "Thái", "04": "Hoa", "05": "Khơ-me", "06": "Mường", "07": "Nùng",
    "08": "HMông", "09": "Dao", "10": "Gia-rai", "11": "Ngái", "12": "Ê-đê", "13": "Ba-na", "14": "Xơ-Đăng",
    "15": "Sán Chay", "16": "Cơ-ho", "17": "Chăm", "18": "Sán Dìu", "19": "Hrê", "20": "Mnông", "21": "Ra-glai",
    "22": "Xtiêng", "23": "Bru-Vân Kiều", "24": "Thổ", "25": "Giáy", "26": "Cơ-tu", "27": "Gié-Triêng", "28": "Mạ",
    "29": "Khơ-mú", "30": "Co", "31": "Tà-ôi", "32": "Chơ-ro", "33": "Kháng", "34": "Xinh-mun", "35": "Hà Nhì",
    "36": "Chu-ru", "37": "Lào", "38": "La Chí", "39": "La Ha", "40": "Phù Lá", "41": "La Hủ", "42": "Lự",
    "43": "Lô Lô", "44": "Chứt", "45": "Mảng", "46": "Pà Thẻn", "47": "Co Lao", "48": "Cống", "49": "Bố Y",
    "50": "Si La", "51": "Pu Péo", "52": "Brâu", "53": "Ơ Đu", "54": "Rơ-măm",
}

# The 14 groups of children in special circumstances (tre em co hoan canh dac biet), Law on Children 2016 Art. 10.
# Keys are the letters of the article, in the Vietnamese alphabet.
SPECIAL_GROUPS: dict[str, str] = {
    "a": "orphaned of both parents",
    "b": "abandoned",
    "c": "without anyone to rely on",
    "d": "with disabilities",
    "dd": "living with HIV/AIDS",
    "e": "in conflict with the law",
    "g": "drug-addicted",
    "h": "dropped out of school to earn a living before completing lower secondary",
    "i": "seriously harmed physically and mentally by violence",
    "k": "exploited",
    "l": "sexually abused",
    "m": "trafficked",
    "n": "seriously or long-term ill in a poor or near-poor household",
    "o": "migrant, displaced or refugee without identified parents or caregiver",
}

# Risk factors that put a child at risk (tre em co nguy co roi vao hoan canh dac biet, Decree 56 Art. 3-16 and the
# support level of Law Art. 48). Codes are stable; labels are for display.
AT_RISK_FLAGS: dict[str, str] = {
    "poor_household": "poor or near-poor household",
    "parents_working_away": "parents working away from home",
    "single_parent": "living with one parent",
    "domestic_violence": "violence in the family",
    "substance_abuse_in_family": "drug or alcohol abuse in the family",
    "parent_in_prison": "parent serving a prison sentence",
    "school_dropout_risk": "at risk of dropping out of school",
    "child_labour_risk": "at risk of child labour",
    "online_risk": "at risk online",
    "other": "other risk",
}

# Children under 6 are entitled to health insurance paid by the State (Law on Health Insurance, Art. 12).
BHYT_ENTITLED_UNDER_AGE = 6


@dataclass(frozen=True)
class IdProvince:
    """A province code as printed in a personal identification number (ma tinh noi dang ky khai sinh)."""

    code: str
    name: str
    current_province_code: str


@cache
def id_provinces() -> dict[str, IdProvince]:
    """The 63 pre-2025 province codes used in the first three digits of an ID number, and the current province
    each became part of.

    Circular 07/2016/TT-BCA numbers provinces with the statistics office's two-digit codes of the 63 provinces
    prefixed with 0 ("001" Ha Noi, "079" Ho Chi Minh City). `vietnamadminunits` publishes those 63 codes and which
    of the 34 current provinces absorbed each one, so both come from the package rather than a typed list.
    """
    import json
    from importlib import resources

    from vietnamadminunits.database import query

    legacy = query("SELECT DISTINCT provinceCode, province, provinceKey FROM admin_units_legacy")
    current = {row["provinceKey"]: row["provinceCode"]
               for row in query("SELECT DISTINCT provinceCode, provinceKey FROM admin_units")}
    merged_into = json.loads(resources.files("vietnamadminunits").joinpath("data/converter_2025.json").read_text())
    new_key_of_old = {old: new for new, olds in merged_into["DICT_PROVINCE"].items() for old in olds}
    return {
        f"0{row['provinceCode']}": IdProvince(f"0{row['provinceCode']}", row["province"],
                                              current[new_key_of_old[row["provinceKey"]]])
        for row in legacy
    }


def century_sex_digit(born_year: int, sex: str) -> str:
    """The fourth digit of an ID number: the century of birth and the sex (Circular 07/2016/TT-BCA Art. 7):
    20th century 0 male / 1 female, 21st 2 / 3, 22nd 4 / 5, 23rd 6 / 7, 24th 8 / 9."""
    century_index = (born_year - 1900) // 100
    return str(century_index * 2 + (1 if sex == "female" else 0))


ID_NUMBER_PATTERN = re.compile(r"^\d{12}$")


def id_number_disagreements(id_number: str, *, sex: str, date_of_birth_year: int, year_is_estimated: bool,
                            birth_province_code: str | None) -> list[dict[str, str]]:
    """Which parts of a 12-digit personal identification number (so dinh danh ca nhan) disagree with the record.

    Digits 1-3: the province where the birth was registered; digit 4: century and sex; digits 5-6: the last two
    digits of the birth year; digits 7-12: a random number. An estimated birth date (a foundling) is not held
    against the year digits or the century.
    """
    if not ID_NUMBER_PATTERN.match(id_number):
        return [{"part": "format", "detail": "an ID number has exactly 12 digits"}]
    problems: list[dict[str, str]] = []
    province = id_provinces().get(id_number[:3])
    if province is None:
        problems.append({"part": "province_code",
                         "detail": f"digits 1-3 ({id_number[:3]}) are not a province code of Circular 07/2016"})
    elif birth_province_code is not None and province.current_province_code != birth_province_code:
        problems.append({"part": "province_code",
                         "detail": "digits 1-3 name a province other than the place of birth registration"})
    digit = id_number[3]
    expected_sex = "female" if int(digit) % 2 else "male"
    if expected_sex != sex:
        problems.append({"part": "century_sex_digit", "detail": f"digit 4 ({digit}) says {expected_sex}"})
    elif not year_is_estimated and digit != century_sex_digit(date_of_birth_year, sex):
        problems.append({"part": "century_sex_digit",
                         "detail": f"digit 4 ({digit}) names another century than the date of birth"})
    if not year_is_estimated and id_number[4:6] != f"{date_of_birth_year % 100:02d}":
        problems.append({"part": "birth_year_digits",
                         "detail": "digits 5-6 are not the last two digits of the year of birth"})
    return problems


_SPACES = re.compile(r"\s+")
_NOT_NAME = re.compile(r"[^a-z0-9 ]")


@lru_cache(maxsize=65_536)  # names repeat a lot, and an import normalises each several times
def normalize_name(name: str) -> str:
    """Lower case, no diacritics, d for đ, single spaces: "Nguyễn Văn  Đạt" -> "nguyen van dat".

    Stored beside the name and indexed, so a search typed without accents finds the name with them.
    """
    decomposed = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return _SPACES.sub(" ", _NOT_NAME.sub(" ", stripped)).strip()


def normalize_phone(phone: str) -> str:
    """Digits only, with the country code +84 written as a leading 0: "+84 912-345-678" -> "0912345678"."""
    digits = re.sub(r"\D", "", phone)
    if phone.strip().startswith("+84") or (digits.startswith("84") and len(digits) == 11):
        digits = "0" + digits[2:]
    return digits
