"""The one environment every benchmarked process runs in, rotator and its peer alike.

A benchmark that hands the caller's environment to its children measures the
caller's shell as much as the programs: ``NODE_EXTRA_CA_CERTS`` makes Node load
a CA bundle (30 to 80 ms) before it runs a line of the script,
``NODE_OPTIONS`` can preload modules, ``PYTHONDONTWRITEBYTECODE`` makes Python
compile rotator's modules on every start, ``PYTHONPATH``/``PYTHONHOME`` change
what is imported, ``SSL_CERT_FILE`` and proxies change what an HTTP client
loads. So the environment is built from nothing, the same for both sides of a
comparison, and its keys are printed with the figures.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

#: Directories searched for programs, after the interpreter's and node's own.
SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")

#: Prefixes and names of the caller's variables known to change how Python,
#: Node, OpenSSL or an HTTP client start; reported by name when dropped.
_INFLUENTIAL_PREFIXES = ("NODE_", "NPM_", "PYTHON", "SSL_", "OPENSSL_", "LD_", "MALLOC_",
                         "GLIBC_", "UV_", "ROTATOR_", "APPLE_", "AUTH0_", "LC_")
_INFLUENTIAL_SUFFIXES = ("_PROXY", "_CA_BUNDLE", "_CA_CERTS", "_CAINFO")
_INFLUENTIAL_NAMES = ("TZ", "LANG", "LANGUAGE", "VIRTUAL_ENV", "CONDA_PREFIX")


def minimal_env(
    scratch: Path,
    *,
    programs: tuple[str, ...] = (),
    pycache: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``PATH``, ``HOME``, ``LANG``, ``TMPDIR`` (+ ``PYTHONPYCACHEPREFIX``) and ``extra``.

    ``scratch`` is a directory of the run: an empty ``home`` and ``tmp`` are
    made in it, so nothing in the caller's home (``.npmrc``, a user site)
    takes part. ``programs`` are executables whose directories go first on
    ``PATH`` (default: this interpreter's). With ``pycache``, Python keeps its
    bytecode there (``PYTHONPYCACHEPREFIX``), as an installed package runs
    from the ``.pyc`` files pip wrote, and nothing is written into the source
    tree; without it, ``PYTHONDONTWRITEBYTECODE=1``, and an editable install
    recompiles rotator's own modules on every start.
    """
    home, tmp = scratch / "home", scratch / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    dirs: list[str] = []
    for program in (sys.executable, *programs):
        folder = str(Path(program).parent)
        if folder not in dirs:
            dirs.append(folder)
    dirs += [d for d in SYSTEM_PATH if d not in dirs and Path(d).is_dir()]
    env = {
        "PATH": os.pathsep.join(dirs),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(tmp),
    }
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env.update(extra or {})
    return env


def _influential(name: str) -> bool:
    upper = name.upper()
    return (upper.startswith(_INFLUENTIAL_PREFIXES) or upper.endswith(_INFLUENTIAL_SUFFIXES)
            or upper in _INFLUENTIAL_NAMES)


def describe(env: Mapping[str, str], who: str = "every measured process") -> str:
    """Two lines for the report: the keys used, and what was dropped from the caller's."""
    dropped = sorted(k for k in os.environ if k not in env or os.environ[k] != env[k])
    notable = [k for k in dropped if _influential(k)]
    line = f"environment of {who}: {' '.join(sorted(env))}"
    if dropped:
        line += (f"\n  not passed on from the caller's environment (or replaced): "
                 f"{len(dropped)} variable(s)"
                 + (f", among them {' '.join(notable)}" if notable else ""))
    return line
