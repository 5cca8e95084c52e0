"""Tests for tests/fakes.py: rotator's seams faked on the emulator's in-process backend."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fakes import FakeApple, FakeTenant

from rotator.emulator import Fault
from rotator.errors import Auth0ReadError, Auth0WriteError, TokenError
from rotator.seams import AppleAnswer, Connection

OPTIONS = {"client_id": "com.example.webapp", "client_secret": "old", "scope": "name email"}
TEAM, KID, SID = "FAKETEAM01", "FAKEKEY001", "com.example.webapp"


@pytest.fixture
def tenant() -> FakeTenant:
    """A fake tenant with an oauth2 connection and a native one, both named."""
    fake = FakeTenant()
    fake.backend.add_connection({"name": "apple", "display_name": "Apple", "options": OPTIONS})
    fake.backend.add_connection({"name": "native", "strategy": "apple"})
    return fake


def test_read_by_id_and_by_name(tenant: FakeTenant) -> None:
    """read takes a con_ id or a name, oauth2 first, then any strategy; no sockets."""
    by_name = tenant.read("apple")
    assert by_name == Connection(by_name.id, "apple", "oauth2", "Apple", OPTIONS)
    assert tenant.read(by_name.id) == by_name
    assert tenant.read("native").strategy == "apple"
    queries = [r.query for r in tenant.backend.journal if r.method == "GET"]
    assert queries[-2:] == [{"name": ["native"], "strategy": ["oauth2"]}, {"name": ["native"]}]


def test_read_failures(tenant: FakeTenant) -> None:
    """An unknown name or id raises Auth0ReadError with a short message."""
    with pytest.raises(Auth0ReadError, match="no connection named 'nope'"):
        tenant.read("nope")
    with pytest.raises(Auth0ReadError, match="404 Not Found The connection does not exist"):
        tenant.read("con_0000000000000000")


def test_write_sends_exactly_the_body(tenant: FakeTenant) -> None:
    """write PATCHes the body as given and returns the stored connection."""
    conn_id = tenant.read("apple").id
    body = {"options": OPTIONS | {"client_secret": "new"}}
    stored = tenant.write(conn_id, body)
    assert stored.options == body["options"]
    assert stored.display_name == "apple"  # Auth0 resets a left-out display_name
    assert tenant.backend.journal[-1].body == body
    with pytest.raises(Auth0WriteError, match="400 Bad Request Payload validation error"):
        tenant.write(conn_id, {"name": "x"})


def test_scopes_shape_answers() -> None:
    """Without the options scopes, options are hidden and a PATCH of them is refused 403."""
    tenant = FakeTenant(scopes=("read:connections", "update:connections"))
    tenant.backend.add_connection({"name": "apple", "options": OPTIONS})
    assert tenant.granted_scopes() == {"read:connections", "update:connections"}
    conn = tenant.read("apple")
    assert conn.options is None
    with pytest.raises(Auth0WriteError, match="403"):
        tenant.write(conn.id, {"options": OPTIONS})


def test_token_failures_raise_token_error(tenant: FakeTenant) -> None:
    """A token request Auth0 refuses raises TokenError."""
    tenant.backend.inject(Fault(path="/oauth/token", status=503))
    with pytest.raises(TokenError, match="503"):
        tenant.granted_scopes()


def test_expired_token_is_renewed_once(tenant: FakeTenant) -> None:
    """A token Auth0 no longer takes is replaced once, as rotator's client does."""
    tenant.read("apple")
    tenant.backend.expire_tokens()
    assert tenant.read("apple").name == "apple"
    assert [r.path for r in tenant.backend.journal].count("/oauth/token") == 2


def test_injected_failures(tenant: FakeTenant) -> None:
    """Faults make the next calls fail: a status, a drop, an answer lost after the write."""
    conn_id = tenant.read("apple").id
    tenant.backend.inject(Fault(method="GET", status=503, times=2))
    for _ in range(2):
        with pytest.raises(Auth0ReadError, match="503"):
            tenant.read(conn_id)
    tenant.backend.inject(Fault(method="GET", drop=True))
    with pytest.raises(Auth0ReadError, match="closed without an answer"):
        tenant.read(conn_id)
    tenant.backend.inject(Fault(method="PATCH", answer_dropped=True))
    with pytest.raises(Auth0WriteError, match="closed without an answer"):
        tenant.write(conn_id, {"display_name": "New"})
    assert tenant.backend.connection("apple")["display_name"] == "New"
    tenant.backend.inject(Fault(method="GET", truncate=10))
    with pytest.raises(Auth0ReadError, match="not JSON"):
        tenant.read(conn_id)


def test_fake_apple_verdicts() -> None:
    """FakeApple answers accepted, refused, or unknown when Apple fails."""
    apple = FakeApple()
    key = ec.generate_private_key(ec.SECP256R1())
    apple.backend.apple_register_key(TEAM, KID, key.public_key())
    apple.backend.apple_add_services_id(TEAM, SID)
    now = int(time.time())
    claims = {"iss": TEAM, "iat": now - 60, "exp": now + 3600,
              "aud": "https://appleid.apple.com", "sub": SID}
    shown = jwt.encode(claims, key, algorithm="ES256", headers={"kid": KID})
    assert apple.ask(shown, SID).verdict == "accepted"
    assert apple.ask(shown, "com.example.other").verdict == "refused"
    apple.backend.inject(Fault(path="/auth/token", status=503))
    assert apple.ask(shown, SID) == AppleAnswer("unknown", (
        "Apple answered 503 (server_error); only a 400 carrying invalid_grant or invalid_client "
        "is a verdict"))
    apple.backend.apple_revoke_key(KID)
    assert apple.ask(shown, SID).verdict == "refused"
    assert apple.backend.journal[0].body["client_secret"] == shown  # type: ignore[index]


@pytest.mark.parametrize("status", [200, 401, 503])
def test_fake_apple_judges_an_odd_answer_as_rotator_apple_does(status: int) -> None:
    """invalid_grant under any status but 400 is no verdict for FakeApple either."""
    apple = FakeApple()
    apple.backend.inject(Fault(path="/auth/token", status=status,
                               body=b'{"error": "invalid_grant"}'))
    assert apple.ask("not-a-jwt", SID) == AppleAnswer("unknown", (
        f"Apple answered {status} (invalid_grant); only a 400 carrying invalid_grant or "
        "invalid_client is a verdict"))


def test_one_backend_serves_both(tenant: FakeTenant) -> None:
    """A FakeApple on the tenant's backend shares its journal and faults."""
    apple = FakeApple(tenant.backend)
    tenant.backend.inject(Fault(drop=True))
    assert apple.ask("not-a-jwt", SID).verdict == "unknown"
    assert apple.ask("not-a-jwt", SID).verdict == "refused"
    assert [r.status for r in tenant.backend.journal] == [0, 400]
