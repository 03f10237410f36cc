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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from services.reporting.figures import Counts
from services.reporting.indicators import BY_CODE, INDICATORS, LOCALITY, Indicator, key
from services.reporting.periods import Period

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


Member = tuple[str, Cell]  # commune, cell
ROW, COLUMN, IDENTITY = "row", "column", "identity"


@dataclass
class _Group:
    kind: str
    members: list[int]
    total: int | None  # a member that is the equation's total; None when the total is published (columns)
    part: int = 1  # identities: which part of the ratio (0 numerator, 1 denominator) equals the other count


class _Problem:
    """Every (commune, cell) of a province with its value in each period of the family, and every equation of one
    period between them. One pattern is decided for the whole family: a cell hidden in one period is hidden in all.
    Then an equation across periods (a year is its two halves) only ever links hidden cells to hidden cells, and
    any set of values the reader cannot tell apart in one period stays possible in the others; so a family is as
    safe as each of its periods on its own."""

    def __init__(self, counts: dict[str, dict[str, Counts]], periods: list[Period], layout: Layout,
                 threshold: int):
        self.index: dict[Member, int] = {}
        self.members: list[Member] = []
        self.values: list[tuple[tuple[int, int], ...]] = []  # per period: (count, count), or a ratio's (n, d)
        self.primary: list[bool] = []
        self.small: list[tuple[bool, ...]] = []  # per period
        communes = list(counts[periods[0].id])
        for commune in communes:
            for code, cells in layout.cells.items():
                indicator = BY_CODE[code]
                for cell in cells:
                    self.index[(commune, cell)] = len(self.members)
                    self.members.append((commune, cell))
                    found = [cell_count(indicator, counts[p.id][commune], cell) for p in periods]
                    self.values.append(tuple((n, n if d is None else d) for n, d in found))
                    self.small.append(tuple(is_small(indicator, n, d, threshold) for n, d in found))
                    self.primary.append(any(self.small[-1]))
        self.groups: list[_Group] = []
        for code, cells in layout.cells.items():
            indicator = BY_CODE[code]
            for cell in cells:
                self.groups.append(_Group(COLUMN, [self.index[(c, cell)] for c in communes], None))
            for breakdown in indicator.breakdowns:
                if not breakdown.additive or breakdown.code == LOCALITY:
                    continue
                parts = [cell for cell in cells if cell[1] == breakdown.code]
                if len(parts) < len(breakdown.categories):  # a layout that leaves the breakdown out
                    continue
                for commune in communes:
                    total = self.index[(commune, (code, "", ""))]
                    self.groups.append(_Group(ROW, [total, *(self.index[(commune, cell)] for cell in parts)], total))
            for part, other in enumerate((indicator.numerator_same_as, indicator.denominator_same_as)):
                for cell in cells if other else []:
                    for commune in communes:
                        twin = (commune, (other, cell[1], cell[2]))
                        if twin in self.index:
                            self.groups.append(_Group(IDENTITY, [self.index[(commune, cell)], self.index[twin]],
                                                      None, part))
        self.ratio = [BY_CODE[cell[0]].is_ratio for _, cell in self.members]
        self.groups_of: list[list[int]] = [[] for _ in self.members]
        for number, group in enumerate(self.groups):
            for member in group.members:
                self.groups_of[member].append(number)

    def equations(self, hidden: dict[int, str], period: int,
                  only: set[int] | None = None) -> list[tuple[dict[tuple[int, int], int], int]]:
        """Every equation of one period as a reader sees it: over the hidden cells' parts (member, 0 numerator or
        count, 1 denominator), with what the published cells contribute moved to the constant. `only`: the
        equations that touch these members."""
        found = []
        numbers = range(len(self.groups)) if only is None else sorted(
            {number for member in only for number in self.groups_of[member]})
        for group in (self.groups[number] for number in numbers):
            if not any(m in hidden for m in group.members):
                continue
            if group.kind == IDENTITY:
                ratio, count = group.members
                terms = [(ratio, group.part, 1), (count, 0, -1)]
                equations_ = [terms]
            else:
                parts = (0, 1) if self.ratio[group.members[0]] else (0,)
                equations_ = [[(m, part, -1 if m == group.total else 1) for m in group.members] for part in parts]
            for terms in equations_:
                coefficients: dict[tuple[int, int], int] = {}
                constant = 0
                for member, part, sign in terms:
                    if member in hidden:
                        coefficients[(member, part)] = coefficients.get((member, part), 0) + sign
                    else:
                        constant -= sign * self.values[member][period][part]
                if group.kind == COLUMN:  # the province's published cell
                    constant += sum(self.values[m][period][terms[0][1]] for m in group.members)
                found.append((coefficients, constant))
        return found


def _nearest_visible(problem: _Problem, hidden: dict[int, str], member: int,
                     weight: Callable[[int], tuple[bool, int, int]], reader: str | None) -> int | None:
    """The published cell closest to `member` through the equations of hidden cells (and not the reader's own,
    which the reader knows anyway): hiding it gives the equations that pin `member` down one more unknown."""
    seen_groups: set[int] = set()
    frontier = [member]
    seen_members = {member}
    while frontier:
        candidates: list[int] = []
        following: list[int] = []
        for current in frontier:
            for number in problem.groups_of[current]:
                if number in seen_groups:
                    continue
                seen_groups.add(number)
                for other in problem.groups[number].members:
                    if other not in hidden and problem.members[other][0] != reader:
                        candidates.append(other)
                    elif other not in seen_members:
                        seen_members.add(other)
                        following.append(other)
        if candidates:
            return min(candidates, key=weight)
        frontier = following
    return None


def _components(equations: list[tuple[dict[tuple[int, int], int], int]]) -> list[list[int]]:
    """The equations grouped by the unknowns they share (union-find): each group is solved on its own."""
    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def find(variable: tuple[int, int]) -> tuple[int, int]:
        while parent.setdefault(variable, variable) != variable:
            parent[variable] = parent[parent[variable]]
            variable = parent[variable]
        return variable

    for coefficients, _ in equations:
        variables = list(coefficients)
        for other in variables[1:]:
            a, b = find(variables[0]), find(other)
            if a != b:
                parent[a] = b
    groups: dict[tuple[int, int], list[int]] = {}
    for number, (coefficients, _) in enumerate(equations):
        if coefficients:
            groups.setdefault(find(next(iter(coefficients))), []).append(number)
    return list(groups.values())


AUDIT_LIMIT = 1500  # unknowns of one independent part beyond which the exact audit is not run (see docs)


def recoverable(problem: _Problem, hidden: dict[int, str], periods: int,
                threshold: int) -> dict[int, str | None]:
    """The hidden small counts an outside reader can work out from everything published (exact linear algebra
    modulo a large prime, after the zeros that non-negativity forces), in any period of the family. What is
    protected is a number from 1 to `threshold - 1` (a count, a ratio's numerator or denominator, or their
    difference); a zero is published anyway. The system splits into independent parts (an indicator and the
    indicators it shares numbers with, often far smaller), each solved on its own."""
    found: dict[int, str | None] = {}
    for period in range(periods):
        equations = problem.equations(hidden, period)
        for component in _components(equations):
            local = [equations[n] for n in component]
            if len({v for coefficients, _ in local for v in coefficients}) <= AUDIT_LIMIT:
                _expose(problem, local, hidden, period, threshold, None, found)
    return found


def _expose(problem: _Problem, equations: list[tuple[dict[tuple[int, int], int], int]], unknown: dict[int, str],
            period: int, threshold: int, reader: str | None, found: dict[int, str | None]) -> None:
    forced = [({variable: 1}, 0) for coefficients, constant in equations if constant == 0 and coefficients
              and (all(c > 0 for c in coefficients.values()) or all(c < 0 for c in coefficients.values()))
              for variable in coefficients]
    determined = _determined([*forced, *equations])
    for member, part in determined:
        if member not in unknown or not problem.small[member][period]:
            continue
        numerator, denominator = problem.values[member][period]
        value = (numerator, denominator)[part]
        both = (member, 1 - part) in determined
        if 0 < value < threshold or (both and problem.ratio[member] and 0 < denominator - numerator < threshold):
            found.setdefault(member, reader)


PRIME = 2_147_483_647


def _determined(equations: list[tuple[dict[tuple[int, int], int], int]]) -> set[tuple[int, int]]:
    """The variables a set of linear equations fixes: sparse Gaussian elimination modulo a prime, shortest rows
    first. A pivot whose reduced row has no other variable is determined."""
    pivots: dict[tuple[int, int], dict[tuple[int, int], int]] = {}
    rows = sorted(({v: c % PRIME for v, c in coefficients.items() if c % PRIME} for coefficients, _ in equations),
                  key=len)
    for row in rows:
        for variable in [v for v in row if v in pivots]:
            factor = row.get(variable)
            if not factor:
                continue
            for v, c in pivots[variable].items():
                value = (row.get(v, 0) - factor * c) % PRIME
                if value:
                    row[v] = value
                else:
                    row.pop(v, None)
        if not row:
            continue
        lead = min(row)
        inverse = pow(row[lead], PRIME - 2, PRIME)
        row = {v: c * inverse % PRIME for v, c in row.items()}
        for other in pivots.values():
            factor = other.get(lead)
            if factor:
                for v, c in row.items():
                    value = (other.get(v, 0) - factor * c) % PRIME
                    if value:
                        other[v] = value
                    else:
                        other.pop(v, None)
        pivots[lead] = row
    return {lead for lead, row in pivots.items() if len(row) == 1}


def suppress_family(counts: dict[str, dict[str, Counts]], periods: list[Period], layout: Layout,
                    threshold: int) -> dict[str, dict[str, dict[Cell, str]]]:
    """For every period of the family and every commune of one province, the cells to hide and why (the same cells
    in every period of the family).

    `counts` maps period id -> commune -> counts, with every official commune of the province in every period.
    """
    problem = _Problem(counts, periods, layout, threshold)
    hidden: dict[int, str] = {m: PRIMARY for m, small in enumerate(problem.primary) if small}
    groups, values = problem.groups, problem.values
    span = [(p, part) for p in range(len(periods)) for part in (0, 1)]  # every period, numerator and denominator
    # Per equation, kept up to date as cells are hidden: how many are hidden and what they add up to in each period
    # (numerators and denominators), so each rule is checked without walking the equation.
    hidden_count = [0] * len(groups)
    hidden_sum = [[0] * len(span) for _ in groups]

    def hide(member: int, reason: str) -> None:
        hidden[member] = reason
        for number in problem.groups_of[member]:
            hidden_count[number] += 1
            sums = hidden_sum[number]
            for index, (p, part) in enumerate(span):
                sums[index] += values[member][p][part]

    for member, reason in list(hidden.items()):
        del hidden[member]
        hide(member, reason)

    def empty(number: int) -> list[tuple[int, int]]:
        # Rule 3, in any period: hidden cells that add up to 0 beside a published total are all zeros (for a
        # ratio, its numerators or its denominators).
        return [span[index] for index, total in enumerate(hidden_sum[number]) if total == 0]

    def broken(number: int) -> bool:
        group, count = groups[number], hidden_count[number]
        if not count:
            return False
        if group.kind == COLUMN:
            return count < 3 or 0 in hidden_sum[number]
        if count == 1:
            return True
        if group.total is not None and group.total not in hidden:
            return 0 in hidden_sum[number]
        return False

    # The smallest positive cell costs the least information; a zero only when nothing else is left.
    weights = [(total == 0, total, member) for member, total in
               enumerate(sum(value[1] for value in member_values) for member_values in values)]
    weight = weights.__getitem__

    def mend(number: int) -> None:
        group = groups[number]
        parts = [m for m in group.members if m not in hidden and m != group.total]
        total_published = group.kind == COLUMN or (group.total is not None and group.total not in hidden)
        zeros = empty(number) if total_published else []
        candidates = [m for m in parts if any(values[m][p][part] for p, part in zeros)] if zeros else parts
        if not candidates:
            candidates = [group.total] if group.total is not None and group.total not in hidden else parts
        if not candidates:
            return
        choice = min(candidates, key=weight)
        hide(choice, COMPLEMENTARY)
        pending.extend(problem.groups_of[choice])

    def settle() -> None:
        while pending:
            number = pending.pop()
            if broken(number):
                before = len(hidden)
                mend(number)
                if len(hidden) > before:
                    pending.append(number)

    pending = [number for number in range(len(groups)) if broken(number)]
    settle()
    # The rules hold equation by equation; equations taken together can still pin a cell down. Until no small
    # count can be worked out, hide one more cell next to each that can, and apply the rules again.
    while exposed := recoverable(problem, hidden, len(periods), threshold):
        before = len(hidden)
        for member, reader in sorted(exposed.items()):
            choice = _nearest_visible(problem, hidden, member, weight, reader)
            if choice is not None:
                hide(choice, COMPLEMENTARY)
                pending.extend(problem.groups_of[choice])
        settle()
        if len(hidden) == before:  # nothing left to hide near it: cannot happen while the province is published
            break

    by_commune: dict[str, dict[Cell, str]] = {c: {} for c in counts[periods[0].id]}
    for member, reason in hidden.items():
        commune, cell = problem.members[member]
        by_commune[commune][cell] = reason
    return {p.id: by_commune for p in periods}


def suppress(communes: dict[str, Counts], layout: Layout, threshold: int) -> dict[str, dict[Cell, str]]:
    """One period on its own (rows, columns and identities): kept for callers that have a single table."""
    period = Period("single", "year", date(2000, 1, 1), date(2000, 12, 31), "Y")
    return suppress_family({period.id: communes}, [period], layout, threshold)[period.id]
