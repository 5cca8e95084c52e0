"""Core dumps are off in every command that holds secrets (issue 19).

Read from outside, as an operator would: ``/proc/<pid>/limits`` of a running
``rotator start``; and ``PR_GET_DUMPABLE`` asked by the process itself after a
command ran (nothing outside can read that flag as root).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from auth0_env import EmulatedTenant
from conftest import ANY_PORT, child_env, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def core_limits(pid: int) -> tuple[str, str] | None:
    """The soft and hard "Max core file size" of ``pid``."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            soft, hard = line.split()[4:6]
            return soft, hard
    return None


def test_a_running_rotator_start_has_core_dumps_off(tenant: EmulatedTenant, tmp_path: Path) -> None:
    """`rotator start`: RLIMIT_CORE is 0 (soft and hard) while it runs."""
    tenant.add()
    config = tenant.write_config(extra=f'[server]\nlisten = "{ANY_PORT}"\n')
    env = child_env()
    log = tmp_path / "start.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rotator", "start", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    try:
        wait_for(lambda: proc.poll() is not None or b"scheduler.started" in log.read_bytes(),
                 30, "rotator start to start")
        assert proc.poll() is None, log.read_text()
        assert core_limits(proc.pid) == ("0", "0")
    finally:
        proc.kill()
        proc.wait()


PROBE = """
import ctypes, json, resource, sys
from rotator import cli
code = cli.main(sys.argv[1:])
libc = ctypes.CDLL(None)
print(json.dumps({"code": code, "dumpable": libc.prctl(3, 0, 0, 0, 0),
                  "core": resource.getrlimit(resource.RLIMIT_CORE)}), file=sys.stderr)
"""


@pytest.mark.parametrize("command", ["mint", "check-config"])
def test_a_command_leaves_its_process_undumpable_with_no_core_limit(
    command: str, apple_env: dict[str, str], tenant: EmulatedTenant
) -> None:
    """After a command starts: PR_GET_DUMPABLE is 0 and RLIMIT_CORE is (0, 0)."""
    config = tenant.write_config()
    args = [command] if command == "mint" else [command, "--config", str(config)]
    env = apple_env if command == "mint" else {}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60, check=False)
    probe = json.loads(done.stderr.strip().splitlines()[-1])
    assert probe == {"code": 0, "dumpable": 0, "core": [0, 0]}, done.stderr
