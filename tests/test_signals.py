"""Tests for rotator.signals: SIGTERM and SIGINT as a request to stop, for runs and the service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from auth0_env import EmulatedTenant
from conftest import child_env, dump_hook, named, wait_for

from rotator import secret, signals
from rotator.emulator import Fault


def _send_and_wait(sig: signal.Signals) -> None:
    """Send ``sig`` to this process and give its handler time to run."""
    os.kill(os.getpid(), sig)
    signal.sigtimedwait([], 0.5)  # an interruptible pause; the handler runs during it


def test_a_signal_sets_stop_and_is_recorded() -> None:
    """SIGTERM, then SIGTERM again: the stop event is set, both are recorded, nothing dies."""
    with signals.caught() as caught:
        assert not caught.stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        caught.wait(5)
        assert caught.stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
    assert caught.received == ["SIGTERM", "SIGTERM"]
    assert caught.first == "SIGTERM"


def test_a_second_sigint_insists() -> None:
    """The first SIGINT asks to stop; the second raises KeyboardInterrupt at once."""
    with signals.caught() as caught:
        os.kill(os.getpid(), signal.SIGINT)
        caught.wait(5)
        assert caught.stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            _send_and_wait(signal.SIGINT)
    assert caught.received == ["SIGINT", "SIGINT"]


def test_the_previous_handlers_come_back() -> None:
    """After the block, SIGTERM and SIGINT are handled as they were before it."""
    before = {sig: signal.getsignal(sig) for sig in signals.STOP_SIGNALS}
    with signals.caught():
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert {sig: signal.getsignal(sig) for sig in signals.STOP_SIGNALS} == before


def test_sighup_asks_for_a_reload_not_a_stop_when_hangup_is_caught() -> None:
    """With hangup=True, SIGHUP counts a reload and ends a wait, not stop; its handler is put
    back after."""
    before = signal.getsignal(signal.SIGHUP)
    with signals.caught(hangup=True) as caught:
        os.kill(os.getpid(), signal.SIGHUP)
        began = time.monotonic()
        caught.wait(30)
        assert time.monotonic() - began < 10  # ended by the signal, not the timeout
        assert caught.hangups == 1
        assert not caught.stop.is_set()
        assert caught.received == []
    assert signal.getsignal(signal.SIGHUP) == before


def test_a_wait_ends_at_its_timeout_when_no_signal_comes() -> None:
    """Caught.wait sleeps no longer than its timeout, and no shorter, with no signal."""
    with signals.caught() as caught:
        began = time.monotonic()
        caught.wait(0.2)
        assert 0.2 <= time.monotonic() - began < 5
        assert not caught.stop.is_set()


_TO_ANOTHER_THREAD = """
import signal, threading, time
from rotator import signals

main = threading.get_native_id()

def asleep() -> bool:  # the main thread's state in /proc: S while it sleeps in its wait
    with open(f"/proc/self/task/{main}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "S"

def worker() -> None:
    deadline = time.monotonic() + 20
    while not asleep() and time.monotonic() < deadline:
        pass
    # The kernel may hand a process's signal to any of its threads: here, this one.
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

with signals.caught() as caught:
    threading.Thread(target=worker).start()
    while not caught.stop.is_set():
        caught.wait(60)
print("stopped by", caught.first, flush=True)
"""


def test_a_signal_another_thread_receives_still_ends_the_main_threads_wait() -> None:
    """SIGTERM delivered to a worker thread ends the main thread's wait at once, not at its
    60 s timeout: the interpreter's wakeup fd, not the main thread's own interruption."""
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _TO_ANOTHER_THREAD], capture_output=True,
                          text=True, timeout=30, check=False)
    assert (done.returncode, done.stdout) == (0, "stopped by SIGTERM\n"), done.stderr
    assert time.monotonic() - began < 20


_WAITER = """
import sys
from rotator import signals
with signals.caught(hangup=True) as caught:
    print("ready", flush=True)
    answered = 0
    while not caught.stop.is_set():
        caught.wait(0.001)  # waits begin and end all the time: a signal lands anywhere
        answered = caught.hangups
print("stopped after", answered, "SIGHUPs", flush=True)
"""


def test_a_burst_of_signals_never_hangs_the_waiting_main_thread() -> None:
    """SIGHUPs for 1.5 s, then SIGTERM, at a main thread waiting for them: it stops.

    A handler that takes a lock the main thread holds (setting an Event the main
    thread waits on or clears) hangs the process for good when a signal lands
    at the wrong moment; a burst makes that moment come.
    """
    with subprocess.Popen([sys.executable, "-c", _WAITER], stdout=subprocess.PIPE,
                          text=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
            barrage = time.monotonic() + 1.5  # a burst, not a wait: signals all along
            while time.monotonic() < barrage:
                os.kill(proc.pid, signal.SIGHUP)
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
            assert proc.stdout.read().startswith("stopped after")
        finally:
            if proc.poll() is None:
                proc.kill()


# -- whole runs, as processes ------------------------------------------------------------


def signalled(tenant: EmulatedTenant, args: list[str], when: Any, what: str, signum: int
              ) -> tuple[int, str, float]:
    """Run ``rotator ARGS`` as a process, send ``signum`` once ``when()`` holds.

    Returns the exit code, stderr, and how long the process took after the signal.
    """
    env = child_env()
    proc = subprocess.Popen([sys.executable, "-m", "rotator", *args, "--log-format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(when, 20, what)
        asked = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
        return proc.returncode, err, time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_sigterm_while_the_patch_is_in_flight_finishes_the_rotation_then_says_so(
    tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """SIGTERM during the PATCH: the write completes, is logged and hooked; exit 143."""
    conn = tenant.add(client_secret=tenant.mint(age=40 * 86400))
    got = tmp_path / "got"
    hook = dump_hook(tmp_path, f'cat > "{got}"\n')
    config = tenant.write_config(extra=f'[hooks]\npost_rotate = ["{hook}"]\n')
    tenant.emu.inject(Fault(method="PATCH", delay=1.5))
    code, err, _ = signalled(
        tenant, ["run-once", "--config", str(config)],
        lambda: ("PATCH", f"/api/v2/connections/{conn['id']}") in tenant.emu.in_flight(),
        "the PATCH to be in flight", signal.SIGTERM)
    assert code == 143, err
    stored = tenant.stored(conn["id"])["options"]["client_secret"]
    [rotated] = named(err, "secret.rotated")
    assert rotated["fingerprint"] == secret.fingerprint(stored)
    assert got.read_text().strip() == stored


@pytest.mark.slow
def test_sigint_before_the_write_abandons_it(tenant: EmulatedTenant) -> None:
    """SIGINT while Apple is being asked: nothing is written, the log says so, exit 130."""
    old = tenant.mint(age=40 * 86400)
    conn = tenant.add(client_secret=old)
    tenant.emu.inject(Fault(path="/auth/token", delay=1.5, after=1))  # the new secret's check
    code, err, _ = signalled(
        tenant, ["run-now", "--config", str(tenant.write_config())],
        lambda: len([r for r in tenant.emu.journal if r.path == "/auth/token"]) == 1
        and tenant.emu.in_flight(), "the new secret's Apple check in flight", signal.SIGINT)
    assert code == 130, err
    assert tenant.patches() == []
    assert tenant.stored(conn["id"])["options"]["client_secret"] == old
    assert named(err, "rotation.abandoned")


def test_sigterm_cuts_a_retry_wait_short(tenant: EmulatedTenant) -> None:
    """SIGTERM while Apple's 503s are being waited out: the process ends at once, 143, no PATCH."""
    tenant.add(client_secret=None)
    tenant.emu.inject(Fault(path="/auth/token", status=503, retry_after=30, times=None))
    code, err, took = signalled(
        tenant, ["run-now", "--config", str(tenant.write_config())],
        lambda: [r for r in tenant.emu.journal if r.path == "/auth/token"],
        "the first answer from Apple (a 503 asking for 30 s)", signal.SIGTERM)
    assert code == 143, err
    assert took < 5
    assert tenant.patches() == []
    assert named(err, "rotation.abandoned")
