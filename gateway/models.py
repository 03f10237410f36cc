"""Gateway tables: users and their second factor, sign-in sessions (refresh tokens) and their revocation, the
authorization-code flow, sign-in throttling, signing keys, service clients, and the admin audit log."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, String
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.common.clock import utcnow
from services.common.db import new_metadata


def timestamp(**kwargs: object) -> Column:  # type: ignore[type-arg]
    return Column(DateTime(timezone=True), **kwargs)


class GatewayTable(SQLModel, registry=registry(metadata=new_metadata())):
    pass


class User(GatewayTable, table=True):
    """A person who signs in: an officer of an agency, acting in a jurisdiction (Người dùng)."""

    __tablename__ = "user_account"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    username: str = Field(max_length=100, unique=True, index=True)
    display_name: str = Field(max_length=200)
    agency: str = Field(max_length=50)
    role: str = Field(max_length=50)
    jurisdiction_level: str = Field(max_length=20)
    province_code: str | None = Field(default=None, max_length=2)
    commune_code: str | None = Field(default=None, max_length=5)
    password_hash: str = Field(max_length=300)
    active: bool = True
    # The second factor (RFC 6238): the shared secret (base32), when it was confirmed, and the last time step a code
    # was accepted for, so that a code is never accepted twice.
    totp_secret: str | None = Field(default=None, max_length=64)
    totp_enrolled_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    totp_last_step: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp(nullable=False))


class RecoveryCode(GatewayTable, table=True):
    """A one-time code that replaces the second factor when the phone is lost (Mã khôi phục); stored hashed."""

    __tablename__ = "recovery_code"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    code_hash: str = Field(max_length=100)
    used_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp(nullable=False))


class RefreshToken(GatewayTable, table=True):
    """A refresh token, stored hashed. Its family is the sign-in session (the access tokens' `sid`): rotation keeps
    the family; reuse of a rotated token revokes it."""

    __tablename__ = "refresh_token"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    family_id: uuid.UUID = Field(index=True)
    # The OAuth client the session was opened for (None: the password grant without a client).
    client_id: str | None = Field(default=None, max_length=100)
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = Field(sa_column=timestamp(nullable=False))
    rotated_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp(nullable=False))


class RevokedSession(GatewayTable, table=True):
    """A session ended before its access tokens expire; published to every service until `expires_at`, when the
    last of its access tokens has expired."""

    __tablename__ = "revoked_session"

    session_id: uuid.UUID = Field(primary_key=True)
    user_id: uuid.UUID = Field(index=True)
    reason: str = Field(max_length=50)
    revoked_at: datetime = Field(default_factory=utcnow, sa_column=timestamp(nullable=False))
    expires_at: datetime = Field(sa_column=timestamp(nullable=False, index=True))


class SignInThrottle(GatewayTable, table=True):
    """Failed sign-ins per (username, client address), per username from every address (`address` = "*"), and
    failed second-factor codes per username (`address` = "#totp"). Kept for usernames that do not exist too, so
    that every answer is the same whether an account exists or not."""

    __tablename__ = "sign_in_throttle"

    username: str = Field(primary_key=True, max_length=100)
    address: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    last_failure_at: datetime = Field(sa_column=timestamp(nullable=False, index=True))
    blocked_until: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))


class AuthorizationRequest(GatewayTable, table=True):
    """A sign-in in progress on the gateway's page, for one client's authorization request (RFC 6749 4.1.1). The
    browser holds its id (in the form) and a cookie whose hash is kept here: a form from another site lacks it."""

    __tablename__ = "authorization_request"

    id_hash: str = Field(primary_key=True, max_length=64)
    csrf_hash: str = Field(max_length=64)
    client_id: str = Field(max_length=100)
    redirect_uri: str = Field(max_length=500)
    scope: str = Field(max_length=500)
    state: str = Field(max_length=500)
    nonce: str | None = Field(default=None, max_length=500)
    code_challenge: str = Field(max_length=128)
    lang: str = Field(max_length=5)
    # "password", then "totp" or "enrol" (then "recovery_codes"), until a code is issued ("done").
    stage: str = Field(max_length=20)
    user_id: uuid.UUID | None = None
    pending_totp_secret: str | None = Field(default=None, max_length=64)
    password_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    expires_at: datetime = Field(sa_column=timestamp(nullable=False, index=True))


class AuthorizationCode(GatewayTable, table=True):
    """An authorization code: single use, short-lived, bound to its client, redirect URI and PKCE challenge."""

    __tablename__ = "authorization_code"

    code_hash: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=100)
    redirect_uri: str = Field(max_length=500)
    user_id: uuid.UUID
    code_challenge: str = Field(max_length=128)
    scope: str = Field(max_length=500)
    nonce: str | None = Field(default=None, max_length=500)
    auth_time: datetime = Field(sa_column=timestamp(nullable=False))
    amr: list[str] = Field(sa_column=Column(ARRAY(String(20)), nullable=False))
    expires_at: datetime = Field(sa_column=timestamp(nullable=False, index=True))
    used_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    # The session opened with it: ended if the code is presented again (RFC 6749 4.1.2).
    session_id: uuid.UUID | None = None


class SigningKeyRecord(GatewayTable, table=True):
    """A token-signing key pair, generated here at first run, never committed to the repository."""

    __tablename__ = "signing_key"

    kid: str = Field(primary_key=True, max_length=32)
    private_pem: str
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp(nullable=False))
    # Set only when a national admin withdraws a compromised key: its tokens are refused at once.
    withdrawn_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))


class ServiceClient(GatewayTable, table=True):
    """An OAuth2 client for calls between services, with narrow scopes."""

    __tablename__ = "service_client"

    client_id: str = Field(primary_key=True, max_length=100)
    secret_hash: str = Field(max_length=300)
    scopes: list[str] = Field(sa_column=Column(ARRAY(String(50)), nullable=False))
    active: bool = True


class AdminAuditEntry(GatewayTable, table=True):
    """Who changed which user account or key, and how."""

    __tablename__ = "admin_audit_entry"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp(nullable=False))
    actor_id: str = Field(max_length=100)
    action: str = Field(max_length=50)
    target_id: str | None = Field(default=None, max_length=100)
    detail: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))  # type: ignore[type-arg]


metadata = GatewayTable.metadata
