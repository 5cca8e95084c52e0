"""One writer per connection on a host (rotator.lock): real processes, the emulator's journal."""

from __future__ import annotations

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
from auth0_env import EmulatedTenant
from conftest import ANY_PORT, assert_refused, child_env, dump_hook, named, run_rotator, wait_for

from rotator import lock, logs
from rotator.deadline import Deadline
from rotator.errors import ConfigError


def _recording_config(tenant: EmulatedTenant, tmp_path: Path) -> tuple[Path, Path]:
    """A config whose post_rotate hook appends each secret it is given to a file."""
    got = tmp_path / "hooked"
    hook = dump_hook(tmp_path, f'cat >> "{got}"\n')
    return tenant.write_config(extra=f'[hooks]\npost_rotate = ["{hook}"]\n'), got


@contextmanager
def _runs(n: int, args: list[str], tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen[bytes],
                                                                          Path]]]:
    """``n`` `rotator ARGS` processes started together, each logging JSON to a file.

    They outlive the block (see :func:`_finish`) unless it fails: then they are killed.
    """
    env = child_env()
    procs = []
    try:
        for i in range(n):
            err = tmp_path / f"stderr-{i}"
            with err.open("wb") as sink:
                procs.append((subprocess.Popen(
                    [sys.executable, "-m", "rotator", *args, "--log-format", "json"],
                    stdout=subprocess.DEVNULL, stderr=sink, stdin=subprocess.DEVNULL, env=env,
                ), err))
        yield procs
    except BaseException:
        for proc, _ in procs:
            proc.kill()
            proc.wait()
        raise


@contextmanager
def _held(lock_dir: Path, tenant: EmulatedTenant, ref: str = "apple") -> Iterator[None]:
    """The test itself holds the lock of ``ref`` on the emulated tenant."""
    with lock.Locks(lock_dir).hold(tenant.emu.domain, ref, Deadline(5), logs.get()) as waited:
        assert not waited
        yield


def _all_waiting(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> bool:
    return all(named(err.read_text(), "lock.waiting") for _, err in procs)


def _finish(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> list[tuple[int, str]]:
    return [(proc.wait(timeout=120), err.read_text()) for proc, err in procs]


def test_three_concurrent_run_once_write_once_and_hook_the_live_secret(
    tenant: EmulatedTenant, tmp_path: Path, lock_dir: Path
) -> None:
    """Three run-once on a due connection, started together: one PATCH, one hook, all exit 0."""
    conn = tenant.add(client_secret=tenant.mint(age=40 * 86400))
    config, got = _recording_config(tenant, tmp_path)
    with _held(lock_dir, tenant), _runs(3, ["run-once", "--config", str(config)], tmp_path) as runs:
        wait_for(lambda: _all_waiting(runs), 60, "all three runs to wait for the lock")
        for _, err in runs:
            [waiting] = named(err.read_text(), "lock.waiting")
            assert waiting["holder_pid"] == str(os.getpid()), "it names who holds the lock"
    results = _finish(runs)

    assert [code for code, _ in results] == [0, 0, 0], results
    assert len(tenant.patches()) == 1
    live = tenant.stored(conn["id"])["options"]["client_secret"]
    assert got.read_text().splitlines() == [live], "one hook run, with the secret that is live"
    assert sum(len(named(err, "secret.rotated")) for _, err in results) == 1


def _by_run(tenant: EmulatedTenant) -> list[tuple[str, str]]:
    """The journal as (run's bearer token, method) for each Management API request."""
    return [(r.headers["authorization"], r.method) for r in tenant.emu.journal
            if r.path.startswith("/api/v2/connections")]


def test_three_concurrent_run_now_never_interleave(
    tenant: EmulatedTenant, tmp_path: Path, lock_dir: Path
) -> None:
    """Three run-now together: no PATCH between another run's read and its PATCH; last hook live."""
    conn = tenant.add()
    config, got = _recording_config(tenant, tmp_path)
    with _held(lock_dir, tenant), _runs(3, ["run-now", "--config", str(config)], tmp_path) as runs:
        wait_for(lambda: _all_waiting(runs), 60, "all three runs to wait for the lock")
    results = _finish(runs)

    assert [code for code, _ in results] == [0, 0, 0], results
    journal = _by_run(tenant)
    assert len({run for run, _ in journal}) == 3, "three runs, each with its own token"
    for run in {run for run, _ in journal}:
        mine = [n for n, (who, _) in enumerate(journal) if who == run]
        [patch] = [n for n in mine if journal[n][1] == "PATCH"]
        between = journal[mine[0]:patch]
        assert ("PATCH" not in [method for who, method in between if who != run]), journal
    hooked = got.read_text().splitlines()
    assert len(hooked) == 3
    assert hooked[-1] == tenant.stored(conn["id"])["options"]["client_secret"]


def test_a_connection_named_by_name_and_by_id_shares_one_lock(
    tenant: EmulatedTenant, tmp_path: Path, lock_dir: Path
) -> None:
    """A run configured by name waits for a holder of the connection's con_ id, then reads again."""
    conn = tenant.add(client_secret=tenant.mint(age=40 * 86400))
    config, got = _recording_config(tenant, tmp_path)
    with _held(lock_dir, tenant, conn["id"]), \
            _runs(1, ["run-once", "--config", str(config)], tmp_path) as runs:
        wait_for(lambda: _all_waiting(runs), 60, "the run to wait for the con_ id's lock")
        [(_, err)] = runs
        assert named(err.read_text(), "lock.waiting")[0]["connection_ref"] == conn["id"]
        assert tenant.patches() == [], "nothing written while another run holds the id"
        fresh = tenant.mint()  # what "the other run" writes before it lets go
        tenant.emu.set_connection_options(conn["id"], {**tenant.stored(conn["id"])["options"],
                                                       "client_secret": fresh})
    [(code, err_text)] = _finish(runs)
    assert code == 0, err_text
    assert tenant.patches() == [], "it read again, saw the fresh secret, wrote nothing"
    assert not got.exists()


def test_a_run_killed_while_holding_the_lock_leaves_none_behind(
    tenant: EmulatedTenant, tmp_path: Path, lock_dir: Path
) -> None:
    """SIGKILL during the hook (the lock held): the next run takes the lock without waiting."""
    conn = tenant.add()
    marker = tmp_path / "hook-pid"
    hook = dump_hook(tmp_path,
                     f'[ -e "{marker}" ] && exit 0\necho $$ > "{marker}"\nexec sleep 60\n')
    config = tenant.write_config(extra=f'[hooks]\npost_rotate = ["{hook}"]\n')
    with _runs(1, ["run-now", "--config", str(config)], tmp_path) as runs:
        wait_for(lambda: marker.exists() and marker.read_text().strip(), 60, "the hook to run")
        [(proc, _)] = runs
        assert lock.Locks(lock_dir).path(tenant.emu.domain, "apple").exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    try:
        again = run_rotator("run-now", "--config", str(config), "--log-format", "json")
    finally:
        os.kill(int(marker.read_text()), signal.SIGKILL)  # the orphaned hook holds no lock
    assert again.code == 0, again.output
    assert not named(again.stderr, "lock.waiting")
    assert len(tenant.patches()) == 2
    assert tenant.stored(conn["id"])["options"]["client_secret"]


@pytest.mark.slow
def test_a_wait_ends_at_the_deadline_naming_the_holder(
    tenant: EmulatedTenant, tmp_path: Path, lock_dir: Path
) -> None:
    """A lock held for the whole deadline: exit 1 at step lock, naming the holder; no write."""
    tenant.add(client_secret=tenant.mint(age=40 * 86400))
    config = tenant.write_config()
    with _held(lock_dir, tenant):
        run = run_rotator("run-once", "--config", str(config), "--deadline", "2s",
                          "--log-format", "json")
    assert run.code == 1, run.output
    [waiting] = named(run.stderr, "lock.waiting")
    assert waiting["holder_pid"] == str(os.getpid())
    failed = named(run.stderr, "rotation.failed")[0]
    assert failed["step"] == "lock"
    assert "deadline" in failed["error"]
    assert tenant.patches() == []


def test_sigterm_cuts_a_lock_wait_short(
    tenant: EmulatedTenant, tmp_path: Path, lock_dir: Path
) -> None:
    """SIGTERM while waiting for the lock: exit 143 at once, nothing written."""
    tenant.add(client_secret=tenant.mint(age=40 * 86400))
    config = tenant.write_config()
    with _held(lock_dir, tenant), _runs(1, ["run-once", "--config", str(config)],
                                         tmp_path) as runs:
        wait_for(lambda: _all_waiting(runs), 60, "the run to wait for the lock")
        [(proc, err)] = runs
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143, err.read_text()
        assert time.monotonic() - asked < 5
    assert named(err.read_text(), "rotation.abandoned")
    assert tenant.patches() == []


@pytest.mark.parametrize("command", ["run-once", "run-now", "start", "check-config"])
def test_a_lock_folder_others_can_write_is_refused_before_contact(
    tenant: EmulatedTenant, lock_dir: Path, command: str
) -> None:
    """A lock folder writable by others: exit 2 naming it, nothing contacted."""
    tenant.add()
    lock_dir.chmod(0o777)
    run = run_rotator(command, "--config", str(tenant.write_config()))
    assert_refused(run, str(lock_dir), "can be written by others", "ROTATOR_LOCK_DIR")
    assert tenant.emu.journal == []


def test_a_lock_folder_of_another_user_is_refused(tenant: EmulatedTenant, lock_dir: Path) -> None:
    """A lock folder that belongs to someone else: exit 2 naming it and its owner."""
    tenant.add()
    if os.geteuid() != 0:
        pytest.fail("needs root to give the folder away; this suite runs as root in CI")
    os.chown(lock_dir, 65534, -1)
    run = run_rotator("run-once", "--config", str(tenant.write_config()))
    assert_refused(run, str(lock_dir), "belongs to uid 65534")
    assert tenant.emu.journal == []


def test_a_lock_folder_that_cannot_be_created_is_refused(
    tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """A lock folder under a file (as on a read-only system): exit 2 naming it."""
    tenant.add()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    run = run_rotator("run-once", "--config", str(tenant.write_config()),
                      env={"ROTATOR_LOCK_DIR": str(blocker / "locks")})
    assert_refused(run, str(blocker / "locks"), "cannot be created")
    assert tenant.emu.journal == []


def test_the_default_lock_folder_is_made_private(tmp_path: Path) -> None:
    """A missing folder is created mode 0700; the runtime dir's is the default."""
    from rotator.paths import lock_dir as choose

    folder, setting = choose({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert (folder, setting) == (tmp_path / "rotator", "XDG_RUNTIME_DIR")
    lock.prepare(folder, setting)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert choose({})[0] == Path(f"/tmp/rotator-{os.geteuid()}")
    assert choose({"ROTATOR_LOCK_DIR": "~/locks", "XDG_RUNTIME_DIR": "/run/user/1"})[0] \
        == Path.home() / "locks"


def test_a_file_is_not_a_lock_folder(tmp_path: Path) -> None:
    """A lock folder that is a file: refused, naming it."""
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(ConfigError, match=f"{path} .* is not a folder"):
        lock.prepare(path)


def test_lock_file_names_are_bounded_and_distinct() -> None:
    """A lock file name is safe, bounded, and one per (tenant, connection) pair."""
    a = lock.file_name("example.eu.auth0.com", "apple/../x")
    assert "/" not in a
    assert len(a) < 150
    assert lock.file_name("t", "a_b") != lock.file_name("t", "a/b")
    assert lock.file_name("t", "x" * 1000) != lock.file_name("t", "x" * 999)
    assert len(lock.file_name("t", "x" * 1000)) < 150


@pytest.mark.slow
def test_a_check_of_start_takes_the_same_lock(tenant: EmulatedTenant, lock_dir: Path) -> None:
    """`rotator start`'s check waits on the lock a manual run holds; nothing is written."""
    from rotator import config
    from rotator.service import Service

    tenant.add(client_secret=tenant.mint(age=40 * 86400))
    # 2 s: the network sides are imported before the deadline starts (Pool.load), so
    # the lock is reached at once and the rest of the deadline is the wait.
    settings = config.load(config.Overrides(config=str(tenant.write_config()), deadline="2s",
                                            listen=ANY_PORT))
    service = Service(settings)
    try:
        with _held(lock_dir, tenant):
            [outcome] = service.check().outcomes
    finally:
        service.server.stop()
        service.pool.close()
    assert outcome.step == "lock", outcome
    assert "deadline" in (outcome.error or "")
    assert tenant.patches() == []
