"""Prometheus metrics: what ``rotator start`` serves, and what a cron run leaves behind.

:class:`Metrics` lives in a registry of its own (not prometheus-client's global
one), so a test can build as many as it likes in one process. Every configured
connection has ``rotator_check_success`` from the first check on, so an alert
fires even when Auth0 was never reached. :func:`write_textfile` writes the
same per-connection gauges plus ``rotator_last_run_*`` for node_exporter's
textfile collector, atomically (a temporary file beside it, renamed over it),
readable by node_exporter whatever rotator's umask, so a cron job that stops
running is noticed too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from rotator import __version__, files, logs
from rotator.errors import ConfigError, RotatorError
from rotator.outcome import Outcome, trouble
from rotator.settings import ConnectionSettings

LABELS = ("tenant", "connection")

# A ``*_created`` series beside every counter only says when the process
# started counting; no alert or dashboard uses it, so none is exported.
disable_created_metrics()  # type: ignore[no-untyped-call]


class _Gauges:
    """The per-connection gauges, shared by ``/metrics`` and the metrics file."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.expiry = Gauge("rotator_secret_expiry_timestamp_seconds",
                            "exp of the secret live in the connection", LABELS, registry=r)
        self.issued = Gauge("rotator_secret_issued_timestamp_seconds",
                            "iat of the secret live in the connection", LABELS, registry=r)
        self.due = Gauge("rotator_secret_due_timestamp_seconds",
                         "when the live secret falls due for rotation", LABELS, registry=r)
        self.last_success = Gauge("rotator_last_success_timestamp_seconds",
                                  "when the connection was last checked (and, if due, rotated) "
                                  "without error", LABELS, registry=r)
        self.check_success = Gauge("rotator_check_success",
                                   "1 when the last check (and rotation, if due) of the "
                                   "connection succeeded, else 0", LABELS, registry=r)
        self.apple = Gauge("rotator_secret_apple_accepted",
                           "1 when Apple accepts the live secret, 0 when it refuses it; absent "
                           "when unknown or the check is off", LABELS, registry=r)
        Gauge("rotator_build_info", "the running rotator's version", ("version",),
              registry=r).labels(version=__version__).set(1)

    def record(self, outcome: Outcome, now: float) -> None:
        if outcome.abandoned and not outcome.checked:
            return  # stopped by a signal before its check: nothing was learnt
        labels = {"tenant": outcome.tenant, "connection": outcome.connection}
        healthy = trouble(outcome, now) is None  # as the exit code and /readyz say
        self.check_success.labels(**labels).set(1 if healthy else 0)
        for gauge, value in ((self.expiry, outcome.exp), (self.issued, outcome.iat),
                             (self.due, outcome.due_at)):
            if value is not None:
                gauge.labels(**labels).set(value)
        if healthy:
            self.last_success.labels(**labels).set(now)
        if outcome.apple in ("accepted", "refused"):
            self.apple.labels(**labels).set(1 if outcome.apple == "accepted" else 0)
        elif outcome.checked:
            with contextlib.suppress(KeyError):
                self.apple.remove(outcome.tenant, outcome.connection)


class _LogErrors(Collector):
    """``rotator_log_write_errors_total``, read from the log writer's count."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("rotator_log_write_errors",
                                     "log lines that could not be written")
        family.add_metric([], logs.STREAM.errors)
        yield family


class Metrics:
    """The contract's metrics for ``rotator start``, updated from each outcome."""

    def __init__(self, connections: Sequence[ConnectionSettings] = ()) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.gauges = _Gauges(r)
        self.rotations = Counter("rotator_rotations", "rotations attempted, by result",
                                 (*LABELS, "result"), registry=r)
        # Whether the connection could be read and judged; rotator_check_success
        # says whether the whole check, rotation included, did its work.
        self.checks = Counter("rotator_checks", "reads and judgements of a connection's live "
                              "secret, by result", (*LABELS, "result"), registry=r)
        self.hook_failures = Counter("rotator_hook_failures", "post-rotate hooks that failed",
                                     LABELS, registry=r)
        r.register(_LogErrors())
        # rotator start: changed files the configuration was loaded from, and whether
        # the last attempt to load them again succeeded (see rotator.reload).
        self.reload_failures = Counter(
            "rotator_config_reload_failures", "changed configuration, key or secret files "
            "that did not validate (the last good configuration stayed in use)", registry=r)
        self.reload_ok = Gauge("rotator_config_last_reload_successful",
                               "1 when the configuration in use is the one on disk, 0 while a "
                               "change that does not validate is refused", registry=r)
        self.reload_ok.set(1)
        self.track(connections)

    def track(self, connections: Sequence[ConnectionSettings]) -> None:
        """Export every configured connection's counters from zero (at start, after a reload)."""
        for conn in connections:
            labels = {"tenant": conn.tenant, "connection": conn.connection}
            self.hook_failures.labels(**labels)
            for result in ("success", "failure"):
                self.checks.labels(**labels, result=result)

    def forget(self, tenant: str, connection: str) -> None:
        """Drop every series of a connection no longer configured (after a reload)."""
        for metric in (self.hook_failures, self.gauges.expiry, self.gauges.issued,
                       self.gauges.due, self.gauges.last_success, self.gauges.check_success,
                       self.gauges.apple):
            with contextlib.suppress(KeyError):
                metric.remove(tenant, connection)
        for counter in (self.checks, self.rotations):
            for result in ("success", "failure"):
                with contextlib.suppress(KeyError):
                    counter.remove(tenant, connection, result)

    def record(self, outcome: Outcome, now: float) -> None:
        labels = {"tenant": outcome.tenant, "connection": outcome.connection}
        self.checks.labels(**labels, result="success" if outcome.checked else "failure").inc()
        if outcome.rotated:
            self.rotations.labels(**labels, result="success").inc()
        elif outcome.checked and outcome.error is not None and outcome.due:
            self.rotations.labels(**labels, result="failure").inc()
        self.gauges.record(outcome, now)

    def hook_failed(self, conn: ConnectionSettings) -> None:
        self.hook_failures.labels(tenant=conn.tenant, connection=conn.connection).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def write_textfile(path: Path, outcomes: Iterable[Outcome], *, now: float, success: bool) -> None:
    """The run's gauges for node_exporter's textfile collector, written atomically.

    A connection that failed this run keeps the ``last_success`` of the
    previous file, so "no success for a day" can fire across several runs.
    """
    registry = CollectorRegistry()
    gauges = _Gauges(registry)
    previous = _previous_last_success(path)
    for outcome in outcomes:
        gauges.record(outcome, now)
        key = (outcome.tenant, outcome.connection)
        if trouble(outcome, now) is not None and key in previous:
            gauges.last_success.labels(*key).set(previous[key])
    Gauge("rotator_last_run_timestamp_seconds", "when the last run-once/run-now finished",
          registry=registry).set(now)
    Gauge("rotator_last_run_success", "1 when every connection of the last run succeeded",
          registry=registry).set(1 if success else 0)
    try:
        _replace(path, generate_latest(registry))
    except OSError as exc:
        raise RotatorError(
            f"--metrics-file {path} cannot be written ({exc.strerror or type(exc).__name__}); "
            "give a path in a writable directory"
        ) from None


#: The metrics file's mode: node_exporter runs as another user and must read it,
#: whatever the umask (systemd's UMask=0077). It holds no secret.
FILE_MODE = 0o644


def check_replaceable(path: Path, error: type[RotatorError] = ConfigError) -> None:
    """Refuse a metrics file path that is not a regular file or nothing (``--metrics-file``).

    Renaming over a device node or a FIFO would replace it (run as root with
    ``/dev/null``, the host's ``/dev/null``); such a path is refused untouched.
    """
    try:
        files.regular_or_absent(path)
    except files.Unreadable as why:
        raise error(
            f"--metrics-file {path} {why}; give the path of a regular file (or of none yet) "
            "in a directory node_exporter's textfile collector reads"
        ) from None


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in ``path``'s directory, then rename it over ``path``.

    Readers see the old file or the new one, never a part. The temporary name
    does not end in ``.prom``, so the textfile collector never reads it.
    """
    check_replaceable(path, RotatorError)  # again: the path may have changed during the run
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), FILE_MODE)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _previous_last_success(path: Path) -> dict[tuple[str, str], float]:
    try:
        text = files.read_bounded(path, files.MAX_FILE * 16).decode("utf-8")
    except (files.Unreadable, UnicodeDecodeError):
        return {}
    found: dict[tuple[str, str], float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "rotator_last_success_timestamp_seconds":
                    key = (sample.labels.get("tenant", ""), sample.labels.get("connection", ""))
                    found[key] = float(sample.value)
    except ValueError:
        return {}  # a damaged file: start afresh
    return found
