"""The code lists the services serve (`GET /v1/vocabularies`) label every code a client can meet, and one code is
named one way everywhere: each list has one owner, every closed list of the cases service is served with labels,
and the reporting service's lists over case codes carry the cases service's codes with the same labels."""

import inspect
from enum import StrEnum

import pytest

from services.cases import attachments
from services.cases import vocabulary as cases
from services.common import terms
from services.common.vocabulary import Vocabulary
from services.registry import vocabulary as registry
from services.reporting import vocabulary as reporting

SERVED: dict[str, list[Vocabulary]] = {
    "registry": registry.VOCABULARIES,
    "cases": [*cases.VOCABULARIES, *attachments.VOCABULARIES],
    "reporting": reporting.VOCABULARIES,
}


def codes(vocabulary: Vocabulary) -> list[str]:
    return [term.code for term in vocabulary.terms]


def test_each_list_has_one_owner() -> None:
    owners: dict[str, str] = {}
    for service, vocabularies in SERVED.items():
        for vocabulary in vocabularies:
            assert vocabulary.name not in owners, f"{vocabulary.name}: {owners.get(vocabulary.name)} and {service}"
            owners[vocabulary.name] = service


@pytest.mark.parametrize("enum", [member for _, member in inspect.getmembers(cases, inspect.isclass)
                                  if issubclass(member, StrEnum) and member.__module__ == cases.__name__],
                         ids=lambda enum: enum.__name__)
def test_every_closed_list_of_the_cases_service_is_served_with_labels(enum: type[StrEnum]) -> None:
    served = [codes(v) for v in SERVED["cases"]]
    assert [member.value for member in enum] in served, f"{enum.__name__} has no labelled list"


def test_the_groups_of_law_article_10_are_one_list() -> None:
    special = next(v for v in registry.VOCABULARIES if v.name == "special_group")
    assert codes(special) == [group.value for group in terms.SpecialGroup]
    assert [(t.vi, t.en) for t in special.terms] == list(terms.SPECIAL_GROUP_LABELS.values())
    # The statistics head their columns with the article's letter and the same words.
    for term in reporting.SPECIAL_GROUPS.terms:
        vi, en = terms.SPECIAL_GROUP_LABELS[term.code]
        assert term.vi.startswith(f"{terms.GROUP_LETTER[term.code]}. ")
        assert term.vi.lower().endswith(vi.removeprefix("Trẻ em ").lower())
        assert term.en == f"{terms.GROUP_LETTER[term.code]}. {en}"
    assert reporting.SPECIAL_GROUPS.label("dd") == "đ. Nhiễm HIV/AIDS"


@pytest.mark.parametrize(("produced", "counted"), [
    ("case_category", reporting.CATEGORIES), ("risk_form", reporting.RISK_FORMS),
    ("intake_channel", reporting.CHANNELS), ("abuse_form", reporting.ABUSE_FORMS),
    ("environment", reporting.ENVIRONMENTS), ("perpetrator_relationship", reporting.PERPETRATORS),
    ("child_sex", reporting.SEX), ("closure_reason", reporting.CLOSURE_REASONS),
    ("closure_kind", reporting.CLOSURE_KINDS), ("deadline", reporting.DEADLINES),
])
def test_a_case_code_is_counted_under_the_label_the_case_screen_shows(produced: str, counted: Vocabulary) -> None:
    source = next(v for v in cases.VOCABULARIES if v.name == produced)
    for term in source.terms:
        assert term.code in codes(counted), f"{produced}/{term.code} has no place in {counted.name}"
        assert (counted.label(term.code, "vi"), counted.label(term.code, "en")) == (term.vi, term.en)
