"""Generated documents stay in step with the code."""

from scripts.gen_permissions_docs import TARGET, render


def test_permissions_doc_is_generated_from_the_table() -> None:
    assert TARGET.read_text() == render(), "run: python -m scripts.gen_permissions_docs"
