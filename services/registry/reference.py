"""Reference data and text identity of the registry: the province codes inside personal identification numbers,
and how names and codes are normalised before they are stored, compared or searched.

The closed lists (ethnic groups, the 14 groups of Art. 10, relationships, ...) are in `vocabulary.py` with their
labels.
"""

import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache

import regex

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


ID_NUMBER_PATTERN = re.compile(r"^[0-9]{12}$")


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
# Invisible formatting characters (zero-width space and joiners, soft hyphen, byte-order mark, bidirectional
# controls: Unicode category Cf). They change nothing a person sees, so they are removed before anything is stored
# or compared: a duplicate cannot hide behind them.
_FORMATTING = regex.compile(r"\p{Cf}")
_ANY_SPACE = regex.compile(r"[\p{Zs}\t\r\n\u2028\u2029]+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "\u2018": "'", "\u2010": "-", "\u2011": "-"})
# A name is written in the Latin alphabet (Vietnamese letters, and the extra letters of minority languages such as
# Ê-đê ĕ ŏ ŭ ƀ), each letter optionally followed by combining marks, with spaces, hyphens and apostrophes between.
# Letters of other scripts (Cyrillic а, Greek ο) are refused: they look like Latin letters and would let a
# second record of the same child pass the duplicate check. IPA and phonetic letters (ɑ, ɡ, ᴀ) are refused for the
# same reason. Unicode script properties come from the `regex` module.
_NAME = regex.compile(r"^(?:[[\p{Script=Latin}&&\p{L}]--[\u0250-\u02AF\u1D00-\u1DBF]]\p{M}*|[ '\-])+$",
                      regex.V1)


def clean_text(value: str) -> str:
    """One spelling of a text: Unicode NFC, invisible formatting characters removed, every kind of space as one
    ordinary space, no leading or trailing space."""
    text = _FORMATTING.sub("", value)
    text = _ANY_SPACE.sub(" ", text)
    return unicodedata.normalize("NFC", text).strip()


def clean_name(value: str) -> str:
    """A person's name as it is stored: `clean_text`, typographic apostrophes and hyphens made plain, then checked
    to be written in the Latin alphabet only. Raises ValueError naming what is wrong (never echoing the value)."""
    name = clean_text(value).translate(_APOSTROPHES)
    if not name:
        raise ValueError("must contain letters")
    if not unicodedata.is_normalized("NFKC", name):
        raise ValueError("contains compatibility characters (full-width or styled letters, ligatures)")
    if not _NAME.match(name) or not any(ch.isalpha() for ch in name):
        raise ValueError("must be written with letters of the Vietnamese (Latin) alphabet only: letters of other "
                         "scripts, digits and symbols are not accepted")
    return name


def ascii_digits(value: str) -> str:
    """A code as ASCII digits: full-width, Arabic-Indic and other decimal digits become 0-9, formatting characters
    and surrounding spaces go. "００１２" and "٠٠١٢" are the same code as "0012", so they cannot register twice."""
    text = _FORMATTING.sub("", unicodedata.normalize("NFKC", value)).strip()
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


@lru_cache(maxsize=65_536)  # names repeat a lot, and an import normalises each several times
def normalize_name(name: str) -> str:
    """Lower case, no diacritics, d for đ, single spaces: "Nguyễn Văn  Đạt" -> "nguyen van dat".

    Stored beside the name and indexed, so a search typed without accents finds the name with them.
    """
    decomposed = unicodedata.normalize("NFD", _FORMATTING.sub("", name).replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return _SPACES.sub(" ", _NOT_NAME.sub(" ", stripped)).strip()


def given_name(name_search: str) -> str:
    """The given name (tên), the last word of a normalised Vietnamese name: "nguyen van an" -> "an"."""
    return name_search.rsplit(" ", 1)[-1]


def normalize_phone(phone: str) -> str:
    """Digits only, with the country code +84 written as a leading 0: "+84 912-345-678" -> "0912345678"."""
    digits = re.sub(r"\D", "", ascii_digits(phone))
    if phone.strip().startswith("+84") or (digits.startswith("84") and len(digits) == 11):
        digits = "0" + digits[2:]
    return digits
