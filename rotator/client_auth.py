"""How the M2M application proves itself to Auth0: a client secret, or Private Key JWT.

A :class:`ClientSecret` or a :class:`PrivateKeyJWT` is one value of the
settings (``Auth0Settings.auth``). The token source asks it for the form
fields that authenticate a token request (:meth:`fields`); the redactor asks it
for what to hide while the tenant is in use (:attr:`hidden`); a refused token
request asks it what to check (:meth:`refusal_hint`).

With Private Key JWT each call of :meth:`PrivateKeyJWT.fields` signs a fresh
assertion with auth0-python's own helper (``aud`` = ``https://DOMAIN/``, a new
``jti``, ``exp`` 180 s away); the key is loaded and checked here, once, when the
settings are loaded. This module is the border with cryptography for that key:
its exceptions become a :class:`~rotator.errors.ConfigError` naming the setting
and the fix, never carrying key material. auth0-python is imported only when a
token is asked for, so ``rotator mint`` and ``--help`` stay light.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, cast

from rotator import pem as pem_words
from rotator.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

#: The algorithms Auth0 accepts for a Private Key JWT credential.
ALGORITHMS: Final = ("RS256", "RS384", "PS256")
DEFAULT_ALG: Final = "RS256"
MIN_BITS, MAX_BITS = 2048, 4096
#: How to make a key Auth0 accepts (the fix named in messages).
MAKE_KEY: Final = "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem"
KEY_SETTING: Final = "auth0.client_assertion_signing_key_file"
ALG_SETTING: Final = "auth0.client_assertion_signing_alg"


@dataclass(frozen=True)
class ClientSecret:
    """The M2M application's client secret (``client_secret`` in the token request)."""

    secret: str = field(repr=False)
    #: Where the secret came from, for check-config: "AUTH0_CLIENT_SECRET" or the file.
    source: str = field(default="", compare=False)

    def fields(self, domain: str, client_id: str) -> dict[str, str]:
        """The form fields that authenticate one token request."""
        return {"client_secret": self.secret}

    def describe(self) -> str:
        """How the application authenticates, in words (no secret)."""
        return "its client secret"

    @property
    def hidden(self) -> tuple[str, ...]:
        """What the redactor hides while the tenant is in use."""
        return (self.secret,)

    def refusal_hint(self, client_id: str) -> str:
        """What to check when Auth0 refuses the token request."""
        return (
            "check auth0.client_id and the M2M client secret "
            "(auth0.client_secret_file or AUTH0_CLIENT_SECRET), and that the application "
            "is authorized for the Auth0 Management API"
        )


@dataclass(frozen=True)
class PrivateKeyJWT:
    """An RSA private key whose public half is a credential of the M2M application."""

    key: rsa.RSAPrivateKey = field(repr=False, compare=False)
    alg: str
    source: str  # where the key came from, for messages
    pem: str = field(repr=False)  # unencrypted PKCS#8: two loads of one key compare equal
    hidden: tuple[str, ...] = field(repr=False, compare=False, default=())

    def fields(self, domain: str, client_id: str) -> dict[str, str]:
        """A fresh signed assertion (new ``jti``) and its type, for one token request."""
        from auth0.authentication.client_authentication import add_client_authentication

        # The helper is annotated to take PEM text but hands the key to PyJWT,
        # which takes the loaded key as well; a PEM would be parsed (and the RSA
        # key validated) again for every assertion: 0.2 s at 2048 bits, 1.5 s at 4096.
        key = cast(str, self.key)
        return add_client_authentication({}, domain, client_id, None, key, self.alg)

    def describe(self) -> str:
        return f"Private Key JWT ({self.alg}, the key in {self.source})"

    def refusal_hint(self, client_id: str) -> str:
        return (
            f"Private Key JWT was refused: is the public half of the key in {self.source} "
            f"a credential of client {client_id} (Auth0 dashboard: Applications > "
            f"Credentials), registered for alg {self.alg}? Check auth0.client_id, "
            f"{ALG_SETTING}, and that the application is authorized for the Auth0 "
            "Management API"
        )


ClientAuth = ClientSecret | PrivateKeyJWT


def check_alg(value: object, setting: str) -> str:
    """One of :data:`ALGORITHMS`, or a ConfigError naming ``setting``."""
    text = value.strip() if isinstance(value, str) else value
    if text not in ALGORITHMS:
        shown = value if isinstance(value, str) and len(value) < 40 else type(value).__name__
        raise ConfigError(
            f"{setting} = {shown!r} is not an algorithm Auth0 accepts for Private Key JWT; "
            f"use {', '.join(ALGORITHMS[:-1])} or {ALGORITHMS[-1]}, as registered with the "
            "credential in Auth0"
        )
    assert isinstance(text, str)
    return text


def load_signing_key(pem: bytes, source: str, alg: str) -> PrivateKeyJWT:
    """Parse PEM text as an unencrypted RSA private key of 2048 to 4096 bits.

    ``source`` names the setting (and file) for messages, e.g.
    ``"auth0.client_assertion_signing_key_file (/run/secrets/m2m.pem)"``.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    fix = f"make one with '{MAKE_KEY}'"
    if not pem.strip():
        raise ConfigError(f"{source} is empty; it must hold the RSA private key in PEM ({fix})")
    labels = pem_words.labels(pem)
    if not labels:
        raise ConfigError(f"{source} is not a PEM key (no '-----BEGIN' line); {fix}")
    if pem_words.encrypted(pem, labels):
        raise ConfigError(
            f"{source} is an encrypted PEM key; rotator needs it unencrypted: write a "
            "decrypted copy with 'openssl pkey -in KEY -out KEY.pem' and keep that file "
            "readable by rotator only"
        )
    if (kind := pem_words.not_private(labels)) is not None:
        raise ConfigError(
            f"{source} holds {kind}, not a private key; give the private key (Auth0 keeps "
            "only the public half)"
        )
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise ConfigError(f"{source} is an encrypted PEM key; decrypt it with "
                          "'openssl pkey -in KEY -out KEY.pem'") from None
    except Exception:  # noqa: BLE001 - cryptography raises several kinds for bad input
        raise ConfigError(f"{source} is not a readable PEM private key; {fix}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(
            f"{source} holds {pem_words.kind_of(key)} key; Auth0's Private Key JWT needs an "
            f"RSA key of {MIN_BITS} to {MAX_BITS} bits: {fix}"
        )
    if not MIN_BITS <= key.key_size <= MAX_BITS:
        raise ConfigError(
            f"{source} holds a {key.key_size}-bit RSA key; Auth0 accepts {MIN_BITS} to "
            f"{MAX_BITS} bits: {fix}"
        )
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode("ascii")
    return PrivateKeyJWT(key=key, alg=alg, source=source, pem=pkcs8,
                         hidden=_pieces(pem.decode("ascii", "replace"), pkcs8))


def _pieces(*pems: str) -> tuple[str, ...]:
    """Each PEM whole, its body on one line, and each of its body's lines."""
    found: list[str] = []
    for pem in pems:
        body = [line.strip() for line in pem.splitlines()
                if line.strip() and "-----" not in line and ":" not in line]
        found += [pem.strip(), "".join(body), *body]
    return tuple(dict.fromkeys(found))
