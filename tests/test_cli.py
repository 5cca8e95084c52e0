"""Tests for rotator.cli: help, version, lazy imports, mint and check-config end to end,
and what the first Ctrl-C says at a terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from auth0_env import EmulatedTenant
from conftest import (
    HEAVY,
    KEY_ID,
    PROBE,
    SERVICES_ID,
    TEAM_ID,
    at_terminal,
    child_env,
    finish,
    pem_lines,
    probe,
    run_rotator,
    wait_for,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey

from rotator import __version__
from rotator.emulator import Fault

COMMANDS = {
    "start": "run as a service",
    "run-once": "for cron",
    "run-now": "rotate every selected connection now",
    "status": "read-only",
    "mint": "print one fresh secret to stdout",
    "check-config": "validate configuration and key offline",
    "demo": "the whole flow on this machine",
}
M2M_SECRET = "m2m-Secret-Value-7f3a9c"  # distinctive, so a leak is easy to spot


def decode(token: str, key_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a secret, verified by joserfc with the key's public half."""
    private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    decoded = jose_jwt.decode(token, ECKey.import_key(public), algorithms=["ES256"])
    return dict(decoded.header), dict(decoded.claims)


@pytest.fixture
def full_env(apple_env: dict[str, str]) -> dict[str, str]:
    """A complete one-connection configuration in the environment, M2M secret included."""
    return {
        **apple_env,
        "AUTH0_DOMAIN": "example.eu.auth0.com",
        "AUTH0_CLIENT_ID": "m2m-client-id",
        "AUTH0_CLIENT_SECRET": M2M_SECRET,
        "AUTH0_CONNECTION": "apple",
    }


# --- help and version ----------------------------------------------------------------


def test_help_describes_rotator_and_its_commands() -> None:
    """`rotator --help` exits 0, says what rotator does and lists every command and exit code."""
    run = run_rotator("--help")
    assert run.code == 0, run.output
    assert run.stdout.startswith("usage: rotator")
    assert "Sign in with Apple" in run.stdout
    for command in COMMANDS:
        assert command in run.stdout
    assert "2 bad configuration or key" in run.stdout
    assert run.stderr == ""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_help_describes_itself(command: str) -> None:
    """`rotator COMMAND --help` exits 0 with that command's usage and summary."""
    run = run_rotator(command, "--help")
    assert run.code == 0, run.output
    assert run.stdout.startswith(f"usage: rotator {command}")
    assert COMMANDS[command] in " ".join(run.stdout.split())
    assert run.stderr == ""


def test_version_prints_the_version() -> None:
    """`rotator --version` prints "rotator <version>" and exits 0."""
    run = run_rotator("--version", process=True)
    assert run.code == 0, run.output
    assert run.stdout.strip() == f"rotator {__version__}"


def test_no_command_is_a_usage_error() -> None:
    """`rotator` with no command exits 2 with usage on stderr."""
    run = run_rotator(process=True)
    assert run.code == 2
    assert "usage: rotator" in run.stderr
    assert "Traceback" not in run.output


@pytest.mark.parametrize("args", [["--help"], ["mint"]], ids=["help", "mint"])
def test_help_and_mint_import_no_heavy_library(args: list[str], apple_env: dict[str, str]) -> None:
    """`rotator --help` and `rotator mint` import no auth0, apscheduler, prometheus or httpx."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        env={**os.environ, **apple_env}, capture_output=True, text=True, timeout=60, check=False,
    )
    probe = json.loads(proc.stderr.rsplit("PROBE ", 1)[1])
    assert probe["code"] == 0, proc.stderr
    modules = set(probe["modules"])
    assert "rotator.cli" in modules
    if args == ["mint"]:
        assert "rotator.secret" in modules
        assert proc.stdout.count(".") == 2
    assert not {m for m in modules if m.split(".")[0] in HEAVY}



def test_the_rotation_steps_import_no_network_library() -> None:
    """Importing the rotation steps, the check, the run and their wording loads no httpx."""
    code = ("import json, sys, rotator.rotation, rotator.check, rotator.runner, rotator.words; "
            "print(json.dumps(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    modules = set(json.loads(proc.stdout))
    assert "rotator.rotation" in modules
    assert not {m for m in modules if m.split(".")[0] in HEAVY}


def test_help_lists_emulator_without_importing_it() -> None:
    """`rotator --help` names the emulator command but imports no part of the emulator."""
    code, modules = probe(["--help"])
    assert code == 0
    assert not {m for m in modules if m.startswith("rotator.emulator")}


# --- mint -------------------------------------------------------------------------------


def test_mint_prints_one_verifiable_secret(apple_env: dict[str, str], key_path: Path) -> None:
    """`rotator mint` prints one secret joserfc verifies, for the configured ids, now - 60 s."""
    before = int(time.time())
    run = run_rotator("mint", env=apple_env, process=True)
    after = int(time.time())
    assert run.code == 0, run.output
    (token,) = run.stdout.splitlines()
    header, claims = decode(token, key_path)
    assert (header["alg"], header["kid"]) == ("ES256", KEY_ID)
    assert set(claims) == {"iss", "iat", "exp", "aud", "sub"}
    assert (claims["iss"], claims["sub"], claims["aud"]) == (
        TEAM_ID, SERVICES_ID, "https://appleid.apple.com")
    assert before - 60 <= claims["iat"] <= after - 60  # back-dated a minute
    assert claims["exp"] - claims["iat"] == 180 * 86400


def _console_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed `rotator` console script (what users run), output piped."""
    script = Path(sys.executable).with_name("rotator")
    return subprocess.run([str(script), *args], env=child_env(**env), capture_output=True,
                          text=True, timeout=60, check=False)


def test_console_script_mint_output_is_complete_through_a_pipe(
    apple_env: dict[str, str], key_path: Path
) -> None:
    """The console script's fast exit after mint loses nothing: the piped secret verifies."""
    run = _console_script("mint", env=apple_env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.endswith("\n")
    (token,) = run.stdout.splitlines()
    _, claims = decode(token, key_path)
    assert claims["sub"] == SERVICES_ID


def test_console_script_mint_error_still_exits_2_with_its_message(
    apple_env: dict[str, str],
) -> None:
    """A refused mint through the console script keeps exit 2 and its one-line message."""
    run = _console_script("mint", env={**apple_env, "APPLE_TEAM_ID": "short"})
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.startswith("rotator: error: ")
    assert "APPLE_TEAM_ID" in run.stderr


@pytest.mark.parametrize("source", ["file", "env"])
def test_mint_output_holds_no_key_material(
    apple_env: dict[str, str], key_path: Path, source: str
) -> None:
    """No line of the key appears in mint's output, whether the key came from a file or the env."""
    env = dict(apple_env)
    if source == "env":
        del env["APPLE_PRIVATE_KEY_FILE"]
        env["APPLE_PRIVATE_KEY"] = key_path.read_text()
    run = run_rotator("mint", "--log-level", "debug", env=env)
    assert run.code == 0, run.output
    decode(run.stdout.strip(), key_path)
    for line in pem_lines(key_path):
        assert line not in run.output
    assert "PRIVATE KEY" not in run.output


@pytest.mark.parametrize(
    ("layers", "lifetime"),
    [("file", 100 * 86400), ("file+env", 110 * 86400), ("file+env+flag", 120 * 86400)],
)
def test_mint_lifetime_precedence(
    apple_env: dict[str, str], key_path: Path, tmp_path: Path, layers: str, lifetime: int
) -> None:
    """secret_lifetime from the file is overridden by the environment, and that by the flag."""
    conf = tmp_path / "rotator.toml"
    conf.write_text('[schedule]\nsecret_lifetime = "100d"\n')
    env = {**apple_env, "ROTATOR_CONFIG": str(conf)}
    args = ["mint"]
    if "env" in layers:
        env["ROTATOR_SECRET_LIFETIME"] = "110d"
    if "flag" in layers:
        args += ["--secret-lifetime", "120d"]
    run = run_rotator(*args, env=env)
    assert run.code == 0, run.output
    _, claims = decode(run.stdout.strip(), key_path)
    assert claims["exp"] - claims["iat"] == lifetime


@pytest.fixture
def two_connections(tmp_path: Path, key_path: Path) -> Path:
    """A config file with two connections sharing one Apple key."""
    conf = tmp_path / "two.toml"
    conf.write_text(
        f'[apple]\nteam_id = "{TEAM_ID}"\nkey_id = "{KEY_ID}"\nprivate_key_file = "{key_path}"\n'
        f'[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n'
        '[[connections]]\nconnection = "apple-partner"\nclient_id = "com.example.partner"\n'
    )
    return conf


def test_mint_with_two_connections_needs_connection_flag(two_connections: Path) -> None:
    """mint with two connections and no --connection exits 2 naming both and the flag."""
    run = run_rotator("mint", "--config", str(two_connections))
    assert run.code == 2, run.output
    assert run.stdout == ""
    (line,) = run.stderr.strip().splitlines()
    assert "2 connections are configured (apple, apple-partner)" in line
    assert "choose one with --connection" in line
    assert "Traceback" not in run.output


def test_mint_connection_flag_picks_the_services_id(
    two_connections: Path, key_path: Path
) -> None:
    """mint --connection NAME signs for that connection's Services ID."""
    run = run_rotator("mint", "--config", str(two_connections), "--connection", "apple-partner")
    assert run.code == 0, run.output
    assert decode(run.stdout.strip(), key_path)[1]["sub"] == "com.example.partner"


def test_mint_refuses_an_unconfigured_connection(two_connections: Path) -> None:
    """mint --connection naming no configured connection exits 2 listing the configured ones."""
    run = run_rotator("mint", "--config", str(two_connections), "--connection", "google")
    assert run.code == 2, run.output
    assert "--connection 'google' is not configured; configured: apple, apple-partner" in (
        run.stderr)
    assert run.stdout == ""


def test_mint_needs_no_auth0_settings(apple_env: dict[str, str]) -> None:
    """mint works with the Apple side alone: no Auth0 domain, client or connection name."""
    assert not any(name.startswith("AUTH0_") for name in apple_env)
    assert run_rotator("mint", env=apple_env).code == 0


# --- check-config ----------------------------------------------------------------------


def test_check_config_output_holds_no_secret(full_env: dict[str, str], key_path: Path) -> None:
    """check-config exits 0 and prints neither the key nor the M2M client secret."""
    run = run_rotator("check-config", "--log-level", "debug", env=full_env, process=True)
    assert run.code == 0, run.output
    assert "configuration OK: 1 connection(s) on 1 tenant(s)" in run.stdout
    assert f"apple on example.eu.auth0.com: Services ID {SERVICES_ID}" in run.stdout
    assert M2M_SECRET not in run.output
    for line in pem_lines(key_path):
        assert line not in run.output


def test_check_config_with_secret_file_holds_no_secret(
    full_env: dict[str, str], key_path: Path, tmp_path: Path
) -> None:
    """With the M2M secret and the key both in files, neither reaches the output (0644 key too)."""
    secret_file = tmp_path / "m2m"
    secret_file.write_text(M2M_SECRET)
    env = {k: v for k, v in full_env.items() if k != "AUTH0_CLIENT_SECRET"}
    env["AUTH0_CLIENT_SECRET_FILE"] = str(secret_file)
    key_path.chmod(0o644)
    run = run_rotator("check-config", env=env)
    assert run.code == 0, run.output
    assert "chmod 600" in run.stderr
    assert M2M_SECRET not in run.output
    for line in pem_lines(key_path):
        assert line not in run.output


def test_check_config_warns_when_lifetime_leaves_no_drift(full_env: dict[str, str]) -> None:
    """check-config accepts a lifetime at Apple's limit but warns about clock drift."""
    run = run_rotator("check-config", "--secret-lifetime", "15777000", env=full_env)
    assert run.code == 0, run.output
    assert "leaves less than a day below Apple's limit" in run.stderr
    assert "secret_lifetime 262950m," in run.stdout  # 15,777,000 s


def test_check_config_default_lifetime_gives_no_warning(full_env: dict[str, str]) -> None:
    """With the default 180d lifetime check-config writes nothing to stderr."""
    run = run_rotator("check-config", env=full_env)
    assert run.code == 0, run.output
    assert run.stderr == ""
    assert "secret_lifetime 180d, rotate_every 30d, check_every 1h" in run.stdout


# --- common flags before or after the command ----------------------------------------


def test_common_flags_are_accepted_before_the_command(
    two_connections: Path, key_path: Path
) -> None:
    """`rotator --config X --connection NAME mint` works as `rotator mint --config X ...`."""
    before = run_rotator("--config", str(two_connections), "--connection", "apple-partner", "mint")
    assert before.code == 0, before.output
    assert decode(before.stdout.strip(), key_path)[1]["sub"] == "com.example.partner"


def test_a_flag_after_the_command_wins_and_connections_add_up(two_connections: Path) -> None:
    """--config after the command wins over one before; --connection before and after add up."""
    run = run_rotator("--config", "/nonexistent.toml", "--connection", "apple", "mint",
                      "--config", str(two_connections), "--connection", "apple-partner")
    assert run.code == 2, run.output  # both selected: mint needs exactly one
    assert "2 connections are configured (apple, apple-partner)" in run.stderr


def test_top_level_help_describes_the_common_flags() -> None:
    """`rotator --help` lists the common options and says they go before or after the command."""
    run = run_rotator("--help")
    assert run.code == 0, run.output
    assert "common options (accepted before or after the command)" in run.stdout
    for flag in ("--config", "--connection", "--log-format", "--log-level", "--deadline"):
        assert flag in run.stdout
    assert "[TENANT/]NAME" in run.stdout


def test_mint_with_one_name_in_two_tenants_suggests_each_tenant(
    tmp_path: Path, key_path: Path
) -> None:
    """mint --connection apple, apple in two tenants: exit 2 naming TENANT/apple for each."""
    conf = tmp_path / "tenants.toml"
    conf.write_text(
        f'[apple]\nteam_id = "{TEAM_ID}"\nkey_id = "{KEY_ID}"\nprivate_key_file = "{key_path}"\n'
        '[auth0]\nclient_id = "m2m"\n'
        f'[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n'
        'domain = "one.eu.auth0.com"\n'
        f'[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n'
        'domain = "two.eu.auth0.com"\n'
    )
    run = run_rotator("mint", "--config", str(conf), "--connection", "apple")
    assert run.code == 2, run.output
    (line,) = run.stderr.strip().splitlines()
    assert "connection 'apple' is configured in 2 tenants" in line
    assert ("choose one with --connection one.eu.auth0.com/apple or "
            "--connection two.eu.auth0.com/apple") in line

    picked = run_rotator("mint", "--config", str(conf), "--connection", "two.eu.auth0.com/apple")
    assert picked.code == 0, picked.output
    assert decode(picked.stdout.strip(), key_path)[1]["sub"] == SERVICES_ID


# --- Ctrl-C with a person at the terminal (stderr on a pty) or not -----------------------


def test_first_ctrl_c_says_what_is_finishing_and_the_second_stops_at_once(
    tenant: EmulatedTenant,
) -> None:
    """Ctrl-C while Apple is slow: a line naming apple and its step; a second Ctrl-C exits 130."""
    tenant.add()
    tenant.emu.inject(Fault(path="/auth/token", delay=30))
    with at_terminal("run-now", "--config", str(tenant.write_config())) as terminal:
        wait_for(lambda: ("POST", "/auth/token") in tenant.emu.in_flight(), 30,
                 "rotator asking Apple")
        terminal.process.send_signal(signal.SIGINT)
        wait_for(lambda: "Press Ctrl-C again" in terminal.text, 10, "the first Ctrl-C's line")
        assert terminal.process.poll() is None  # still finishing
        terminal.process.send_signal(signal.SIGINT)
        code, _ = finish(terminal, timeout=10)  # long before the 30 s answer

    assert code == 130, terminal.text
    assert "rotator: interrupted; finishing apple (at apple_check)" in terminal.text
    assert "stops before its write" in terminal.text


@pytest.mark.slow
def test_ctrl_c_off_a_terminal_prints_no_such_line(tenant: EmulatedTenant) -> None:
    """stderr on a pipe: a SIGINT stops the run as before, with no line meant for a person."""
    tenant.add()
    tenant.emu.inject(Fault(path="/auth/token", delay=2))
    process = subprocess.Popen(
        [sys.executable, "-m", "rotator", "run-now", "--config", str(tenant.write_config())],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(),
    )
    try:
        wait_for(lambda: ("POST", "/auth/token") in tenant.emu.in_flight(), 30,
                 "rotator asking Apple")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Press Ctrl-C again" not in err
    assert out.splitlines()[-1].endswith("0 failed, 1 interrupted"), out
