"""Tests for rotator.emulator.cli: `python -m rotator.emulator` (serving, --help, Apple keys
from another shell) and `rotator emulator`, the same serve from any install, in the trap
states the README warns about, each giving the failure the README lists.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import HEAVY, ROOT, probe, run_rotator
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from emulator_helpers import client_for, elsewhere, emulator, sample_emulator, serving, stop

from rotator import secret as rotator_secret
from rotator.emulator import Emulator, cli

TEAM, KID, SID = "CLITEAM001", "CLIKEY0001", "com.example.webapp"
CUSTOM_AUDIENCE = "https://tenant.emulated.auth0.com/api/v2/"
pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")


@contextmanager
def module_serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`python -m rotator.emulator ARGS` and the lines it printed up to "Ctrl-C to stop."."""
    with serving([sys.executable, "-m", "rotator.emulator", *args], ROOT) as started:
        yield started


def printed(lines: list[str]) -> dict[str, str]:
    """The printed `label: value` lines as a dict, each value without its remark."""
    pairs = (line.partition(":")[::2] for line in lines if ":" in line)
    return {label: value.strip().split("  (")[0] for label, value in pairs}


def key_path_of(apple_key_line: str) -> Path:
    """The PEM path of a printed `apple key` value (`team T, key K: PATH`)."""
    return Path(apple_key_line.split(": ", 1)[1])


def ask_apple(info: dict[str, str], shown: str, services_id: str = SID) -> httpx.Response:
    """Ask the served Apple about a secret, trusting only the printed CA bundle."""
    context = ssl.create_default_context(cafile=info["CA bundle"])
    form = {"client_id": services_id, "client_secret": shown,
            "grant_type": "authorization_code", "code": "made-up"}
    with httpx.Client(verify=context, timeout=10) as client:
        return client.post(info["apple token"], data=form)


def mint(pem_path: Path, team: str, kid: str, services_id: str = SID) -> str:
    """A fresh secret from the private key at pem_path."""
    key = rotator_secret.load_key(pem_path.read_bytes(), str(pem_path))
    return rotator_secret.mint(key, team_id=team, key_id=kid, services_id=services_id,
                               lifetime=86400, now=int(time.time()))


def write_key(path: Path, public: bool = False) -> Path:
    """A fresh P-256 key as PEM at path: the private key, or only its public half."""
    rotator_secret.generate_throwaway_key(path)
    if public:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        path.with_suffix(".pub").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        return path.with_suffix(".pub")
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    """One emulator process with a given Apple public key and a custom audience."""
    private = tmp_path_factory.mktemp("keys") / "team.p8"
    public = write_key(private, public=True)
    args = ["serve", "--apple-key", f"{TEAM}:{KID}:{public}", "--services-id", SID,
            "--audience", CUSTOM_AUDIENCE]
    with module_serving(*args) as (proc, lines):
        yield printed(lines), private
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m rotator.emulator ARGS` from another shell, to completion."""
    return subprocess.run([sys.executable, "-m", "rotator.emulator", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)


def test_module_main_serves_until_interrupted() -> None:
    """`python -m rotator.emulator` prints how to reach it and exits 0 on Ctrl-C."""
    with module_serving() as (proc, lines):
        assert lines[0].startswith("domain:        localhost:")
        info = printed(lines)
        key_path = key_path_of(info["apple key"])
        assert info["apple key"].startswith(f"team {cli.SAMPLE_TEAM}, key {cli.SAMPLE_KEY}: ")
        shown = mint(key_path, cli.SAMPLE_TEAM, cli.SAMPLE_KEY)
        assert ask_apple(info, shown).json() == {"error": "invalid_grant"}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    assert not key_path.exists()
    assert not Path(info["admin file"]).exists()


def test_serve_options(served: tuple[dict[str, str], Path]) -> None:
    """serve registers the given Apple key and Services ID and serves the given audience."""
    info, private = served
    assert info["audience"] == CUSTOM_AUDIENCE
    assert info["apple key"].startswith(f"team {TEAM}, key {KID}: ")
    assert ask_apple(info, mint(private, TEAM, KID)).json() == {"error": "invalid_grant"}
    context = ssl.create_default_context(cafile=info["CA bundle"])
    form = {"grant_type": "client_credentials", "client_id": info["client id"],
            "client_secret": info["client secret"], "audience": CUSTOM_AUDIENCE}
    with httpx.Client(verify=context) as client:
        token = client.post(f"https://{info['domain']}/oauth/token", data=form)
    assert token.status_code == 200


def test_register_and_revoke_from_another_shell(
    served: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """apple-register and apple-revoke change the running emulator's Apple keys."""
    info, _ = served
    private = write_key(tmp_path / "new.p8")
    shown = mint(private, "NEWTEAM001", "NEWKEY0001", "com.example.new")
    assert ask_apple(info, shown, "com.example.new").json() == {"error": "invalid_client"}
    registered = run_module("apple-register", "--admin-file", info["admin file"], "NEWTEAM001",
                         "NEWKEY0001", str(private), "--services-id", "com.example.new")
    assert registered.returncode == 0, registered.stderr
    assert "registered key NEWKEY0001 of team NEWTEAM001" in registered.stdout
    assert ask_apple(info, shown, "com.example.new").json() == {"error": "invalid_grant"}
    revoked = run_module("apple-revoke", "NEWKEY0001", "--admin-file", info["admin file"])
    assert (revoked.returncode, revoked.stdout) == (0, "revoked key NEWKEY0001\n")
    refused = ask_apple(info, shown, "com.example.new")
    assert refused.json() == {"error": "invalid_client"}
    assert refused.headers["x-emulator-reason"] == "kid is a revoked key"


def test_cli_errors(
    served: tuple[dict[str, str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refusals and an unreachable emulator exit 1 with one line; a bad PEM exits 2."""
    info, _ = served
    admin_file = info["admin file"]
    assert cli.main(["apple-revoke", "NOSUCHKEY1", "--admin-file", admin_file]) == 1
    assert "no key 'NOSUCHKEY1' is registered" in capsys.readouterr().err
    forged = tmp_path / "admin.json"
    forged.write_text(json.dumps(json.loads(Path(admin_file).read_text()) | {"token": "x"}))
    assert cli.main(["apple-revoke", "NOSUCHKEY1", "--admin-file", str(forged)]) == 1
    assert "admin token required" in capsys.readouterr().err
    assert cli.main(["apple-revoke", "K", "--admin-file", str(tmp_path / "missing")]) == 1
    assert "No such file" in capsys.readouterr().err
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    with pytest.raises(SystemExit) as exited:
        cli.main(["apple-register", "T", "K", str(not_pem), "--admin-file", admin_file])
    assert exited.value.code == 2
    assert "not a PEM" in capsys.readouterr().err


def test_help_does_not_start_a_server() -> None:
    """`python -m rotator.emulator --help` prints the commands and exits without serving."""
    helped = run_module("--help")
    assert helped.returncode == 0
    assert helped.stdout.startswith("usage: python -m rotator.emulator")
    for command in cli.COMMANDS:
        assert command in helped.stdout
    assert "domain:" not in helped.stdout


@pytest.mark.parametrize("command", [[], *([c] for c in cli.COMMANDS)])
def test_every_help_works_offline(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each command's --help prints its usage and starts nothing."""

    def refuse(self: Emulator) -> Emulator:
        raise AssertionError("--help started an emulator")

    monkeypatch.setattr(Emulator, "start", refuse)
    with pytest.raises(SystemExit) as exited:
        cli.main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: python -m rotator.emulator" in capsys.readouterr().out


def test_admin_endpoints_need_the_token() -> None:
    """The admin endpoints answer 401 without the token, and 400/404/201 with it."""
    with sample_emulator() as emu:
        with client_for(emu) as http:
            keys = "/_emulator/apple/keys"
            assert http.post(keys, json={}).status_code == 401
            auth = {"Authorization": f"Bearer {emu.admin_token}"}
            assert http.post(keys, json={"team_id": "T"}, headers=auth).status_code == 400
            assert http.delete(f"{keys}/NOPE", headers=auth).status_code == 404
            pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            body = {"team_id": "T", "key_id": "K", "public_key": pem.decode()}
            assert http.post(keys, json=body, headers=auth).status_code == 201
            assert http.delete(f"{keys}/K", headers=auth).json() == {"key_id": "K", "revoked": True}
            ids = {"team_id": "T", "services_id": "s"}
            assert http.post("/_emulator/apple/services-ids", json=ids).status_code == 401
        assert emu.journal == []


def test_serve_with_a_client_that_has_only_a_public_key(tmp_path: Path) -> None:
    """--client-auth private-key-jwt: no secret printed, a 0600 key file rotator can use."""
    args = ("--client-auth", "private-key-jwt", "--client-alg", "PS256")
    with module_serving(*args) as (proc, lines):
        info = printed(lines)
        assert "client secret" not in info
        key = Path(info["signing key"])
        assert "PS256" in "".join(lines)
        assert key.stat().st_mode & 0o777 == 0o600
        apple_key = key_path_of(info["apple key"])
        config = tmp_path / "rotator.toml"
        config.write_text(
            f'[auth0]\ndomain = "{info["domain"]}"\nclient_id = "{info["client id"]}"\n'
            f'client_assertion_signing_key_file = "{key}"\n'
            'client_assertion_signing_alg = "PS256"\n'
            f'ca_bundle = "{info["CA bundle"]}"\n'
            f'[apple]\nteam_id = "{cli.SAMPLE_TEAM}"\nkey_id = "{cli.SAMPLE_KEY}"\n'
            f'private_key_file = "{apple_key}"\ntoken_url = "{info["apple token"]}"\n'
            f'[[connections]]\nconnection = "apple"\nclient_id = "{cli.SAMPLE_SERVICES_ID}"\n')
        run = run_rotator("check-config", "--online", "--config", str(config))
        assert run.code == 0, run.output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert not key.exists()


# -- `rotator emulator`: the same serve from any install, its trap states ------------------


def test_ctrl_c_stops_it_with_exit_0(tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) stops a serving emulator; it exits 0."""
    with emulator(tmp_path) as (proc, printed):
        assert "domain:" in printed
        assert stop(proc, signal.SIGINT) == 0


def test_missing_scope_fails_as_documented(tmp_path: Path) -> None:
    """--missing-scope read:connections_options: check-config --online and run-now name it."""
    config = tmp_path / "rotator.toml"
    with emulator(tmp_path, "--write-config", str(config),
                  "--missing-scope", "read:connections_options") as (proc, printed):
        assert "(missing: read:connections_options)" in printed
        checked = elsewhere(tmp_path, "check-config", "--online", "--config", str(config))
        assert checked.code == 1, checked.output
        assert "came back without options" in checked.stdout
        rotated = elsewhere(tmp_path, "run-now", "--config", str(config))
        assert rotated.code == 1, rotated.output
        assert "came back without options" in rotated.stderr
        assert stop(proc, signal.SIGTERM) == 0


def test_native_apple_fails_as_documented(tmp_path: Path) -> None:
    """--native-apple: the config's 'apple' is the native connection, and rotator refuses it."""
    config = tmp_path / "rotator.toml"
    with emulator(tmp_path, "--write-config", str(config), "--native-apple") as (proc, _):
        checked = elsewhere(tmp_path, "check-config", "--online", "--config", str(config))
        assert checked.code == 1, checked.output
        assert "has strategy 'apple'" in checked.output
        fixed = config.read_text(encoding="utf-8").replace(
            'connection = "apple"', f'connection = "{cli.CUSTOM_BESIDE_NATIVE}"')
        config.write_text(fixed, encoding="utf-8")
        again = elsewhere(tmp_path, "check-config", "--online", "--config", str(config))
        assert again.code == 0, again.output
        assert stop(proc, signal.SIGTERM) == 0


def test_custom_domain_fails_as_documented(tmp_path: Path) -> None:
    """--custom-domain: the token request is refused until auth0.audience is set."""
    config = tmp_path / "rotator.toml"
    with emulator(tmp_path, "--write-config", str(config), "--custom-domain") as (proc, printed):
        assert cli.CUSTOM_DOMAIN_AUDIENCE in printed
        checked = elsewhere(tmp_path, "check-config", "--online", "--config", str(config))
        assert checked.code == 1, checked.output
        assert "looks like a custom domain" in checked.output
        config.write_text(config.read_text(encoding="utf-8").replace("# audience =", "audience ="),
                          encoding="utf-8")
        again = elsewhere(tmp_path, "check-config", "--online", "--config", str(config))
        assert again.code == 0, again.output
        assert stop(proc, signal.SIGTERM) == 0


@pytest.mark.parametrize("args", [
    ["--no-such-flag"],
    ["--missing-scope", "read:users"],
    ["--port", "many"],
], ids=["unknown-flag", "unknown-scope", "bad-port"])
def test_bad_usage_exits_2_and_serves_nothing(args: list[str]) -> None:
    """Bad usage of `rotator emulator` exits 2 with usage on stderr, serving nothing."""
    run = run_rotator("emulator", *args, process=True)
    assert run.code == 2, run.output
    assert "usage: rotator emulator" in run.stderr
    assert "domain:" not in run.stdout


def test_emulator_help_describes_its_flags_and_imports_nothing_heavy() -> None:
    """`rotator emulator --help` shows the state flags and imports no heavy library."""
    code, modules = probe(["emulator", "--help"])
    assert code == 0
    assert not {m for m in modules if m.split(".")[0] in HEAVY}
    assert "trustme" not in modules
    run = run_rotator("emulator", "--help")
    assert run.stdout.startswith("usage: rotator emulator")
    for flag in ("--write-config", "--missing-scope", "--native-apple", "--custom-domain"):
        assert flag in run.stdout


def test_every_serve_flag_of_the_emulator_is_a_flag_of_rotator_emulator() -> None:
    """`rotator emulator` is the emulator's own serve: each of its flags is in the help too."""
    parser = cli.build_parser()
    [commands] = [a for a in parser._actions if a.dest == "command"]
    serve = commands.choices["serve"]  # type: ignore[index]
    flags = [s for a in serve._actions for s in a.option_strings if s.startswith("--")]
    assert "--write-config" in flags
    helped = run_rotator("emulator", "--help")
    for flag in flags:
        assert flag in helped.stdout, flag
