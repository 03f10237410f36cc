"""Gateway tables: users, refresh tokens, signing keys, service clients, and the admin audit log."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, String
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.common.db import new_metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp(**kwargs: object) -> Column:  # type: ignore[type-arg]
    return Column(DateTime(timezone=True), **kwargs)


class GatewayTable(SQLModel, registry=registry(metadata=new_metadata())):
    pass


class User(GatewayTable, table=True):
    """A person who signs in: an officer of an agency, acting in a jurisdiction (Nguoi dung)."""

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
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp(nullable=False))


class RefreshToken(GatewayTable, table=True):
    """A refresh token, stored hashed. Rotation keeps the family; reuse of a rotated one revokes the family."""

    __tablename__ = "refresh_token"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    family_id: uuid.UUID = Field(index=True)
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = Field(sa_column=timestamp(nullable=False))
    rotated_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp(nullable=False))


class SigningKeyRecord(GatewayTable, table=True):
    """A token-signing key pair, generated here at first run, never committed to the repository."""

    __tablename__ = "signing_key"

    kid: str = Field(primary_key=True, max_length=32)
    private_pem: str
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp(nullable=False))


class ServiceClient(GatewayTable, table=True):
    """An OAuth2 client for calls between services, with narrow scopes."""

    __tablename__ = "service_client"

    client_id: str = Field(primary_key=True, max_length=100)
    secret_hash: str = Field(max_length=300)
    scopes: list[str] = Field(sa_column=Column(ARRAY(String(50)), nullable=False))
    active: bool = True


class AdminAuditEntry(GatewayTable, table=True):
    """Who changed which user account, and how."""

    __tablename__ = "admin_audit_entry"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp(nullable=False))
    actor_id: str = Field(max_length=100)
    action: str = Field(max_length=50)
    target_id: str | None = Field(default=None, max_length=100)
    detail: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))  # type: ignore[type-arg]


metadata = GatewayTable.metadata
