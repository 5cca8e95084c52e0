"""Tests for rotator.apple, asking Apple (issue 7): never publish a secret Apple refuses, and
watch the live one.

Every test runs rotator's real HTTP client against the emulator over TLS; the
emulator plays Apple's token endpoint with Apple's rules for a client secret.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from auth0_env import EmulatedTenant
from conftest import KEY_ID, TEAM_ID, named, other_key, run_cli

from rotator import cli, secret
from rotator.emulator import Emulator, Fault

LIKELY = ("apple.team_id", "apple.key_id", "revoked", "Services ID", "clock")


def apple_requests(emu: Emulator) -> list[Any]:
    return [r for r in emu.journal if r.path == "/auth/token"]


def test_new_secret_is_shown_to_apple_before_the_patch_and_is_what_is_stored(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """run-now asks Apple about the live secret, then the new one, then writes that one."""
    live = tenant.mint(age=40 * 86400)
    conn = tenant.add(client_secret=live)
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    order = [(r.method, r.path) for r in tenant.emu.journal
             if r.path == "/auth/token" or r.method == "PATCH"]
    assert order == [("POST", "/auth/token"), ("POST", "/auth/token"),
                     ("PATCH", f"/api/v2/connections/{conn['id']}")]
    shown = [r.body["client_secret"] for r in apple_requests(tenant.emu)]
    stored = tenant.stored(conn["id"])["options"]["client_secret"]
    assert shown == [live, stored]
    assert all(r.body["grant_type"] == "authorization_code" and r.body["code"]
               for r in apple_requests(tenant.emu))
    [new_check] = [e for e in named(err, "apple.checked") if e["which"] == "new"]
    assert new_check["verdict"] == "accepted"
    assert new_check["fingerprint"] == secret.fingerprint(stored)


def _wrong_team(tenant: EmulatedTenant, tmp: Path) -> str:
    return tenant.write_config().read_text().replace(f'team_id = "{TEAM_ID}"',
                                                     'team_id = "ZZZZZ99999"')


def _swapped(tenant: EmulatedTenant, tmp: Path) -> str:
    return (tenant.write_config().read_text()
            .replace(f'team_id = "{TEAM_ID}"', 'team_id = "SWAPPED000"')
            .replace(f'key_id = "{KEY_ID}"', f'key_id = "{TEAM_ID}"')
            .replace('team_id = "SWAPPED000"', f'team_id = "{KEY_ID}"'))


def _other_teams_key(tenant: EmulatedTenant, tmp: Path) -> str:
    path, key = other_key(tmp)
    tenant.emu.apple_register_key("OTHERTEAM1", "OTHERKEY01", key.public_key)
    return (tenant.write_config().read_text()
            .replace(f'key_id = "{KEY_ID}"', 'key_id = "OTHERKEY01"')
            .replace(str(tenant.key_path), str(path)))


def _revoked(tenant: EmulatedTenant, tmp: Path) -> str:
    tenant.emu.apple_revoke_key(KEY_ID)
    return tenant.write_config().read_text()


def _unknown_sub(tenant: EmulatedTenant, tmp: Path) -> str:
    tenant.emu.clear_journal()
    return tenant.write_config([("apple-unknown", "com.example.not-registered")]).read_text()


REFUSALS = {
    "wrong-team-id": _wrong_team,
    "team-and-key-swapped": _swapped,
    "key-of-another-team": _other_teams_key,
    "revoked-key": _revoked,
    "unknown-services-id": _unknown_sub,
}
#: Where the live secret (which Apple accepts) shows what is wrong, the refusal
#: names that instead of every likely cause.
EVIDENCE = {
    "wrong-team-id": f"the secret's iss {TEAM_ID} differs from apple.team_id ZZZZZ99999",
    "team-and-key-swapped": "look swapped",
    "key-of-another-team": f"the secret's kid {KEY_ID} differs from apple.key_id OTHERKEY01",
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_apple_refusing_the_new_secret_writes_nothing(
    case: str, tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistake Apple catches: exit 1, no PATCH, unchanged, Apple named with the evidence."""
    old = tenant.mint(age=40 * 86400)
    if case == "unknown-services-id":
        conn = tenant.add("apple-unknown", client_secret=old,
                          services_id="com.example.not-registered")
    else:
        conn = tenant.add(client_secret=old)
    before = tenant.stored(conn["id"])
    config = tmp_path / "case.toml"
    config.write_text(REFUSALS[case](tenant, tmp_path))
    code, _, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 1, err
    assert tenant.patches() == []
    assert tenant.stored(conn["id"]) == before
    [failed] = named(err, "rotation.failed")
    assert failed["step"] == "apple_check"
    assert "Apple refuses the new secret" in failed["error"]
    if case in EVIDENCE:
        assert EVIDENCE[case] in failed["error"]
        assert "Apple accepts the live secret" in failed["error"]
        assert "the configured value looks wrong" in failed["error"]
        assert "likely causes" not in failed["error"]
    else:
        assert all(cause in failed["error"] for cause in LIKELY)
    assert "nothing was written" in failed["error"]


def test_a_fresh_looking_secret_apple_refuses_is_replaced(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-made 200-day secret: status says refused (exit 1); run-once replaces it; then 0."""
    hand_made = tenant.mint(age=86400, lifetime=200 * 86400)
    conn = tenant.add(client_secret=hand_made)
    config = str(tenant.write_config())

    code, out, _ = run_cli("status", "--json", "--config", config, capsys=capsys)
    [row] = json.loads(out)
    assert (code, row["apple"], row["due"], row["reason"]) == (1, "refused", True,
                                                              "apple_refused")

    code, _, err = run_cli("run-once", "--config", config, capsys=capsys)
    assert code == 0, err
    [checked] = named(err, "rotation.checked")
    assert (checked["due"], checked["reason"], checked["apple"]) == (True, "apple_refused",
                                                                     "refused")
    stored = tenant.stored(conn["id"])["options"]["client_secret"]
    assert stored != hand_made

    code, out, _ = run_cli("status", "--json", "--config", config, capsys=capsys)
    [row] = json.loads(out)
    assert (code, row["apple"], row["due"]) == (0, "accepted", False)


def _apple_config(tenant: EmulatedTenant, token_url: str, deadline: str = "3s") -> str:
    text = tenant.write_config(extra=f'[schedule]\ndeadline = "{deadline}"\n').read_text()
    return text.replace(tenant.emu.apple_token_url, token_url)


@pytest.mark.parametrize("how", ["unreachable", "503-every-time"])
def test_apple_that_cannot_be_asked_blocks_the_write_in_bounded_time(
    how: str, tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    refused_port: int,
) -> None:
    """Apple unreachable or failing: exit 1 by the run's deadline, no PATCH, the switch named."""
    conn = tenant.add(client_secret=None)
    url = tenant.emu.apple_token_url
    if how == "unreachable":
        url = f"https://127.0.0.1:{refused_port}/auth/token"
    else:
        tenant.emu.inject(Fault(path="/auth/token", status=503, times=None))
    config = tmp_path / "apple.toml"
    config.write_text(_apple_config(tenant, url))
    began = time.monotonic()
    code, _, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert time.monotonic() - began < 6
    assert code == 1
    assert tenant.patches() == []
    assert "client_secret" not in tenant.stored(conn["id"])["options"]
    [failed] = named(err, "rotation.failed")
    assert failed["step"] == "apple_check"
    assert "could not ask Apple about the new secret" in failed["error"]
    assert "apple.check = false" in failed["error"]


@pytest.mark.slow
def test_apple_answering_503_twice_then_normally_lets_the_rotation_through(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two 503 answers (Retry-After: 1) are waited out and the new secret is written."""
    conn = tenant.add(client_secret=None)
    tenant.emu.inject(Fault(path="/auth/token", status=503, times=2, retry_after=1))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    assert [r.status for r in apple_requests(tenant.emu)] == [503, 503, 400]
    assert "client_secret" in tenant.stored(conn["id"])["options"]


def test_apple_check_off_asks_nothing_and_says_so(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """APPLE_CHECK=false: no request to Apple; the log and status say the check is off."""
    conn = tenant.add(client_secret=None)
    config = str(tenant.write_config())
    monkeypatch.setenv("APPLE_CHECK", "false")
    code, _, err = run_cli("run-now", "--config", config, capsys=capsys)
    assert code == 0, err
    assert named(err, "rotation.checked")[0]["apple"] == "off"
    code = cli.main(["status", "--config", config])
    out = capsys.readouterr().out
    assert code == 0
    assert "Apple was not asked (apple.check is off)" in out
    assert apple_requests(tenant.emu) == []
    assert "client_secret" in tenant.stored(conn["id"])["options"]


def test_readiness_and_gauge_say_when_apple_refuses_the_live_secret(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A live secret Apple refuses, not replaceable (new one refused too): gauge 0, not ready."""
    from rotator import config, runner
    from rotator.service import Service

    tenant.add(client_secret=tenant.mint())
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    service = Service(settings, pool=runner.Pool())
    try:
        assert service.check().outcomes[0].apple == "accepted"
        tenant.emu.apple_revoke_key(KEY_ID)
        [outcome] = service.check().outcomes
        assert (outcome.apple, outcome.step) == ("refused", "apple_check")
        gauge = service.metrics.registry.get_sample_value(
            "rotator_secret_apple_accepted", {"tenant": tenant.emu.domain, "connection": "apple"})
        assert gauge == 0
        ready, why = service.ready()
        assert not ready
        assert "Apple refuses the live secret" in why
    finally:
        service.stop()


# -- a verdict only from Apple's documented answer (issue 19) -----------------------------


def _odd_apple(tenant: EmulatedTenant, status: int, error: str) -> Path:
    """Apple's token endpoint answering ``status`` with ``{"error": error}``, every time.

    Odd answers come from the emulator's raw-body faults over real TLS.
    ``Retry-After: 0`` lets the retries of a 429 or 5xx run out at once, so the
    last answer is judged rather than the deadline cutting in first.
    """
    body = json.dumps({"error": error}).encode()
    tenant.emu.inject(Fault(path="/auth/token", status=status, body=body, times=None,
                            retry_after=0))
    return tenant.write_config(extra='[schedule]\ndeadline = "30s"\n')


@pytest.mark.parametrize("status", [200, 302, 401, 429, 500, 503])
def test_invalid_grant_under_any_status_but_400_is_no_verdict_and_nothing_is_written(
    status: int, tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """``invalid_grant`` with a status other than 400 is "could not ask": no PATCH, exit 1."""
    conn = tenant.add(client_secret=None)
    run = run_cli("run-now", "--config", str(_odd_apple(tenant, status, "invalid_grant")),
                  capsys=capsys)
    assert run.code == 1, run.stderr
    assert tenant.patches() == []
    assert "client_secret" not in tenant.stored(conn["id"])["options"]
    [failed] = named(run.stderr, "rotation.failed")
    assert failed["step"] == "apple_check", failed
    assert "could not ask Apple about the new secret" in failed["error"]


@pytest.mark.parametrize("status", [401, 429, 503])
def test_invalid_client_under_any_status_but_400_is_unknown_not_refused(
    status: int, tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """``invalid_client`` with a status other than 400 is "unknown", not Apple's refusal."""
    tenant.add()
    run = run_cli("status", "--json", "--config",
                  str(_odd_apple(tenant, status, "invalid_client")), capsys=capsys)
    [row] = json.loads(run.stdout)
    assert (run.code, row["apple"]) == (1, "unknown"), run.stderr


def test_400_with_a_non_json_body_is_unknown(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 400 whose body is not JSON carries no verdict either."""
    tenant.add()
    tenant.emu.inject(Fault(path="/auth/token", status=400, body=b"invalid_grant", times=None))
    config = tenant.write_config(extra='[schedule]\ndeadline = "30s"\n')
    run = run_cli("status", "--json", "--config", str(config), capsys=capsys)
    assert json.loads(run.stdout)[0]["apple"] == "unknown"
