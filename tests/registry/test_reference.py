"""Reference data and the rules built on it: ID-number parts, name normalisation, province codes."""

from services.registry.export import neutralise
from services.registry.reference import (
    ETHNIC_GROUPS,
    SPECIAL_GROUPS,
    century_sex_digit,
    id_number_disagreements,
    id_provinces,
    normalize_name,
    normalize_phone,
)
from services.registry.service import parse_day


def test_the_lists_of_the_law_are_complete() -> None:
    assert len(ETHNIC_GROUPS) == 54 and ETHNIC_GROUPS["01"] == "Kinh"
    assert list(SPECIAL_GROUPS) == ["a", "b", "c", "d", "dd", "e", "g", "h", "i", "k", "l", "m", "n", "o"]


def test_id_province_codes_are_the_63_old_provinces_mapped_to_the_new() -> None:
    codes = id_provinces()
    assert len(codes) == 63
    assert codes["001"].current_province_code == "01"
    assert codes["024"].current_province_code == "24"  # Bac Giang, now part of Bac Ninh (24)
    assert codes["027"].current_province_code == "24"  # Bac Ninh
    assert codes["074"].current_province_code == "79"  # Binh Duong, now Ho Chi Minh City
    assert codes["096"].current_province_code == "96"
    assert len({p.current_province_code for p in codes.values()}) == 34


def test_century_sex_digit() -> None:
    assert century_sex_digit(1999, "male") == "0" and century_sex_digit(1999, "female") == "1"
    assert century_sex_digit(2000, "male") == "2" and century_sex_digit(2016, "female") == "3"
    assert century_sex_digit(2100, "male") == "4"


def parts(number: str, **record: object) -> list[str]:
    facts = {"sex": "female", "date_of_birth_year": 2016, "year_is_estimated": False,
             "birth_province_code": None} | record
    return [p["part"] for p in id_number_disagreements(number, **facts)]  # type: ignore[arg-type]


def test_id_number_parts() -> None:
    assert parts("001316000123") == []
    assert parts("001316000123", birth_province_code="01") == []
    assert parts("074316000123", birth_province_code="79") == []
    assert parts("001316000123", birth_province_code="24") == ["province_code"]
    assert parts("003316000123") == ["province_code"]
    assert parts("001216000123") == ["century_sex_digit"]  # male
    assert parts("001116000123") == ["century_sex_digit"]  # female, but born in the 1900s
    assert parts("001315000123") == ["birth_year_digits"]
    assert parts("001315000123", year_is_estimated=True) == []
    assert parts("00131600012") == ["format"] and parts("00131600012a") == ["format"]


def test_names_without_diacritics() -> None:
    assert normalize_name("Nguyễn Văn  An") == "nguyen van an"
    assert normalize_name("ĐỖ Thị Ánh-Tuyết") == "do thi anh tuyet"
    assert normalize_name("Nguye\u0302\u0303n") == "nguyen"  # combining marks, as cp1258 writes them
    assert normalize_name("%_") == ""


def test_phones_and_dates() -> None:
    assert normalize_phone("+84 912-345-678") == "0912345678"
    assert normalize_phone("0912 345 678") == "0912345678"
    assert parse_day("31/12/2015").isoformat() == "2015-12-31"  # type: ignore[union-attr]
    assert parse_day("2015-02-29") is None and parse_day("31/02/2015") is None and parse_day("2015") is None


def test_cells_that_would_run_as_formulas_are_neutralised() -> None:
    assert [neutralise(v) for v in ("=1+1", "+84", "-2", "@x", "\tx", "ok", None, True)] == \
        ["'=1+1", "'+84", "'-2", "'@x", "'\tx", "ok", "", "yes"]


def test_accepted_encodings_have_codecs() -> None:
    from typing import get_args

    from services.registry.imports import ENCODINGS
    from services.registry.schemas import FileEncoding

    assert set(get_args(FileEncoding)) == set(ENCODINGS)
