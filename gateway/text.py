"""Text identity for accounts: a username or a display name has one spelling, and a look-alike cannot pose as it.

- Usernames are ASCII (`a-z 0-9 . _ -`), compared in lower case after Unicode NFKC, so "Officer.Tran" and
  "officer.tran" are one account, and a Cyrillic "а" or a zero-width space can never reach one.
- Display names (Vietnamese names) are stored in NFC, so the same name typed with combining accents or precomposed
  letters is the same string; invisible and formatting characters (zero-width, bidirectional controls) and letters
  of other scripts that look Latin (Cyrillic "а", Greek "ο") are refused.
"""

import re
import unicodedata

USERNAME = re.compile(r"[a-z0-9._-]{3,100}")
# Control, format (zero-width, bidi), private-use, surrogate and unassigned code points.
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Co", "Cs", "Cn"}
_SPACES = {" "}


def normalise_username(raw: str) -> str | None:
    """The account name `raw` denotes, or None when it cannot denote any (so that sign-in answers as for an unknown
    user, and the admin API refuses it)."""
    if len(raw) > 200 or any(unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in raw):
        return None
    candidate = unicodedata.normalize("NFKC", raw).strip().lower()
    return candidate if USERNAME.fullmatch(candidate) else None


def display_name_problem(value: str) -> str | None:
    """Why `value` (already NFC) is not an acceptable display name, or None."""
    for character in value:
        category = unicodedata.category(character)
        if category in _INVISIBLE_CATEGORIES or (category.startswith("Z") and character not in _SPACES):
            return "invisible, formatting and control characters are not allowed"
        if category.startswith("L") and not unicodedata.name(character, "").startswith("LATIN "):
            return "letters must be Latin (Vietnamese) letters"
    if value != value.strip() or "  " in value:
        return "no leading, trailing or repeated spaces"
    return None


def normalise_display_name(value: str) -> str:
    value = unicodedata.normalize("NFC", value)
    problem = display_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value
