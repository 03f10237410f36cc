"""The token-signing keys (ES256), kept in the gateway database so that every replica signs with the same key.

A rotation never unpublishes a key whose tokens can still be valid: a key stays in the JWKS while it is current
and for the longest token lifetime (plus the verifiers' leeway) after the next key replaced it, however often keys
are rotated. Only a national admin's explicit withdrawal (a compromised key) removes a key early.
"""

import asyncio
import contextlib
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import AdminAuditEntry, SigningKeyRecord
from services.common import tokens
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import Conflict, NotFound

KEYRING_LOCK_KEY = 0x6B_65_79
VERIFIER_LEEWAY_SECONDS = 30  # tokens.verify's leeway on expiry


class KeyRing:
    """The signing keys, newest first, and the ones still published for verification."""

    def __init__(self, database: Database, token_lifetime_seconds: int) -> None:
        self.database = database
        # How long after it stopped signing a key's tokens can still be valid.
        self.retention = timedelta(seconds=token_lifetime_seconds + VERIFIER_LEEWAY_SECONDS)
        self.keys: list[tokens.SigningKey] = []
        self.published: list[tokens.SigningKey] = []
        self.loaded_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def current(self) -> tokens.SigningKey:
        return self.keys[0]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.published]}

    def public_keys(self) -> dict[str, dict[str, Any]]:
        return {key.kid: key.public_jwk() for key in self.published}

    async def get(self, kid: str | None) -> dict[str, dict[str, Any]]:
        """Verification keys. An unknown key id may come from a rotation on another replica: reload (at most
        once a second) before refusing it."""
        if kid not in {key.kid for key in self.published} and time.monotonic() - self.loaded_at > 1.0:
            async with self._lock:
                if time.monotonic() - self.loaded_at > 1.0:
                    await self.load(create_if_missing=False)
        return self.public_keys()

    async def load(self, *, create_if_missing: bool = True) -> None:
        async with self.database.sessionmaker() as session, session.begin():
            if create_if_missing:
                # Replicas starting at once: the lock lets exactly one of them generate the first key.
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": KEYRING_LOCK_KEY})
            rows = await self._rows(session)
            if not rows and create_if_missing:
                session.add(_new_record())
                await session.flush()
                rows = await self._rows(session)
        self._keep(rows, utcnow())
        self.loaded_at = time.monotonic()

    def _keep(self, rows: list[SigningKeyRecord], now: datetime) -> None:
        keys, published = [], []
        replaced_at: datetime | None = None  # when the next newer key took over from this one
        for row in rows:  # newest first
            key = tokens.SigningKey(kid=row.kid, private_pem=row.private_pem)
            keys.append(key)
            if replaced_at is None or replaced_at + self.retention > now:
                published.append(key)
            replaced_at = row.created_at
        self.keys, self.published = keys, published

    async def rotate(self, actor_id: str) -> str:
        """A new current key, audited in the same transaction; every key whose tokens can still be valid stays
        published. This replica signs with it at once, the others within `reload_periodically`'s interval."""
        async with self.database.sessionmaker() as session, session.begin():
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": KEYRING_LOCK_KEY})
            record = _new_record()
            session.add(record)
            session.add(AdminAuditEntry(actor_id=actor_id, action="key.rotate", target_id=record.kid, detail={}))
        await self.load(create_if_missing=False)
        return record.kid

    async def withdraw(self, kid: str, actor_id: str) -> None:
        """Stop publishing a compromised key at once: every token it signed is refused. Never the current key
        (rotate first), so that signing goes on."""
        async with self.database.sessionmaker() as session, session.begin():
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": KEYRING_LOCK_KEY})
            rows = await self._rows(session)
            if rows and rows[0].kid == kid:
                raise Conflict("the current key cannot be withdrawn; rotate first")
            withdrawn = await session.execute(
                update(SigningKeyRecord).where(SigningKeyRecord.kid == kid, SigningKeyRecord.withdrawn_at.is_(None))
                .values(withdrawn_at=utcnow())
            )
            if withdrawn.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFound("no such key")
            session.add(AdminAuditEntry(actor_id=actor_id, action="key.withdraw", target_id=kid, detail={}))
        await self.load(create_if_missing=False)

    async def reload_periodically(self, stop: asyncio.Event, every: float = 30.0) -> None:
        """Other replicas pick up a rotation within `every` seconds and start signing with the new key; keys past
        their retention leave the JWKS."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
            if not stop.is_set():
                with contextlib.suppress(Exception):
                    await self.load(create_if_missing=False)

    @staticmethod
    async def _rows(session: AsyncSession) -> list[SigningKeyRecord]:
        result = await session.execute(
            select(SigningKeyRecord).where(SigningKeyRecord.withdrawn_at.is_(None))
            .order_by(SigningKeyRecord.created_at.desc()).limit(50)
        )
        return list(result.scalars())


def _new_record() -> SigningKeyRecord:
    key = tokens.SigningKey.generate()
    return SigningKeyRecord(kid=key.kid, private_pem=key.private_pem, created_at=utcnow())
