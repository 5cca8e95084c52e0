"""Tests for rotator.check: a connection read, its live secret judged by the due rule and Apple."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import DAY, KEY_ID, SERVICES_ID, TEAM_ID, offline_config
from fakes import FakeApple, FakeTenant

from rotator import check, config, due, secret
from rotator.errors import RefusedError
from rotator.outcome import Step
from rotator.seams import AppleAnswer

NOW = 1_700_000_000
SCHEDULE = config.Schedule(secret_lifetime=180 * DAY, rotate_every=30 * DAY, check_every=3600)


@pytest.fixture
def conn(tmp_path: Path, key_path: Path) -> config.ConnectionSettings:
    """One connection's settings, loaded from a config file as every command loads them."""
    path = offline_config(tmp_path, key_path)
    return config.load(config.Overrides(config=str(path)), environ={}).connections[0]


@pytest.fixture
def tenant() -> FakeTenant:
    """A tenant with the oauth2 connection "apple" for the Services ID, no secret yet."""
    fake = FakeTenant()
    fake.backend.add_connection({"name": "apple", "display_name": "Apple",
                                 "options": {"client_id": SERVICES_ID, "scope": "name email"}})
    return fake


def put_secret(tenant: FakeTenant, value: str) -> None:
    """Store ``value`` as the connection's client secret, as a rotation would."""
    found = tenant.read("apple")
    tenant.publish(found, value)


def minted(conn: config.ConnectionSettings, now: int = NOW) -> str:
    """A secret as rotator mints it from ``conn``'s settings at ``now``."""
    return secret.mint(conn.apple.key, team_id=TEAM_ID, key_id=KEY_ID, services_id=SERVICES_ID,
                       lifetime=180 * DAY, now=now)


def test_expected_is_what_the_settings_say(conn: config.ConnectionSettings) -> None:
    """expected carries the team, key id, Services ID and public key of the settings."""
    got = check.expected(conn)
    assert (got.team_id, got.key_id, got.services_id) == (TEAM_ID, KEY_ID, SERVICES_ID)
    assert got.public_key == conn.apple.key.public_key


def test_check_without_a_secret_is_due_and_asks_nobody(
    conn: config.ConnectionSettings, tenant: FakeTenant
) -> None:
    """No live secret: due (no_secret), and Apple is not asked (there is nothing to ask about)."""
    apple = FakeApple(tenant.backend)
    steps: list[Step] = []
    got = check.check(conn, tenant, apple, SCHEDULE, now=NOW, progress=steps.append)
    assert (got.live, got.verdict.due, got.verdict.reason) == (None, True, due.NO_SECRET)
    assert (got.apple.verdict, steps) == ("unknown", [])
    assert check.apple_problem(got, SERVICES_ID) is None


def test_check_of_a_fresh_accepted_secret_is_not_due(
    conn: config.ConnectionSettings, tenant: FakeTenant
) -> None:
    """A fresh secret from the configured key, which Apple accepts: not due, Apple asked once."""
    tenant.backend.apple_register_key(TEAM_ID, KEY_ID, conn.apple.key.public_key)
    tenant.backend.apple_add_services_id(TEAM_ID, SERVICES_ID)
    now = int(time.time())  # Apple judges the secret's expiry by its own clock
    live = minted(conn, now)
    put_secret(tenant, live)
    steps: list[Step] = []
    got = check.check(conn, tenant, FakeApple(tenant.backend), SCHEDULE, now=now,
                      progress=steps.append)
    assert (got.live, got.connection.name) == (live, "apple")
    assert (got.verdict.due, got.verdict.reason, got.apple.verdict) == (False, due.NOT_DUE,
                                                                        "accepted")
    assert steps == [Step.APPLE_CHECK]
    assert check.apple_problem(got, SERVICES_ID) is None


def test_check_of_a_refused_secret_is_due_and_a_problem(
    conn: config.ConnectionSettings, tenant: FakeTenant
) -> None:
    """A secret Apple refuses (its key unknown to Apple) is due, and apple_problem says so."""
    put_secret(tenant, minted(conn))
    got = check.check(conn, tenant, FakeApple(tenant.backend), SCHEDULE, now=NOW)
    assert got.apple.verdict == "refused"
    assert (got.verdict.due, got.verdict.reason) == (True, due.APPLE_REFUSED)
    problem = check.apple_problem(got, SERVICES_ID)
    assert str(problem).startswith(f"Apple refuses the live secret for {SERVICES_ID}")


def test_check_refuses_a_connection_for_another_services_id(
    conn: config.ConnectionSettings
) -> None:
    """A connection set up for another Services ID is refused before anything is judged."""
    tenant = FakeTenant()
    tenant.backend.add_connection({"name": "apple", "options": {"client_id": "com.other"}})
    with pytest.raises(RefusedError, match="not the configured Services ID"):
        check.check(conn, tenant, None, SCHEDULE, now=NOW)


def test_ask_is_off_without_apple_and_unknown_without_a_secret() -> None:
    """ask answers off when Apple is not to be asked, unknown when there is no secret."""
    assert check.ask(None, "x", SERVICES_ID).verdict == "off"
    assert check.ask(FakeApple(), None, SERVICES_ID).verdict == "unknown"


def test_record_copies_the_check_into_the_outcome(
    conn: config.ConnectionSettings, tenant: FakeTenant
) -> None:
    """record fills the outcome with the verdict, Apple's word and the live secret's claims."""
    from rotator.outcome import Outcome

    live = minted(conn, NOW - 100 * DAY)
    put_secret(tenant, live)
    got = check.check(conn, tenant, None, SCHEDULE, now=NOW)
    outcome = Outcome(connection="apple", tenant=tenant.name)
    check.record(outcome, got)
    assert (outcome.checked, outcome.live, outcome.due) == (True, True, True)
    assert (outcome.reason, outcome.apple, outcome.kid) == (due.AGE, "off", KEY_ID)
    assert outcome.fingerprint == secret.fingerprint(live)


def test_evidence_points_at_the_configuration_when_apple_accepts_a_differing_secret(
    conn: config.ConnectionSettings,
) -> None:
    """Apple accepting a live secret whose key id differs from the settings is evidence."""
    other = secret.mint(conn.apple.key, team_id=TEAM_ID, key_id="OTHER12345",
                        services_id=SERVICES_ID, lifetime=180 * DAY, now=NOW)
    verdict = due.assess(other, check.expected(conn), SCHEDULE, now=NOW, apple="accepted")
    assert verdict.reason == due.KID_CHANGED
    checked = check.Checked(connection=None, live=other,  # type: ignore[arg-type]
                            verdict=verdict, apple=AppleAnswer("accepted", "invalid_grant"))
    assert "the configured value looks wrong" in check.evidence(checked)
    refused = check.Checked(connection=None, live=other,  # type: ignore[arg-type]
                            verdict=verdict, apple=AppleAnswer("refused", "invalid_client"))
    assert check.evidence(refused) == ""
