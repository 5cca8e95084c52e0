"""Reading PEM armour before a key is parsed: what the file holds, in words.

The Apple key (``secret``) and the Private Key JWT signing key (``client_auth``)
refuse the same wrong files (no armour, an encrypted key, a public key or a
certificate, a key of another kind) each with its own fix; the looking is done
here once. Imports nothing heavy.
"""

from __future__ import annotations

import re

_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def labels(pem: bytes) -> list[str]:
    """The armour labels in ``pem`` ("PRIVATE KEY", "CERTIFICATE", ...), in order."""
    return [m.group(1).decode() for m in _LABEL.finditer(pem)]


def encrypted(pem: bytes, found: list[str]) -> bool:
    """A PKCS#8 encrypted key, or a traditional one with an encryption header."""
    return "ENCRYPTED PRIVATE KEY" in found or b"Proc-Type: 4,ENCRYPTED" in pem


def not_private(found: list[str]) -> str | None:
    """What the armour holds instead of a private key ("a certificate"), or None."""
    if any(label.endswith("PRIVATE KEY") for label in found):
        return None
    return "a certificate" if "CERTIFICATE" in found else "a public key"


def kind_of(key: object) -> str:
    """A parsed key's kind with its article: "an RSA", "an EC", "a DSA"."""
    kind = type(key).__name__.replace("PrivateKey", "").lstrip("_").upper() or "OTHER"
    return f"{'an' if kind[0] in 'AEFHILMNORSX' else 'a'} {kind}"
