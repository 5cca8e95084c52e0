"""Auth0's rules for a Private Key JWT client assertion, in-process.

An M2M application may hold RSA public keys as credentials (at most two, for
rollover), each registered for one algorithm (RS256, RS384 or PS256). A token
request that authenticates with a ``client_assertion`` is accepted when the
assertion is at most 2048 bytes; its header's ``alg`` is the one a credential
was registered for (and its ``kid``, when present, that credential's); its
signature verifies with that credential's key; ``iss`` = ``sub`` = the client
id (and the ``client_id`` sent, when one is); ``aud`` is the tenant's URL or a
custom domain's, with the trailing slash; ``exp`` is in the future and at most
5 minutes away (and after ``iat``, when present, by at most 5 minutes; ``iat``
and ``nbf`` may be 10 seconds in the future at most); and its ``jti`` was never
used before. Anything else earns 401 ``invalid_client``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

JWT_BEARER: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS: Final = ("RS256", "RS384", "PS256")
MAX_BYTES: Final = 2048
MAX_LIFETIME: Final = 300
SKEW: Final = 10
MAX_CLAIM: Final = 64  # iss, sub and jti
MAX_CREDENTIALS: Final = 2


@dataclass(frozen=True)
class Credential:
    """One public key of an M2M application, registered for one algorithm."""

    id: str
    kid: str
    alg: str
    public_key: rsa.RSAPublicKey


class Refused(Exception):
    """The assertion breaks one of Auth0's rules; the text says which."""


def credential(public_key: object, alg: str) -> Credential:
    """A credential from an RSA key (object, or PEM public or private), as Auth0 checks it."""
    if alg not in ALGORITHMS:
        raise ValueError(f"alg {alg!r} is not one of {', '.join(ALGORITHMS)}")
    key: Any = public_key
    if isinstance(key, (str, bytes)):
        pem = key.encode() if isinstance(key, str) else key
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError:
            key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        key = key.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("a credential must be an RSA public key")
    if not 2048 <= key.key_size <= 4096:
        raise ValueError(f"an RSA key of {key.key_size} bits; Auth0 takes 2048 to 4096")
    return Credential(f"cred_{secrets.token_hex(8)}", secrets.token_urlsafe(32), alg, key)


def claimed_client(assertion: str) -> str:
    """The client the assertion says it comes from (``iss``), unverified."""
    if len(assertion.encode()) > MAX_BYTES:
        raise Refused(f"client_assertion is larger than {MAX_BYTES} bytes")
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Refused("client_assertion is not a valid JWT") from None
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not iss or len(iss) > MAX_CLAIM:
        raise Refused("client_assertion 'iss' claim is missing or invalid")
    if sub != iss:
        raise Refused("client_assertion 'sub' claim must be the same as 'iss'")
    return iss


def verify(
    assertion: str,
    credentials: list[Credential],
    audiences: set[str],
    used: set[str],
    now: float | None = None,
) -> None:
    """Refuse ``assertion`` unless every rule holds; record its ``jti`` in ``used``."""
    now = time.time() if now is None else now
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise Refused("client_assertion is not a valid JWT") from None
    alg, kid = header.get("alg"), header.get("kid")
    usable = [c for c in credentials if c.alg == alg and (kid is None or c.kid == kid)]
    if not usable:
        raise Refused(f"no credential of the client is registered for alg {alg!r}"
                      + (f" and kid {kid!r}" if kid is not None else ""))
    claims = _verified(assertion, usable, str(alg))
    if claims.get("aud") not in audiences:
        raise Refused(f"client_assertion 'aud' claim must be one of {sorted(audiences)}")
    exp: Any = claims.get("exp")
    iat, nbf = claims.get("iat"), claims.get("nbf")
    if not _number(exp) or exp <= now:
        raise Refused("client_assertion 'exp' claim is missing or in the past")
    if exp - now > MAX_LIFETIME + SKEW:
        raise Refused("'exp' claim must specify a time that is no more than 5 minutes from now")
    for name, value in (("iat", iat), ("nbf", nbf)):
        if value is not None and (not _number(value) or value > now + SKEW):
            raise Refused(f"client_assertion '{name}' claim is invalid or in the future")
    if iat is not None and exp - iat > MAX_LIFETIME:
        raise Refused("'exp' claim must specify a time that is no more than 5 minutes after "
                      "'iat'")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_CLAIM:
        raise Refused("client_assertion 'jti' claim is missing or invalid")
    if jti in used:
        raise Refused("client_assertion 'jti' claim has already been used")
    used.add(jti)


def _verified(assertion: str, usable: list[Credential], alg: str) -> dict[str, Any]:
    for cred in usable:
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion, cred.public_key, algorithms=[alg],
                options={"verify_exp": False, "verify_aud": False, "verify_iat": False,
                         "verify_nbf": False, "verify_iss": False},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError:
            raise Refused("client_assertion is not a valid JWT") from None
        return claims
    raise Refused("client_assertion signature does not verify with any credential of the client")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
