"""The one module that touches the JOSE library (python-jose with the cryptography backend).

Algorithms are always pinned: a token must name ES256 and a key id we know. `alg=none`, HMAC tokens signed with a
public key, and anything else are refused before a signature is even checked.
"""

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


def sign(claims: dict[str, Any], key: SigningKey) -> str:
    return jwt.encode(claims, key.private_pem, algorithm=ALGORITHM, headers={"kid": key.kid})


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
           algorithms: list[str] | None = None, leeway: int = 30) -> dict[str, Any]:
    """Check signature, algorithm, key id, issuer, audience, expiry. `jwks` maps kid to public JWK."""
    algorithms = algorithms or ALLOWED_ALGORITHMS
    header = unverified_header(token)
    if header.get("alg") not in algorithms:
        raise TokenError("algorithm not allowed")
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
