"""Identity logic: signing keys, passwords, tokens, service accounts, and user administration."""

import asyncio
import contextlib
import hashlib
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import AdminAuditEntry, RefreshToken, ServiceClient, SigningKeyRecord, User, utcnow
from gateway.schemas import UserCreate, UserRead, UserUpdate
from gateway.settings import GatewaySettings
from services.common import tokens
from services.common.auth import Jurisdiction, Subject
from services.common.db import Database
from services.common.errors import Conflict, NotFound, TooManyRequests, Unauthorized, UnprocessableContent
from services.common.logging import get_logger
from services.common.permissions import ROLE_AGENCY, ROLE_JURISDICTION_LEVELS, Agency, Role

logger = get_logger("identity")
hasher = PasswordHasher()
# Verified against when the username is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))
KEYRING_LOCK_KEY = 0x6B_65_79
KEYS_PUBLISHED = 2  # the current key and the previous one: a rotation logs no one out


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(hasher.hash, password)


async def password_matches(password_hash: str, password: str) -> bool:
    def check() -> bool:
        try:
            return hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(check)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KeyRing:
    """The signing keys, newest first. Kept in the gateway database so every replica signs with the same key."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.keys: list[tokens.SigningKey] = []
        self.loaded_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def current(self) -> tokens.SigningKey:
        return self.keys[0]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys[:KEYS_PUBLISHED]]}

    def public_keys(self) -> dict[str, dict[str, Any]]:
        return {key.kid: key.public_jwk() for key in self.keys[:KEYS_PUBLISHED]}

    async def get(self, kid: str | None) -> dict[str, dict[str, Any]]:
        """Verification keys. An unknown key id may come from a rotation on another replica: reload (at most
        once a second) before refusing it."""
        if kid not in {key.kid for key in self.keys} and time.monotonic() - self.loaded_at > 1.0:
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
                session.add(self._new_record())
                await session.flush()
                rows = await self._rows(session)
        self.keys = [tokens.SigningKey(kid=row.kid, private_pem=row.private_pem) for row in rows]
        self.loaded_at = time.monotonic()

    async def rotate(self) -> str:
        async with self.database.sessionmaker() as session, session.begin():
            record = self._new_record()
            session.add(record)
        await self.load()
        return record.kid

    async def reload_periodically(self, stop: asyncio.Event, every: float = 30.0) -> None:
        """Other replicas pick up a rotation within `every` seconds and start signing with the new key."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
            if not stop.is_set():
                with contextlib.suppress(Exception):
                    await self.load(create_if_missing=False)

    @staticmethod
    def _new_record() -> SigningKeyRecord:
        key = tokens.SigningKey.generate()
        return SigningKeyRecord(kid=key.kid, private_pem=key.private_pem, created_at=utcnow())

    @staticmethod
    async def _rows(session: AsyncSession) -> list[SigningKeyRecord]:
        result = await session.execute(
            select(SigningKeyRecord).order_by(SigningKeyRecord.created_at.desc()).limit(KEYS_PUBLISHED)
        )
        return list(result.scalars())


def user_jurisdiction(user: User) -> Jurisdiction:
    return Jurisdiction(level=user.jurisdiction_level, province=user.province_code,  # type: ignore[arg-type]
                        commune=user.commune_code)


def user_read(user: User) -> UserRead:
    return UserRead(id=user.id, username=user.username, display_name=user.display_name,
                    agency=Agency(user.agency), role=Role(user.role), jurisdiction=user_jurisdiction(user),
                    active=user.active, locked_until=user.locked_until, created_at=user.created_at,
                    updated_at=user.updated_at)


class Identity:
    def __init__(self, settings: GatewaySettings, database: Database, keyring: KeyRing):
        self.settings, self.database, self.keyring = settings, database, keyring

    def _claims(self, *, sub: str, role: Role, agency: Agency, jurisdiction: Jurisdiction, ttl: int,
                name: str = "", scope: str | None = None) -> dict[str, Any]:
        now = tokens.now()
        claims: dict[str, Any] = {
            "iss": self.settings.jwt_issuer, "aud": self.settings.jwt_audience, "sub": sub,
            "iat": now, "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex,
            "role": role.value, "agency": agency.value, "jur": jurisdiction.model_dump(), "name": name,
        }
        if scope is not None:
            claims["scope"] = scope
        return claims

    def access_token_for(self, user: User) -> str:
        claims = self._claims(sub=str(user.id), role=Role(user.role), agency=Agency(user.agency),
                              jurisdiction=user_jurisdiction(user), ttl=self.settings.access_token_ttl_seconds,
                              name=user.display_name)
        return tokens.sign(claims, self.keyring.current)

    async def login(self, session: AsyncSession, username: str, password: str) -> User:
        user = (await session.execute(select(User).where(User.username == username.lower()))).scalar_one_or_none()
        now = utcnow()
        if user is not None and user.locked_until is not None and user.locked_until > now:
            retry = int((user.locked_until - now).total_seconds()) + 1
            raise TooManyRequests("too many failed sign-ins; try again later", headers={"Retry-After": str(retry)})
        matches = await password_matches(user.password_hash if user else _DUMMY_HASH, password)
        if user is None or not matches or not user.active:
            if user is not None and not matches:
                await self._record_failure(user.id)
            raise Unauthorized("wrong username or password")
        user.failed_logins = 0
        user.locked_until = None
        return user

    async def _record_failure(self, user_id: uuid.UUID) -> None:
        # Its own transaction, as one atomic update: the request's unit of work rolls back when sign-in fails,
        # and concurrent failures must all count.
        reached = User.failed_logins + 1 >= self.settings.login_max_failures
        lock_until = utcnow() + timedelta(seconds=self.settings.login_lock_seconds)
        async with self.database.sessionmaker() as session, session.begin():
            locked = await session.scalar(
                update(User).where(User.id == user_id)
                .values(failed_logins=case((reached, 0), else_=User.failed_logins + 1),
                        locked_until=case((reached, lock_until), else_=User.locked_until))
                .returning(User.locked_until)
            )
        if locked is not None and locked >= lock_until - timedelta(seconds=1):
            logger.warning("account locked", extra={"user_id": str(user_id)})

    async def new_refresh_token(self, session: AsyncSession, user: User, family_id: uuid.UUID | None = None) -> str:
        token = secrets.token_urlsafe(32)
        session.add(RefreshToken(
            user_id=user.id, family_id=family_id or uuid.uuid4(), token_hash=hash_refresh_token(token),
            expires_at=utcnow() + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
        ))
        await session.flush()
        return token

    async def refresh(self, session: AsyncSession, token: str) -> tuple[User, str]:
        token_hash = hash_refresh_token(token)
        now = utcnow()
        # One conditional update: of two concurrent refreshes with the same token, exactly one wins.
        rotated = (await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == token_hash, RefreshToken.rotated_at.is_(None),
                   RefreshToken.revoked_at.is_(None), RefreshToken.expires_at > now)
            .values(rotated_at=now)
            .returning(RefreshToken.user_id, RefreshToken.family_id)
        )).first()
        if rotated is None:
            reused_family = await session.scalar(
                select(RefreshToken.family_id).where(RefreshToken.token_hash == token_hash,
                                                     RefreshToken.rotated_at.is_not(None),
                                                     RefreshToken.revoked_at.is_(None))
            )
            if reused_family is not None:
                # A rotated token came back: someone holds a copy. End the whole family.
                await self._revoke_family_now(reused_family)
                logger.warning("refresh token reuse", extra={"family_id": str(reused_family)})
            raise Unauthorized("refresh token is not valid")
        user = await session.get(User, rotated.user_id)
        if user is None or not user.active:
            raise Unauthorized("refresh token is not valid")
        return user, await self.new_refresh_token(session, user, rotated.family_id)

    async def _revoke_family_now(self, family_id: uuid.UUID) -> None:
        async with self.database.sessionmaker() as session, session.begin():
            await session.execute(
                update(RefreshToken).where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )

    async def logout(self, session: AsyncSession, token: str) -> None:
        record = (await session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token))
        )).scalar_one_or_none()
        if record is not None:
            await session.execute(
                update(RefreshToken).where(RefreshToken.family_id == record.family_id,
                                           RefreshToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )

    async def client_credentials(self, session: AsyncSession, client_id: str, secret: str,
                                 requested: set[str]) -> tuple[str, str]:
        client = await session.get(ServiceClient, client_id)
        matches = await password_matches(client.secret_hash if client else _DUMMY_HASH, secret)
        if client is None or not client.active or not matches:
            raise Unauthorized("client authentication failed")
        granted = set(client.scopes) if not requested else requested & set(client.scopes)
        scope = " ".join(sorted(granted))
        claims = self._claims(sub=f"service:{client_id}", role=Role.SERVICE, agency=Agency.SYSTEM,
                              jurisdiction=Jurisdiction(level="national"),
                              ttl=self.settings.service_token_ttl_seconds, name=client_id, scope=scope)
        return tokens.sign(claims, self.keyring.current), scope

    async def sync_service_clients(self) -> None:
        """Service clients come from configuration; their secrets are stored hashed."""
        async with self.database.sessionmaker() as session, session.begin():
            for client_id, config in self.settings.service_clients.items():
                client = await session.get(ServiceClient, client_id)
                secret = str(config["secret"])
                if client is None:
                    client = ServiceClient(client_id=client_id, secret_hash=await hash_password(secret),
                                           scopes=list(config.get("scopes", [])))
                    session.add(client)
                else:
                    if not await password_matches(client.secret_hash, secret):
                        client.secret_hash = await hash_password(secret)
                    client.scopes = list(config.get("scopes", []))
                    client.active = True

    # Administration of users -----------------------------------------------------------------------------

    async def _audit(self, session: AsyncSession, actor: Subject, action: str, target: User,
                     detail: dict[str, Any]) -> None:
        session.add(AdminAuditEntry(actor_id=actor.id, action=action, target_id=str(target.id), detail=detail))
        await session.flush()

    async def create_user(self, session: AsyncSession, actor: Subject, data: UserCreate) -> User:
        if not actor.jurisdiction.contains(data.jurisdiction.province, data.jurisdiction.commune):
            raise NotFound("no such place in your jurisdiction")
        exists = await session.scalar(select(User.id).where(User.username == data.username))
        if exists:
            raise Conflict("that username is taken")
        assert data.agency is not None
        user = User(username=data.username, display_name=data.display_name, agency=data.agency.value,
                    role=data.role.value, jurisdiction_level=data.jurisdiction.level,
                    province_code=data.jurisdiction.province, commune_code=data.jurisdiction.commune,
                    password_hash=await hash_password(data.password))
        session.add(user)
        await session.flush()
        await self._audit(session, actor, "user.create", user,
                          {"role": user.role, "agency": user.agency, "jurisdiction": data.jurisdiction.model_dump()})
        return user

    async def get_user(self, session: AsyncSession, actor: Subject, user_id: uuid.UUID) -> User:
        user = await session.get(User, user_id)
        if user is None or not actor.jurisdiction.contains(user.province_code, user.commune_code):
            raise NotFound("no such user")
        return user

    async def update_user(self, session: AsyncSession, actor: Subject, user_id: uuid.UUID,
                          data: UserUpdate) -> User:
        user = await self.get_user(session, actor, user_id)
        detail: dict[str, Any] = {}
        role = data.role or Role(user.role)
        agency = data.agency or (ROLE_AGENCY[role] if data.role else Agency(user.agency))
        jurisdiction = data.jurisdiction or user_jurisdiction(user)
        if not actor.jurisdiction.contains(jurisdiction.province, jurisdiction.commune):
            raise NotFound("no such place in your jurisdiction")
        if jurisdiction.level not in ROLE_JURISDICTION_LEVELS[role] or role == Role.SERVICE:
            raise UnprocessableContent(f"a {role.value} cannot work at {jurisdiction.level} level")
        if data.jurisdiction is not None:
            user.jurisdiction_level = jurisdiction.level
            user.province_code, user.commune_code = jurisdiction.province, jurisdiction.commune
            detail["jurisdiction"] = jurisdiction.model_dump()
        if role.value != user.role or agency.value != user.agency:
            user.role, user.agency = role.value, agency.value
            detail["role"], detail["agency"] = user.role, user.agency
        if data.display_name is not None:
            user.display_name = data.display_name
            detail["display_name"] = "changed"
        if data.active is not None:
            user.active = data.active
            detail["active"] = data.active
            if not data.active:
                await self._revoke_all(session, user.id)
        if data.password is not None:
            user.password_hash = await hash_password(data.password)
            user.locked_until = None
            user.failed_logins = 0
            detail["password"] = "reset"
            await self._revoke_all(session, user.id)
        user.updated_at = datetime.now(UTC)
        await self._audit(session, actor, "user.update", user, detail)
        return user

    async def _revoke_all(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        await session.execute(
            update(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )

    async def list_users(self, session: AsyncSession, actor: Subject, after: str | None,
                         limit: int) -> list[User]:
        query = select(User).where(actor.jurisdiction.filter(User.province_code, User.commune_code))
        if after:
            query = query.where(User.username > after)
        return list((await session.execute(query.order_by(User.username).limit(limit))).scalars())


DEMO_COMMUNE = "00070"  # Phuong Hoan Kiem, Ha Noi
DEMO_PROVINCE = "01"


def demo_jurisdiction(role: Role) -> Jurisdiction:
    level = ROLE_JURISDICTION_LEVELS[role][0]
    if level == "national":
        return Jurisdiction(level="national")
    if level == "province":
        return Jurisdiction(level="province", province=DEMO_PROVINCE)
    return Jurisdiction(level="commune", province=DEMO_PROVINCE, commune=DEMO_COMMUNE)


async def seed_demo_users(database: Database, password: str) -> None:
    """Demo users `demo-<role>` / password `demo`: development only (settings refuse it in production)."""
    password_hash = await hash_password(password)
    async with database.sessionmaker() as session, session.begin():
        for role in Role:
            if role == Role.SERVICE:
                continue
            username = f"demo-{role.value}"
            if await session.scalar(select(User.id).where(User.username == username)):
                continue
            jurisdiction = demo_jurisdiction(role)
            session.add(User(username=username, display_name=f"Demo {role.value.replace('_', ' ')}",
                             agency=ROLE_AGENCY[role].value, role=role.value,
                             jurisdiction_level=jurisdiction.level, province_code=jurisdiction.province,
                             commune_code=jurisdiction.commune, password_hash=password_hash))
