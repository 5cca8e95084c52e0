"""Start-up benchmark: `rotator mint` against the hand-run jsonwebtoken script.

Run with the project's virtualenv::

    .venv/bin/python bench/startup.py [--runs N] [--warmup N]

It makes a throwaway Apple key, checks that every program prints a valid
client secret, then times whole processes (what a user or a cron job waits
for): `rotator mint`, its peer `node bench/node/mint.js` and its floor
`python bench/floor/pyjwt_mint.py` (a bare PyJWT script: the least our own
libraries can do), in rotating order, and `rotator --help` on its own. Last
it lists the slowest imports on the mint path (``python -X importtime
.venv/bin/rotator mint``) and totals those of ``--help``.

Every process, rotator's and node's alike, runs in one minimal environment
built from nothing (``_env.py``: PATH, HOME, LANG, TMPDIR, the bytecode cache
and the four APPLE_* settings); the keys are printed with the figures.

It is a report, not a test: a MISS against a goal still exits 0. It exits 1
only when something could not be run or a secret did not verify.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from _env import describe, minimal_env

from rotator import secret

BENCH = Path(__file__).resolve().parent
NODE_DIR = BENCH / "node"
MINT_JS = NODE_DIR / "mint.js"
PYJWT_MINT = BENCH / "floor" / "pyjwt_mint.py"

TEAM_ID = "ABCDE12345"
KEY_ID = "ABC123DEFG"
SERVICES_ID = "com.example.webapp"
LIFETIME = 180 * 86400  # both programs' default
CLAIMS = {"iss", "iat", "exp", "aud", "sub"}
BACKDATE = 60  # the most iat may lie before now (rotator back-dates by a minute)

MINT_RATIO_GOAL = 1.0  # rotator mint / node mint.js, median of paired runs
MINT_RATIO_STRETCH = 0.8
HELP_GOAL_MS = 100.0  # rotator --help, median

# Modules that `rotator mint` has no need for: any of them on the mint path is
# a start-up regression worth a look. (PyJWT is one: its package imports
# urllib.request, http.client, ssl, email and cryptography.x509, and an ES256
# signature needs only cryptography's ec and hashes.)
HEAVY = (
    "jwt", "cryptography.x509", "structlog", "httpx", "auth0", "apscheduler",
    "prometheus_client", "trustme", "ssl", "http.client", "urllib.request", "email",
    "asyncio", "tomllib", "logging",
)
_IMPORT_LINE = re.compile(r"^import time:\s*(\d+)\s*\|\s*(\d+)\s*\|( *)(\S+)\s*$")


class BenchError(Exception):
    """Something could not be run or checked; the figures would mean nothing."""


def rotator_script() -> Path:
    """The installed console script next to this interpreter: what users run."""
    bindir = Path(sys.executable).parent
    for name in ("rotator", "rotator.exe"):
        if (bindir / name).exists():
            return bindir / name
    raise BenchError(
        f"no rotator console script in {bindir}; run this with the project's virtualenv "
        "python (.venv/bin/python) after `pip install -e .`"
    )


def node_command() -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise BenchError("node is not on PATH; install Node.js 18 or later")
    if not (NODE_DIR / "node_modules" / "jsonwebtoken").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            raise BenchError(f"{NODE_DIR}/node_modules is missing and npm is not on PATH")
        print(f"installing the node baseline: npm ci --prefix {NODE_DIR}", file=sys.stderr)
        done = subprocess.run(
            [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
            stdout=sys.stderr, check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"npm ci --prefix {NODE_DIR} failed (exit {done.returncode})")
    return [node, str(MINT_JS)]


def bench_env(scratch: Path, key_file: Path, node: str, pycache: Path | None) -> dict[str, str]:
    """The one environment of every timed process: minimal, plus the four APPLE_* settings.

    With ``pycache``, Python's bytecode cache is on and kept there: an
    installed rotator runs from the .pyc files pip wrote; without it
    (``--no-pyc-cache``: PYTHONDONTWRITEBYTECODE=1) every start of an editable
    install compiles rotator's own modules.
    """
    return minimal_env(
        scratch,
        programs=(node,),
        pycache=pycache,
        extra={
            "APPLE_TEAM_ID": TEAM_ID,
            "APPLE_KEY_ID": KEY_ID,
            "APPLE_PRIVATE_KEY_FILE": str(key_file),
            "APPLE_CLIENT_ID": SERVICES_ID,
        },
    )


def run(argv: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """Run one whole process; its wall time in seconds and its stdout."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {' / '.join(tail)}")
    return elapsed, done.stdout


def check_secret(name: str, token: str, public_key: Any) -> dict[str, Any]:
    """Verify one printed secret as Apple would; its claims, or BenchError."""
    token = token.strip()
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(
            token, public_key, algorithms=["ES256"], audience=secret.APPLE_AUDIENCE,
            issuer=TEAM_ID, options={"require": sorted(CLAIMS)},
        )
    except jwt.PyJWTError as exc:
        raise BenchError(f"{name} printed a secret that does not verify: {exc}") from None
    problems = []
    if header.get("alg") != "ES256" or header.get("kid") != KEY_ID:
        problems.append(f"header {header}")
    if set(claims) != CLAIMS:
        problems.append(f"claims {sorted(claims)} instead of {sorted(CLAIMS)}")
    if claims.get("sub") != SERVICES_ID:
        problems.append(f"sub {claims.get('sub')!r}")
    if claims["exp"] - claims["iat"] != LIFETIME:
        problems.append(f"lifetime {claims['exp'] - claims['iat']} s instead of {LIFETIME}")
    # PRODUCT.md: iat = now - 60 s (jsonwebtoken: now); a few seconds' slack for the run.
    if not -BACKDATE - 10 <= claims["iat"] - time.time() <= 2:
        problems.append(f"iat {claims['iat']} is neither now nor back-dated by {BACKDATE} s")
    if problems:
        raise BenchError(f"{name} printed a wrong secret: {'; '.join(problems)}")
    return claims


def p90(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def import_profile(argv: Sequence[str], env: dict[str, str],
                   cwd: Path) -> list[tuple[int, int, int, str]]:
    """(cumulative us, self us, depth, module) for every import of one command.

    ``argv`` is the console script and its arguments, run as
    ``python -X importtime SCRIPT ARGS``: exactly what the user runs.
    """
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        env=env, cwd=cwd, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"python -X importtime {' '.join(argv)} exited {done.returncode}")
    rows = []
    for line in done.stderr.splitlines():
        if match := _IMPORT_LINE.match(line):
            own, cumulative, indent, name = match.groups()
            rows.append((int(cumulative), int(own), len(indent) // 2, name))
    return rows


def import_total(rows: list[tuple[int, int, int, str]]) -> float:
    """Milliseconds of the top-level imports (each includes what it imported)."""
    return sum(cumulative for cumulative, _, depth, _ in rows if depth == 0) / 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="timed runs of each (default 21)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed runs of each first (default 2)")
    parser.add_argument("--no-pyc-cache", action="store_true",
                        help="set PYTHONDONTWRITEBYTECODE=1, so an editable install compiles "
                        "rotator's modules on every run (default: cache bytecode in a temporary "
                        "PYTHONPYCACHEPREFIX, as an installed package has it)")
    args = parser.parse_args(argv)
    if args.runs < 2 or args.warmup < 0:
        parser.error("--runs must be at least 2 and --warmup at least 0")

    rotator = [str(rotator_script())]
    node = node_command()
    node_version = subprocess.run(
        [node[0], "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="rotator-bench-") as tmp:
        cwd = Path(tmp)
        key_file = cwd / "AuthKey_ABC123DEFG.p8"
        secret.generate_throwaway_key(key_file)
        public_key = secret.load_key(key_file.read_bytes(), str(key_file)).public_key
        env = bench_env(cwd, key_file, node[0], None if args.no_pyc_cache else cwd / "pycache")
        mint = {"rotator mint": [*rotator, "mint"], "node mint.js": node,
                "PyJWT script": [sys.executable, str(PYJWT_MINT)]}
        help_argv = [*rotator, "--help"]

        for name, command in mint.items():
            check_secret(name, run(command, env, cwd)[1], public_key)
        if "usage: rotator" not in run(help_argv, env, cwd)[1]:
            raise BenchError("rotator --help printed no usage line")
        for _ in range(args.warmup):
            for command in (*mint.values(), help_argv):
                run(command, env, cwd)

        times: dict[str, list[float]] = {name: [] for name in mint}
        ratios, floor_ratios = [], []
        names = list(mint)
        for i in range(args.runs):
            order = names[i % 3:] + names[:i % 3]  # rotating: none always goes first
            trio = {name: run(mint[name], env, cwd)[0] for name in order}
            for name, seconds in trio.items():
                times[name].append(seconds)
            ratios.append(trio["rotator mint"] / trio["node mint.js"])
            floor_ratios.append(trio["rotator mint"] / trio["PyJWT script"])
        times["rotator --help"] = [run(help_argv, env, cwd)[0] for _ in range(args.runs)]
        imports = import_profile([*rotator, "mint"], env, cwd)
        help_imports = import_profile(help_argv, env, cwd)

    ms = {name: [t * 1000 for t in values] for name, values in times.items()}
    ratio = statistics.median(ratios)
    help_median = statistics.median(ms["rotator --help"])
    bytecode = "as the environment says" if args.no_pyc_cache else "cached"
    print(f"start-up, whole processes: {args.runs} runs each after {args.warmup} warm-up, "
          f"Python {sys.version.split()[0]} (bytecode {bytecode}), node {node_version}, "
          f"{os.cpu_count()} CPUs")
    print(describe(env, "rotator, node and the PyJWT script alike"))
    print(f"{'command':<16} {'median ms':>10} {'p90 ms':>8}")
    for name, values in ms.items():
        print(f"{name:<16} {statistics.median(values):>10.1f} {p90(values):>8.1f}")
    print()
    ratio_of_medians = statistics.median(ms["rotator mint"]) / statistics.median(ms["node mint.js"])
    print(f"mint ratio rotator/node (median of the runs' ratios): {ratio:.2f}   "
          f"goal <= {MINT_RATIO_GOAL:.1f}  {verdict(ratio <= MINT_RATIO_GOAL)}   "
          f"(stretch <= {MINT_RATIO_STRETCH:.1f} {verdict(ratio <= MINT_RATIO_STRETCH)}; "
          f"ratio of medians {ratio_of_medians:.2f})")
    print(f"mint ratio rotator/PyJWT script, the floor (median of the same runs): "
          f"{statistics.median(floor_ratios):.2f}")
    print(f"rotator --help median: {help_median:.1f} ms   goal <= {HELP_GOAL_MS:.0f} ms  "
          f"{verdict(help_median <= HELP_GOAL_MS)}")

    print()
    print("imports of `python -X importtime .venv/bin/rotator mint`, top 10 by cumulative time:")
    print(f"{'cumul ms':>9} {'self ms':>8}  module (indented by import depth)")
    for cumulative, own, depth, name in sorted(imports, reverse=True)[:10]:
        print(f"{cumulative / 1000:>9.1f} {own / 1000:>8.1f}  {'  ' * depth}{name}")
    seen = {name for _, _, _, name in imports}
    heavy = [m for m in HEAVY if m in seen]
    print(f"all imports of mint: {import_total(imports):.1f} ms in {len(imports)} modules; "
          f"of --help: {import_total(help_imports):.1f} ms in {len(help_imports)} modules")
    print(f"heavy modules on the mint path: {', '.join(heavy) if heavy else 'none'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench/startup.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
