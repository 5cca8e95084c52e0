"""Hooks: an argv run after each rotation, and one run after each failure.

``post_rotate`` gets the new secret on its standard input, never in its argv
or environment. ``on_failure`` gets the failing connection, step and error in
its environment (never a secret), so a team can page from cron without a
monitoring stack. rotator's own secrets (``AUTH0_CLIENT_SECRET``,
``AUTH0_CLIENT_ASSERTION_SIGNING_KEY``, ``APPLE_PRIVATE_KEY``) are removed
from the environment either inherits. A hook that fails or outlives its
timeout is killed and logged as ``hook.failed``; a failed ``post_rotate``
makes the run's exit code 1 (the rotation it follows stands) and is counted
in ``rotator_hook_failures_total``.

The commands were found and checked executable when the configuration loaded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from rotator import environment, logs, words
from rotator.outcome import Outcome, Step
from rotator.settings import ConnectionSettings, HookSettings


def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: bytes,
    timeout: float,
    log: logs.Logger,
    hook: str,
) -> bool:
    """Run ``argv`` in its own process group; True when it exits 0 in time."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=environment.for_children(env), start_new_session=True,
        )
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        log.error("hook.failed", hook=hook, command=argv[0],
                  error=f"cannot start: {reason or type(exc).__name__}")
        return False
    try:
        _, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        log.error("hook.failed", hook=hook, command=argv[0],
                  error=f"timed out after {timeout:g}s; killed")
        return False
    except BrokenPipeError:
        err = b""
        proc.wait()
    if proc.returncode != 0:
        last = (err.decode(errors="replace").strip().splitlines() or [""])[-1]
        log.error("hook.failed", hook=hook, command=argv[0], exit_code=proc.returncode,
                  stderr=logs.scrub(last))
        return False
    log.info("hook.succeeded", hook=hook, command=argv[0],
             seconds=round(time.monotonic() - started, 3))
    return True


class Hook:
    """``post_rotate``: runs ``argv`` with the secret on stdin; a ``PostRotate`` callable."""

    def __init__(self, argv: Sequence[str], timeout: float,
                 failed: Callable[[ConnectionSettings], None] | None = None) -> None:
        self.argv = list(argv)
        self.timeout = timeout
        self.failed = failed  # told of each failure (rotator start counts them)

    def __call__(self, conn: ConnectionSettings, secret: str, exp: int) -> bool:
        log = logs.get(connection=conn.connection, tenant=conn.tenant)
        ok = run_command(
            self.argv,
            env={"ROTATOR_CONNECTION": conn.connection, "ROTATOR_TENANT": conn.tenant,
                 "ROTATOR_EXPIRES_AT": words.iso(exp) or ""},
            stdin=secret.encode() + b"\n", timeout=self.timeout, log=log, hook="post_rotate",
        )
        if not ok and self.failed is not None:
            self.failed(conn)
        return ok


class OnFailure:
    """``on_failure``: runs ``argv`` with the failure in its environment."""

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        self.argv = list(argv)
        self.timeout = timeout

    def __call__(self, conn: ConnectionSettings, outcome: Outcome) -> None:
        log = logs.get(connection=conn.connection, tenant=conn.tenant)
        step = outcome.step or (Step.HOOK if outcome.hook_failed else Step.UNKNOWN)
        error = outcome.error or "the post_rotate hook failed"
        run_command(
            self.argv,
            env={"ROTATOR_CONNECTION": conn.connection, "ROTATOR_TENANT": conn.tenant,
                 "ROTATOR_STEP": str(step), "ROTATOR_ERROR": logs.scrub(error, 1000)},
            stdin=b"", timeout=self.timeout, log=log, hook="on_failure",
        )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def from_settings(
    settings: HookSettings, failed: Callable[[ConnectionSettings], None] | None = None
) -> tuple[Hook | None, OnFailure | None]:
    """The configured hooks (None where not configured)."""
    post = Hook(settings.post_rotate, settings.timeout, failed) if settings.post_rotate else None
    on_failure = OnFailure(settings.on_failure, settings.timeout) if settings.on_failure else None
    return post, on_failure
