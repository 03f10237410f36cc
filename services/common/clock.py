"""The one clock of every service: `utcnow()`.

Deadlines, tokens and audit stamps all read the time here, so a test can fix it (`frozen_at`) and a statutory
deadline can be checked against dates written by hand from the law, Tet and declared working Saturdays included.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_now: ContextVar[Callable[[], datetime] | None] = ContextVar("clock", default=None)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    override = _now.get()
    return override() if override is not None else datetime.now(UTC)


@contextmanager
def frozen_at(moment: datetime) -> Iterator[None]:
    """Within the block (and the tasks it starts), `utcnow()` answers `moment`. For tests and replays only."""
    if moment.tzinfo is None:
        raise ValueError("the frozen moment must be timezone-aware")
    token = _now.set(lambda: moment.astimezone(UTC))
    try:
        yield
    finally:
        _now.reset(token)
