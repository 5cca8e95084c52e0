"""``rotator start``: check on a schedule, serve health and metrics, stop cleanly.

One APScheduler job checks every connection every ``check_every`` (and once at
start-up). Runs never overlap (``max_instances=1``, ``coalesce``); a little
jitter keeps a fleet from reaching Auth0 in the same second. On SIGTERM or
SIGINT the job is told to stop: a rotation already past its write finishes, one
that has not written yet is abandoned before the write, and the process exits
0 within :data:`STOP_WITHIN` seconds (a check still waiting on Auth0 then is
left behind: its write either landed or did not, and the live connection is the
only state).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from rotator import hooks, logs, rotation
from rotator.config import Settings
from rotator.endpoints import Metrics, Server

STOP_WITHIN = 6.0  # seconds to wait for a check in flight at shutdown (10 s promised)
MAX_JITTER = 30.0


def jitter_for(check_every: int) -> float:
    """A tenth of the interval, at most 30 s."""
    return min(check_every / 10, MAX_JITTER)


class Service:
    """The long-running rotator: scheduler, endpoints, metrics."""

    def __init__(
        self,
        settings: Settings,
        *,
        factory: Callable[[Any], rotation.Auth0Side] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        hooks.validate(settings.post_rotate)
        self.settings = settings
        self.factory = factory
        self.clock = clock
        self.metrics = Metrics()
        self.stopping = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.ready_state: dict[tuple[str, str], bool] = {}
        # Kept across checks: each tenant's HTTP client and cached access token.
        self.tenants: dict[tuple[str, str], rotation.Auth0Side] = {}
        self.hook = (
            hooks.Hook(settings.post_rotate, settings.hook_timeout)
            if settings.post_rotate else None
        )
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.server = Server(settings.listen, healthy=self.healthy, ready=self.ready,
                             metrics=self.metrics)
        self.log = logs.get()

    def healthy(self) -> bool:
        return bool(self.scheduler.running) and not self.stopping.is_set()

    def ready(self) -> bool:
        expected = len(self.settings.connections)
        return len(self.ready_state) == expected and all(self.ready_state.values())

    def check(self) -> rotation.Report:
        """One pass over every connection; the scheduled job."""
        self.idle.clear()
        try:
            report = rotation.run(
                self.settings,
                now=self.clock,
                factory=self.factory,
                on_rotated=self.hook,
                stop=self.stopping.is_set,
                keep=self.tenants,
            )
            for outcome in report.outcomes:
                self._record(outcome)
            return report
        finally:
            self.idle.set()

    def _job(self) -> None:
        try:
            self.check()
        except Exception as exc:  # noqa: BLE001 - the scheduler must keep running
            error = f"unexpected error: {type(exc).__name__}"
            self.log.error("check.crashed", error=error)
            # No connection was checked: /readyz and the failure counter must say so.
            for conn in self.settings.connections:
                self._record(rotation.Outcome(connection=conn.connection, tenant=conn.tenant,
                                              step="unknown", error=error))

    def _record(self, outcome: rotation.Outcome) -> None:
        """Metrics and readiness from one connection's outcome."""
        self.metrics.record(outcome, self.clock())
        if not outcome.abandoned:
            self.ready_state[(outcome.tenant, outcome.connection)] = outcome.ok

    def start(self) -> None:
        every = self.settings.schedule.check_every
        self.scheduler.add_job(
            self._job,
            IntervalTrigger(seconds=every, jitter=jitter_for(every)),
            id="check",
            next_run_time=None,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        # A tick skipped while a check still runs (max_instances=1, by design) is an
        # APScheduler warning through stdlib logging, which would print a plain,
        # non-JSON line among the structlog events.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        self.server.start()
        self.scheduler.start()
        # Once at start-up, then on the interval.
        self.scheduler.modify_job("check", next_run_time=_utcnow())
        self.log.info(
            "scheduler.started",
            connections=len(self.settings.connections),
            check_every=every,
            listen=self.server.address,
        )

    def stop(self, reason: str = "requested") -> bool:
        """Stop within STOP_WITHIN seconds; True when no check is left running."""
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        finished = self.idle.wait(STOP_WITHIN)
        self.server.stop()
        if finished:
            for tenant in self.tenants.values():
                tenant.close()
        self.log.info("scheduler.stopped", reason=reason, check_in_flight_finished=finished)
        return finished


def _utcnow() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; 0 after a clean stop."""
    service = Service(settings)
    wake = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _: object) -> None:
        received.append(signal.Signals(signum).name)
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.start()
    while not wake.wait(3600):
        pass
    if not service.stop(received[0] if received else "requested"):
        # The check still in flight runs in an executor thread that the interpreter
        # would join at exit, holding the process for as long as Auth0 keeps it
        # waiting (minutes, with timeouts and retries). Leave now, as promised.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
