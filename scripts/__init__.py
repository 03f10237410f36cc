"""Commands that run the whole system: `python -m scripts.run`, and helpers the tests share."""
