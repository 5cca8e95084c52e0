"""Tests for rotator.commands: the commands as functions, returning facts (no network needed).

Then through the real CLI against the emulator: check_metrics_path (a --metrics-file that
could not be written is refused before anything is contacted), and `check-config --online`
(look: a token, its scopes, each connection read, Apple shown the live secret and a fresh
one, nothing written).
"""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from auth0_env import EmulatedTenant
from conftest import (
    KEY_ID,
    SERVICES_ID,
    TEAM_ID,
    assert_refused,
    offline_config,
    other_key,
    run_cli,
    run_rotator,
)

from rotator import commands, config
from rotator.auth0_rules import SCOPES
from rotator.emulator import Emulator
from rotator.errors import ConfigError
from rotator.outcome import Outcome, Report

NOW = 1_700_000_000


def load(tmp_path: Path, key_path: Path, names: tuple[str, ...] = ("apple",)) -> config.Settings:
    """Settings for connections ``names`` on one tenant, loaded from a config file."""
    path = offline_config(tmp_path, key_path, names)
    return config.load(config.Overrides(config=str(path)), environ={})


def test_mint_makes_one_secret_for_the_connection(tmp_path: Path, key_path: Path) -> None:
    """mint returns a secret with the configured team, key id, Services ID and lifetime."""
    settings = load(tmp_path, key_path)
    token = commands.mint(settings, now=NOW)
    header, claims = jwt.get_unverified_header(token), jwt.decode(
        token, options={"verify_signature": False})
    assert (header["kid"], claims["iss"], claims["sub"]) == (KEY_ID, TEAM_ID, SERVICES_ID)
    assert claims["exp"] - claims["iat"] == settings.schedule.secret_lifetime


def test_mint_refuses_several_connections_naming_each_choice(
    tmp_path: Path, key_path: Path
) -> None:
    """mint with two connections is refused, naming a --connection for each."""
    with pytest.raises(ConfigError, match=(
            r"mint prints one secret but 2 connections are configured \(a, b\); "
            "choose one with --connection a or --connection b")):
        commands.mint(load(tmp_path, key_path, ("a", "b")), now=NOW)


def test_check_metrics_path_refuses_a_missing_directory(tmp_path: Path) -> None:
    """A metrics file in a missing directory, or a directory itself, is refused up front."""
    commands.check_metrics_path(tmp_path / "rotator.prom")
    with pytest.raises(ConfigError, match=r"the directory .* does not exist"):
        commands.check_metrics_path(tmp_path / "nowhere" / "rotator.prom")
    with pytest.raises(ConfigError, match="is a directory; give the path of a regular file"):
        commands.check_metrics_path(tmp_path)


def test_summary_says_what_is_configured(tmp_path: Path, key_path: Path) -> None:
    """check-config's summary counts connections and tenants and names each credential's source."""
    lines = commands.summary(load(tmp_path, key_path))
    assert lines[0].startswith("configuration OK: 1 connection(s) on 1 tenant(s); ")
    assert lines[1] == (f"  apple on example.eu.auth0.com: Services ID {SERVICES_ID}, team "
                        f"{TEAM_ID}, key {KEY_ID}; asks https://appleid.apple.com/auth/token; "
                        "M2M client m2m authenticates with its client secret")
    assert lines[3] == (f"    M2M client secret from {tmp_path}/rotator.toml [auth0] "
                        f"client_secret_file ({tmp_path}/m2m_secret)")


def test_online_lines_pass_a_healthy_connection_and_fail_a_missing_scope() -> None:
    """check-config --online: a healthy outcome passes; a missing scope fails, naming it."""
    ok = Outcome(connection="apple", tenant="t.example", checked=True, live=True, due=False,
                 apple="accepted")
    lines, passed = commands.online_lines(Report([ok], at=NOW))
    assert passed
    assert lines == ["  online: apple on t.example: readable, writable options present, all "
                     "four scopes granted; Apple accepts the live secret and a secret minted now"]
    bad = Outcome(connection="apple", tenant="t.example", checked=True, live=True, due=False,
                  apple="accepted", missing_scopes=["update:connections"])
    lines, passed = commands.online_lines(Report([bad], at=NOW))
    assert not passed
    assert "FAILED: the token lacks update:connections" in lines[0]


# -- a --metrics-file refused before anything is contacted (the real CLI, the emulator) ------


def test_a_metrics_file_in_a_missing_directory_is_refused_before_any_contact(
    tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """A path whose directory does not exist: exit 2 naming it, Auth0 and Apple never asked."""
    tenant.add()
    prom = tmp_path / "no-such-dir" / "rotator.prom"
    run = run_rotator("run-once", "--config", str(tenant.write_config()),
                      "--metrics-file", str(prom))

    assert_refused(run, "--metrics-file", str(prom.parent), "does not exist",
                   secrets=[tenant.client_secret])
    assert tenant.emu.journal == []
    assert not prom.parent.exists()


def test_a_metrics_file_that_is_a_directory_is_refused_before_any_contact(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory given as the file: exit 2 naming --metrics-file, nothing contacted."""
    tenant.add()
    prom = tmp_path / "rotator.prom"
    prom.mkdir()
    run = run_cli("run-now", "--config", str(tenant.write_config()), "--metrics-file", str(prom),
                  capsys=capsys)

    assert_refused(run, "--metrics-file", str(prom))
    assert tenant.emu.journal == []


# -- check-config --online (commands.look) against the emulator --------------------------------


def test_check_config_online_reads_and_never_writes(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config --online fetches a token and reads each connection, writing nothing."""
    tenant.add(client_secret=None)
    code, out, _ = run_cli("check-config", "--online", "--config", str(tenant.write_config()),
                           capsys=capsys)
    assert code == 0, out
    assert [r.path for r in tenant.emu.journal if r.path == "/oauth/token"] == ["/oauth/token"]
    assert tenant.patches() == []


def test_check_config_online_fails_on_a_refused_token(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong M2M secret makes check-config --online exit 1 with the reason."""
    tenant.add(client_secret=None)
    config = tenant.write_config()
    tenant.secret_file.write_text("wrong-secret-value")
    code, out, _ = run_cli("check-config", "--online", "--config", str(config), capsys=capsys)
    assert code == 1
    assert "401" in out
    assert "wrong-secret-value" not in out


def test_check_config_online_names_a_missing_write_scope(
    emu: Emulator, tmp_path: Path, key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token without update:connections_options: check-config --online exits 1 naming it."""
    narrow = EmulatedTenant(
        emu, tmp_path, key_path,
        scopes=tuple(s for s in SCOPES if s != "update:connections_options"))
    narrow.add(client_secret=narrow.mint())
    code, out, _ = run_cli("check-config", "--online", "--config", str(narrow.write_config()),
                           capsys=capsys)
    assert code == 1
    assert "the token lacks update:connections_options" in out
    assert narrow.patches() == []


def test_check_config_online_reports_apples_verdict_on_each_live_secret(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config --online: accepted for a good live secret, FAILED for one Apple refuses."""
    tenant.add("apple-good", client_secret=tenant.mint())
    tenant.add("apple-bad", client_secret=tenant.mint(lifetime=200 * 86400))
    config = tenant.write_config([("apple-good", SERVICES_ID), ("apple-bad", SERVICES_ID)])
    code, out, _ = run_cli("check-config", "--online", "--config", str(config), capsys=capsys)
    assert code == 1
    good = next(line for line in out.splitlines() if "online: apple-good" in line)
    bad = next(line for line in out.splitlines() if "online: apple-bad" in line)
    assert "Apple accepts the live secret" in good
    assert "FAILED: Apple refused the live secret" in bad
    assert tenant.patches() == []


def test_check_config_online_shows_apple_a_fresh_secret_to_catch_a_mismatched_key(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new key id with the old key: the live secret still passes, a fresh one does not: exit 1."""
    tenant.add(client_secret=tenant.mint())
    _, new_key = other_key(tmp_path, "new.p8")
    tenant.emu.apple_register_key(TEAM_ID, "NEWKEY0001", new_key.public_key)
    config = tmp_path / "half-changed.toml"
    config.write_text(tenant.write_config().read_text()
                      .replace(f'key_id = "{KEY_ID}"', 'key_id = "NEWKEY0001"'))
    code, out, _ = run_cli("check-config", "--online", "--config", str(config), capsys=capsys)
    assert code == 1
    line = next(x for x in out.splitlines() if "online: apple" in x)
    assert "FAILED at apple_check" in line
    assert "Apple refuses a secret minted now" in line
    code, out, _ = run_cli("check-config", "--online", "--config", str(tenant.write_config()),
                           capsys=capsys)
    assert code == 0, out
    assert "Apple accepts the live secret and a secret minted now" in out
    assert tenant.patches() == []
