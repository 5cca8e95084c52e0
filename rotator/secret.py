"""The Apple client secret: load the .p8 key, mint a secret, read a live one.

This is the border with PyJWT and cryptography: their exceptions are turned
into :class:`~rotator.errors.AppleKeyError` here, with a message that names the
setting and the fix and never carries key material.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rotator import pem as pem_words
from rotator.errors import AppleKeyError

APPLE_AUDIENCE = "https://appleid.apple.com"
ALGORITHM = "ES256"

#: The first line of a PKCS#8 key, the format of Apple's .p8 files.
PKCS8_BEGIN = "-----BEGIN {}-----".format("PRIVATE KEY")
_FIX = "use the .p8 key exactly as downloaded from the Apple developer portal"


@dataclass(frozen=True)
class AppleKey:
    """A loaded P-256 private key and where it came from (for messages)."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    source: str
    path: Path | None = None  # the file it was read from (None: an environment variable)

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()


#: A .p8 key is about 250 bytes; anything past this is the wrong file (or /dev/zero).
MAX_KEY_FILE = 64 * 1024


def read_key_file(path: Path, setting: str) -> bytes:
    """Read a key file (at most :data:`MAX_KEY_FILE` bytes), each failure one clear line."""
    from rotator.files import read_limited

    return read_limited(path, setting, "a key file", MAX_KEY_FILE, error=AppleKeyError, fix=_FIX)


def pem_from_env(text: str) -> bytes:
    """PEM text from an environment variable; literal ``\\n`` escapes become newlines.

    Secret stores and ``.env`` files often flatten a PEM to one line with
    ``\\n`` in place of each line break; such a value is taken as meant.
    """
    if "\n" not in text.strip() and "\\n" in text:
        text = text.replace("\\r\\n", "\n").replace("\\n", "\n")
    return text.encode()


def key_file_warning(path: Path) -> str | None:
    """A warning when the key file is readable by group or others, else None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{path} is readable by group or others (mode {stat.S_IMODE(mode):o}); chmod 600 it"
    return None


_KEY_FILE_NAME = re.compile(r"^AuthKey_([A-Z0-9]{10})\.p8$")


def id_in_file_name(path: Path | None) -> str | None:
    """The key id in a file named as Apple names its downloads, ``AuthKey_<Key ID>.p8``."""
    match = _KEY_FILE_NAME.match(path.name) if path is not None else None
    return match.group(1) if match else None


def load_key(pem: bytes, source: str, path: Path | None = None) -> AppleKey:
    """Parse PEM text as the P-256 EC private key Apple issues.

    ``source`` names the setting or file for messages, e.g.
    ``"apple.private_key_file (/run/secrets/AuthKey.p8)"``.
    """
    if not pem.strip():
        raise AppleKeyError(f"{source} is empty; {_FIX}")
    labels = pem_words.labels(pem)
    if not labels:
        raise AppleKeyError(
            f"{source} is not a PEM key (no '{PKCS8_BEGIN}' line); {_FIX}"
        )
    if pem_words.encrypted(pem, labels):
        raise AppleKeyError(
            f"{source} is an encrypted PEM key; Apple's .p8 keys are not encrypted: "
            "decrypt it with 'openssl pkcs8 -topk8 -nocrypt' or use the original .p8"
        )
    if (kind := pem_words.not_private(labels)) is not None:
        raise AppleKeyError(f"{source} holds {kind}, not a private key; {_FIX}")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise AppleKeyError(f"{source} is an encrypted PEM key; {_FIX}") from None
    except Exception:  # noqa: BLE001 - cryptography raises several kinds for bad input
        raise AppleKeyError(f"{source} is not a readable PEM private key; {_FIX}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AppleKeyError(
            f"{source} holds {pem_words.kind_of(key)} key; Sign in with Apple needs the "
            f"P-256 EC key (.p8); {_FIX}"
        )
    if not isinstance(key.curve, ec.SECP256R1):
        raise AppleKeyError(
            f"{source} holds an EC key on {key.curve.name}; Apple's keys are P-256 "
            f"(secp256r1); {_FIX}"
        )
    return AppleKey(private_key=key, source=source, path=path)


#: How far ``iat`` is set back from now: Apple refuses an ``iat`` in its own
#: future, and this absorbs a host clock that runs slightly ahead.
BACKDATE = 60


def issued(now: int, lifetime: int) -> tuple[int, int]:
    """``(iat, exp)`` of a secret minted at ``now``: iat = now - 60 s, exp = iat + lifetime."""
    return now - BACKDATE, now - BACKDATE + lifetime


def mint(
    key: AppleKey, *, team_id: str, key_id: str, services_id: str, lifetime: int, now: int
) -> str:
    """Sign a fresh client secret with the claims of :func:`issued`."""
    iat, exp = issued(now, lifetime)
    claims = {
        "iss": team_id,
        "iat": iat,
        "exp": exp,
        "aud": APPLE_AUDIENCE,
        "sub": services_id,
    }
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key_id})


def fingerprint(secret: str) -> str:
    """First 12 hex characters of the SHA-256 of the secret: safe to log."""
    import hashlib  # here: `rotator mint` never needs it

    return hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class LiveSecret:
    """What could be read from a secret found in a connection, without trusting it."""

    alg: str | None
    kid: str | None
    iss: str | None
    sub: str | None
    aud: Any
    iat: int | None
    exp: int | None
    signature_ok: bool
    fingerprint: str


class NotAJwt(Exception):
    """The value is not a decodable JWT (internal to the due rule)."""


def inspect(secret: str, public_key: ec.EllipticCurvePublicKey) -> LiveSecret:
    """Decode ``secret`` without trusting it and check its signature separately."""
    try:
        header = jwt.get_unverified_header(secret)
        claims = jwt.decode(secret, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise NotAJwt(type(exc).__name__) from None
    try:
        jwt.decode(
            secret,
            public_key,
            algorithms=[ALGORITHM],
            options={"verify_signature": True, "verify_exp": False, "verify_iat": False,
                     "verify_nbf": False, "verify_aud": False, "verify_iss": False},
        )
        signature_ok = True
    except jwt.PyJWTError:
        signature_ok = False

    def _int(value: object) -> int | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return int(value)

    def _str(value: object) -> str | None:
        return value if isinstance(value, str) else None

    return LiveSecret(
        alg=_str(header.get("alg")),
        kid=_str(header.get("kid")),
        iss=_str(claims.get("iss")),
        sub=_str(claims.get("sub")),
        aud=claims.get("aud"),
        iat=_int(claims.get("iat")),
        exp=_int(claims.get("exp")),
        signature_ok=signature_ok,
        fingerprint=fingerprint(secret),
    )


def generate_throwaway_key(path: Path) -> None:
    """Write a fresh P-256 key in Apple's .p8 format (PKCS#8 PEM), mode 600."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
