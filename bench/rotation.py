"""Benchmark: requests per rotation, and rate-limited runs on one tenant and on many.

Run with the project's virtualenv: ``.venv/bin/python bench/rotation.py``.

1. One ``rotator run-now`` over one connection against the emulator, counting
   the HTTP requests it sends (token, reads, writes, and Apple's: one about
   the live secret, one about the new one).
2. ``rotator run-now`` over N connections (default 50) on one tenant whose
   emulator enforces the free tier's Management API limit (a burst of 2, 2
   requests a second), with the Apple check on and, as the peer in the same
   run, off. The floor is the Management API request count less the burst,
   divided by the rate. Goal: wall <= 1.1 x floor, with the Apple check on.
3. Many tenants side by side: T tenants x M due connections (default 6 x 4 and
   20 x 5), each tenant its own emulator on the free-tier limit. The floor is
   the slowest tenant's (2M requests less the burst, at 2 a second); the peer
   is one such tenant alone, measured in the same run. Goal: wall <= 1.2 x the
   floor.

Every run starts the real console script as a process, the way cron runs it,
in one minimal environment built from nothing (``_env.py``; its keys are
printed), with bytecode cached in a temporary ``PYTHONPYCACHEPREFIX``. The
emulated tenants are set up by ``_setup.py`` (benchmarks never import the tests).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from _env import describe, minimal_env
from _setup import SERVICES_ID, BenchTenant

from rotator.emulator import Emulator
from rotator.secret import generate_throwaway_key

ROTATOR = str(Path(sys.executable).with_name("rotator"))
FREE_TIER = (2, 2.0)  # burst, requests a second


def span(emus: list[Emulator]) -> float:
    """Seconds from the run's first request to its last, from the emulators' journals.

    This is the run's work without the process's start-up (the interpreter and
    its imports take about a second here, whatever the run does).
    """
    times = [r.time for emu in emus for r in emu.journal]
    return max(times) - min(times)


def run_now(config: Path, env: dict[str, str]) -> float:
    """Wall seconds of ``rotator run-now``; stops the benchmark if it fails."""
    started = time.perf_counter()
    proc = subprocess.run(
        [ROTATOR, "run-now", "--config", str(config), "--log-format", "json"],
        capture_output=True, text=True, env=env, check=False, timeout=900,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"run-now exited {proc.returncode}")
    return wall


def count(emus: list[Emulator]) -> dict[str, int]:
    journal = [r for emu in emus for r in emu.journal]
    return {
        "token": sum(r.path == "/oauth/token" for r in journal),
        "read": sum(r.method == "GET" and r.path.startswith("/api/v2/") for r in journal),
        "write": sum(r.method == "PATCH" for r in journal),
        "apple": sum(r.path == "/auth/token" for r in journal),
        "429": sum(r.status == 429 for r in journal),
    }


def floor(connections: int) -> float:
    """Seconds one free-tier tenant needs for a read and a write per connection."""
    burst, rate = FREE_TIER
    return max(2 * connections - burst, 0) / rate


def verdict(ratio: float, goal: float) -> str:
    return f"goal <= {goal:.2f}: {'PASS' if ratio <= goal else 'MISS'}"


def tenants(tmp: Path, key: Path, stack: ExitStack, count_: int, each: int,
            limit: tuple[int, float] | None = FREE_TIER, apple: bool = True
            ) -> tuple[list[Emulator], Path, int]:
    """``count_`` emulated tenants with ``each`` due connections; their config; how many."""
    emus, body, first = [], "", None
    for n in range(count_):
        emu = stack.enter_context(Emulator())
        work = tmp / f"tenant-{n}"
        work.mkdir(parents=True)
        tenant = BenchTenant(emu, work, key)
        names = [f"apple-{i:03d}" for i in range(each)]
        for name in names:
            tenant.add(name, fresh=False)  # no secret yet: due
        if limit is not None:
            emu.set_rate_limit(*limit)
        emus.append(emu)
        own = tenant.write_config([(name, SERVICES_ID) for name in names],
                                  name="own.toml").read_text()
        if first is None:
            first = own.split("[[connections]]")[0]
            if not apple:
                first = first.replace("[apple]\n", "[apple]\ncheck = false\n")
        for name in names:
            body += (f'[[connections]]\nconnection = "{name}"\nclient_id = "{SERVICES_ID}"\n'
                     f'domain = "{emu.domain}"\nca_bundle = "{emu.ca_pem_path}"\n'
                     f'client_secret_file = "{tenant.secret_file}"\n'
                     + (f'token_url = "{emu.apple_token_url}"\n' if apple else "")
                     + f'[connections.auth0]\nclient_id = "{tenant.client_id}"\n\n')
    config = tmp / f"tenants-{count_}x{each}{'' if apple else '-noapple'}.toml"
    config.write_text(f"{first}\n{body}")
    return emus, config, count_ * each


def rotated_all(emus: list[Emulator], expected: int) -> None:
    done = sum(bool(c["options"].get("client_secret"))
               for emu in emus for c in (emu.connection(f"apple-{i:03d}")
                                          for i in range(expected // len(emus))))
    if done != expected:
        raise SystemExit(f"only {done} of {expected} connections rotated")


def describe_requests(c: dict[str, int], rotated: int, tenants_: int) -> str:
    per = (c["read"] + c["write"]) / max(rotated, 1)
    apple = c["apple"] / max(rotated, 1)
    return (f"requests: {c['token']} token, {c['read']} read, {c['write']} write "
            f"({per:.2f} Management API per connection, floor 2.00), {c['apple']} to Apple "
            f"({apple:.2f} per connection: the live secret and the new one), "
            f"{c['429']} answers 429; {tenants_} tenant(s)")


def one_connection(tmp: Path, key: Path, env: dict[str, str]) -> None:
    print("== one connection, no rate limit")
    with ExitStack() as stack:
        emus, config, n = tenants(tmp / "one", key, stack, 1, 1, limit=None)
        wall = run_now(config, env)
        rotated_all(emus, n)
        print(f"  {describe_requests(count(emus), n, 1)}; wall {wall:.2f} s")
        # Again with a live secret: now Apple is asked about it too.
        for emu in emus:
            emu.clear_journal()
        run_now(config, env)
        print(f"  with a live secret: {describe_requests(count(emus), n, 1)}")


def one_tenant(tmp: Path, key: Path, env: dict[str, str], connections: int) -> None:
    print(f"== {connections} connections, one tenant, free-tier limit (burst 2, 2/s)")
    results = {}
    for apple in (False, True):
        with ExitStack() as stack:
            work = tmp / f"many-{'apple' if apple else 'noapple'}"
            work.mkdir()
            emus, config, n = tenants(work, key, stack, 1, connections, apple=apple)
            wall = run_now(config, env)
            rotated_all(emus, n)
            results[apple] = wall
            label = "Apple check on " if apple else "Apple check off"
            ratio = wall / floor(connections)
            print(f"  {label}: wall {wall:.2f} s (the run's requests span {span(emus):.2f} s); "
                  f"floor {floor(connections):.2f} s; ratio {ratio:.3f} "
                  f"({verdict(ratio, 1.10)}); {describe_requests(count(emus), n, 1)}")
    print(f"  the Apple check costs {results[True] - results[False]:+.2f} s over "
          f"{connections} rotations (on loopback)")


def many_tenants(tmp: Path, key: Path, env: dict[str, str], shape: tuple[int, int]) -> None:
    count_, each = shape
    print(f"== {count_} tenants x {each} due connections, each tenant on the free-tier limit")
    with ExitStack() as stack:
        work = tmp / f"alone-{count_}x{each}"
        work.mkdir()
        emus, config, n = tenants(work, key, stack, 1, each)
        alone = run_now(config, env)
        alone_span = span(emus)
        rotated_all(emus, n)
    with ExitStack() as stack:
        work = tmp / f"tenants-{count_}x{each}"
        work.mkdir()
        emus, config, n = tenants(work, key, stack, count_, each)
        wall = run_now(config, env)
        work_span = span(emus)
        rotated_all(emus, n)
        ratio = work_span / floor(each)
        print(f"  process wall: one tenant alone {alone:.2f} s, all {count_} side by side "
              f"{wall:.2f} s (x{wall / alone:.2f}; one after another would be about "
              f"{alone * count_:.0f} s)")
        print(f"  the run's requests span: one alone {alone_span:.2f} s, all {count_} "
              f"{work_span:.2f} s; floor of the slowest tenant {floor(each):.2f} s; ratio "
              f"{ratio:.3f} ({verdict(ratio, 1.20)}); with start-up, {wall / floor(each):.3f}")
        print(f"  {describe_requests(count(emus), n, count_)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50,
                        help="connections on the one rate-limited tenant (default 50)")
    parser.add_argument("--tenants", default="6x4,20x5",
                        help="TxM shapes for the many-tenants runs (default 6x4,20x5)")
    args = parser.parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.tenants.split(",") if s]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        key = tmp / "AuthKey.p8"
        generate_throwaway_key(key)
        # One minimal environment, bytecode cached in the run's PYTHONPYCACHEPREFIX
        # (the first, one-connection run fills it).
        env = minimal_env(tmp, pycache=tmp / "pycache")
        print(describe(env, "rotator run-now"))
        one_connection(tmp, key, env)
        one_tenant(tmp, key, env, args.connections)
        for shape in shapes:
            many_tenants(tmp, key, env, (shape[0], shape[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
