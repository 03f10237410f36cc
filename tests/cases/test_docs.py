"""The committed workflow document is the one the tables generate."""

from scripts.gen_workflow_docs import TARGET, render


def test_workflow_doc_is_generated_from_the_table() -> None:
    assert TARGET.read_text(encoding="utf-8") == render(), "run: python -m scripts.gen_workflow_docs"
