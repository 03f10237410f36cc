"""Age groups used in statistics and in events (children are under 16, Law on Children Art. 1).

Events carry the birth month, not the birth date: a child's age is counted in whole years from the first day of
the birth month. Both the cases service and the reporting service use these functions, so their figures agree.
"""

from datetime import date

AGE_GROUPS: list[tuple[str, int, int]] = [("0-5", 0, 5), ("6-10", 6, 10), ("11-15", 11, 15), ("16+", 16, 200)]


def birth_month(born: date) -> str:
    return born.strftime("%Y-%m")


def age_in_years(birth_month_value: str, on: date) -> int:
    year, month = (int(part) for part in birth_month_value.split("-"))
    return on.year - year - (1 if on.month < month else 0)


def age_group(age: int) -> str:
    for name, low, high in AGE_GROUPS:
        if low <= age <= high:
            return name
    return AGE_GROUPS[0][0]
