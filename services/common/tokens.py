"""The one module that touches the JOSE library (python-jose with the cryptography backend).

Algorithms are always pinned: a token must name ES256 and a key id we know. `alg=none`, HMAC tokens signed with a
public key, and anything else are refused before a signature is even checked.

ECDSA signatures are malleable: if (r, s) verifies, so does (r, n - s), which turns one token into two different
strings that both verify. We sign in low-S form only (s <= n/2) and refuse our own tokens in high-S form, so a
re-signed copy of a token is never a second valid token; for a province's tokens, whose signer we do not control,
`canonical()` gives the one low-S spelling under which a token is known (caches, revocation).
"""

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwk, jwt
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError

ALGORITHM = "ES256"
ALLOWED_ALGORITHMS = [ALGORITHM]
# The order of the P-256 group (FIPS 186-4, D.1.2.3).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class TokenError(Exception):
    """The token is invalid; the message says why, never what the token holds."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: str

    @classmethod
    def generate(cls) -> "SigningKey":
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return cls(kid=uuid.uuid4().hex[:16], private_pem=pem)

    def public_jwk(self) -> dict[str, Any]:
        private = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        data = jwk.construct(public_pem.decode(), ALGORITHM).to_dict()
        return {key: _text(value) for key, value in data.items()} | {"kid": self.kid, "use": "sig", "alg": ALGORITHM}


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def sign(claims: dict[str, Any], key: SigningKey, *, typ: str | None = None) -> str:
    headers: dict[str, Any] = {"kid": key.kid}
    if typ:
        headers["typ"] = typ
    return canonical(jwt.encode(claims, key.private_pem, algorithm=ALGORITHM, headers=headers))


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _signature_parts(token: str) -> tuple[str, int, int] | None:
    """(signing input, r, s) of a compact ES256 token, or None when the signature is not 64 bytes."""
    signing_input, _, signature = token.rpartition(".")
    try:
        raw = _b64decode(signature)
    except ValueError:
        return None
    if len(raw) != 64:
        return None
    return signing_input, int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def is_low_s(token: str) -> bool:
    parts = _signature_parts(token)
    return parts is not None and 0 < parts[2] <= P256_ORDER // 2


def canonical(token: str) -> str:
    """The token with its signature in low-S form: the same token for every purpose, one spelling."""
    parts = _signature_parts(token)
    if parts is None or parts[2] <= P256_ORDER // 2:
        return token
    signing_input, r, s = parts
    raw = r.to_bytes(32, "big") + (P256_ORDER - s).to_bytes(32, "big")
    return f"{signing_input}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"


def unverified_header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except JOSEError as exc:
        raise TokenError("malformed token") from exc


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims before any check: only to pick which issuer's keys must verify the token."""
    try:
        return jwt.get_unverified_claims(token)
    except JOSEError as exc:
        raise TokenError("malformed token") from exc


def verify(token: str, jwks: dict[str, dict[str, Any]], *, issuer: str, audience: str,
           algorithms: list[str] | None = None, leeway: int = 30, require_low_s: bool = False) -> dict[str, Any]:
    """Check signature, algorithm, key id, issuer, audience, expiry. `jwks` maps kid to public JWK.

    `require_low_s`: refuse a signature in high-S form (for tokens we signed ourselves, always low-S)."""
    algorithms = algorithms or ALLOWED_ALGORITHMS
    header = unverified_header(token)
    if header.get("alg") not in algorithms:
        raise TokenError("algorithm not allowed")
    if require_low_s and not is_low_s(token):
        raise TokenError("token signature rejected")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in jwks:
        raise TokenError("unknown key id")
    try:
        claims = jwt.decode(
            token,
            jwks[kid],
            algorithms=algorithms,
            issuer=issuer,
            audience=audience,
            options={"require_exp": True, "require_iat": True, "require_sub": True, "require_jti": True,
                     "leeway": leeway},
        )
    except ExpiredSignatureError as exc:
        raise TokenError("token expired") from exc
    except JWTClaimsError as exc:
        raise TokenError("token claims rejected") from exc
    except (JOSEError, ValueError, TypeError) as exc:
        raise TokenError("token signature rejected") from exc
    return claims


def now() -> int:
    return int(time.time())
