"""Tests for rotator.emulator.admin: the /_emulator/ endpoints (token, fields, answers, their
effect on Apple), kept out of faults and the journal; the admin file and call() over real TLS."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fakes import FakeApple

from rotator.emulator import Emulator, Fault, admin
from rotator.emulator.backend import Backend
from rotator.emulator.exchange import Response

TEAM, KID, SID = "ADMINTEAM1", "ADMINKEY01", "com.example.admin"
KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_PEM = KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def secret(key: ec.EllipticCurvePrivateKey = KEY, kid: str = KID) -> str:
    """A client secret for SID signed by ``key`` under ``kid``, valid now."""
    now = int(time.time())
    claims = {"iss": TEAM, "iat": now - 60, "exp": now + 3600,
              "aud": "https://appleid.apple.com", "sub": SID}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


@pytest.fixture
def backend() -> Backend:
    """An in-process backend whose Apple knows nothing yet."""
    return Backend(audience="https://admin.example/api/v2/")


def send(backend: Backend, method: str, path: str, body: object = None,
         token: str | None = None) -> Response:
    """One admin request through admin.handle, with the backend's token unless told."""
    sent = backend.admin_token if token is None else token
    headers = {"authorization": f"Bearer {sent}"} if sent else {}
    return admin.handle(backend.apple, backend.admin_token, method, path, headers, body)


def verdict(backend: Backend, shown: str | None = None) -> str:
    """What the backend's Apple says of a secret (by default one signed with KEY)."""
    return FakeApple(backend).ask(shown or secret(), SID).verdict


# -- the endpoints, in-process --------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "not-the-token"], ids=["missing", "wrong"])
def test_without_the_admin_token_nothing_is_done(backend: Backend, token: str) -> None:
    """Every endpoint answers 401 without the token it was started with, and changes nothing."""
    key = {"team_id": TEAM, "key_id": KID, "public_key": PUBLIC_PEM}
    refused = send(backend, "POST", admin.KEYS, key, token=token)
    assert (refused.status, refused.body) == (
        401, {"error": "admin token required (Authorization: Bearer TOKEN)"})
    assert send(backend, "POST", admin.SERVICES_IDS, {"team_id": TEAM, "services_id": SID},
                token=token).status == 401
    assert send(backend, "DELETE", f"{admin.KEYS}/{KID}", token=token).status == 401
    assert send(backend, "GET", admin.PREFIX + "nowhere", token=token).status == 401
    send(backend, "POST", admin.SERVICES_IDS, {"team_id": TEAM, "services_id": SID})
    assert verdict(backend) == "refused"  # the key was never registered


def test_a_registered_key_is_accepted_and_a_revoked_one_refused(backend: Backend) -> None:
    """POST keys (201) and services-ids (201) make Apple accept; DELETE (200) makes it refuse."""
    registered = send(backend, "POST", admin.KEYS,
                      {"team_id": TEAM, "key_id": KID, "public_key": PUBLIC_PEM})
    assert (registered.status, registered.body) == (201, {"team_id": TEAM, "key_id": KID})
    added = send(backend, "POST", admin.SERVICES_IDS, {"team_id": TEAM, "services_id": SID})
    assert (added.status, added.body) == (201, {"team_id": TEAM, "services_id": SID})
    assert verdict(backend) == "accepted"
    revoked = send(backend, "DELETE", f"{admin.KEYS}/{KID}")
    assert (revoked.status, revoked.body) == (200, {"key_id": KID, "revoked": True})
    assert verdict(backend) == "refused"


def test_revoking_an_unknown_key_is_404(backend: Backend) -> None:
    """A key id never registered: 404 naming it."""
    answer = send(backend, "DELETE", f"{admin.KEYS}/NOSUCHKEY1")
    assert (answer.status, answer.body) == (404, {"error": "no key 'NOSUCHKEY1' is registered"})


@pytest.mark.parametrize("body", [
    None, [], {"team_id": TEAM, "key_id": KID},
    {"team_id": TEAM, "key_id": "", "public_key": PUBLIC_PEM},
    {"team_id": TEAM, "key_id": 7, "public_key": PUBLIC_PEM},
], ids=["no-body", "a-list", "missing-field", "empty-field", "a-number"])
def test_a_key_without_its_three_string_fields_is_400(backend: Backend, body: object) -> None:
    """team_id, key_id and public_key must each be a non-empty string: 400 naming all three."""
    answer = send(backend, "POST", admin.KEYS, body)
    assert (answer.status, answer.body) == (
        400, {"error": "send a JSON object with team_id, key_id, public_key"})


def test_a_key_apple_cannot_use_is_400_saying_why(backend: Backend) -> None:
    """Not a PEM key, or not P-256: 400 with the reason after "public_key: "."""
    fields = {"team_id": TEAM, "key_id": KID}
    not_pem = send(backend, "POST", admin.KEYS, fields | {"public_key": "hello"})
    assert (not_pem.status, not_pem.body) == (
        400, {"error": "public_key: not a PEM public key or unencrypted private key"})
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    wrong_curve = send(backend, "POST", admin.KEYS, fields | {"public_key": p384})
    assert (wrong_curve.status, wrong_curve.body) == (
        400, {"error": "public_key: Apple keys are P-256 (secp256r1) EC keys"})


def test_a_services_id_of_another_team_is_400(backend: Backend) -> None:
    """A Services ID belongs to one team: a second team is refused, naming the first."""
    assert send(backend, "POST", admin.SERVICES_IDS,
                {"team_id": TEAM, "services_id": SID}).status == 201
    other = send(backend, "POST", admin.SERVICES_IDS, {"team_id": "OTHERTEAM1", "services_id": SID})
    assert (other.status, other.body) == (
        400, {"error": f"Services ID {SID!r} belongs to team {TEAM}"})
    missing = send(backend, "POST", admin.SERVICES_IDS, {"team_id": TEAM})
    assert (missing.status, missing.body) == (
        400, {"error": "send a JSON object with team_id, services_id"})


@pytest.mark.parametrize(("method", "path"), [
    ("GET", admin.KEYS), ("PUT", admin.SERVICES_IDS), ("POST", admin.PREFIX + "apple/other"),
    ("DELETE", admin.SERVICES_IDS + "/" + SID),
])
def test_anything_else_is_404_naming_it(backend: Backend, method: str, path: str) -> None:
    """A method or path the admin API does not have: 404 "no admin endpoint METHOD PATH"."""
    answer = send(backend, method, path, {})
    assert (answer.status, answer.body) == (404, {"error": f"no admin endpoint {method} {path}"})


def test_admin_requests_are_never_faulted_rate_limited_or_journalled(backend: Backend) -> None:
    """Through the backend: a queued fault and an empty bucket wait for Auth0's next request."""
    backend.inject(Fault(status=503))
    backend.set_rate_limit(1, 0.001)
    headers = {"authorization": f"Bearer {backend.admin_token}",
               "content-type": "application/json"}
    for _ in range(3):
        body = json.dumps({"team_id": TEAM, "key_id": KID, "public_key": PUBLIC_PEM}).encode()
        answer = backend.exchange("POST", admin.KEYS, {}, headers, body).response
        assert answer is not None
        assert answer.status == 201
    assert backend.journal == []
    faulted = backend.exchange("GET", "/api/v2/connections", {}, {}, b"").response
    assert faulted is not None
    assert faulted.status == 503  # the fault was still queued
    assert [r.status for r in backend.journal] == [503]


# -- the admin file and call(), over real TLS -------------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """A running emulator (its admin file written at start)."""
    with Emulator() as emulator:
        yield emulator


def test_write_file_is_private_json_of_url_ca_and_token(tmp_path: Path) -> None:
    """The admin file is mode 600 and holds exactly url, ca and token."""
    path = tmp_path / "admin.json"
    admin.write_file(path, "https://localhost:1", "/tmp/ca.pem", "tok")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "url": "https://localhost:1", "ca": "/tmp/ca.pem", "token": "tok"}


def test_call_reaches_the_emulator_that_wrote_the_file(emu: Emulator) -> None:
    """From the admin file alone: register a key and a Services ID; Apple then accepts."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    said: Any = admin.call(emu.admin_file, "POST", admin.KEYS,
                           {"team_id": TEAM, "key_id": "CALLKEY001", "public_key": pem})
    assert said == {"team_id": TEAM, "key_id": "CALLKEY001"}
    admin.call(emu.admin_file, "POST", admin.SERVICES_IDS, {"team_id": TEAM, "services_id": SID})
    assert verdict(emu, secret(key, "CALLKEY001")) == "accepted"
    assert admin.call(emu.admin_file, "DELETE", f"{admin.KEYS}/CALLKEY001") == {
        "key_id": "CALLKEY001", "revoked": True}
    assert verdict(emu, secret(key, "CALLKEY001")) == "refused"


def test_call_raises_the_emulators_error_on_a_4xx(emu: Emulator) -> None:
    """A refusal comes back as RuntimeError carrying the emulator's own words."""
    with pytest.raises(RuntimeError) as refused:
        admin.call(emu.admin_file, "DELETE", f"{admin.KEYS}/NOSUCHKEY1")
    assert str(refused.value) == "no key 'NOSUCHKEY1' is registered"


def test_call_with_a_forged_token_is_refused(emu: Emulator, tmp_path: Path) -> None:
    """The file's token is what opens the door: another token gets the 401's words."""
    forged = tmp_path / "admin.json"
    info = json.loads(emu.admin_file.read_text())
    admin.write_file(forged, info["url"], info["ca"], "forged")
    with pytest.raises(RuntimeError, match="admin token required"):
        admin.call(forged, "DELETE", f"{admin.KEYS}/{KID}")


def test_call_raises_oserror_when_the_file_or_the_emulator_is_not_there(
    emu: Emulator, tmp_path: Path, refused_port: int,
) -> None:
    """A missing file, a file of something else, an emulator no longer listening: OSError."""
    with pytest.raises(FileNotFoundError):
        admin.call(tmp_path / "missing.json", "DELETE", f"{admin.KEYS}/{KID}")
    other = tmp_path / "other.json"
    other.write_text('{"url": "https://localhost:1"}')
    with pytest.raises(OSError, match="is not an emulator admin file"):
        admin.call(other, "DELETE", f"{admin.KEYS}/{KID}")
    gone = tmp_path / "gone.json"
    admin.write_file(gone, f"https://localhost:{refused_port}", emu.ca_pem_path, "tok")
    with pytest.raises(OSError):  # noqa: PT011 - the system's own "connection refused"
        admin.call(gone, "DELETE", f"{admin.KEYS}/{KID}")
