"""Tests for rotator.emulator.assertion: Auth0's rules for a Private Key JWT client assertion,
at the emulator's token endpoint."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from conftest import rsa_key
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from emulator_helpers import client_for, sample_emulator

from rotator.emulator import Emulator
from rotator.emulator.assertion import JWT_BEARER

CLIENT = "pkjwt-client"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    """The client's registered key (RS256)."""
    return rsa_key()


@pytest.fixture(scope="module")
def emu_http(key: rsa.RSAPrivateKey) -> Iterator[tuple[Emulator, httpx.Client, str]]:
    """One emulator with a key-only client (RS256), an httpx client, its credential id."""
    with sample_emulator() as emu, client_for(emu) as http:
        emu.add_client(CLIENT, None)
        credential = emu.add_client_key(CLIENT, key.public_key(), "RS256")
        yield emu, http, credential


def claims(emu: Emulator, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": CLIENT, "sub": CLIENT, "aud": f"https://{emu.domain}/",
                            "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def ask(emu: Emulator, http: httpx.Client, assertion: str, **extra: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion, "audience": emu.audience, **extra}
    return http.post("/oauth/token", data=form)


def test_a_valid_assertion_gets_a_token_once(
    emu_http: tuple[Emulator, httpx.Client, str], key: rsa.RSAPrivateKey
) -> None:
    """A well-formed RS256 assertion earns a token; the very same one again is refused."""
    emu, http, _ = emu_http
    assertion = jwt.encode(claims(emu), key, "RS256")
    first = ask(emu, http, assertion, client_id=CLIENT)
    assert first.status_code == 200, first.text
    assert first.json()["token_type"] == "Bearer"
    again = ask(emu, http, assertion)
    assert again.status_code == 401
    assert again.json() == {"error": "invalid_client", "error_description":
                            "client_assertion 'jti' claim has already been used"}


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("other-alg", "no credential of the client is registered for alg 'RS384'"),
        ("other-key", "signature does not verify"),
        ("sub-not-iss", "'sub' claim must be the same as 'iss'"),
        ("unknown-client", "no credential"),
        ("aud-without-slash", "'aud' claim must be one of"),
        ("aud-token-url", "'aud' claim must be one of"),
        ("exp-past", "'exp' claim is missing or in the past"),
        ("exp-too-far", "no more than 5 minutes"),
        ("lifetime-over-5-minutes", "no more than 5 minutes after 'iat'"),
        ("iat-future", "'iat' claim is invalid or in the future"),
        ("no-jti", "'jti' claim is missing"),
        ("too-large", "larger than 2048 bytes"),
        ("client-id-differs", "client_id does not match"),
        ("unknown-kid", "and kid 'nope'"),
        ("not-a-jwt", "not a valid JWT"),
    ],
)
def test_each_broken_rule_is_401_invalid_client(
    emu_http: tuple[Emulator, httpx.Client, str], key: rsa.RSAPrivateKey, case: str, why: str
) -> None:
    """alg, signature, iss/sub, aud with its slash, exp, jti, size, client id: each refused."""
    emu, http, _ = emu_http
    now = int(time.time())
    signer, alg, headers, extra = key, "RS256", None, {}
    body = claims(emu)
    if case == "other-alg":
        alg = "RS384"
    elif case == "other-key":
        signer = rsa_key()
    elif case == "sub-not-iss":
        body["sub"] = "someone-else"
    elif case == "unknown-client":
        body = claims(emu, iss="nobody", sub="nobody")
    elif case == "aud-without-slash":
        body["aud"] = f"https://{emu.domain}"
    elif case == "aud-token-url":
        body["aud"] = f"https://{emu.domain}/oauth/token"
    elif case == "exp-past":
        body = claims(emu, iat=now - 120, exp=now - 60)
    elif case == "exp-too-far":
        body = claims(emu, iat=None, exp=now + 600)
    elif case == "lifetime-over-5-minutes":
        body = claims(emu, iat=now - 200, exp=now + 200)
    elif case == "iat-future":
        body = claims(emu, iat=now + 120, exp=now + 180)
    elif case == "no-jti":
        body = claims(emu, jti=None)
    elif case == "too-large":
        body["padding"] = "x" * 2048
    elif case == "client-id-differs":
        extra = {"client_id": "full"}
    elif case == "unknown-kid":
        headers = {"kid": "nope"}
    assertion = jwt.encode(body, signer, alg, headers=headers)
    if case == "not-a-jwt":
        assertion = "not.a.jwt"
    answer = ask(emu, http, assertion, **extra)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client"
    assert why in answer.json()["error_description"]


def test_secret_and_assertion_together_or_a_wrong_type_are_400(
    emu_http: tuple[Emulator, httpx.Client, str], key: rsa.RSAPrivateKey
) -> None:
    """Two authentication methods, or another client_assertion_type: 400 invalid_request."""
    emu, http, _ = emu_http
    both = ask(emu, http, jwt.encode(claims(emu), key, "RS256"), client_secret="x" * 16)
    assert both.status_code == 400
    assert both.json()["error"] == "invalid_request"
    wrong = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_assertion_type": "urn:other",
        "client_assertion": jwt.encode(claims(emu), key, "RS256"), "audience": emu.audience})
    assert wrong.status_code == 400
    assert "client_assertion_type must be" in wrong.json()["error_description"]


def test_a_key_only_client_has_no_secret_and_a_secret_client_no_key(
    emu_http: tuple[Emulator, httpx.Client, str], key: rsa.RSAPrivateKey
) -> None:
    """A client without a secret refuses any secret; one without keys refuses any assertion."""
    emu, http, _ = emu_http
    secret = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT, "client_secret": "",
        "audience": emu.audience})
    assert secret.status_code == 401
    body = claims(emu, iss="full", sub="full")
    answer = ask(emu, http, jwt.encode(body, key, "RS256"))
    assert answer.status_code == 401
    assert "no credential" in answer.json()["error_description"]


@pytest.mark.parametrize("alg", ["RS384", "PS256"])
def test_rs384_and_ps256_credentials_accept_their_own_alg_only(alg: str) -> None:
    """A credential registered for RS384 or PS256 takes that alg, and refuses RS256."""
    key = rsa_key()
    with sample_emulator() as emu, client_for(emu) as http:
        emu.add_client(CLIENT, None)
        emu.add_client_key(CLIENT, key.public_key(), alg)
        assert ask(emu, http, jwt.encode(claims(emu), key, alg)).status_code == 200
        assert ask(emu, http, jwt.encode(claims(emu), key, "RS256")).status_code == 401


def test_two_credentials_at_most_and_a_rollover_keeps_working(
    emu_http: tuple[Emulator, httpx.Client, str], key: rsa.RSAPrivateKey
) -> None:
    """Add a second key, both work; a third is refused; remove the old, only the new works."""
    emu, http, old = emu_http
    new_key = rsa_key()
    new = emu.add_client_key(CLIENT, new_key.public_key(), "RS256")
    try:
        with pytest.raises(ValueError, match="already has 2 credentials"):
            emu.add_client_key(CLIENT, rsa_key().public_key(), "RS256")
        for signer in (key, new_key):
            assert ask(emu, http, jwt.encode(claims(emu), signer, "RS256")).status_code == 200
        emu.remove_client_key(CLIENT, old)
        assert ask(emu, http, jwt.encode(claims(emu), key, "RS256")).status_code == 401
        assert ask(emu, http, jwt.encode(claims(emu), new_key, "RS256")).status_code == 200
    finally:
        emu.remove_client_key(CLIENT, new)
        emu.add_client_key(CLIENT, key.public_key(), "RS256")


@pytest.mark.parametrize(
    ("public", "alg", "why"),
    [
        ("rsa-1024", "RS256", "1024 bits"),
        ("ec", "RS256", "must be an RSA public key"),
        ("rsa-2048", "ES256", "is not one of RS256, RS384, PS256"),
    ],
)
def test_credentials_auth0_would_not_take_are_refused(public: str, alg: str, why: str) -> None:
    """An RSA key under 2048 bits, a non-RSA key or another alg cannot be registered."""
    key: object = (ec.generate_private_key(ec.SECP256R1()).public_key() if public == "ec"
                   else rsa_key(1024 if public == "rsa-1024" else 2048).public_key())
    with sample_emulator() as emu:
        emu.add_client(CLIENT, None)
        with pytest.raises(ValueError, match=why):
            emu.add_client_key(CLIENT, key, alg)
