"""Paths (rotator.paths): relative to the config file, or to the current folder; ~ expanded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from auth0_env import EmulatedTenant
from conftest import KEY_ID, SERVICES_ID, TEAM_ID, assert_refused, dump_hook, run_rotator

from rotator.paths import resolve


def _relative_setup(tenant: EmulatedTenant, tmp_path: Path) -> tuple[Path, Path]:
    """/srv-like folder: config, key, secret, CA and hook beside it, every path relative."""
    home = tmp_path / "srv" / "rotator"
    (home / "secrets").mkdir(parents=True)
    shutil.copy(tenant.key_path, home / f"AuthKey_{KEY_ID}.p8")
    (home / f"AuthKey_{KEY_ID}.p8").chmod(0o600)
    shutil.copy(tenant.secret_file, home / "secrets" / "m2m")
    shutil.copy(tenant.emu.ca_pem_path, home / "ca.pem")
    got = home / "hooked"
    dump_hook(home, f'cat > "{got}"\n')
    config = home / "rotator.toml"
    config.write_text(
        f'[auth0]\ndomain = "{tenant.emu.domain}"\nclient_id = "{tenant.client_id}"\n'
        'client_secret_file = "secrets/m2m"\nca_bundle = "./ca.pem"\n\n'
        f'[apple]\nteam_id = "{TEAM_ID}"\nkey_id = "{KEY_ID}"\n'
        f'private_key_file = "AuthKey_{KEY_ID}.p8"\ntoken_url = "{tenant.emu.apple_token_url}"\n\n'
        '[hooks]\npost_rotate = ["./hook.sh"]\n\n'
        f'[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n'
    )
    return config, got


@pytest.mark.parametrize("where", ["/", "elsewhere"])
def test_relative_paths_in_the_config_follow_the_config_file(
    tenant: EmulatedTenant, tmp_path: Path, where: str
) -> None:
    """Key, secret file, CA bundle and hook given relative work from / and from another folder."""
    conn = tenant.add()
    config, got = _relative_setup(tenant, tmp_path)
    cwd = Path("/") if where == "/" else tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    assert run_rotator("check-config", "--config", str(config), cwd=cwd).code == 0
    run = run_rotator("run-now", "--config", str(config), cwd=cwd)
    assert run.code == 0, run.output
    assert got.read_text().strip() == tenant.stored(conn["id"])["options"]["client_secret"]


def test_a_relative_config_path_is_taken_from_the_current_folder(
    tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """--config rotator.toml (a flag) is relative to the current folder; its own paths to it."""
    tenant.add()
    config, _ = _relative_setup(tenant, tmp_path)
    run = run_rotator("check-config", "--config", "rotator.toml", cwd=config.parent)
    assert run.code == 0, run.output


def test_tilde_in_a_file_value_and_in_a_variable(
    tenant: EmulatedTenant, tmp_path: Path, apple_env: dict[str, str]
) -> None:
    """`~/` in private_key_file and in APPLE_PRIVATE_KEY_FILE means the home folder."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(tenant.key_path, home / "key.p8")
    (home / "key.p8").chmod(0o600)
    mint = run_rotator("mint", env={**apple_env, "APPLE_PRIVATE_KEY_FILE": "~/key.p8",
                                    "HOME": str(home)}, cwd=Path("/"))
    assert mint.code == 0, mint.output
    config = tenant.write_config()
    config.write_text(config.read_text().replace(str(tenant.key_path), "~/key.p8"))
    assert "~/key.p8" in config.read_text()
    run = run_rotator("check-config", "--config", str(config), env={"HOME": str(home)})
    assert run.code == 0, run.output


def test_a_missing_file_is_named_by_its_absolute_path(
    tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """A relative path that does not exist: the message shows where it was looked for."""
    config, _ = _relative_setup(tenant, tmp_path)
    (config.parent / f"AuthKey_{KEY_ID}.p8").unlink()
    run = run_rotator("run-once", "--config", str(config), cwd=Path("/"))
    assert_refused(run, f"{config.parent}/AuthKey_{KEY_ID}.p8 does not exist")


def test_a_missing_file_from_a_variable_is_named_from_the_current_folder(
    apple_env: dict[str, str], tmp_path: Path
) -> None:
    """APPLE_PRIVATE_KEY_FILE=missing.p8: relative to the current folder, shown absolute."""
    run = run_rotator("mint", env={**apple_env, "APPLE_PRIVATE_KEY_FILE": "missing.p8"},
                      cwd=tmp_path)
    assert_refused(run, f"{tmp_path}/missing.p8 does not exist")


def test_a_missing_hook_and_ca_bundle_are_named_by_their_absolute_paths(
    tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """A relative hook or ca_bundle that is not there: the message shows its absolute path."""
    config, _ = _relative_setup(tenant, tmp_path)
    (config.parent / "hook.sh").unlink()
    assert_refused(run_rotator("check-config", "--config", str(config), cwd=Path("/")),
                   f"{config.parent}/hook.sh does not exist")
    (config.parent / "ca.pem").unlink()
    assert_refused(run_rotator("check-config", "--config", str(config), cwd=Path("/")),
                   f"{config.parent}/ca.pem does not exist")


def test_a_relative_metrics_file_is_shown_absolute(tenant: EmulatedTenant, tmp_path: Path) -> None:
    """--metrics-file in a missing folder, given relative: the message names it absolute."""
    run = run_rotator("run-once", "--config", str(tenant.write_config()), "--metrics-file",
                      "nowhere/rotator.prom", cwd=tmp_path)
    assert_refused(run, f"{tmp_path}/nowhere/rotator.prom")


def test_resolve_rules() -> None:
    """Absolute stays; relative joins the base (or the cwd); ~ expands; .. is folded."""
    assert resolve("/etc/x", Path("/srv")) == Path("/etc/x")
    assert resolve("a/../b", Path("/srv")) == Path("/srv/b")
    assert resolve("b", None) == Path(os.getcwd()) / "b"
    assert resolve("~/k", Path("/srv")) == Path.home() / "k"
    assert resolve("~nobody-such-user/k", Path("/srv")) == Path("/srv/~nobody-such-user/k")
