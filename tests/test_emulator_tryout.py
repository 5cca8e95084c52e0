"""Tests for rotator.emulator.tryout: the configuration `rotator emulator --write-config` writes.

Each emulator runs as a child process (`python -m rotator emulator`, what the
console script runs) in one folder; rotator's commands run from another, as a
user in a second shell would: the file and its secrets are private, named by
absolute paths, never written over a file of the user's.
"""

from __future__ import annotations

import json
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_rotator
from emulator_helpers import elsewhere, emulator, stop

from rotator.emulator import cli as emulator_cli
from rotator.emulator import tryout

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends signals")


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
