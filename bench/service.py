"""Benchmark: resident memory and idle CPU of `rotator start`.

Run with the project's virtualenv: ``.venv/bin/python bench/service.py``.

1. **Idle after start-up.** Starts the real ``rotator start`` as a process
   against the Auth0 (and Apple) emulator, one connection holding no secret, so
   the start-up check rotates it; ``check_every`` is the default 1 h. Waits
   until ``/readyz`` answers 200 (the start-up check is done), lets it idle for
   ``--idle`` seconds (default 30) and reads its resident memory (VmRSS, VmHWM,
   RssAnon, RssFile), its thread count and the CPU time it used while idle from
   ``/proc``. Two more processes are measured the same way in the same run and
   the same environment: the peer, a bare Python interpreter idling
   (``time.sleep``), where any Python service starts from; and the floor our
   own libraries set, ``bench/floor/idle_libraries.py``, an idle process holding
   only auth0-python's client and a running APScheduler, what rotator start
   could not go below without dropping them.
2. **Soak.** A second ``rotator start`` on the same connection (now holding a
   fresh secret, so each check reads it, judges it and asks Apple) with
   ``check_every`` of 2 s, until ``--soak`` checks (default 10) are done: its
   RSS after the first and the last, which shows whether memory keeps growing
   check after check (a service runs hundreds of checks between restarts).

Both phases and the peer run in one minimal environment built from nothing
(see ``_env.py``), with bytecode cached in a temporary ``PYTHONPYCACHEPREFIX``;
an untimed warm-up start fills that cache first, as an installed package runs
from the ``.pyc`` files pip wrote. Goals: RSS <= 60 MiB (stretch 50), idle CPU
< 1 % of a core; the RSS goal is applied to both phases.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from _env import describe, minimal_env
from _setup import SERVICES_ID, BenchTenant, options

from rotator.emulator import Emulator
from rotator.secret import generate_throwaway_key

ROTATOR = str(Path(sys.executable).with_name("rotator"))
FLOOR = Path(__file__).resolve().parent / "floor" / "idle_libraries.py"
TICKS = os.sysconf("SC_CLK_TCK")
RSS_GOAL_MIB = 60.0
RSS_STRETCH_MIB = 50.0
CPU_GOAL_PERCENT = 1.0
SOAK_EVERY = "2s"


LISTEN = '[server]\nlisten = "127.0.0.1:0"\n'  # a port the system picks: no race


def launch(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """``rotator start`` and its /readyz URL, read from the address scheduler.started names.

    Its log is drained by a thread from then on, so a full pipe never stalls it.
    """
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith(b"{") and json.loads(line).get("event") == "scheduler.started":
            listen = json.loads(line)["listen"]
            break
    else:
        raise SystemExit(f"rotator start exited {proc.wait()} before scheduler.started")
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, f"http://{listen}/readyz"


def status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def mib(fields: dict[str, str], key: str) -> float:
    return int(fields[key].split()[0]) / 1024  # "12345 kB"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def wait_ready(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    # No proxy for a loopback probe, whatever this process's environment says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rotator start exited {proc.returncode}")
        try:
            with opener.open(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("rotator start did not become ready in time")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9


def reads(emu: Emulator) -> int:
    """Management API reads so far: one per connection and check."""
    return sum(r.method == "GET" and r.path.startswith("/api/v2/connections")
               for r in emu.journal)


def soak(emu: Emulator, argv: list[str], env: dict[str, str],
         checks: int) -> tuple[float, float, float]:
    """RSS MiB after the first and the last of ``checks`` checks, and the peak."""
    before = reads(emu)
    service, ready_url = launch(argv, env)
    try:
        wait_ready(ready_url, service, time.monotonic() + 60)
        first = mib(status(service.pid), "VmRSS")
        deadline = time.monotonic() + 30 + 5 * checks
        while reads(emu) - before < checks:
            if service.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"soak: only {reads(emu) - before} of {checks} checks ran")
            time.sleep(0.2)
        time.sleep(0.5)  # let the last check finish its Apple question and bookkeeping
        fields = status(service.pid)
        return first, mib(fields, "VmRSS"), mib(fields, "VmHWM")
    finally:
        stop(service)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=30.0, help="seconds idle (default 30)")
    parser.add_argument("--soak", type=int, default=10, metavar="N",
                        help=f"checks run {SOAK_EVERY} apart in the soak phase (default 10; "
                             "0 skips it)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the untimed start that fills the bytecode cache")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="add a variable to every measured process's environment, to try "
                        "a setting such as MALLOC_ARENA_MAX=2 (repeatable)")
    args = parser.parse_args()
    extra = dict(item.partition("=")[::2] for item in args.env)
    if not all(extra):
        parser.error("--env takes NAME=VALUE")
    with tempfile.TemporaryDirectory(prefix="rotator-bench-") as tmp_name, Emulator() as emu:
        tmp = Path(tmp_name)
        env = minimal_env(tmp, pycache=tmp / "pycache", extra=extra)
        print(describe(env, "rotator start and its peer alike"))
        key = tmp / "AuthKey.p8"
        generate_throwaway_key(key)
        tenant = BenchTenant(emu, tmp, key)
        tenant.add("apple", fresh=False)
        config = tenant.write_config([("apple", SERVICES_ID)], extra=LISTEN)
        argv = [ROTATOR, "start", "--config", str(config), "--log-format", "json"]
        if not args.no_warmup:
            warm, ready_url = launch(argv, env)
            try:
                wait_ready(ready_url, warm, time.monotonic() + 60)
            finally:
                stop(warm)
            emu.set_connection_options("apple", options(None))  # due again

        service, ready_url = launch(argv, env)
        peer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"],
                                env=env)
        floor = subprocess.Popen([sys.executable, str(FLOOR)], env=env)
        try:
            wait_ready(ready_url, service, time.monotonic() + 60)
            if not emu.connection("apple")["options"].get("client_secret"):
                raise SystemExit("the start-up check did not rotate the connection")
            print(f"rotator start is ready (first check done); idling {args.idle:g} s ...")
            pids = (service.pid, peer.pid, floor.pid)
            cpu0, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
            time.sleep(args.idle)  # a benchmark of idleness: waiting is the measurement
            cpu1, t1 = [cpu_seconds(p) for p in pids], time.monotonic()
            mine, theirs, floors = (status(p) for p in pids)
            if floor.poll() is not None:
                raise SystemExit(f"{FLOOR.name} exited {floor.returncode}")
        finally:
            code = stop(service)
            for other in (peer, floor):
                other.kill()
                other.wait()

        soaked = None
        if args.soak > 0:
            print(f"soak: rotator start with check_every {SOAK_EVERY}, {args.soak} checks ...")
            soak_config = tenant.write_config(
                [("apple", SERVICES_ID)], name="soak.toml",
                extra=f'{LISTEN}\n[schedule]\ncheck_every = "{SOAK_EVERY}"\n')
            soak_argv = [ROTATOR, "start", "--config", str(soak_config), "--log-format", "json"]
            soaked = soak(emu, soak_argv, env, args.soak)

    cpu, peer_cpu, floor_cpu = (100 * (b - a) / (t1 - t0) for a, b in zip(cpu0, cpu1,
                                                                           strict=True))
    rss, peer_rss, floor_rss = mib(mine, "VmRSS"), mib(theirs, "VmRSS"), mib(floors, "VmRSS")
    print(f"{'process':<28}{'RSS MiB':>9}{'peak MiB':>10}{'anon MiB':>10}{'file MiB':>10}"
          f"{'threads':>9}{'idle CPU %':>12}")
    for name, fields, used in (("rotator start", mine, cpu),
                               ("peer: bare python sleeping", theirs, peer_cpu),
                               ("floor: auth0 + APScheduler", floors, floor_cpu)):
        print(f"{name:<28}{mib(fields, 'VmRSS'):>9.1f}{mib(fields, 'VmHWM'):>10.1f}"
              f"{mib(fields, 'RssAnon'):>10.1f}{mib(fields, 'RssFile'):>10.1f}"
              f"{fields['Threads']:>9}{used:>12.2f}")
    print(f"RSS ratio rotator/peer: {rss / peer_rss:.2f}   rotator/floor: {rss / floor_rss:.2f} "
          f"({rss - floor_rss:+.1f} MiB above what auth0-python and APScheduler hold)")
    print(f"idle RSS {rss:.1f} MiB   goal <= {RSS_GOAL_MIB:.0f} MiB  "
          f"{verdict(rss <= RSS_GOAL_MIB)}   (stretch <= {RSS_STRETCH_MIB:.0f} MiB "
          f"{verdict(rss <= RSS_STRETCH_MIB)})")
    print(f"idle CPU {cpu:.2f} %   goal < {CPU_GOAL_PERCENT:.0f} %  "
          f"{verdict(cpu < CPU_GOAL_PERCENT)}")
    if soaked is not None:
        first, last, peak = soaked
        print(f"soak RSS after {args.soak} checks {last:.1f} MiB (after the first "
              f"{first:.1f}, {last - first:+.1f}; peak {peak:.1f})   goal <= "
              f"{RSS_GOAL_MIB:.0f} MiB  {verdict(last <= RSS_GOAL_MIB)}   (stretch <= "
              f"{RSS_STRETCH_MIB:.0f} MiB {verdict(last <= RSS_STRETCH_MIB)})")
    print(f"SIGTERM exit code {code}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
