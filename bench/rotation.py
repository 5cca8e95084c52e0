"""Benchmark: requests per rotation, and a 50-connection run under Auth0's free-tier limit.

Run with the project's virtualenv: ``.venv/bin/python bench/rotation.py``.

1. One ``rotator run-now`` over one connection against the emulator, counting
   the HTTP requests it sends (token, reads, writes).
2. ``rotator run-now`` over N connections (default 50) on one tenant whose
   emulator enforces the free tier's Management API limit (a burst of 2, 2
   requests a second). The floor is the Management API request count divided
   by the rate, less the burst; the peer measured in the same run is that
   floor. Printed: wall time, floor, ratio (goal <= 1.1), 429s seen.

Both runs start the real console script as a process, the way cron runs it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from auth0_env import SERVICES_ID, Tenant  # noqa: E402

from rotator.emulator import Emulator  # noqa: E402
from rotator.secret import generate_throwaway_key  # noqa: E402

ROTATOR = str(Path(sys.executable).with_name("rotator"))


def run_now(config: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTH0_", "APPLE_", "ROTATOR_"))}
    started = time.perf_counter()
    proc = subprocess.run(
        [ROTATOR, "run-now", "--config", str(config), "--log-format", "json"],
        capture_output=True, text=True, env=env, check=False, timeout=900,
    )
    return time.perf_counter() - started, proc


def count(emu: Emulator) -> dict[str, int]:
    journal = emu.journal
    return {
        "token": sum(r.path == "/oauth/token" for r in journal),
        "read": sum(r.method == "GET" and r.path.startswith("/api/v2/") for r in journal),
        "write": sum(r.method == "PATCH" for r in journal),
        "429": sum(r.status == 429 for r in journal),
        "api": sum(r.path.startswith("/api/v2/") for r in journal),
    }


def rotated(emu: Emulator, ids: list[str], before: dict[str, str]) -> int:
    return sum(emu.connection(i)["options"].get("client_secret") != before[i] for i in ids)


def scenario(tmp: Path, key: Path, n: int, limit: tuple[int, float] | None) -> None:
    with Emulator() as emu:
        tenant = Tenant(emu, tmp, key)
        names = [f"apple-{i:03d}" for i in range(n)]
        conns = [tenant.add(name) for name in names]
        before = {c["id"]: c["options"]["client_secret"] for c in conns}
        config = tenant.write_config([(name, SERVICES_ID) for name in names])
        if limit is not None:
            emu.set_rate_limit(*limit)
        wall, proc = run_now(config)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"run-now exited {proc.returncode}")
        c = count(emu)
        done = rotated(emu, [x["id"] for x in conns], before)
        per = (c["read"] + c["write"]) / max(done, 1)
        print(f"connections {n:>3}: rotated {done}/{n}; requests: {c['token']} token, "
              f"{c['read']} read, {c['write']} write ({per:.2f} per connection, floor 2.00), "
              f"429 answers: {c['429']}")
        if limit is None:
            print(f"                  wall {wall:.2f} s (no rate limit)")
            return
        burst, rate = limit
        floor_requests = 2 * n  # one read and one write per connection
        floor = max(floor_requests - burst, 0) / rate
        print(f"                  wall {wall:.2f} s; floor {floor:.2f} s "
              f"({floor_requests} Management API requests at {rate:g}/s after a burst of "
              f"{burst}); ratio {wall / floor:.3f} (goal <= 1.10: "
              f"{'PASS' if wall / floor <= 1.10 else 'MISS'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        key = tmp / "AuthKey.p8"
        generate_throwaway_key(key)
        print("== one connection, no rate limit")
        (tmp / "one").mkdir()
        scenario(tmp / "one", key, 1, None)
        print(f"== {args.connections} connections, one tenant, free-tier limit (burst 2, 2/s)")
        (tmp / "many").mkdir()
        scenario(tmp / "many", key, args.connections, (2, 2.0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
