"""Statistical disclosure control for figures below province level (bảo mật số liệu cá nhân).

What is protected: a commune count from 1 to `threshold - 1` (and a ratio whose numerator, denominator or their
difference is that small) is never published, and must not be recoverable from anything else published at the same
time or for an overlapping place or period.

What an outsider knows, and so what the equations are:
- rows: within a commune and period, an additive breakdown sums to its total (for a ratio, numerators and
  denominators both do);
- columns: across the communes of a province, each cell sums to the province's cell, which is published in full;
- time: within a commune, a period's flow is the sum of the smaller published periods that tile it (a year is its
  two half-years; the administrative year its two administrative halves);
- identities: a ratio's denominator (or numerator) is another indicator's count (HT-TE04's denominators are the
  children of HT-TE01), and a stock counted on the same day is the same number in every period that ends that day.

Rules, applied until nothing changes:
1. no equation may hide exactly one of its cells (it would be its difference);
2. a column (across communes) hides none or at least three cells, so that a commune's own officers, who know their
   own figures, still cannot subtract a neighbour's;
3. where an equation's total is published, its hidden cells may not all be zeros (their sum would show it).
Hidden cells carry one label whatever the reason, so a reader cannot tell a small count from a complement and
bound it. The cell hidden to mend a rule is the smallest positive visible cell of the equation (a zero only when
nothing else is left; the total when no part is left).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from services.reporting.figures import Counts
from services.reporting.indicators import BY_CODE, INDICATORS, LOCALITY, Indicator, key
from services.reporting.periods import Period, tilings

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
    """The count of a cell, or for a ratio its numerator and denominator."""
    name = key(*cell)
    if indicator.is_ratio:
        return counts.get(name + "|n", 0), counts.get(name + "|d", 0)
    return counts.get(name, 0), None


def is_small(indicator: Indicator, number: int, denominator: int | None, threshold: int) -> bool:
    def small(value: int) -> bool:
        return 0 < value < threshold

    if denominator is None:
        return small(number)
    if indicator.unit == "days":  # a mean of a few separations: the few separations are what is protected
        return small(denominator)
    return small(number) or small(denominator) or small(denominator - number)


Member = tuple[str, str, Cell]  # period id, commune, cell
ROW, COLUMN, TIME, IDENTITY = "row", "column", "time", "identity"


@dataclass
class _Group:
    kind: str
    members: list[int]
    total: int | None  # a member that is the equation's total; None when the total is published (columns)


class _Problem:
    """Every member (period, commune, cell) of a province's period family and every equation between them."""

    def __init__(self, counts: dict[str, dict[str, Counts]], periods: list[Period], layout: Layout,
                 threshold: int):
        self.index: dict[Member, int] = {}
        self.members: list[Member] = []
        self.value: list[int] = []
        self.primary: list[bool] = []
        for period in periods:
            for commune, part in counts[period.id].items():
                for code, cells in layout.cells.items():
                    indicator = BY_CODE[code]
                    for cell in cells:
                        number, denominator = cell_count(indicator, part, cell)
                        self.index[(period.id, commune, cell)] = len(self.members)
                        self.members.append((period.id, commune, cell))
                        # A ratio's members weigh by their denominator: what rule 3 must keep from showing.
                        self.value.append(number if denominator is None else denominator)
                        self.primary.append(is_small(indicator, number, denominator, threshold))
        self.groups: list[_Group] = []
        communes = list(next(iter(counts.values())))
        for period in periods:
            self._rows_and_columns(period, communes, layout)
        self._time(periods, communes, layout)
        self._identities(periods, communes, layout)
        self.groups_of: list[list[int]] = [[] for _ in self.members]
        for number, group in enumerate(self.groups):
            for member in group.members:
                self.groups_of[member].append(number)

    def _rows_and_columns(self, period: Period, communes: list[str], layout: Layout) -> None:
        for code, cells in layout.cells.items():
            indicator = BY_CODE[code]
            for cell in cells:
                self.groups.append(_Group(COLUMN, [self.index[(period.id, c, cell)] for c in communes], None))
            for breakdown in indicator.breakdowns:
                if not breakdown.additive or breakdown.code == LOCALITY:
                    continue
                parts = [cell for cell in cells if cell[1] == breakdown.code]
                for commune in communes:
                    total = self.index[(period.id, commune, (code, "", ""))]
                    self.groups.append(_Group(ROW, [total, *(self.index[(period.id, commune, cell)]
                                                             for cell in parts)], total))

    def _time(self, periods: list[Period], communes: list[str], layout: Layout) -> None:
        additive = [code for code in layout.cells if BY_CODE[code].additive_over_time]
        for whole, parts in tilings(periods):
            for code in additive:
                for cell in layout.cells[code]:
                    for commune in communes:
                        total = self.index[(whole.id, commune, cell)]
                        self.groups.append(_Group(TIME, [total, *(self.index[(p.id, commune, cell)]
                                                                  for p in parts)], total))

    def _identities(self, periods: list[Period], communes: list[str], layout: Layout) -> None:
        def pair(a: Member, b: Member) -> None:
            if a in self.index and b in self.index:
                self.groups.append(_Group(IDENTITY, [self.index[a], self.index[b]], None))

        for period in periods:
            for indicator in INDICATORS:
                for other in (indicator.numerator_same_as, indicator.denominator_same_as):
                    if other is None:
                        continue
                    for cell in layout.cells[indicator.code]:
                        for commune in communes:
                            pair((period.id, commune, cell), (period.id, commune, (other, cell[1], cell[2])))
        # A stock counted on the same day is one number, whatever period it is published for.
        by_day: dict[object, list[Period]] = {}
        for period in periods:
            by_day.setdefault(period.end, []).append(period)
        stocks = [code for code in layout.cells if BY_CODE[code].stock]
        for same_day in by_day.values():
            for later in same_day[1:]:
                for code in stocks:
                    for cell in layout.cells[code]:
                        for commune in communes:
                            pair((same_day[0].id, commune, cell), (later.id, commune, cell))


def suppress_family(counts: dict[str, dict[str, Counts]], periods: list[Period], layout: Layout,
                    threshold: int) -> dict[str, dict[str, dict[Cell, str]]]:
    """For every period of the family and every commune of one province, the cells to hide and why.

    `counts` maps period id -> commune -> counts, with every official commune of the province in every period.
    """
    problem = _Problem(counts, periods, layout, threshold)
    hidden: dict[int, str] = {m: PRIMARY for m, small in enumerate(problem.primary) if small}
    groups, value = problem.groups, problem.value

    def broken(group: _Group) -> bool:
        hidden_members = [m for m in group.members if m in hidden]
        if not hidden_members:
            return False
        if group.kind == COLUMN:
            return len(hidden_members) < 3 or sum(value[m] for m in hidden_members) == 0
        if len(hidden_members) == 1:
            return True
        if group.total is not None and group.total not in hidden:
            return sum(value[m] for m in hidden_members) == 0
        return False

    def mend(group: _Group) -> None:
        visible = [m for m in group.members if m not in hidden]
        parts = [m for m in visible if m != group.total]
        needs_positive = (group.kind == COLUMN or (group.total is not None and group.total not in hidden)) and not any(
            value[m] for m in group.members if m in hidden)
        candidates = [m for m in parts if value[m] > 0] if needs_positive else parts
        if not candidates:
            candidates = [group.total] if group.total is not None and group.total not in hidden else parts
        if not candidates:
            return
        choice = min(candidates, key=lambda m: (value[m] == 0, value[m], m))
        hidden[choice] = COMPLEMENTARY
        pending.extend(problem.groups_of[choice])

    pending = [number for number, group in enumerate(groups) if broken(group)]
    while pending:
        number = pending.pop()
        group = groups[number]
        if broken(group):
            before = len(hidden)
            mend(group)
            if len(hidden) > before:
                pending.append(number)

    result: dict[str, dict[str, dict[Cell, str]]] = {p.id: {c: {} for c in counts[p.id]} for p in periods}
    for member, reason in hidden.items():
        period_id, commune, cell = problem.members[member]
        result[period_id][commune][cell] = reason
    return result


def suppress(communes: dict[str, Counts], layout: Layout, threshold: int) -> dict[str, dict[Cell, str]]:
    """One period on its own (rows, columns and identities): kept for callers that have a single table."""
    period = Period("single", "year", date(2000, 1, 1), date(2000, 12, 31), "Y")
    return suppress_family({period.id: communes}, [period], layout, threshold)[period.id]
