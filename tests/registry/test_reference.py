"""Reference data and the rules built on it: ID-number parts, name normalisation, province codes."""

import pytest

from services.registry.export import neutralise
from services.registry.reference import (
    ascii_digits,
    century_sex_digit,
    clean_name,
    id_number_disagreements,
    id_provinces,
    normalize_name,
    normalize_phone,
)
from services.registry.service import parse_day
from services.registry.vocabulary import (
    ETHNIC_GROUPS,
    RELATIONSHIPS,
    SPECIAL_GROUP_VOCABULARY,
    SPECIAL_GROUPS,
    VOCABULARIES,
)


def test_the_lists_of_the_law_are_complete() -> None:
    assert list(SPECIAL_GROUPS) == ["a", "b", "c", "d", "dd", "e", "g", "h", "i", "k", "l", "m", "n", "o"]
    groups = {t.code: t for t in SPECIAL_GROUP_VOCABULARY.terms}
    assert groups["dd"].extra == {"letter": "đ"} and groups["dd"].vi == "Trẻ em nhiễm HIV/AIDS"
    assert groups["l"].vi == "Trẻ em bị xâm hại tình dục"  # Law on Children 2016 Art. 10(1)(l), word for word


def test_ethnic_groups_have_the_codes_of_decision_121_tctk_1979() -> None:
    # Codes as the statistics office's 1979 list numbers them (not the 2008 reordering, where 04 is Mường).
    assert len(ETHNIC_GROUPS) == 54 and list(ETHNIC_GROUPS) == [f"{n:02d}" for n in range(1, 55)]
    expected = {"01": "Kinh (Việt)", "04": "Hoa (Hán)", "05": "Khơ-me", "06": "Mường", "08": "HMông (Mèo)",
                "10": "Gia-rai", "11": "Ngái", "12": "Ê-đê", "17": "Chăm", "23": "Bru-Vân Kiều", "34": "Xinh-mun",
                "44": "Chứt", "52": "Brâu", "53": "Ơ Đu", "54": "Rơ-măm"}
    assert {code: ETHNIC_GROUPS[code] for code in expected} == expected
    assert len(set(ETHNIC_GROUPS.values())) == 54


def test_every_vocabulary_is_labelled_in_vietnamese_with_diacritics_and_in_english() -> None:
    names = [v.name for v in VOCABULARIES]
    assert len(names) == len(set(names))
    assert {"sex", "child_status", "guardian_relationship", "ethnicity", "special_group", "at_risk_flag",
            "school_level", "school_status", "disability_level"} <= set(names)
    for vocabulary in VOCABULARIES:
        assert vocabulary.vi and vocabulary.en
        for term in vocabulary.terms:
            assert term.vi and term.en, (vocabulary.name, term.code)
    relationships = {t.code: t.vi for t in RELATIONSHIPS.terms}
    assert relationships["step_father"] == "Cha dượng" and relationships["maternal_grandmother"] == "Bà ngoại"


def test_names_are_normalised_and_look_alikes_refused() -> None:
    assert clean_name("  Nguyễn\u00a0Văn   An ") == "Nguyễn Văn An"
    assert clean_name("Nguye\u0302\u0303n") == "Nguyễn"  # decomposed input is stored composed (NFC)
    assert clean_name("Ng\u200buyễn\u00adVăn An") == "NguyễnVăn An"  # invisible characters go
    assert clean_name("H\u2019Hen Niê") == "H'Hen Niê"
    assert clean_name("Y Moan Ênuôl") == "Y Moan Ênuôl" and clean_name("Kpă Ĕ") == "Kpă Ĕ"
    for look_alike in ("Nguyễn Văn \u0410n",  # Cyrillic А
                       "Nguy\u0435n",  # Cyrillic е
                       "\u039dguyen",  # Greek Ν
                       "\uff2eguyen",  # full-width Ｎ
                       "\u0251n",  # Latin alpha ɑ (IPA)
                       "An 2", "=HYPERLINK", "\u200b"):
        with pytest.raises(ValueError):
            clean_name(look_alike)


def test_codes_are_ascii_digits_whatever_digits_were_typed() -> None:
    assert ascii_digits("\u0660\u0660\u0661") == "001"  # Arabic-Indic
    assert ascii_digits("\uff10\uff10\uff11") == "001"  # full width
    assert ascii_digits(" 001\u200b ") == "001"
    assert normalize_phone("\uff10\uff19\uff11\uff12 345 678") == "0912345678"


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
    assert normalize_name("Ng\u200buyễn") == "nguyen"


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
