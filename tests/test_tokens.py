"""Tests for rotator.tokens: the client-credentials grant against the emulator, and its cache.

Then, in whole runs: one token per tenant, a token that expires mid-run renewed once, token
requests answered 503 or 429 retried, and a custom domain or a wrong audience called that.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth0_env import EmulatedTenant
from conftest import SERVICES_ID, named, run_cli

from rotator import config, logs, net
from rotator.deadline import Deadline
from rotator.emulator import Emulator, Fault
from rotator.errors import TokenError
from rotator.settings import Auth0Settings
from rotator.tokens import LEEWAY, Tokens


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(tenant: EmulatedTenant) -> Auth0Settings:
    """The tenant's Auth0 settings, loaded from its config file."""
    loaded = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    auth0 = loaded.connections[0].auth0
    assert auth0 is not None
    return auth0


@pytest.fixture
def http(tenant: EmulatedTenant) -> Iterator[tuple[httpx.Client, net.DeadlineHolder]]:
    """A verifying client to the emulator, serving a run with a 20 s deadline."""
    holder = net.DeadlineHolder(Deadline(20.0))
    with net.client(settings(tenant).trust, holder) as client:
        yield client, holder


def test_a_token_is_fetched_once_and_reused_until_near_expiry(
    tenant: EmulatedTenant, http: tuple[httpx.Client, net.DeadlineHolder]
) -> None:
    """The first call fetches; later calls reuse the token until LEEWAY before it expires."""
    clock = Clock()
    tokens = Tokens(http[0], settings(tenant), http[1], clock=clock)
    first = tokens()
    assert tokens() == first
    assert len(tenant.token_requests()) == 1
    assert "update:connections" in tokens.scopes
    assert logs.SECRETS.scrub(first) != first  # redacted while in use
    clock.now += 86400 - LEEWAY  # the emulator's tokens live a day
    assert tokens() != first
    assert len(tenant.token_requests()) == 2
    assert logs.SECRETS.scrub(first) == first


def test_invalidate_makes_the_next_call_fetch_anew(
    tenant: EmulatedTenant, http: tuple[httpx.Client, net.DeadlineHolder]
) -> None:
    """After invalidate (a 401), the next call asks for a new token."""
    tokens = Tokens(http[0], settings(tenant), http[1])
    first = tokens()
    tokens.invalidate()
    assert tokens() != first
    assert len(tenant.token_requests()) == 2


def test_the_request_carries_the_client_credentials(
    tenant: EmulatedTenant, http: tuple[httpx.Client, net.DeadlineHolder]
) -> None:
    """The form is the client-credentials grant for the tenant's Management API audience."""
    Tokens(http[0], settings(tenant), http[1])()
    [form] = tenant.token_requests()
    assert form == {"grant_type": "client_credentials", "client_id": tenant.client_id,
                    "client_secret": tenant.client_secret,
                    "audience": f"https://{tenant.emu.domain}/api/v2/"}


def test_a_refused_secret_says_which_setting_to_check_and_hides_it(
    tenant: EmulatedTenant, http: tuple[httpx.Client, net.DeadlineHolder]
) -> None:
    """A wrong client secret: TokenError naming the refusal and the fix, without the secret."""
    tenant.secret_file.write_text("wrong-secret-value")
    tokens = Tokens(http[0], settings(tenant), http[1])
    with pytest.raises(TokenError) as caught:
        tokens()
    message = str(caught.value)
    assert message.startswith(f"the token request to https://{tenant.emu.domain}/oauth/token "
                              "answered 401")
    assert "(auth0.client_secret_file or AUTH0_CLIENT_SECRET)" in message
    assert "wrong-secret-value" not in message


# -- the token in whole runs against the emulator ---------------------------------------------


def test_token_expiring_between_read_and_write_is_renewed(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token that expires after the read is renewed once and the write goes through."""
    conn = tenant.add(client_secret=None)
    tenant.emu.inject(Fault(method="GET", path="/api/v2/connections", expire_tokens_after=True))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    token_requests = [r for r in tenant.emu.journal if r.path == "/oauth/token"]
    assert len(token_requests) == 2
    assert [r.status for r in tenant.patches()] == [401, 200]
    assert "client_secret" in tenant.stored(conn["id"])["options"]


def test_one_token_serves_every_connection_of_a_tenant(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three connections on one tenant share one access token."""
    for name in ("apple-a", "apple-b", "apple-c"):
        tenant.add(name, client_secret=None)
    config = tenant.write_config([(n, SERVICES_ID) for n in ("apple-a", "apple-b", "apple-c")])
    code, _, err = run_cli("run-once", "--config", str(config), capsys=capsys)
    assert code == 0, err
    assert len([r for r in tenant.emu.journal if r.path == "/oauth/token"]) == 1
    assert len(tenant.patches()) == 3


@pytest.mark.slow
def test_token_request_503_twice_then_a_token_succeeds(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """/oauth/token answering 503 twice is retried, and the run succeeds."""
    tenant.add(client_secret=None)
    tenant.emu.inject(Fault(path="/oauth/token", status=503, times=2, retry_after=1))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    assert [r.status for r in tenant.emu.journal if r.path == "/oauth/token"] == [503, 503, 200]


def test_token_request_429_with_retry_after_waits_and_succeeds(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """/oauth/token answering 429 with Retry-After: 1 is waited out."""
    tenant.add(client_secret=None)
    tenant.emu.inject(Fault(path="/oauth/token", status=429, times=1, retry_after=1))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    tokens = [r for r in tenant.emu.journal if r.path == "/oauth/token"]
    assert [r.status for r in tokens] == [429, 200]
    assert tokens[1].time - tokens[0].time >= 0.9


def test_custom_domain_needs_the_audience_and_works_with_it(
    tmp_path: Path, key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A custom domain: without auth0.audience the message says what to do; with it, it works."""
    canonical = "https://tenant.emulated.auth0.com/api/v2/"
    with Emulator(audience=canonical) as emu:
        tenant = EmulatedTenant(emu, tmp_path, key_path)
        conn = tenant.add(client_secret=None)
        config_path = tenant.write_config()
        code, _, err = run_cli("run-now", "--config", str(config_path), capsys=capsys)
        assert code == 1
        [failed] = named(err, "rotation.failed")
        assert failed["step"] == "token"
        assert "Service not enabled within domain" in failed["error"]
        assert "set auth0.audience" in failed["error"]
        assert "canonical domain" in failed["error"]

        text = config_path.read_text().replace("[auth0]\n", f'[auth0]\naudience = "{canonical}"\n')
        config_path.write_text(text)
        code, _, err = run_cli("run-now", "--config", str(config_path), capsys=capsys)
        assert code == 0, err
        assert "client_secret" in tenant.stored(conn["id"])["options"]


def test_a_wrong_audience_is_called_that_not_a_custom_domain(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """auth0.audience without its trailing slash: the error names the audience, not the domain."""
    tenant.add()
    config_path = tenant.write_config()
    wrong = f"https://{tenant.emu.domain}/api/v2"
    config_path.write_text(config_path.read_text().replace(
        "[auth0]\n", f'[auth0]\naudience = "{wrong}"\n'))
    code, out, err = run_cli("run-once", "--config", str(config_path), capsys=capsys)

    assert code == 1, err
    [failed] = named(err, "rotation.failed")
    assert failed["step"] == "token"
    assert f"auth0.audience '{wrong}' is not an API of this tenant" in failed["error"]
    assert "the trailing slash is part of it" in failed["error"]
    assert "custom domain" not in failed["error"]
    assert "FAILED at token" in out
