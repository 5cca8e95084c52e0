"""The post-rotation hook: an argv run after each successful rotation.

The new secret goes to the hook's standard input, never into its argv or its
environment; rotator's own secrets (``AUTH0_CLIENT_SECRET``,
``APPLE_PRIVATE_KEY``) are removed from the environment it inherits. A hook
that fails or outlives its timeout is logged as ``hook.failed`` and killed; the
rotation it follows stands.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from rotator import logs
from rotator.config import ConnectionSettings
from rotator.errors import ConfigError

_STRIPPED = ("AUTH0_CLIENT_SECRET", "APPLE_PRIVATE_KEY")


def validate(argv: Sequence[str] | None) -> None:
    """Refuse at start-up a hook whose command cannot be found or run."""
    if not argv:
        return
    command = argv[0]
    if os.sep in command:
        path = Path(command)
        if not path.is_file():
            raise ConfigError(f"hooks.post_rotate: {command} does not exist; fix the path")
        if not os.access(path, os.X_OK):
            raise ConfigError(f"hooks.post_rotate: {command} is not executable; chmod +x it")
    elif shutil.which(command) is None:
        raise ConfigError(
            f"hooks.post_rotate: {command!r} is not on PATH; give its absolute path"
        )


class Hook:
    """Runs ``argv`` with the secret on stdin; a callable for ``rotation.run``."""

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        self.argv = list(argv)
        self.timeout = timeout

    def __call__(self, conn: ConnectionSettings, secret: str, exp: int) -> bool:
        log = logs.get(connection=conn.connection, tenant=conn.tenant)
        env = {k: v for k, v in os.environ.items() if k not in _STRIPPED}
        env.update(
            ROTATOR_CONNECTION=conn.connection,
            ROTATOR_TENANT=conn.tenant,
            ROTATOR_EXPIRES_AT=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp)),
        )
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            log.error("hook.failed", command=self.argv[0],
                      error=f"cannot start: {reason or type(exc).__name__}")
            return False
        try:
            _, err = proc.communicate(secret.encode() + b"\n", timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            log.error("hook.failed", command=self.argv[0],
                      error=f"timed out after {self.timeout:g}s; killed")
            return False
        except BrokenPipeError:
            err = b""
            proc.wait()
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            log.error("hook.failed", command=self.argv[0], exit_code=proc.returncode,
                      stderr=tail[0][:300])
            return False
        log.info("hook.succeeded", command=self.argv[0],
                 seconds=round(time.monotonic() - started, 3))
        return True


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
