"""Tests for rotator.pem: reading PEM armour (labels, encryption, what a file holds instead of a
private key, a key's kind in words) on real keys and certificates, before any parsing."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from rotator import client_auth, pem, secret
from rotator.errors import ConfigError

Encoding, PrivateFormat, PublicFormat = (serialization.Encoding, serialization.PrivateFormat,
                                         serialization.PublicFormat)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def private(fmt: serialization.PrivateFormat = PrivateFormat.PKCS8,
            password: bytes | None = None, key: ec.EllipticCurvePrivateKey = EC_KEY) -> bytes:
    """The EC key in ``fmt``, encrypted with ``password`` when given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption())
    return key.private_bytes(Encoding.PEM, fmt, encryption)


def public() -> bytes:
    """The EC key's public half, SubjectPublicKeyInfo."""
    return EC_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def certificate() -> bytes:
    """A self-signed certificate for the EC key."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rotator test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(EC_KEY.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(EC_KEY, hashes.SHA256()))
    return cert.public_bytes(Encoding.PEM)


# -- labels -------------------------------------------------------------------------------


def test_labels_are_the_armour_labels_in_order() -> None:
    """Each BEGIN line's label, in the order of the file (a key and its certificate)."""
    assert pem.labels(private()) == ["PRIVATE KEY"]
    assert pem.labels(private(PrivateFormat.TraditionalOpenSSL)) == ["EC PRIVATE KEY"]
    assert pem.labels(public()) == ["PUBLIC KEY"]
    assert pem.labels(certificate() + private()) == ["CERTIFICATE", "PRIVATE KEY"]
    assert pem.labels(private() + certificate()) == ["PRIVATE KEY", "CERTIFICATE"]


def test_no_armour_has_no_labels() -> None:
    """The base64 body alone, a JSON file or nothing: no label."""
    body = b"".join(line for line in private().splitlines() if not line.startswith(b"-----"))
    assert pem.labels(body) == []
    assert pem.labels(b'{"private_key": "-----BEGIN nothing"}') == []
    assert pem.labels(b"") == []


# -- encrypted ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [PrivateFormat.PKCS8, PrivateFormat.TraditionalOpenSSL])
def test_an_encrypted_key_is_seen_in_either_format(fmt: serialization.PrivateFormat) -> None:
    """PKCS#8's ENCRYPTED PRIVATE KEY and a traditional key's Proc-Type header both say so."""
    encrypted = private(fmt, b"passphrase")
    assert pem.encrypted(encrypted, pem.labels(encrypted))
    plain = private(fmt)
    assert not pem.encrypted(plain, pem.labels(plain))


def test_a_traditional_encrypted_key_is_told_by_its_header_alone() -> None:
    """Its label is the plain one ("EC PRIVATE KEY"): only the Proc-Type header tells."""
    encrypted = private(PrivateFormat.TraditionalOpenSSL, b"passphrase")
    assert pem.labels(encrypted) == ["EC PRIVATE KEY"]
    assert b"Proc-Type: 4,ENCRYPTED" in encrypted
    assert pem.encrypted(encrypted, ["EC PRIVATE KEY"])


# -- not_private ----------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "holds"), [
    (private, None),
    (lambda: private(PrivateFormat.TraditionalOpenSSL), None),
    (lambda: certificate() + private(), None),
    (public, "a public key"),
    (lambda: rsa.generate_private_key(65537, 1024).public_key().public_bytes(  # noqa: S505
        Encoding.PEM, PublicFormat.PKCS1), "a public key"),  # (only its armour is read)
    (certificate, "a certificate"),
    (lambda: certificate() + public(), "a certificate"),
], ids=["pkcs8", "traditional", "cert+key", "spki", "rsa-pkcs1-public", "cert", "cert+public"])
def test_not_private_says_what_the_file_holds_instead(
    make: Callable[[], bytes], holds: str | None,
) -> None:
    """None when any armour is a private key; else "a certificate" or "a public key"."""
    assert pem.not_private(pem.labels(make())) == holds


# -- kind_of --------------------------------------------------------------------------------


def test_kind_of_names_a_real_key_with_its_article() -> None:
    """"an RSA", "an EC", "a DSA", "an ED25519": the word to put before "key"."""
    # Small keys, quick to make: only their class is read.
    assert pem.kind_of(rsa.generate_private_key(65537, 1024)) == "an RSA"  # noqa: S505
    assert pem.kind_of(EC_KEY) == "an EC"
    assert pem.kind_of(dsa.generate_private_key(1024)) == "a DSA"  # noqa: S505
    assert pem.kind_of(ed25519.Ed25519PrivateKey.generate()) == "an ED25519"


def test_kind_of_copes_with_private_class_names() -> None:
    """A backend's _RSAPrivateKey reads "an RSA"; a bare PrivateKey class reads "an OTHER"."""
    rsa_like = type("_RSAPrivateKey", (), {})
    bare = type("PrivateKey", (), {})
    assert pem.kind_of(rsa_like()) == "an RSA"
    assert pem.kind_of(bare()) == "an OTHER"


# -- the two callers, and the cost of importing -------------------------------------------------


def load_apple(data: bytes) -> str:
    """What the Apple key's loader says of ``data``."""
    with pytest.raises(ConfigError) as refused:
        secret.load_key(data, "KEY")
    return str(refused.value)


def load_signing(data: bytes) -> str:
    """What the Private Key JWT key's loader says of ``data``."""
    with pytest.raises(ConfigError) as refused:
        client_auth.load_signing_key(data, "KEY", "RS256")
    return str(refused.value)


@pytest.mark.parametrize("load", [load_apple, load_signing], ids=["apple", "private-key-jwt"])
def test_both_keys_refuse_the_same_wrong_files_in_the_same_words(
    load: Callable[[bytes], str],
) -> None:
    """The Apple key and the signing key say alike what a wrong file holds (each its own fix)."""
    assert load(public()).startswith("KEY holds a public key, not a private key; ")
    assert load(certificate()).startswith("KEY holds a certificate, not a private key; ")
    traditional = private(PrivateFormat.TraditionalOpenSSL, b"passphrase")
    assert load(traditional).startswith("KEY is an encrypted PEM key; ")
    assert load(b"no armour here").startswith("KEY is not a PEM key (no '-----BEGIN")


def test_importing_pem_loads_no_cryptography() -> None:
    """rotator.pem reads bytes with a regular expression: importing it loads no crypto library."""
    code = ("import json, sys, rotator.pem; "
            "print(json.dumps([m for m in sys.modules if m.split('.')[0] in "
            "('cryptography', 'jwt', 'httpx')]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert json.loads(proc.stdout) == []
