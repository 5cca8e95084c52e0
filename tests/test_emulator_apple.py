"""Tests for rotator.emulator.apple: Apple's rules for a client secret, over real HTTPS."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from emulator_helpers import client_for

from rotator import secret as rotator_secret
from rotator.emulator import Emulator, Fault
from rotator.emulator.apple import MAX_LIFETIME, Apple, public_key_of

TEAM, KID, SID = "TEAMAAAAA1", "KEYAAAAAA1", "com.example.webapp"
OTHER_TEAM, OTHER_KID, OTHER_SID = "TEAMBBBBB2", "KEYBBBBBB2", "com.example.other"
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def make_secret(
    key: ec.EllipticCurvePrivateKey = KEY, kid: str = KID, **changes: int | str | None
) -> str:
    """A client secret as Apple wants it, with claims changed (None: left out)."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": TEAM, "iat": now - 60, "exp": now + 86400,
                              "aud": "https://appleid.apple.com", "sub": SID}
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator whose Apple knows two teams, each with a key and a Services ID."""
    with Emulator() as emulator:
        emulator.apple_register_key(TEAM, KID, KEY.public_key())
        emulator.apple_add_services_id(TEAM, SID)
        emulator.apple_register_key(OTHER_TEAM, OTHER_KID, OTHER_KEY.public_key())
        emulator.apple_add_services_id(OTHER_TEAM, OTHER_SID)
        yield emulator


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    """An httpx client that trusts only the emulator's CA."""
    with client_for(emu) as client:
        yield client


def ask(http: httpx.Client, shown: str, client_id: str = SID, **fields: str) -> httpx.Response:
    """POST /auth/token the way rotator checks a secret: a code that was never issued."""
    form = {"client_id": client_id, "client_secret": shown,
            "grant_type": "authorization_code", "code": "made-up-code"}
    return http.post("/auth/token", data={**form, **fields})


def assert_verdict(response: httpx.Response, error: str, reason: str | None = None) -> None:
    """Apple's 400 with this error code (and, on a refusal, the emulator's reason)."""
    assert response.status_code == 400
    assert response.json() == {"error": error}
    if reason is not None:
        assert reason in response.headers["x-emulator-reason"]


def test_apple_token_url(emu: Emulator) -> None:
    """apple_token_url is the emulator's /auth/token."""
    assert emu.apple_token_url == f"https://localhost:{emu.port}/auth/token"


def test_accepted_secret_gets_invalid_grant(http: httpx.Client) -> None:
    """A secret that meets every rule is accepted: the made-up code earns invalid_grant."""
    assert_verdict(ask(http, make_secret()), "invalid_grant")


def test_rotator_minted_secret_is_accepted(http: httpx.Client) -> None:
    """A secret minted by rotator.secret.mint with a registered key is accepted."""
    key = rotator_secret.AppleKey(private_key=KEY, source="test")
    minted = rotator_secret.mint(key, team_id=TEAM, key_id=KID, services_id=SID,
                                 lifetime=180 * 86400, now=int(time.time()))
    assert_verdict(ask(http, minted), "invalid_grant")


REFUSED: dict[str, Callable[[], str]] = {
    "not a JWT": lambda: "not-a-jwt",
    "alg is not ES256": lambda: jwt.encode({"iss": TEAM, "sub": SID}, "k" * 32,
                                           algorithm="HS256", headers={"kid": KID}),
    "kid is not a registered key": lambda: make_secret(kid="KEYUNKNOWN"),
    "signature does not verify": lambda: make_secret(key=OTHER_KEY),
    "iss is not the team": lambda: make_secret(iss=OTHER_TEAM),
    "aud is not": lambda: make_secret(aud="https://example.com"),
    "sub is not the client_id": lambda: make_secret(sub=OTHER_SID),
    "exp is missing or past": lambda: make_secret(exp=int(time.time()) - 1),
    "exp is more than 15777000": lambda: make_secret(exp=int(time.time()) + MAX_LIFETIME + 30),
    "iat is missing or in the future": lambda: make_secret(iat=int(time.time()) + 30),
}


@pytest.mark.parametrize("reason", list(REFUSED))
def test_each_rule_refuses_with_invalid_client(http: httpx.Client, reason: str) -> None:
    """A secret that breaks one rule earns 400 invalid_client, naming that rule."""
    assert_verdict(ask(http, REFUSED[reason]()), "invalid_client", reason)


def test_missing_claims_are_refused(http: httpx.Client) -> None:
    """A secret without exp or without iat is refused."""
    assert_verdict(ask(http, make_secret(exp=None)), "invalid_client", "exp")
    assert_verdict(ask(http, make_secret(iat=None)), "invalid_client", "iat")


def test_services_id_must_belong_to_the_team(http: httpx.Client) -> None:
    """A client_id that is no Services ID, or one of another team, is refused even as sub."""
    unknown = make_secret(sub="com.example.unknown")
    assert_verdict(ask(http, unknown, "com.example.unknown"), "invalid_client", "Services ID")
    theirs = make_secret(sub=OTHER_SID)
    assert_verdict(ask(http, theirs, OTHER_SID), "invalid_client", "Services ID")


def test_limits_are_inclusive_with_grace(http: httpx.Client) -> None:
    """exp just inside 15,777,000 s and iat a few seconds ahead are accepted."""
    now = int(time.time())
    assert_verdict(ask(http, make_secret(exp=now + MAX_LIFETIME - 5)), "invalid_grant")
    assert_verdict(ask(http, make_secret(iat=now + 3)), "invalid_grant")


def test_clock_offset_moves_apples_now(http: httpx.Client, emu: Emulator) -> None:
    """With Apple's clock behind, a back-dated iat lands in its future and is refused."""
    fresh = make_secret()  # iat = now - 60
    emu.apple_clock_offset = -120
    assert_verdict(ask(http, fresh), "invalid_client", "iat")
    emu.apple_clock_offset = 0
    assert_verdict(ask(http, fresh), "invalid_grant")


def test_revoke_and_register_while_running(http: httpx.Client, emu: Emulator) -> None:
    """A revoked key's secrets are refused at once; a key registered later is accepted."""
    assert_verdict(ask(http, make_secret()), "invalid_grant")
    emu.apple_revoke_key(KID)
    assert_verdict(ask(http, make_secret()), "invalid_client", "revoked")
    new_key = ec.generate_private_key(ec.SECP256R1())
    pem = new_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    emu.apple_register_key(TEAM, "KEYNEW0001", pem)
    assert_verdict(ask(http, make_secret(key=new_key, kid="KEYNEW0001")), "invalid_grant")
    with pytest.raises(KeyError):
        emu.apple_revoke_key("KEYUNKNOWN")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"grant_type": ""}, "invalid_request"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"client_id": ""}, "invalid_request"),
        ({"client_secret": ""}, "invalid_client"),
        ({"code": ""}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "made-up"}, "invalid_grant"),
    ],
)
def test_request_errors(http: httpx.Client, fields: dict[str, str], error: str) -> None:
    """Missing or unsupported fields earn Apple's OAuth error codes."""
    assert_verdict(ask(http, make_secret(), **fields), error)


def test_apple_wants_a_form(http: httpx.Client) -> None:
    """The same fields as JSON instead of a form are an invalid_request."""
    fields = {"client_id": SID, "client_secret": make_secret(),
              "grant_type": "authorization_code", "code": "made-up-code"}
    assert_verdict(http.post("/auth/token", json=fields), "invalid_request", "no form")


def test_journal_shows_the_form_apple_saw(http: httpx.Client, emu: Emulator) -> None:
    """The journal keeps /auth/token's form, secret included, out of repr."""
    shown = make_secret()
    ask(http, shown)
    (request,) = emu.journal
    assert (request.method, request.path, request.status) == ("POST", "/auth/token", 400)
    assert isinstance(request.body, dict)
    assert request.body["client_secret"] == shown
    assert shown not in repr(request)


def test_apple_is_not_rate_limited(http: httpx.Client, emu: Emulator) -> None:
    """The Management API's bucket neither limits nor counts Apple's endpoint."""
    emu.set_rate_limit(1, 0.01)
    verdicts = [ask(http, make_secret()).json()["error"] for _ in range(3)]
    assert verdicts == ["invalid_grant"] * 3
    emu.inject(Fault(path="/auth/token", status=503))
    assert ask(http, make_secret()).status_code == 503


# -- in-process --------------------------------------------------------------------------


def test_apple_in_process_without_a_socket() -> None:
    """Apple.handle judges a form as plain Python, with no server involved."""
    apple = Apple()
    apple.register_key(TEAM, KID, KEY)
    apple.add_services_id(TEAM, SID)
    form = {"client_id": SID, "client_secret": make_secret(),
            "grant_type": "authorization_code", "code": "c"}
    headers = {"content-type": "application/x-www-form-urlencoded"}
    answer = apple.handle("POST", "/auth/token", {}, headers, form)
    assert answer.body == {"error": "invalid_grant"}
    assert apple.refusal(make_secret(), SID) is None
    assert apple.handle("GET", "/auth/token", {}, {}, None).status == 405


def test_public_key_forms() -> None:
    """Keys register as objects or PEM (public or private, text or bytes); others are refused."""
    expected = KEY.public_key().public_numbers()
    private_pem = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    for form in (KEY, KEY.public_key(), private_pem, private_pem.decode()):
        assert public_key_of(form).public_numbers() == expected
    with pytest.raises(ValueError, match="PEM"):
        public_key_of(b"not a key")
    with pytest.raises(ValueError, match="P-256"):
        public_key_of(ec.generate_private_key(ec.SECP384R1()))
    ed_pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="P-256"):
        public_key_of(ed_pem)


def test_services_id_has_one_team() -> None:
    """A Services ID registered for one team cannot be claimed by another."""
    apple = Apple()
    apple.add_services_id(TEAM, SID)
    apple.add_services_id(TEAM, SID)
    with pytest.raises(ValueError, match="belongs to team"):
        apple.add_services_id(OTHER_TEAM, SID)
