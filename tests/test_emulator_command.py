"""Tests for `rotator emulator`: serving from any install, --write-config, the trap states.

Each emulator runs as a child process (`python -m rotator emulator`, what the
console script runs) in one folder; rotator's commands run from another, as a
user in a second shell would. The state flags start the emulator in the
states the README warns about; each must give the failure the README lists.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import Run, run_rotator

from rotator.emulator import cli as emulator_cli
from rotator.emulator import tryout

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends signals")
HEAVY = ("auth0", "apscheduler", "prometheus_client", "httpx")
PROBE = """
import json, sys
from rotator.cli import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as exc:
    code = exc.code
print("PROBE " + json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


@contextmanager
def emulator(folder: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`rotator emulator ARGS` started in ``folder``; its output up to "Ctrl-C to stop."."""
    folder.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen(
        [sys.executable, "-m", "rotator", "emulator", *args], cwd=folder,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            lines: list[str] = []
            deadline = time.monotonic() + 60
            while not lines or not lines[-1].startswith("Ctrl-C"):
                assert time.monotonic() < deadline, lines
                line = proc.stdout.readline()
                assert line, "".join(lines) + (proc.stderr.read() if proc.stderr else "")
                lines.append(line)
            yield proc, "".join(lines)
        finally:
            if proc.poll() is None:
                proc.kill()


def stop(proc: subprocess.Popen[str], signum: int) -> int:
    """Send ``signum`` and return the exit code (within a deadline)."""
    proc.send_signal(signum)
    return proc.wait(timeout=15)


def elsewhere(tmp_path: Path, *args: str) -> Run:
    """A rotator command run from a folder that is not the configuration's."""
    other = tmp_path / "elsewhere"
    other.mkdir(exist_ok=True)
    return run_rotator(*args, cwd=other)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """One `rotator emulator --write-config PATH` for the module: the path and what it printed."""
    home = tmp_path_factory.mktemp("served")
    config = home / "try" / "rotator.toml"
    with emulator(home, "--write-config", "try/rotator.toml") as (proc, printed):
        yield config, printed
        assert stop(proc, signal.SIGTERM) == 0


def test_write_config_then_every_command_works_from_another_folder(
    served: tuple[Path, str], tmp_path: Path,
) -> None:
    """check-config --online, run-now and status --config PATH succeed from another folder."""
    config, printed = served
    assert f"config:        {config}" in printed
    secret = (config.parent / tryout.CLIENT_SECRET_FILE).read_text(encoding="utf-8").strip()
    assert secret not in printed
    checked = elsewhere(tmp_path, "check-config", "--online", "--config", str(config))
    assert checked.code == 0, checked.output
    assert "all four scopes granted" in checked.stdout
    rotated = elsewhere(tmp_path, "run-now", "--config", str(config))
    assert rotated.code == 0, rotated.output
    status = elsewhere(tmp_path, "status", "--json", "--config", str(config))
    assert status.code == 0, status.output
    [row] = json.loads(status.stdout)
    assert (row["connection"], row["apple"], row["kid"]) == ("apple", "accepted",
                                                             emulator_cli.SAMPLE_KEY)
    for run in (checked, rotated, status):
        assert secret not in run.output


def test_written_files_are_private_and_named_absolutely(served: tuple[Path, str]) -> None:
    """The config and its secrets beside it are mode 0600, and every path in it is absolute."""
    config, _ = served
    import tomllib

    data = tomllib.loads(config.read_text(encoding="utf-8"))
    named = [data["auth0"]["client_secret_file"], data["auth0"]["ca_bundle"],
             data["apple"]["private_key_file"]]
    for path in [str(config), *named]:
        assert Path(path).is_absolute(), path
        assert Path(path).parent == config.parent, path
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600, path
    assert "audience" not in data["auth0"]


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
            'connection = "apple"', f'connection = "{emulator_cli.CUSTOM_BESIDE_NATIVE}"')
        config.write_text(fixed, encoding="utf-8")
        again = elsewhere(tmp_path, "check-config", "--online", "--config", str(config))
        assert again.code == 0, again.output
        assert stop(proc, signal.SIGTERM) == 0


def test_custom_domain_fails_as_documented(tmp_path: Path) -> None:
    """--custom-domain: the token request is refused until auth0.audience is set."""
    config = tmp_path / "rotator.toml"
    with emulator(tmp_path, "--write-config", str(config), "--custom-domain") as (proc, printed):
        assert emulator_cli.CUSTOM_DOMAIN_AUDIENCE in printed
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


def test_write_config_never_overwrites_a_file_of_yours(tmp_path: Path) -> None:
    """--write-config over a file it did not write, or beside its files, exits 2 untouched."""
    mine = tmp_path / "rotator.toml"
    mine.write_text("[auth0]\n", encoding="utf-8")
    run = run_rotator("emulator", "--write-config", str(mine), process=True)
    assert run.code == 2, run.output
    assert "was not written by rotator emulator" in run.stderr
    assert mine.read_text(encoding="utf-8") == "[auth0]\n"
    (tmp_path / "sub").mkdir()
    secret = tmp_path / "sub" / tryout.CLIENT_SECRET_FILE
    secret.write_text("a real secret", encoding="utf-8")
    run = run_rotator("emulator", "--write-config", str(tmp_path / "sub" / "new.toml"),
                      process=True)
    assert run.code == 2, run.output
    assert "already exists beside it" in run.stderr
    assert secret.read_text(encoding="utf-8") == "a real secret"


def test_write_config_replaces_its_own_file(tmp_path: Path) -> None:
    """A second --write-config to the same path replaces what the first one wrote."""
    config = tmp_path / "rotator.toml"
    for _ in range(2):
        with emulator(tmp_path, "--write-config", str(config)) as (proc, printed):
            domain = printed.split("domain:", 1)[1].split()[0]
            written = config.read_text(encoding="utf-8")
            assert stop(proc, signal.SIGTERM) == 0
        assert written.startswith(tryout.MARK)
        assert f'domain = "{domain}"' in written


def probe(args: list[str]) -> tuple[int, set[str]]:
    """Run `rotator ARGS` in a fresh interpreter: its exit code and the modules it imported."""
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True,
                          text=True, timeout=60, check=False)
    found = json.loads(proc.stderr.rsplit("PROBE ", 1)[1])
    return found["code"], set(found["modules"])


def test_help_lists_emulator_without_importing_it() -> None:
    """`rotator --help` names the emulator command but imports no part of the emulator."""
    code, modules = probe(["--help"])
    assert code == 0
    assert not {m for m in modules if m.startswith("rotator.emulator")}


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
    parser = emulator_cli.build_parser()
    [commands] = [a for a in parser._actions if a.dest == "command"]
    serve = commands.choices["serve"]  # type: ignore[index]
    flags = [s for a in serve._actions for s in a.option_strings if s.startswith("--")]
    assert "--write-config" in flags
    helped = run_rotator("emulator", "--help")
    for flag in flags:
        assert flag in helped.stdout, flag


def test_write_config_with_private_key_jwt_works_from_another_folder(tmp_path: Path) -> None:
    """--client-auth private-key-jwt: the written config names the signing key, and works."""
    config = tmp_path / "rotator.toml"
    with emulator(tmp_path, "--write-config", str(config),
                  "--client-auth", "private-key-jwt") as (proc, _):
        text = config.read_text(encoding="utf-8")
        assert "client_assertion_signing_key_file" in text
        assert "client_secret_file" not in text
        key = tmp_path / tryout.SIGNING_KEY_FILE
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        checked = elsewhere(tmp_path, "check-config", "--online", "--config", str(config))
        assert checked.code == 0, checked.output
        assert stop(proc, signal.SIGTERM) == 0
