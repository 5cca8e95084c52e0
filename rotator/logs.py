"""Logging: structlog, one event per line, JSON unless a person is watching.

Secrets are kept out of log lines by construction (nothing logs them). As a
second line of defence, every value registered with :func:`secret` is replaced
by ``[redacted]`` in every string field, tracebacks included, before any field
is cut to length. Values are registered while they are in use and forgotten
after, so the redactor only ever holds current secrets.

Writing a line never raises: a log stream that fails (a full disk, a pipe whose
reader is gone) is counted in :data:`STREAM`, which ``rotator start`` turns into
a metric and an unhealthy ``/healthz``, and the work goes on.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import Counter
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO, TypeAlias, cast

import structlog
from structlog.typing import FilteringBoundLogger

Logger: TypeAlias = FilteringBoundLogger

REDACTED = "[redacted]"
#: Longest string field written; longer ones are cut (after redaction).
MAX_FIELD = 2000
MAX_TRACEBACK = 20000
_SHORTEST = 8  # shorter values are not secrets worth hunting (and would redact noise)


class _Secrets:
    """The secrets in use right now, with a count per registration."""

    def __init__(self) -> None:
        self._values: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        with self._lock:
            self._values.update(v for v in values if v and len(v) >= _SHORTEST)

    def discard(self, *values: str | None) -> None:
        with self._lock:
            self._values.subtract(v for v in values if v and len(v) >= _SHORTEST)
            for value in [v for v, n in self._values.items() if n <= 0]:
                del self._values[value]

    def scrub(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


SECRETS = _Secrets()


@contextmanager
def secret(*values: str | None) -> Iterator[None]:
    """Redact ``values`` from every log line while the block runs."""
    SECRETS.add(*values)
    try:
        yield
    finally:
        SECRETS.discard(*values)


def scrub(text: str, limit: int = MAX_FIELD) -> str:
    """``text`` with current secrets redacted, then cut to ``limit`` characters."""
    return _cut(SECRETS.scrub(text), limit)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters cut]"


def _redact_and_cut(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    out: dict[str, Any] = {}
    for key, value in event.items():
        if isinstance(value, str):
            value = scrub(value, MAX_TRACEBACK if key == "exception" else MAX_FIELD)
        out[key] = value
    return out


class StreamHealth:
    """Counts lines that could not be written; read by ``rotator start``."""

    def __init__(self) -> None:
        self.errors = 0
        self.last_failed = False

    def reset(self) -> None:
        self.errors, self.last_failed = 0, False

    def record(self, ok: bool) -> None:
        self.last_failed = not ok
        if not ok:
            self.errors += 1


STREAM = StreamHealth()


class LineWriter:
    """A structlog logger that writes whole lines under a lock and never raises."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            try:
                self._stream.write(message + "\n")
                self._stream.flush()
            except (OSError, ValueError):  # ValueError: the stream was closed
                STREAM.record(False)
            else:
                STREAM.record(True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def use_json(fmt: str | None, stream: TextIO) -> bool:
    """JSON when asked, or when the stream is not a terminal."""
    if fmt is not None:
        return fmt == "json"
    return not at_terminal(stream)


def at_terminal(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def default_level(stream: TextIO) -> str:
    """A person at a terminal sees warnings and errors; a machine gets info and up."""
    return "warning" if at_terminal(stream) else "info"


def configure(
    fmt: str | None = None, level: str | None = "info", stream: TextIO | None = None
) -> None:
    """Set up structlog for the whole process (``level`` None: :func:`default_level`)."""
    out = stream or sys.stderr
    level = level or default_level(out)
    writer = LineWriter(out)  # one writer, one lock: lines from every thread stay whole
    renderer: Any
    if use_json(fmt, out):
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=at_terminal(out))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Tracebacks become plain text (no local variables) before the
            # redactor sees them; they are only ever logged at debug level.
            structlog.processors.format_exc_info,
            _redact_and_cut,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=lambda *_: writer,
        cache_logger_on_first_use=False,
    )


#: A wait longer than this is logged when it starts: nothing waits silently.
NOTICEABLE_WAIT = 1.0


def waiting(seconds: float, awaited: str, because: str) -> None:
    """Say that a wait of ``seconds`` starts, for what, and why (when it is noticeable).

    At warning level, so a person at a terminal (who sees warnings and errors)
    knows why nothing happens. The connection and tenant come from :func:`context`.
    """
    if seconds > NOTICEABLE_WAIT:
        get().warning("wait.started", awaited=awaited, seconds=round(seconds, 1),
                      because=because)


@contextmanager
def context(**values: Any) -> Iterator[None]:
    """Bind ``values`` (connection, tenant) to every event this thread logs in the block."""
    with structlog.contextvars.bound_contextvars(**values):
        yield


def get(**context: Any) -> Logger:
    """A logger bound to ``context`` (connection, tenant...)."""
    return cast(Logger, structlog.get_logger("rotator").bind(**context))
