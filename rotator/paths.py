"""Where a path given to rotator points (PRODUCT.md, "Paths").

A relative path from the configuration file (key and secret files,
``ca_bundle``, hook commands) is relative to the folder that holds that file,
because cron and systemd run rotator from ``/``; one from the environment or a
flag is relative to the current folder, as a shell user expects. A leading
``~`` is expanded either way. What comes out is absolute, so every message
about a file names the file itself, wherever rotator was started.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path


def resolve(value: str | os.PathLike[str], base: Path | None) -> Path:
    """``value`` as an absolute path: ``~`` expanded, relative to ``base`` (None: cwd)."""
    path = Path(value)
    with contextlib.suppress(RuntimeError):  # "~nobody": the message shows it as given
        path = path.expanduser()
    if not path.is_absolute():
        path = (base if base is not None else Path.cwd()) / path
    return Path(os.path.abspath(path))


def lock_dir(env: Mapping[str, str]) -> tuple[Path, str]:
    """The lock folder (PRODUCT.md, "One writer per connection"), and what chose it."""
    if env.get("ROTATOR_LOCK_DIR"):
        return resolve(env["ROTATOR_LOCK_DIR"], None), "ROTATOR_LOCK_DIR"
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "rotator", "XDG_RUNTIME_DIR"
    return Path(f"/tmp/rotator-{os.geteuid()}"), "the default lock folder"  # noqa: S108
