"""The second factor: time-based one-time passwords (TOTP, RFC 6238) and one-time recovery codes.

Codes are 6 digits over 30-second steps; one step of clock drift either way is accepted, and a code is accepted
at most once (the last accepted step is kept per user and only a later one is accepted: a code seen over a
shoulder or replayed from a proxy log is refused). Enrolment shows a QR code rendered on the server (segno, pure
Python; no script, no third party), and the same secret as text for typing in or for a phone that cannot scan its
own screen. Recovery codes are random, shown once, stored hashed, each good once.
"""

import hashlib
import hmac
import secrets
import uuid

import pyotp
import segno
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import RecoveryCode, User
from services.common.clock import utcnow

STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read from paper


def new_secret() -> str:
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def qr_svg(uri: str, title: str) -> str:
    """The enrolment QR code as inline SVG markup (no style attributes, so the page's CSP needs none)."""
    return str(segno.make(uri, error="m").svg_inline(scale=5, border=4, title=title, dark="#000", light="#fff"))


def current_step() -> int:
    return int(utcnow().timestamp()) // STEP_SECONDS


def matching_step(secret: str, code: str) -> int | None:
    """The time step whose code `code` is, within the allowed drift, or None."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = current_step()
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def accept_code(session: AsyncSession, user: User, code: str) -> bool:
    """Check a code against the user's secret and use it up: one atomic update, so that of two requests with
    the same code (a replay racing the real one) exactly one wins."""
    if not user.totp_secret:
        return False
    step = matching_step(user.totp_secret, code)
    if step is None:
        return False
    used = await session.execute(
        update(User).where(User.id == user.id, User.totp_secret == user.totp_secret,
                           (User.totp_last_step.is_(None)) | (User.totp_last_step < step))
        .values(totp_last_step=step)
    )
    return bool(used.rowcount)  # type: ignore[attr-defined]


def _recovery_hash(code: str, salt: str) -> str:
    return f"{salt}${hashlib.sha256((salt + normalise_recovery_code(code)).encode()).hexdigest()}"


def normalise_recovery_code(code: str) -> str:
    return "".join(c for c in code.lower() if c.isascii() and c.isalnum())


async def new_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    """Ten fresh codes (about 49 bits each), replacing any earlier ones; returned once, stored hashed."""
    await session.execute(update(RecoveryCode).where(RecoveryCode.user_id == user_id,
                                                     RecoveryCode.used_at.is_(None)).values(used_at=utcnow()))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(user_id=user_id, code_hash=_recovery_hash(raw, secrets.token_hex(8))))
    await session.flush()
    return codes


async def use_recovery_code(session: AsyncSession, user_id: uuid.UUID, code: str) -> bool:
    normalised = normalise_recovery_code(code)
    if len(normalised) != 10:
        return False
    rows = (await session.execute(select(RecoveryCode).where(RecoveryCode.user_id == user_id,
                                                             RecoveryCode.used_at.is_(None)))).scalars().all()
    for row in rows:
        salt = row.code_hash.split("$", 1)[0]
        if hmac.compare_digest(row.code_hash, _recovery_hash(normalised, salt)):
            used = await session.execute(update(RecoveryCode).where(RecoveryCode.id == row.id,
                                                                    RecoveryCode.used_at.is_(None))
                                         .values(used_at=utcnow()))
            return bool(used.rowcount)  # type: ignore[attr-defined]
    return False


async def remaining_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> int:
    rows = await session.execute(select(RecoveryCode.id).where(RecoveryCode.user_id == user_id,
                                                               RecoveryCode.used_at.is_(None)))
    return len(rows.all())
