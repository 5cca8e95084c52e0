"""rotator with a person at the terminal: stderr on a pseudo-terminal, stdout on a pipe.

What differs from a run under cron or systemd: the log shows warnings and
errors only (unless ``--log-level`` asks for more), and the first Ctrl-C says
what is being finished and that a second one stops at once. Each test runs the
real ``python -m rotator`` process against the emulator.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from auth0_env import EmulatedTenant
from conftest import run_rotator, wait_for

from rotator.emulator import Fault

_PREFIXES = ("AUTH0_", "APPLE_", "ROTATOR_")


@dataclass
class Terminal:
    """A running rotator whose stderr is a pseudo-terminal; what it has written so far."""

    process: subprocess.Popen[str]
    master: int
    chunks: list[bytes] = field(default_factory=list)

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    def read_until_closed(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                if self.process.poll() is not None:
                    return
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: every writer of the terminal is gone
                return
            if not data:
                return
            self.chunks.append(data)


@contextmanager
def at_terminal(*args: str) -> Iterator[Terminal]:
    """``python -m rotator ARGS`` with stderr on a pty and stdout on a pipe."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    env.pop("SSL_CERT_FILE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "rotator", *args], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=slave, env=env, text=True,
    )
    os.close(slave)
    terminal = Terminal(process, master)
    reader = threading.Thread(target=terminal.read_until_closed, daemon=True)
    reader.start()
    try:
        yield terminal
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        reader.join(timeout=10)
        os.close(master)
        if process.stdout is not None:
            process.stdout.close()


def finish(terminal: Terminal, timeout: float = 60) -> tuple[int, str]:
    """Wait for the process; its exit code and stdout."""
    assert terminal.process.stdout is not None
    out = terminal.process.stdout.read()
    return terminal.process.wait(timeout=timeout), out


def test_at_a_terminal_the_log_shows_warnings_but_not_info(tenant: EmulatedTenant) -> None:
    """run-once at a terminal: a warning (a group-readable key) shows, rotation.checked does not."""
    tenant.add()
    tenant.key_path.chmod(0o644)
    with at_terminal("run-once", "--config", str(tenant.write_config())) as terminal:
        code, out = finish(terminal)

    assert code == 0, terminal.text
    assert "chmod 600" in terminal.text
    assert "rotation.checked" not in terminal.text
    assert "{" not in terminal.text  # console lines, not JSON
    assert out.splitlines()[-1] == "1 connection: 0 rotated, 1 not due, 0 failed"


def test_at_a_terminal_log_level_info_asks_for_more(tenant: EmulatedTenant) -> None:
    """run-once --log-level info at a terminal: rotation.checked is shown after all."""
    tenant.add()
    with at_terminal("run-once", "--log-level", "info",
                     "--config", str(tenant.write_config())) as terminal:
        code, _ = finish(terminal)

    assert code == 0, terminal.text
    assert "rotation.checked" in terminal.text


def test_elsewhere_the_log_is_json_at_info(tenant: EmulatedTenant) -> None:
    """stderr not a terminal (cron, systemd; here a buffer): JSON lines, info included."""
    tenant.add()
    run = run_rotator("run-once", "--config", str(tenant.write_config()))
    assert run.code == 0, run.stderr
    assert '"event": "rotation.checked"' in run.stderr
    assert '"level": "info"' in run.stderr


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


def test_ctrl_c_off_a_terminal_prints_no_such_line(tenant: EmulatedTenant) -> None:
    """stderr on a pipe: a SIGINT stops the run as before, with no line meant for a person."""
    tenant.add()
    tenant.emu.inject(Fault(path="/auth/token", delay=2))
    process = subprocess.Popen(
        [sys.executable, "-m", "rotator", "run-now", "--config", str(tenant.write_config())],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)},
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

