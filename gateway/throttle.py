"""Throttling of failed sign-ins, so that guessing is slow and no one can lock an officer out cheaply.

- Per (username, client address) pair: after `login_free_failures` failures, each further failure makes the pair
  wait, twice as long each time (2 s, 4 s, 8 s ... up to `login_max_delay_seconds`). Only that pair waits: the
  officer signing in from another address is not affected.
- Per username, from every address: `login_lock_failures` failures within the window (the default 50 takes an
  attacker many addresses, given the delays above) lock the account for `login_lock_seconds`, until it expires or
  an admin unlocks it.
- Second-factor codes per username: after `totp_free_failures` wrong codes, growing delays as above.

Counters are kept by the username as typed (normalised), whether or not such an account exists, so every answer is
the same for a known and an unknown username. They live in the gateway database, shared by every replica, and are
written in their own short transactions (the request's own one rolls back when the sign-in fails).
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import SignInThrottle
from gateway.settings import GatewaySettings
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import TooManyRequests
from services.common.logging import get_logger

logger = get_logger("throttle")
ACCOUNT = "*"
SECOND_FACTOR = "#totp"


@dataclass(frozen=True)
class Blocked:
    until: datetime
    account_locked: bool

    def error(self, now: datetime) -> TooManyRequests:
        seconds = max(1, math.ceil((self.until - now).total_seconds()))
        detail = "too many failed sign-ins; try again later"
        return TooManyRequests(detail, headers={"Retry-After": str(seconds)})


class LoginThrottle:
    def __init__(self, settings: GatewaySettings, database: Database):
        self.settings, self.database = settings, database

    async def check(self, session: AsyncSession, username: str, address: str) -> Blocked | None:
        """Whether this pair must wait, or the account is locked; before the password is even checked."""
        now = utcnow()
        rows = (await session.execute(
            select(SignInThrottle).where(SignInThrottle.username == username,
                                         SignInThrottle.address.in_((address[:64], ACCOUNT)),
                                         SignInThrottle.blocked_until > now)
        )).scalars().all()
        if not rows:
            return None
        latest = max(rows, key=lambda row: row.blocked_until or now)
        return Blocked(until=latest.blocked_until or now, account_locked=latest.address == ACCOUNT)

    async def second_factor_blocked(self, session: AsyncSession, username: str) -> Blocked | None:
        return await self.check(session, username, SECOND_FACTOR)

    async def failed(self, username: str, address: str) -> None:
        """Count a failed password for the pair and for the account, and set their waits."""
        settings = self.settings
        async with self.database.sessionmaker() as session, session.begin():
            pair = await self._count(session, username, address[:64])
            delay = self._delay(pair.failures, settings.login_free_failures)
            if delay:
                await self._block(session, username, address[:64], delay, pair.last_failure_at)
            account = await self._count(session, username, ACCOUNT)
            if account.failures >= settings.login_lock_failures:
                await self._block(session, username, ACCOUNT, settings.login_lock_seconds,
                                  account.last_failure_at)
                logger.warning("account locked after repeated failed sign-ins", extra={"failures": account.failures})

    async def second_factor_failed(self, username: str) -> None:
        async with self.database.sessionmaker() as session, session.begin():
            counted = await self._count(session, username, SECOND_FACTOR)
            delay = self._delay(counted.failures, self.settings.totp_free_failures, base=30.0)
            if delay:
                await self._block(session, username, SECOND_FACTOR, delay, counted.last_failure_at)

    async def succeeded(self, session: AsyncSession, username: str, address: str) -> None:
        """A good password clears its pair's count (not the account's: a lock needs an admin or time)."""
        await session.execute(delete(SignInThrottle).where(SignInThrottle.username == username,
                                                           SignInThrottle.address == address[:64]))

    async def second_factor_succeeded(self, session: AsyncSession, username: str) -> None:
        await session.execute(delete(SignInThrottle).where(SignInThrottle.username == username,
                                                           SignInThrottle.address == SECOND_FACTOR))

    async def unlock(self, session: AsyncSession, username: str) -> int:
        """An admin's unlock: every count and wait of the username, from every address."""
        result = await session.execute(delete(SignInThrottle).where(SignInThrottle.username == username))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def locked_until(self, session: AsyncSession, username: str) -> datetime | None:
        return await session.scalar(select(SignInThrottle.blocked_until).where(
            SignInThrottle.username == username, SignInThrottle.address == ACCOUNT,
            SignInThrottle.blocked_until > utcnow()))

    async def forget_old(self) -> None:
        """Counts older than the window start afresh (and keep the table small)."""
        cutoff = utcnow() - timedelta(seconds=self.settings.login_failure_window_seconds)
        async with self.database.sessionmaker() as session, session.begin():
            await session.execute(delete(SignInThrottle).where(
                SignInThrottle.last_failure_at < cutoff,
                func.coalesce(SignInThrottle.blocked_until, cutoff) <= utcnow()))

    def _delay(self, failures: int, free: int, base: float | None = None) -> float:
        if failures <= free:
            return 0.0
        first = base if base is not None else self.settings.login_delay_seconds
        return min(float(self.settings.login_max_delay_seconds), first * 2 ** min(failures - free - 1, 30))

    async def _count(self, session: AsyncSession, username: str, address: str) -> SignInThrottle:
        now = utcnow()
        window_start = now - timedelta(seconds=self.settings.login_failure_window_seconds)
        # One atomic upsert: concurrent failures all count. A count older than the window starts again at 1.
        statement = insert(SignInThrottle).values(username=username, address=address, failures=1,
                                                  last_failure_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=[SignInThrottle.username, SignInThrottle.address],
            set_={"failures": case((SignInThrottle.last_failure_at >= window_start,
                                    func.least(SignInThrottle.failures + 1, 1_000_000)), else_=1),
                  "last_failure_at": now},
        ).returning(SignInThrottle)
        return (await session.execute(statement)).scalar_one()

    async def _block(self, session: AsyncSession, username: str, address: str, seconds: float,
                     since: datetime) -> None:
        # The wait counts from the failure that earned it, so it is the same for every username whatever the load.
        until = since + timedelta(seconds=seconds)
        await session.execute(
            insert(SignInThrottle).values(username=username, address=address, failures=0, last_failure_at=utcnow(),
                                          blocked_until=until)
            .on_conflict_do_update(index_elements=[SignInThrottle.username, SignInThrottle.address],
                                   set_={"blocked_until": func.greatest(SignInThrottle.blocked_until, until)})
        )
