"""What run-once and run-now print on stdout: a line per connection and a closing count.

The CLI runs in this process against the emulator over TLS; stdout and stderr
are captured apart, so each test proves the result lines are on stdout and the
log (JSON, one event a line) is on stderr.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from auth0_env import EmulatedTenant, tenants_on_emulators, two_tenants
from conftest import DAY, KEY_ID, SERVICES_ID, TEAM_ID, run_cli, strict_events, strict_named

from rotator import words
from rotator.emulator import Fault

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_run_now_prints_the_new_expiry_and_apples_verdict_then_a_count(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """run-now: "apple: rotated (why); the new secret expires <ISO> (in 180 days); Apple ..."."""
    tenant.add()
    run = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)

    assert run.code == 0, run.output
    line, count = run.stdout.splitlines()
    [rotated] = strict_named(run.stderr, "secret.rotated")
    assert line == (f"apple: rotated (run-now replaces it, due or not); the new secret expires "
                    f"{words.iso(rotated['exp'])} (in 180 days); Apple accepted it")
    assert count == "1 connection: 1 rotated, 0 failed"
    assert strict_events(run.stderr)  # the log stays on stderr, every line JSON
    assert "{" not in run.stdout


def test_run_once_says_when_a_connection_that_is_not_due_falls_due(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """run-once with a fresh secret: "not due; falls due <ISO> (in 30 days)", nothing written."""
    tenant.add()
    run = run_cli("run-once", "--config", str(tenant.write_config()), capsys=capsys)

    assert run.code == 0, run.output
    line, count = run.stdout.splitlines()
    assert re.fullmatch(rf"apple: not due; falls due {ISO} \(in 30 days\), expires {ISO}; "
                        "Apple accepts the live secret", line), line
    assert count == "1 connection: 0 rotated, 1 not due, 0 failed"
    assert tenant.patches() == []


def test_a_failed_connection_line_names_the_step_and_the_reason(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A connection that is not there: "FAILED at read: no connection named ...", exit 1."""
    tenant.add()
    config = tenant.write_config([("apple", SERVICES_ID), ("missing", SERVICES_ID)])
    run = run_cli("run-once", "--config", str(config), capsys=capsys)

    assert run.code == 1, run.output
    not_due, failed, count = run.stdout.splitlines()
    assert not_due.startswith("apple: not due")
    assert failed.startswith("missing: FAILED at read: no connection named 'missing'")
    assert count == "2 connections: 0 rotated, 1 not due, 1 failed"


def test_dry_run_says_what_would_be_written_with_iso_times(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run: the claims and ISO times of the secret it would write; the log has both forms."""
    conn = tenant.add(client_secret=tenant.mint(age=40 * DAY))
    before = tenant.stored(conn["id"])
    run = run_cli("run-once", "--dry-run", "--config", str(tenant.write_config()),
                  capsys=capsys)

    assert run.code == 0, run.output
    assert tenant.stored(conn["id"]) == before
    [dry] = strict_named(run.stderr, "rotation.dry_run")
    assert dry["issued_at"] == words.iso(dry["iat"])
    assert dry["expires_at"] == words.iso(dry["exp"])
    assert re.fullmatch(ISO, dry["expires_at"])
    line, count = run.stdout.splitlines()
    kept = len(conn["options"]) - 1
    assert line == (
        f"apple: dry run (the secret is 40.0 days old; rotate_every is 30d): would write a new "
        f"client_secret (kid {KEY_ID}, sub {SERVICES_ID}, "
        f"issued {dry['issued_at']}, expires {dry['expires_at']}, fingerprint "
        f"{dry['fingerprint']}) and keep the other {kept} options; Apple accepted it; "
        "nothing was written")
    assert count == "1 connection: 1 would be rotated, 0 failed"


def test_a_rotation_whose_hook_failed_is_counted_failed(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failing post-rotate hook: the line says rotated, the hook FAILED; the count says so."""
    tenant.add()
    config = tenant.write_config(extra='[hooks]\npost_rotate = ["false"]\n')
    run = run_cli("run-now", "--config", str(config), capsys=capsys)

    assert run.code == 1, run.output
    line, count = run.stdout.splitlines()
    assert line.startswith("apple: rotated (run-now replaces it, due or not); the new secret")
    assert line.endswith("the post-rotate hook FAILED (see the log)")
    assert count == "1 connection: 1 rotated, 0 failed, 1 post-rotate hook failed"


def test_with_two_tenants_each_line_names_the_tenant(
    tmp_path: Path, key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`apple` on two tenants: each line starts TENANT/apple, as --connection takes it."""
    with ExitStack() as stack:
        tenants = tenants_on_emulators(stack, tmp_path, key_path)
        for tenant in tenants:
            tenant.add()
        config = two_tenants(tmp_path, tenants)
        run = run_cli("run-once", "--config", str(config), capsys=capsys)

    assert run.code == 0, run.output
    first, second, count = run.stdout.splitlines()
    assert first.startswith(f"{tenants[0].emu.domain}/apple: not due")
    assert second.startswith(f"{tenants[1].emu.domain}/apple: not due")
    assert count == "2 connections: 0 rotated, 2 not due, 0 failed"


@pytest.mark.slow
def test_a_retry_wait_is_logged_when_it_starts_with_what_and_how_long(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Apple answering 503 with Retry-After: 2: wait.started names the request and 2 s, first."""
    tenant.add()
    tenant.emu.inject(Fault(path="/auth/token", status=503, retry_after=2))
    started = time.monotonic()
    run = run_cli("run-once", "--config", str(tenant.write_config()), capsys=capsys)

    assert run.code == 0, run.output
    assert time.monotonic() - started >= 2
    log = strict_events(run.stderr)
    [wait] = [e for e in log if e["event"] == "wait.started"]
    assert wait["level"] == "warning"
    assert wait["seconds"] == 2
    assert "asking Apple" in wait["awaited"]
    assert "try 2 of 4" in wait["awaited"]
    assert "503 with Retry-After" in wait["because"]
    assert (wait["connection"], wait["tenant"]) == ("apple", tenant.emu.domain)
    # logged before the wait, so before the answer that came after it
    order = [e["event"] for e in log]
    assert order.index("wait.started") < order.index("rotation.checked")


@pytest.mark.slow
def test_a_management_api_retry_wait_is_logged_when_it_starts(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Auth0 answering 429 with Retry-After: 2 to a read: the SDK's wait is announced first."""
    tenant.add()
    tenant.emu.inject(Fault(path="/api/v2/connections", status=429, retry_after=2))
    run = run_cli("run-once", "--config", str(tenant.write_config()), capsys=capsys)

    assert run.code == 0, run.output
    [wait] = strict_named(run.stderr, "wait.started")
    assert wait["seconds"] == 2
    assert wait["awaited"].startswith("the retry of GET ")
    assert "429 with Retry-After" in wait["because"]


def test_a_wait_of_a_second_or_less_is_not_announced(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Retry-After: 1 is waited quietly: only waits of more than a second are logged."""
    tenant.add()
    tenant.emu.inject(Fault(path="/auth/token", status=503, retry_after=1))
    run = run_cli("run-once", "--config", str(tenant.write_config()), capsys=capsys)

    assert run.code == 0, run.output
    assert strict_named(run.stderr, "wait.started") == []


def test_apple_refusing_the_live_secret_is_logged_at_error(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A live secret Apple refuses (revoked key): rotation.checked and apple.checked at error."""
    tenant.add()
    tenant.emu.apple_revoke_key(KEY_ID)
    run = run_cli("status", "--config", str(tenant.write_config()), capsys=capsys)

    assert run.code == 1, run.output
    [checked] = strict_named(run.stderr, "rotation.checked")
    assert (checked["reason"], checked["level"]) == ("apple_refused", "error")
    [apple] = strict_named(run.stderr, "apple.checked")
    assert (apple["verdict"], apple["level"]) == ("refused", "error")


def test_a_live_secret_apple_accepts_is_checked_at_info(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """An accepted live secret: rotation.checked and apple.checked stay at info."""
    tenant.add()
    run = run_cli("status", "--config", str(tenant.write_config()), capsys=capsys)

    assert run.code == 0, run.output
    assert {e["level"] for e in strict_named(run.stderr, "rotation.checked")} == {"info"}
    assert {e["level"] for e in strict_named(run.stderr, "apple.checked")} == {"info"}


@pytest.mark.parametrize("claim", ["iss", "kid", "sub"])
def test_a_mismatch_names_the_live_and_the_configured_value(
    claim: str, tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A live secret made with another team, key id or Services ID: both values in `why`."""
    live, setting, configured = {
        "iss": ("EMUTEAM001", "apple.team_id", TEAM_ID),
        "kid": ("EMUKEY0001", "apple.key_id", KEY_ID),
        "sub": ("com.example.old", "the connection's client_id", SERVICES_ID),
    }[claim]
    field = {"iss": "team_id", "kid": "key_id", "sub": "services_id"}[claim]
    ids = {"team_id": TEAM_ID, "key_id": KEY_ID, "services_id": SERVICES_ID, field: live}
    tenant.add(client_secret=tenant.mint(team_id=ids["team_id"], key_id=ids["key_id"],
                                         services_id=ids["services_id"]))
    run = run_cli("status", "--json", "--config", str(tenant.write_config()), capsys=capsys)

    [row] = json.loads(run.stdout)
    assert row["why"] == f"the secret's {claim} {live} differs from {setting} {configured}"
    [checked] = strict_named(run.stderr, "rotation.checked")
    assert checked["why"] == row["why"]
