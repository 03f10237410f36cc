"""Identity logic: passwords, sessions and their tokens, service accounts, and user administration."""

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.keys import VERIFIER_LEEWAY_SECONDS, KeyRing
from gateway.models import (
    AdminAuditEntry,
    AuthorizationCode,
    AuthorizationRequest,
    RecoveryCode,
    RefreshToken,
    RevokedSession,
    ServiceClient,
    User,
)
from gateway.schemas import UserCreate, UserRead, UserUpdate
from gateway.settings import GatewaySettings
from gateway.text import normalise_username
from gateway.throttle import LoginThrottle
from services.common import tokens
from services.common.auth import Jurisdiction, Subject
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import Conflict, NotFound, Unauthorized, UnprocessableContent
from services.common.logging import get_logger
from services.common.pagination import CursorText, Keyset
from services.common.permissions import ROLE_AGENCY, ROLE_JURISDICTION_LEVELS, Agency, Role, allowed_agencies

logger = get_logger("identity")
hasher = PasswordHasher()
# Verified against when the username is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))
LOCK_NOT_AVAILABLE = "55P03"
USERS = Keyset[User](columns=(User.username,), types=(CursorText,), key=lambda user: (user.username,))


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


def user_jurisdiction(user: User) -> Jurisdiction:
    return Jurisdiction(level=user.jurisdiction_level, province=user.province_code,  # type: ignore[arg-type]
                        commune=user.commune_code)


def user_read(user: User, locked_until: datetime | None = None) -> UserRead:
    return UserRead(id=user.id, username=user.username, display_name=user.display_name,
                    agency=Agency(user.agency), role=Role(user.role), jurisdiction=user_jurisdiction(user),
                    active=user.active, locked_until=locked_until, mfa_enrolled=user.totp_enrolled_at is not None,
                    created_at=user.created_at, updated_at=user.updated_at)


def user_etag(user: User) -> str:
    return '"' + hashlib.sha256(f"{user.id}:{user.updated_at.isoformat()}".encode()).hexdigest()[:20] + '"'


class Identity:
    def __init__(self, settings: GatewaySettings, database: Database, keyring: KeyRing):
        self.settings, self.database, self.keyring = settings, database, keyring
        self.throttle = LoginThrottle(settings, database)

    # Tokens ----------------------------------------------------------------------------------------------

    def _claims(self, *, sub: str, role: Role, agency: Agency, jurisdiction: Jurisdiction, ttl: int,
                name: str = "", scope: str | None = None, session_id: uuid.UUID | None = None) -> dict[str, Any]:
        now = tokens.now()
        claims: dict[str, Any] = {
            "iss": self.settings.jwt_issuer, "aud": self.settings.jwt_audience, "sub": sub,
            "iat": now, "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex,
            "role": role.value, "agency": agency.value, "jur": jurisdiction.model_dump(), "name": name,
        }
        if scope is not None:
            claims["scope"] = scope
        if session_id is not None:
            claims["sid"] = str(session_id)
        return claims

    def access_token_for(self, user: User, session_id: uuid.UUID) -> str:
        claims = self._claims(sub=str(user.id), role=Role(user.role), agency=Agency(user.agency),
                              jurisdiction=user_jurisdiction(user), ttl=self.settings.access_token_ttl_seconds,
                              name=user.display_name, session_id=session_id)
        return tokens.sign(claims, self.keyring.current)

    def mfa_required(self, user: User) -> bool:
        return Role(user.role) in self.settings.mfa_required_roles or user.totp_enrolled_at is not None

    # Sign-in ---------------------------------------------------------------------------------------------

    async def login(self, session: AsyncSession, username: str, password: str, address: str) -> User:
        """The user whose password this is. Throttled per username and address; the same answers whether or not
        the username exists (the throttle counts unknown usernames too, and a miss costs a password check)."""
        name = normalise_username(username)
        if name is None:
            await password_matches(_DUMMY_HASH, password)
            raise Unauthorized("wrong username or password")
        blocked = await self.throttle.check(session, name, address)
        if blocked is not None:
            raise blocked.error(utcnow())
        user = (await session.execute(select(User).where(User.username == name))).scalar_one_or_none()
        matches = await password_matches(user.password_hash if user else _DUMMY_HASH, password)
        if user is None or not matches or not user.active:
            await self.throttle.failed(name, address)
            raise Unauthorized("wrong username or password")
        await self.throttle.succeeded(session, name, address)
        return user

    async def open_session(self, session: AsyncSession, user: User,
                           client_id: str | None = None) -> tuple[uuid.UUID, str]:
        """A new sign-in session: its id (the access tokens' `sid`) and its first refresh token."""
        session_id = uuid.uuid4()
        return session_id, await self._new_refresh_token(session, user, session_id, client_id)

    async def _new_refresh_token(self, session: AsyncSession, user: User, family_id: uuid.UUID,
                                 client_id: str | None) -> str:
        token = secrets.token_urlsafe(32)
        session.add(RefreshToken(
            user_id=user.id, family_id=family_id, client_id=client_id, token_hash=hash_refresh_token(token),
            expires_at=utcnow() + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
        ))
        await session.flush()
        return token

    async def refresh(self, session: AsyncSession, token: str,
                      client_id: str | None = None) -> tuple[User, uuid.UUID, str]:
        """Rotate a refresh token: (user, session id, new refresh token).

        Of two requests with the same token at the same moment, the first takes the row lock and wins; the other
        is refused at once (409, no wait) and the session goes on. A rotated token presented later is a copy in
        someone else's hands: the whole session ends (RFC 9700 4.14.2)."""
        token_hash = hash_refresh_token(token)
        now = utcnow()
        try:
            record = (await session.execute(
                select(RefreshToken).where(RefreshToken.token_hash == token_hash, RefreshToken.rotated_at.is_(None),
                                           RefreshToken.revoked_at.is_(None), RefreshToken.expires_at > now)
                .with_for_update(nowait=True)
            )).scalar_one_or_none()
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            raise Conflict("this refresh token is being used by another request at this moment; use the tokens "
                           "that request receives", error="invalid_grant") from exc
        if record is None:
            reused = (await session.execute(
                select(RefreshToken.user_id, RefreshToken.family_id).where(
                    RefreshToken.token_hash == token_hash, RefreshToken.rotated_at.is_not(None),
                    RefreshToken.revoked_at.is_(None))
            )).first()
            if reused is not None:
                # A rotated token came back: someone holds a copy. End the whole session.
                await self._end_sessions_now(reused.user_id, [reused.family_id], "refresh_reuse")
                logger.warning("refresh token reuse", extra={"family_id": str(reused.family_id)})
            raise Unauthorized("refresh token is not valid", error="invalid_grant")
        if client_id is not None and record.client_id is not None and record.client_id != client_id:
            raise Unauthorized("refresh token is not valid", error="invalid_grant")
        record.rotated_at = now
        user = await session.get(User, record.user_id)
        if user is None or not user.active:
            raise Unauthorized("refresh token is not valid", error="invalid_grant")
        new_token = await self._new_refresh_token(session, user, record.family_id, record.client_id)
        return user, record.family_id, new_token

    async def logout(self, session: AsyncSession, token: str) -> None:
        record = (await session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token))
        )).scalar_one_or_none()
        if record is not None:
            await self.end_sessions(session, record.user_id, [record.family_id], "logout")

    async def end_sessions(self, session: AsyncSession, user_id: uuid.UUID, family_ids: list[uuid.UUID] | None,
                           reason: str) -> None:
        """End sessions (all of the user's when `family_ids` is None): their refresh tokens stop working at once
        and their access tokens are refused everywhere within seconds (the revocation list)."""
        condition = RefreshToken.user_id == user_id
        if family_ids is not None:
            condition = condition & RefreshToken.family_id.in_(family_ids)
        now = utcnow()
        # Sessions that issued an access token recently enough for it to be valid still.
        recent_after = now - timedelta(seconds=self.settings.access_token_ttl_seconds + VERIFIER_LEEWAY_SECONDS)
        live = (await session.execute(
            select(RefreshToken.family_id).where(condition).group_by(RefreshToken.family_id)
            .having(func.max(RefreshToken.created_at) > recent_after)
        )).scalars().all()
        await session.execute(update(RefreshToken).where(condition, RefreshToken.revoked_at.is_(None))
                              .values(revoked_at=now))
        if live:
            expires = now + timedelta(seconds=self.settings.access_token_ttl_seconds + 2 * VERIFIER_LEEWAY_SECONDS)
            await session.execute(
                insert(RevokedSession).values([
                    {"session_id": sid, "user_id": user_id, "reason": reason, "revoked_at": now,
                     "expires_at": expires} for sid in live
                ]).on_conflict_do_nothing(index_elements=[RevokedSession.session_id])
            )

    async def end_session_of_token(self, session: AsyncSession, subject: Subject) -> None:
        """RFC 7009 revocation of an access token: its whole session ends."""
        if subject.session_id:
            user_id = uuid.UUID(subject.id)
            await self.end_sessions(session, user_id, [uuid.UUID(subject.session_id)], "logout")

    async def _end_sessions_now(self, user_id: uuid.UUID, family_ids: list[uuid.UUID], reason: str) -> None:
        # Its own transaction: the request's unit of work rolls back, because the request fails.
        async with self.database.sessionmaker() as session, session.begin():
            await self.end_sessions(session, user_id, family_ids, reason)

    async def revoked_session_ids(self) -> list[str]:
        async with self.database.sessionmaker() as session:
            rows = await session.execute(select(RevokedSession.session_id).where(RevokedSession.expires_at > utcnow()))
            return [str(sid) for sid in rows.scalars()]

    async def forget_expired(self) -> None:
        """Housekeeping: revocations whose tokens have all expired, and old throttle counts."""
        async with self.database.sessionmaker() as session, session.begin():
            now = utcnow()
            await session.execute(delete(RevokedSession).where(RevokedSession.expires_at < now - timedelta(hours=1)))
            await session.execute(delete(AuthorizationRequest)
                                  .where(AuthorizationRequest.expires_at < now - timedelta(hours=1)))
            await session.execute(delete(AuthorizationCode)
                                  .where(AuthorizationCode.expires_at < now - timedelta(days=1)))
        await self.throttle.forget_old()

    # Service accounts ------------------------------------------------------------------------------------

    async def client_credentials(self, session: AsyncSession, client_id: str, secret: str,
                                 requested: set[str]) -> tuple[str, str]:
        client = await session.get(ServiceClient, client_id) if len(client_id) <= 100 else None
        matches = await password_matches(client.secret_hash if client else _DUMMY_HASH, secret)
        if client is None or not client.active or not matches:
            raise Unauthorized("client authentication failed", error="invalid_client")
        granted = set(client.scopes) if not requested else requested & set(client.scopes)
        scope = " ".join(sorted(granted))
        claims = self._claims(sub=f"service:{client_id}", role=Role.SERVICE, agency=Agency.SYSTEM,
                              jurisdiction=Jurisdiction(level="national"),
                              ttl=self.settings.service_token_ttl_seconds, name=client_id, scope=scope)
        return tokens.sign(claims, self.keyring.current), scope

    async def sync_service_clients(self) -> None:
        """Service clients come from configuration; their secrets are stored hashed."""
        async with self.database.sessionmaker() as session, session.begin():
            await _one_replica_at_a_time(session)
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

    async def audit(self, session: AsyncSession, actor: Subject, action: str, target_id: str | None,
                    detail: dict[str, Any]) -> None:
        session.add(AdminAuditEntry(actor_id=actor.id, action=action, target_id=target_id, detail=detail))
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
        await self.audit(session, actor, "user.create", str(user.id),
                         {"role": user.role, "agency": user.agency, "jurisdiction": data.jurisdiction.model_dump()})
        return user

    async def get_user(self, session: AsyncSession, actor: Subject, user_id: uuid.UUID,
                       *, for_update: bool = False) -> User:
        query = select(User).where(User.id == user_id)
        if for_update:
            # Two admins changing one user at once: the second waits for the first and sees its result.
            query = query.with_for_update()
        user = (await session.execute(query)).scalar_one_or_none()
        if user is None or not actor.jurisdiction.contains(user.province_code, user.commune_code):
            raise NotFound("no such user")
        return user

    async def update_user(self, session: AsyncSession, actor: Subject, user: User, data: UserUpdate) -> User:
        detail: dict[str, Any] = {}
        role = data.role or Role(user.role)
        if data.agency is not None:
            agency = data.agency
        elif Agency(user.agency) in allowed_agencies(role):
            agency = Agency(user.agency)
        else:
            agency = ROLE_AGENCY[role]
        if role == Role.SERVICE:
            raise UnprocessableContent("service accounts are configured, not made here")
        if agency not in allowed_agencies(role):
            allowed = ", ".join(a.value for a in allowed_agencies(role))
            raise UnprocessableContent(f"a {role.value} belongs to {allowed}")
        jurisdiction = data.jurisdiction or user_jurisdiction(user)
        if not actor.jurisdiction.contains(jurisdiction.province, jurisdiction.commune):
            raise NotFound("no such place in your jurisdiction")
        if jurisdiction.level not in ROLE_JURISDICTION_LEVELS[role]:
            raise UnprocessableContent(f"a {role.value} cannot work at {jurisdiction.level} level")
        if actor.id == str(user.id) and (role.value != user.role or data.jurisdiction is not None):
            raise UnprocessableContent("an admin cannot change their own role or jurisdiction")
        end_sessions = None
        if data.jurisdiction is not None and jurisdiction != user_jurisdiction(user):
            user.jurisdiction_level = jurisdiction.level
            user.province_code, user.commune_code = jurisdiction.province, jurisdiction.commune
            detail["jurisdiction"] = jurisdiction.model_dump()
            end_sessions = "jurisdiction_changed"
        if role.value != user.role or agency.value != user.agency:
            detail["previous"] = {"role": user.role, "agency": user.agency}
            user.role, user.agency = role.value, agency.value
            detail["role"], detail["agency"] = user.role, user.agency
            end_sessions = "role_changed"
        if data.display_name is not None and data.display_name != user.display_name:
            user.display_name = data.display_name
            detail["display_name"] = "changed"
        if data.active is not None and data.active != user.active:
            user.active = data.active
            detail["active"] = data.active
            if not data.active:
                end_sessions = "deactivated"
        if data.password is not None:
            user.password_hash = await hash_password(data.password)
            detail["password"] = "reset"
            end_sessions = "password_reset"
            await self.throttle.unlock(session, user.username)
        if end_sessions:
            # Tokens carry the role, agency and jurisdiction: old ones must not outlive the change.
            await self.end_sessions(session, user.id, None, end_sessions)
            detail["sessions_ended"] = True
        user.updated_at = utcnow()
        await self.audit(session, actor, "user.update", str(user.id), detail)
        return user

    async def unlock_user(self, session: AsyncSession, actor: Subject, user: User) -> None:
        cleared = await self.throttle.unlock(session, user.username)
        await self.audit(session, actor, "user.unlock", str(user.id), {"throttle_entries_cleared": cleared})

    async def reset_mfa(self, session: AsyncSession, actor: Subject, user: User) -> None:
        """The user lost their authenticator: the factor and its recovery codes go, every session ends, and the
        next sign-in enrols a new factor."""
        user.totp_secret = None
        user.totp_enrolled_at = None
        user.totp_last_step = None
        user.updated_at = utcnow()
        await session.execute(update(RecoveryCode).where(RecoveryCode.user_id == user.id,
                                                         RecoveryCode.used_at.is_(None)).values(used_at=utcnow()))
        await self.end_sessions(session, user.id, None, "mfa_reset")
        await self.audit(session, actor, "user.mfa_reset", str(user.id), {"sessions_ended": True})

    async def list_users(self, session: AsyncSession, actor: Subject, cursor: str | None,
                         limit: int) -> tuple[list[User], str | None]:
        query = select(User).where(actor.jurisdiction.filter(User.province_code, User.commune_code))
        rows = (await session.execute(USERS.query(query, cursor, limit))).scalars().all()
        return USERS.page(rows, limit)


DEMO_COMMUNE = "00070"  # Phường Hoàn Kiếm, Hà Nội
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
        await _one_replica_at_a_time(session)
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


STARTUP_LOCK_KEY = 0x67_77_73  # "gws"


async def _one_replica_at_a_time(session: AsyncSession) -> None:
    """Replicas that start at once (a rollout, several workers) would insert the same service client or demo user
    and one would fail to start: each waits for the other's transaction, then finds the rows there."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": STARTUP_LOCK_KEY})
