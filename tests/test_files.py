"""Every file rotator reads is a regular file, opened without blocking and read bounded.

FIFOs (``mkfifo``) and private device nodes (``mknod`` in a temporary folder)
stand in for a wrong path: each is refused with exit 2 naming it, at once,
and the metrics file is written only over a regular file or nothing.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest
from auth0_env import EmulatedTenant
from conftest import assert_refused, run_rotator

from rotator import commands, files, metrics
from rotator.errors import ConfigError, RotatorError
from rotator.outcome import Outcome


def _fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


def _device(tmp_path: Path, name: str) -> Path:
    """A private character device node (like /dev/null: major 1, minor 3)."""
    path = tmp_path / name
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    return path


def _rewrite(config: Path, old: str, new: str) -> Path:
    config.write_text(config.read_text().replace(old, new))
    return config


@pytest.mark.parametrize("make", [_fifo, _device], ids=["fifo", "device"])
@pytest.mark.parametrize("which", ["config", "key", "m2m-secret", "ca-bundle"])
def test_a_special_file_in_place_of_a_file_is_refused_at_once(
    which: str, make: object, tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """A FIFO or device as config, key, M2M secret or CA bundle: exit 2 naming it, no hang."""
    special = make(tmp_path, f"special-{which}")  # type: ignore[operator]
    config = tenant.write_config()
    if which == "config":
        config = special
    else:
        was = {"key": tenant.key_path, "m2m-secret": tenant.secret_file,
               "ca-bundle": tenant.emu.ca_pem_path}[which]
        _rewrite(config, f'"{was}"', f'"{special}"')
    run = run_rotator("check-config", "--config", str(config), process=True, timeout=20)
    assert_refused(run, str(special), "not a regular file")
    assert tenant.emu.journal == []


@pytest.mark.parametrize("make", [_fifo, _device], ids=["fifo", "device"])
def test_a_metrics_file_that_is_not_a_regular_file_is_refused_untouched(
    make: object, tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """--metrics-file naming a FIFO or a device node: exit 2 before anything is contacted."""
    tenant.add()
    node = make(tmp_path, "rotator.prom")  # type: ignore[operator]
    before = node.lstat()
    run = run_rotator("run-once", "--config", str(tenant.write_config()),
                      "--metrics-file", str(node), process=True, timeout=20)
    assert_refused(run, "--metrics-file", str(node), "not a regular file")
    after = node.lstat()
    assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino,
                                                            before.st_rdev)
    assert tenant.emu.journal == []


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_metrics_file_at_a_host_device_is_refused(device: str) -> None:
    """``--metrics-file /dev/null`` (or /dev/zero) is refused by the check every run makes first.

    The check alone, never a whole run: were it to regress, a run as root would
    replace the host's own /dev/null (the private node above covers the run).
    """
    with pytest.raises(ConfigError, match=f"{device} is a character device, not a regular"):
        commands.check_metrics_path(Path(device))
    assert stat.S_ISCHR(os.stat(device).st_mode)


def test_writing_metrics_over_a_fifo_that_appeared_meanwhile_neither_blocks_nor_replaces(
    tmp_path: Path,
) -> None:
    """A FIFO put at the metrics path during the run: the write fails at once, FIFO intact."""
    fifo = _fifo(tmp_path, "rotator.prom")
    errors: list[Exception] = []

    def write() -> None:
        try:
            metrics.write_textfile(fifo, [Outcome(connection="apple", tenant="t")], now=1.0,
                                   success=True)
        except RotatorError as exc:
            errors.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(5)
    assert not writer.is_alive(), "writing the metrics file blocked on a FIFO"
    assert errors
    assert "FIFO" in str(errors[0])
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_reads_are_bounded_and_refuse_what_is_not_a_regular_file(tmp_path: Path) -> None:
    """read_bounded: a regular file's bytes; over the limit, a FIFO, /dev/zero: Unreadable."""
    small = tmp_path / "small"
    small.write_bytes(b"x" * 10)
    assert files.read_bounded(small, 10) == b"x" * 10
    with pytest.raises(files.Unreadable, match="larger"):
        files.read_bounded(small, 9)
    with pytest.raises(files.Unreadable, match="FIFO"):
        files.read_bounded(_fifo(tmp_path, "fifo"))
    with pytest.raises(files.Unreadable, match="character device"):
        files.read_bounded(Path("/dev/zero"))


@pytest.mark.parametrize("variable", ["APPLE_PRIVATE_KEY_FILE", "AUTH0_CLIENT_SECRET_FILE"])
def test_a_secret_file_at_dev_zero_is_refused_at_once(
    variable: str, apple_env: dict[str, str]
) -> None:
    """/dev/zero as a key or secret file: exit 2 naming the variable, read no further."""
    env = {**apple_env, "AUTH0_DOMAIN": "example.eu.auth0.com", "AUTH0_CLIENT_ID": "m2m",
           "AUTH0_CONNECTION": "apple", "AUTH0_CLIENT_SECRET": "m2m-secret-value", variable:
           "/dev/zero"}
    if variable == "AUTH0_CLIENT_SECRET_FILE":
        del env["AUTH0_CLIENT_SECRET"]
    began = time.monotonic()
    assert_refused(run_rotator("check-config", env=env), variable, "/dev/zero",
                   "character device")
    assert time.monotonic() - began < 10
