"""Statistical disclosure control for figures below province level (bao mat so lieu ca nhan).

Primary suppression hides every commune count from 1 to `threshold - 1`, and every commune rate whose numerator,
denominator or their difference is in that range (a rate and its published denominator give the numerator back).

Secondary (complementary) suppression then hides more cells until no hidden cell can be recovered by
subtraction. The equations an outsider knows are:
- within a commune, an additive breakdown sums to its total (sex, age group, closure reason...);
- across the communes of a province, each cell sums to the province's cell, which is published unsuppressed.
A group of cells tied by one equation must never hide exactly one of them: while some group does, the smallest
positive visible cell of that group is hidden too (a zero only when nothing else is left), and the rows and
columns are checked again until nothing changes.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from services.reporting.figures import Counts
from services.reporting.indicators import INDICATORS, LOCALITY, Indicator, key

PRIMARY, COMPLEMENTARY = "primary", "complementary"
Cell = tuple[str, str, str]  # indicator code, breakdown ("" for the total), category ("" for the total)


@dataclass(frozen=True)
class Layout:
    """The cells a report shows for each indicator, with every category seen anywhere in the province."""

    cells: dict[str, list[Cell]]

    @staticmethod
    def of(counts: Iterable[Counts]) -> "Layout":
        names: set[str] = set()
        for part in counts:
            names.update(part)
        observed: dict[tuple[str, str], set[str]] = {}
        for name in names:
            code, breakdown, category = name.split("|")[:3]
            if breakdown:
                observed.setdefault((code, breakdown), set()).add(category)
        cells: dict[str, list[Cell]] = {}
        for indicator in INDICATORS:
            rows: list[Cell] = [(indicator.code, "", "")]
            for breakdown in indicator.breakdowns:
                if breakdown.code == LOCALITY:
                    continue
                extra = sorted(observed.get((indicator.code, breakdown.code), set()) - set(breakdown.categories))
                rows += [(indicator.code, breakdown.code, category)
                         for category in (*breakdown.categories, *extra)]
            cells[indicator.code] = rows
        return Layout(cells)


def cell_count(indicator: Indicator, counts: Counts, cell: Cell) -> tuple[int, int | None]:
    """The count of a cell, or for a rate its numerator and denominator."""
    name = key(*cell)
    if indicator.is_rate:
        return counts.get(name + "|n", 0), counts.get(name + "|d", 0)
    return counts.get(name, 0), None


def suppress(communes: dict[str, Counts], layout: Layout, threshold: int) -> dict[str, dict[Cell, str]]:
    """For every commune of one province, the cells to hide and why."""
    by_code = {indicator.code: indicator for indicator in INDICATORS}
    rate_codes = {indicator.code for indicator in INDICATORS if indicator.is_rate}
    members: list[tuple[str, Cell]] = []
    index: dict[tuple[str, Cell], int] = {}
    value: list[int] = []
    hidden: dict[int, str] = {}
    for commune, counts in communes.items():
        for code, cells in layout.cells.items():
            rate = code in rate_codes
            for cell in cells:
                name = "|".join(cell)
                number = counts.get(name + "|n" if rate else name, 0)
                index[(commune, cell)] = len(members)
                members.append((commune, cell))
                value.append(number)
                if rate:
                    denominator = counts.get(name + "|d", 0)
                    if 0 < number < threshold or 0 < denominator < threshold or 0 < denominator - number < threshold:
                        hidden[len(members) - 1] = PRIMARY
                elif 0 < number < threshold:
                    hidden[len(members) - 1] = PRIMARY

    groups: list[list[int]] = []
    column_of: dict[Cell, int] = {}
    rows_of: dict[tuple[str, str, str], int] = {}  # (commune, indicator, breakdown) -> group
    all_rows_of: dict[tuple[str, str], list[int]] = {}  # (commune, indicator) -> every row group
    for code, cells in layout.cells.items():
        for cell in cells:
            column_of[cell] = len(groups)
            groups.append([index[(commune, cell)] for commune in communes])
        if by_code[code].is_rate:
            continue
        for breakdown in by_code[code].breakdowns:
            if breakdown.additive and breakdown.code != LOCALITY:
                row = [cell for cell in cells if cell[1] in ("", breakdown.code)]
                for commune in communes:
                    rows_of[(commune, code, breakdown.code)] = len(groups)
                    all_rows_of.setdefault((commune, code), []).append(len(groups))
                    groups.append([index[(commune, cell)] for cell in row])

    def groups_of(member: int) -> list[int]:
        commune, (code, breakdown, _) = members[member]
        found = [column_of[members[member][1]]]
        if breakdown:
            row = rows_of.get((commune, code, breakdown))
            return found if row is None else [*found, row]
        return found + all_rows_of.get((commune, code), [])

    hidden_in = [sum(1 for member in group if member in hidden) for group in groups]
    # A worklist of groups hiding exactly one cell; hiding a complement may create new ones.
    pending = [number for number, count in enumerate(hidden_in) if count == 1]
    while pending:
        number = pending.pop()
        if hidden_in[number] != 1:
            continue
        visible = [member for member in groups[number] if member not in hidden]
        if not visible:
            continue
        # The smallest positive cell costs the least information; a zero only when nothing else is left.
        choice = min(visible, key=lambda member: (value[member] == 0, value[member], member))
        hidden[choice] = COMPLEMENTARY
        for other in groups_of(choice):
            hidden_in[other] += 1
            if hidden_in[other] == 1:
                pending.append(other)

    result: dict[str, dict[Cell, str]] = {commune: {} for commune in communes}
    for member, reason in hidden.items():
        commune, cell = members[member]
        result[commune][cell] = reason
    return result
