"""Benchmark: resident memory and idle CPU of `rotator start`.

Run with the project's virtualenv: ``.venv/bin/python bench/service.py``.

Starts the real ``rotator start`` as a process against the Auth0 emulator (one
connection, default ``check_every`` of 1 h), waits until ``/readyz`` answers
200 (the start-up check is done), then lets it idle for ``--idle`` seconds
(default 30) and reads its resident memory (VmRSS, VmHWM) and the CPU time it
used while idle from ``/proc``. The peer, measured the same way in the same
run, is a bare Python interpreter idling (``time.sleep``): the floor any
Python service starts from. Goals: RSS <= 60 MiB, idle CPU < 1 % of a core.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from auth0_env import Tenant  # noqa: E402

from rotator.emulator import Emulator  # noqa: E402
from rotator.secret import generate_throwaway_key  # noqa: E402

ROTATOR = str(Path(sys.executable).with_name("rotator"))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def measure(pid: int, idle: float) -> tuple[float, float, float]:
    """RSS MiB, peak RSS MiB, and CPU % of one core over ``idle`` seconds."""
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(idle)  # a benchmark of idleness: waiting is the measurement
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    return (status_kib(pid, "VmRSS") / 1024, status_kib(pid, "VmHWM") / 1024,
            100 * (cpu1 - cpu0) / (t1 - t0))


def wait_ready(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rotator start exited {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("rotator start did not become ready in time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTH0_", "APPLE_", "ROTATOR_"))}
    with tempfile.TemporaryDirectory() as tmp_name, Emulator() as emu:
        tmp = Path(tmp_name)
        key = tmp / "AuthKey.p8"
        generate_throwaway_key(key)
        tenant = Tenant(emu, tmp, key)
        tenant.add("apple", client_secret=None)
        port = free_port()
        config = tenant.write_config(extra=f'[server]\nlisten = "127.0.0.1:{port}"\n')
        service = subprocess.Popen(
            [ROTATOR, "start", "--config", str(config), "--log-format", "json"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        peer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        try:
            wait_ready(f"http://127.0.0.1:{port}/readyz", service, time.monotonic() + 60)
            print(f"rotator start is ready (first check done); idling {args.idle:g} s ...")
            cpu_peer0 = cpu_seconds(peer.pid)
            rss, peak, cpu = measure(service.pid, args.idle)
            peer_rss = status_kib(peer.pid, "VmRSS") / 1024
            peer_cpu = 100 * (cpu_seconds(peer.pid) - cpu_peer0) / args.idle
        finally:
            service.send_signal(signal.SIGTERM)
            peer.kill()
            code = service.wait(timeout=15)
            peer.wait()
    print(f"{'process':<28}{'RSS MiB':>9}{'peak MiB':>10}{'idle CPU %':>12}")
    print(f"{'rotator start':<28}{rss:>9.1f}{peak:>10.1f}{cpu:>12.2f}")
    print(f"{'peer: bare python sleeping':<28}{peer_rss:>9.1f}{'':>10}{peer_cpu:>12.2f}")
    print(f"RSS ratio rotator/peer: {rss / peer_rss:.2f}")
    print(f"RSS goal <= 60 MiB: {'PASS' if rss <= 60 else 'MISS'}; "
          f"idle CPU goal < 1 %: {'PASS' if cpu < 1 else 'MISS'}; "
          f"SIGTERM exit code {code}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
