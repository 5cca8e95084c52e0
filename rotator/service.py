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
  live secret) and checks keep completing; 503 otherwise, naming the first
  connection that is not (or why checks are not completing).

APScheduler's interval trigger keeps its times on the wall clock, which a host
can step (NTP, a VM resumed, an operator): stepped back an hour, the next check
would wait an hour more. Every :data:`WATCH_EVERY` seconds the service compares
the wall clock with the monotonic one; a step of :data:`STEP_TOLERANCE` seconds
or more moves the next check by as much, so it stays as far away in real time.

Readiness is published as an immutable snapshot, replaced whole after each
check, so the HTTP threads never see a half-updated state.

The settings follow the files they came from (:mod:`rotator.reload`): each
check first loads them again when the configuration, a secret file, a key file
or a CA bundle changed, and SIGHUP does so at once (then checks). A change that
does not validate is logged (``config.reload_failed``), counted
(``rotator_config_reload_failures_total``) and refused: the last good settings
stay in use and ``/readyz`` answers 503 with the reason until the files are
fixed. ``server.listen`` changes at the next restart only.

On SIGTERM or SIGINT the job is told to stop: a rotation already past its
write finishes, one that has not written yet is abandoned, and the process
exits 0 within :data:`STOP_WITHIN` seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from rotator import hooks, lock, logs, runner, signals
from rotator.endpoints import EndpointServer
from rotator.errors import ConfigError, unexpected
from rotator.metrics import Metrics
from rotator.outcome import Outcome, Report, Step, trouble
from rotator.reload import Reloader
from rotator.settings import Settings, label, several_tenants

STOP_WITHIN = 6.0  # seconds to wait for a check in flight at shutdown (10 s promised)
MAX_JITTER = 30.0
#: Slack on top of check_every + jitter + deadline before "checks are not completing".
SLACK = 60.0
#: How often the wall clock is compared with the monotonic one (seconds).
WATCH_EVERY = 5.0
#: The least disagreement between the two clocks taken for a step (seconds).
STEP_TOLERANCE = 5.0


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
        watch_every: float = WATCH_EVERY,
        reloader: Reloader | None = None,
    ) -> None:
        self.settings = settings
        #: The same locks as run-once/run-now: a manual run-now never interleaves.
        self.locks = lock.prepared(settings.lock_dir)
        self.reloader = reloader
        #: Why the files on disk are refused (None: the settings in use are theirs).
        self.reload_error: str | None = None
        self._reload_lock = threading.Lock()
        self.watch_every = watch_every
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
        self._offset = clock() - monotonic()  # wall minus monotonic, as last seen
        self._watcher = threading.Thread(target=self._watch, name="clock-watch", daemon=True)
        self.hook, self.on_failure = hooks.from_settings(settings.hooks,
                                                         failed=self.metrics.hook_failed)
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.server = EndpointServer(settings.listen, healthy=self.healthy, ready=self.ready,
                                     metrics=self.metrics.render)
        self.log = logs.get()

    # -- probes -------------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        """Whether the service is doing its work at all (the liveness probe)."""
        if not self.scheduler.running or self.stopping.is_set():
            return False, "scheduler stopped"
        if logs.STREAM.last_failed:
            return False, f"log lines cannot be written ({logs.STREAM.errors} lost)"
        if stalled := self._stalled():
            return False, stalled
        return True, "ok"

    def _stalled(self) -> str | None:
        """Why checks are not completing (one running past its deadline, none for long)."""
        now, s = self.monotonic(), self.settings.schedule
        began = self._check_began
        if began is not None and now - began > s.deadline + SLACK:
            return f"a check has been running for {now - began:.0f} s, past its deadline"
        quiet = now - self._last_completed
        if quiet > s.check_every + jitter_for(s.check_every) + s.deadline + SLACK:
            return f"no check has completed for {quiet:.0f} s"
        return None

    def ready(self) -> tuple[bool, str]:
        """Whether every connection's last check left it healthy (``outcome.trouble``)."""
        if stalled := self._stalled():
            return False, f"not ready: {stalled}"
        if (refused := self.reload_error) is not None:
            return False, ("not ready: the changed configuration does not validate, the last "
                           f"good one is in use: {refused}")
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
            self.reload()
            settings = self.settings
            self.pool.retain({c.auth0 for c in settings.connections if c.auth0 is not None})
            options = runner.Options(
                on_rotated=self.hook, on_failure=self.on_failure, stop=self.stopping,
                now=self.clock, monotonic=self.monotonic, locks=self.locks,
            )
            report = runner.run(settings, options, self.pool)
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

    # -- reloading ---------------------------------------------------------------------

    def reload(self, force: bool = False, trigger: str = "check") -> bool:
        """Load the settings again if a file they came from changed (or ``force``).

        True when new settings are in use; a change that does not validate is
        logged, counted and refused (the last good settings stay).
        """
        if self.reloader is None:
            return False
        with self._reload_lock:
            try:
                found = self.reloader.poll(force)
            except ConfigError as exc:
                error = str(exc)
                if error != self.reload_error or force:
                    self.metrics.reload_failures.inc()
                    self.log.error("config.reload_failed", error=error, trigger=trigger,
                                   note="the last good configuration stays in use")
                self.reload_error = error
                self.metrics.reload_ok.set(0)
                return False
            if found is None:
                return False
            fresh, changed = found
            self.reload_error = None
            self.metrics.reload_ok.set(1)
            self._apply(fresh)
            self.log.info("config.reloaded", trigger=trigger, changed=[str(p) for p in changed],
                          connections=len(fresh.connections))
            return True

    def _apply(self, fresh: Settings) -> None:
        """Put ``fresh`` in use: hooks, metrics and readiness follow its connections."""
        old = self.settings
        if fresh.listen != old.listen:
            self.log.warning("config.listen_unchanged", listen=old.listen,
                             configured=fresh.listen, note="server.listen changes at a restart")
            fresh = dataclasses.replace(fresh, listen=old.listen)
        kept = {(c.tenant, c.connection) for c in fresh.connections}
        for conn in old.connections:
            if (conn.tenant, conn.connection) not in kept:
                self.metrics.forget(conn.tenant, conn.connection)
        self.metrics.track(fresh.connections)
        self.readiness = MappingProxyType(
            {key: o for key, o in self.readiness.items() if key in kept})
        self.hook, self.on_failure = hooks.from_settings(fresh.hooks,
                                                         failed=self.metrics.hook_failed)
        self.settings = fresh
        every = fresh.schedule.check_every
        if every != old.schedule.check_every and self.scheduler.running:
            self.scheduler.reschedule_job("check", trigger=_trigger(every))

    def check_now(self) -> None:
        """Run the check job now (after SIGHUP), unless one is running."""
        if self.scheduler.running:
            self.scheduler.modify_job("check", next_run_time=datetime.now(UTC))

    # -- the clock -------------------------------------------------------------------

    def watch_clock(self) -> float:
        """Seconds the wall clock stepped since last seen (0 below the tolerance).

        A step moves the next check by as much: APScheduler keeps its time on the
        wall clock, so the check stays as far away in real time as it was.
        """
        offset = self.clock() - self.monotonic()
        step, self._offset = offset - self._offset, offset
        if abs(step) < STEP_TOLERANCE:
            return 0.0
        job = self.scheduler.get_job("check")
        if job is not None and job.next_run_time is not None:
            self.scheduler.modify_job("check",
                                      next_run_time=job.next_run_time + timedelta(seconds=step))
        self.log.warning("clock.stepped", seconds=round(step),
                         note="the wall clock jumped; the next check moved with it")
        return step

    def _watch(self) -> None:
        while not self.stopping.wait(self.watch_every):
            try:
                self.watch_clock()
            except Exception:  # the watcher must outlive a surprise
                self.log.debug("clock.watch_failed", exc_info=True)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        every = self.settings.schedule.check_every
        self.scheduler.add_job(
            self._job,
            _trigger(every),
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
        self._offset = self.clock() - self.monotonic()
        self._watcher.start()
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


def _trigger(every: int) -> IntervalTrigger:
    return IntervalTrigger(seconds=every, jitter=jitter_for(every))


def serve(settings: Settings, reloader: Reloader | None = None) -> bool:
    """Run until SIGTERM or SIGINT (SIGHUP reloads); True when the stop left no check running."""
    service = Service(settings, reloader=reloader)
    with signals.caught(hangup=True) as caught:
        service.start()
        reloaded = 0  # SIGHUPs answered
        while not caught.stop.is_set():
            caught.wait(3600)
            if caught.hangups != reloaded and not caught.stop.is_set():
                reloaded = caught.hangups
                if service.reload(force=True, trigger="SIGHUP"):
                    service.check_now()
        return service.stop(caught.first or "requested")
