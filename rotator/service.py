"""``rotator start``: check on a schedule, serve health and metrics, stop cleanly.

One APScheduler job checks every connection every ``check_every`` (and once at
start-up), through the same run as ``run-once`` (:mod:`rotator.runner`), with
its tenants (and their tokens) kept from one check to the next. Checks never
overlap (``max_instances=1``, ``coalesce``), and each has the run's deadline,
so one stuck check cannot hold the next for long. A little jitter keeps a
fleet from reaching Auth0 in the same second.

Health, for the probes:

* ``/healthz`` is 200 while the scheduler runs, checks keep completing, and
  log lines can be written; 503 otherwise (a restart is the cure).
* ``/readyz`` is 200 when the last check of every connection left it healthy
  (:func:`rotator.outcome.trouble`: no step failed, Apple did not refuse its
  live secret); 503 otherwise, naming the first connection that is not.

Readiness is published as an immutable snapshot, replaced whole after each
check, so the HTTP threads never see a half-updated state.

On SIGTERM or SIGINT the job is told to stop: a rotation already past its
write finishes, one that has not written yet is abandoned, and the process
exits 0 within :data:`STOP_WITHIN` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from rotator import hooks, logs, runner, signals
from rotator.endpoints import Server
from rotator.errors import unexpected
from rotator.metrics import Metrics
from rotator.outcome import Outcome, Report, Step, trouble
from rotator.settings import Settings, label, several_tenants

STOP_WITHIN = 6.0  # seconds to wait for a check in flight at shutdown (10 s promised)
MAX_JITTER = 30.0
#: Slack on top of check_every + jitter + deadline before "checks are not completing".
SLACK = 60.0


@dataclass(frozen=True)
class Judged:
    """A connection's last outcome, and what the health predicate said of it then."""

    outcome: Outcome
    trouble: str | None


def jitter_for(check_every: int) -> float:
    """A tenth of the interval, at most 30 s."""
    return min(check_every / 10, MAX_JITTER)


class Service:
    """The long-running rotator: scheduler, endpoints, metrics."""

    def __init__(
        self,
        settings: Settings,
        *,
        pool: runner.Pool | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.pool = pool or runner.Pool()
        self.clock = clock
        self.monotonic = monotonic
        self.metrics = Metrics(settings.connections)
        self.stopping = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.readiness: Mapping[tuple[str, str], Judged] = MappingProxyType({})
        self._check_began: float | None = None
        self._last_completed = monotonic()
        self.hook, self.on_failure = hooks.from_settings(settings.hooks,
                                                         failed=self.metrics.hook_failed)
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.server = Server(settings.listen, healthy=self.healthy, ready=self.ready,
                             metrics=self.metrics.render)
        self.log = logs.get()

    # -- probes -------------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        """Whether the service is doing its work at all (the liveness probe)."""
        if not self.scheduler.running or self.stopping.is_set():
            return False, "scheduler stopped"
        if logs.STREAM.last_failed:
            return False, f"log lines cannot be written ({logs.STREAM.errors} lost)"
        now, s = self.monotonic(), self.settings.schedule
        began = self._check_began
        if began is not None and now - began > s.deadline + SLACK:
            return False, f"a check has been running for {now - began:.0f} s, past its deadline"
        quiet = now - self._last_completed
        if quiet > s.check_every + jitter_for(s.check_every) + s.deadline + SLACK:
            return False, f"no check has completed for {quiet:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Whether every connection's last check left it healthy (``outcome.trouble``)."""
        snapshot = self.readiness
        several = several_tenants(self.settings.connections)
        for conn in self.settings.connections:
            judged = snapshot.get((conn.tenant, conn.connection))
            name = label(conn.connection, conn.tenant, several)
            if judged is None:
                return False, f"not ready: {name} not checked yet"
            if judged.trouble is not None:
                return False, f"not ready: {name} {judged.trouble}"
        return True, "ready"

    # -- the job --------------------------------------------------------------------

    def check(self) -> Report:
        """One pass over every connection; the scheduled job."""
        self.idle.clear()
        self._check_began = self.monotonic()
        try:
            options = runner.Options(
                on_rotated=self.hook, on_failure=self.on_failure, stop=self.stopping,
                now=self.clock, monotonic=self.monotonic,
            )
            report = runner.run(self.settings, options, self.pool)
            self._publish(report)
            return report
        finally:
            self._check_began = None
            self._last_completed = self.monotonic()
            self.idle.set()

    def _job(self) -> None:
        try:
            self.check()
        except Exception as exc:
            error = unexpected(exc)
            self.log.error("check.crashed", error=error)
            self.log.debug("check.traceback", exc_info=True)
            # No connection was checked: /readyz and the failure counter must say so.
            self._publish(Report([Outcome(connection=c.connection, tenant=c.tenant,
                                          step=Step.UNKNOWN, error=error)
                                  for c in self.settings.connections], at=self.clock()))

    def _publish(self, report: Report) -> None:
        """Metrics and a new readiness snapshot from one check's report."""
        ready = dict(self.readiness)
        for outcome in report.outcomes:
            self.metrics.record(outcome, report.at)
            if not outcome.abandoned:
                ready[(outcome.tenant, outcome.connection)] = Judged(
                    outcome, trouble(outcome, report.at))
        self.readiness = MappingProxyType(ready)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        every = self.settings.schedule.check_every
        self.scheduler.add_job(
            self._job,
            IntervalTrigger(seconds=every, jitter=jitter_for(every)),
            id="check",
            next_run_time=datetime.now(UTC),  # once at start-up, then on the interval
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
        self._last_completed = self.monotonic()
        self.log.info("scheduler.started", connections=len(self.settings.connections),
                      check_every=every, listen=self.server.address)

    def stop(self, reason: str = "requested") -> bool:
        """Stop within STOP_WITHIN seconds; True when no check is left running."""
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        finished = self.idle.wait(STOP_WITHIN)
        self.server.stop()
        if finished:
            self.pool.close()
        self.log.info("scheduler.stopped", reason=reason, check_in_flight_finished=finished)
        return finished


def serve(settings: Settings) -> bool:
    """Run until SIGTERM or SIGINT; True when the stop left no check running."""
    service = Service(settings)
    with signals.caught() as caught:
        service.start()
        while not caught.stop.wait(3600):
            pass
        return service.stop(caught.first or "requested")
