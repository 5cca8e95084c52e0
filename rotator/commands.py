"""The commands, as functions: what ``cli`` (and ``demo``, and tests) call.

Each takes validated settings and returns facts (a report, outcomes, text);
none prints or decides an exit code. Heavy modules are imported inside the
function that needs them, so ``rotator mint`` loads only what minting needs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rotator.errors import ConfigError
from rotator.modes import Mode
from rotator.settings import (
    ConnectionSettings,
    Settings,
    format_duration,
    label,
    several_tenants,
)

if TYPE_CHECKING:
    from rotator.outcome import InFlight, Report
    from rotator.reload import Reloader
    from rotator.runner import Pool


def mint(settings: Settings, now: float | None = None) -> str:
    """One fresh secret for the single selected connection."""
    from rotator import secret

    if len(settings.connections) != 1:
        raise ConfigError(_choose_one(settings.connections))
    conn = settings.connections[0]
    return secret.mint(
        conn.apple.key, team_id=conn.apple.team_id, key_id=conn.apple.key_id,
        services_id=conn.client_id, lifetime=settings.schedule.secret_lifetime,
        now=int(time.time() if now is None else now),
    )


def _choose_one(connections: tuple[ConnectionSettings, ...]) -> str:
    """mint's refusal of several connections, naming a ``--connection`` that picks each."""
    several = several_tenants(connections)
    names = [label(c.connection or c.client_id, c.tenant, several) for c in connections]
    choices = " or ".join(f"--connection {label(c.connection, c.tenant, several)}"
                          for c in connections if c.connection) or "--connection NAME"
    if len({c.connection for c in connections}) == 1 and connections[0].connection:
        return (f"mint prints one secret but connection {connections[0].connection!r} is "
                f"configured in {len(connections)} tenants; choose one with {choices}")
    return (f"mint prints one secret but {len(connections)} connections are configured "
            f"({', '.join(names)}); choose one with {choices}")


def rotate(
    settings: Settings,
    mode: Mode,
    *,
    stop: threading.Event | None = None,
    pool: Pool | None = None,
    in_flight: InFlight | None = None,
) -> Report:
    """``run-once`` (due ones), ``run-now`` (forced): check and rotate every connection."""
    from rotator import hooks, lock, runner
    from rotator.outcome import InFlight

    locks = lock.prepared(settings.lock_dir)  # before anything is contacted
    post_rotate, on_failure = hooks.from_settings(settings.hooks)
    options = runner.Options(mode=mode, stop=stop or threading.Event(), on_rotated=post_rotate,
                             on_failure=on_failure, in_flight=in_flight or InFlight(),
                             locks=locks)
    return runner.run(settings, options, pool)


def write_metrics(path: Path, report: Report, ok: bool) -> None:
    """The run's metrics file for node_exporter's textfile collector."""
    from rotator import metrics

    metrics.write_textfile(path, report.outcomes, now=time.time(), success=ok)


def check_metrics_path(path: Path) -> None:
    """Refuse, before anything is contacted, a metrics file that could not be written."""
    import os

    from rotator import metrics

    metrics.check_replaceable(path)
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(f"--metrics-file {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or path.is_dir():
        raise ConfigError(
            f"--metrics-file {path} cannot be written there; give a path in a directory "
            "the user rotator runs as can write (the file is replaced atomically)"
        )


def look(settings: Settings, mode: Mode | None = None, *, pool: Pool | None = None) -> Report:
    """Read-only: each connection read, judged and shown to Apple (``status``, ``--online``).

    ``Mode.online()`` (``check-config --online``) also checks each token's scopes
    and shows Apple a secret minted now, so a key id and key that do not belong
    together are caught before the first rotation needs them.
    """
    from rotator import runner

    return runner.run(settings, runner.Options(mode=mode or Mode.check()), pool)


def start(settings: Settings, reloader: Reloader | None = None) -> bool:
    """``rotator start`` until a signal; True when the stop left no check running.

    ``reloader`` loaded ``settings`` and loads them again when their files change.
    """
    from rotator import service

    return service.serve(settings, reloader)


def summary(settings: Settings) -> list[str]:
    """What ``check-config`` says of a valid configuration."""
    s = settings.schedule
    tenants = sorted({c.tenant for c in settings.connections})
    lines = [
        f"configuration OK: {len(settings.connections)} connection(s) on "
        f"{len(tenants)} tenant(s); secret_lifetime {format_duration(s.secret_lifetime)}, "
        f"rotate_every {format_duration(s.rotate_every)}, check_every "
        f"{format_duration(s.check_every)}, deadline {format_duration(s.deadline)}"
    ]
    for conn in settings.connections:
        asks = f"asks {conn.apple.token_url}" if conn.apple.check else "apple.check is off"
        auth = (f"; M2M client {conn.auth0.client_id} authenticates with "
                f"{conn.auth0.auth.describe()}" if conn.auth0 else "")
        lines.append(f"  {conn.connection} on {conn.tenant}: Services ID {conn.client_id}, "
                     f"team {conn.apple.team_id}, key {conn.apple.key_id}; {asks}{auth}")
        lines.append(f"    Apple key from {conn.apple.key.source}")
        if conn.auth0 is not None:
            from rotator.client_auth import ClientSecret

            what = ("M2M client secret" if isinstance(conn.auth0.auth, ClientSecret)
                    else "M2M signing key")
            lines.append(f"    {what} from {conn.auth0.auth.source}")
    lines += [f"  warning: {warning}" for warning in settings.warnings]
    return lines


def online_lines(report: Report) -> tuple[list[str], bool]:
    """What ``check-config --online`` says of each connection, and whether all passed."""
    from rotator import logs
    from rotator.outcome import trouble

    lines = []
    for o in report.outcomes:
        if o.error:
            state = f"FAILED at {o.step}: {logs.scrub(o.error, 1000)}"
        elif o.missing_scopes:
            state = (f"FAILED: the token lacks {', '.join(o.missing_scopes)}; grant it to the M2M "
                     "application (Applications > APIs > Auth0 Management API)")
        elif o.apple in ("refused", "unknown") and o.live:
            state = f"FAILED: Apple {o.apple} the live secret: {logs.scrub(o.apple_detail, 300)}"
        elif (why := trouble(o, report.at)) is not None:
            state = f"FAILED: {o.connection} {why}"
        else:
            apple = {"accepted": "Apple accepts the live secret and a secret minted now",
                     "off": "Apple not asked (apple.check is off)"}.get(
                         o.apple, "no live secret yet, and Apple accepts a secret minted now")
            state = f"readable, writable options present, all four scopes granted; {apple}"
        lines.append(f"  online: {o.connection} on {o.tenant}: {state}")
    return lines, not report.failed
