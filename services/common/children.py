"""What the law says of every child, shared by the services that record children and cases: one definition each,
so the combined API document and the statistics name one list.

`SpecialGroup`: nhóm trẻ em có hoàn cảnh đặc biệt, the 14 groups of Law on Children 2016 Art. 10(1), coded by the
letter of the article in ASCII (`dd` is the letter đ).
"""

from enum import StrEnum


class SpecialGroup(StrEnum):
    """The 14 groups of children in special circumstances (Law on Children 2016 Art. 10(1)). Codes are the letters
    of the article in ASCII: `dd` is the letter đ."""

    A = "a"
    B = "b"
    C = "c"
    D = "d"
    DD = "dd"
    E = "e"
    G = "g"
    H = "h"
    I = "i"  # noqa: E741 - the letter of the article
    K = "k"
    L = "l"
    M = "m"
    N = "n"
    O = "o"  # noqa: E741
