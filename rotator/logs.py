"""Logging: structlog, one event per line, JSON unless a person is watching.

Secrets are kept out of log lines by construction (nothing logs them). As a
second line of defence, every trace of a value registered with :func:`secret`
(the whole value, a JWT segment of it, any 16-character run copied out of it,
as JSON would escape it too) is replaced by ``[redacted]`` in every string
field, tracebacks included. Values are registered while they are in use and forgotten
after, so the redactor only ever holds current secrets.

Writing a line never raises: a log stream that fails (a full disk, a pipe whose
reader is gone) is counted in :data:`STREAM`, which ``rotator start`` turns into
a metric and an unhealthy ``/healthz``, and the work goes on.
"""

from __future__ import annotations

import json
import logging
import re
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
#: Any run of this many characters copied out of a secret is redacted.
FRAGMENT = 16


class _Secrets:
    """The secrets in use right now, with a count per registration.

    What is redacted is any trace of one, not only the whole value: each
    secret, each dot-separated segment of one (a JWT's header, claims or
    signature), each as JSON would escape it, and any run of
    :data:`FRAGMENT` or more characters copied out of one (a hook printing
    part of a signature, an error body quoting a cut-off ``client_secret``).
    """

    def __init__(self) -> None:
        self._values: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._index: _Index | None = None

    def add(self, *values: str | None) -> None:
        with self._lock:
            self._values.update(v for v in values if v and len(v) >= _SHORTEST)
            self._index = None

    def discard(self, *values: str | None) -> None:
        with self._lock:
            self._values.subtract(v for v in values if v and len(v) >= _SHORTEST)
            for value in [v for v, n in self._values.items() if n <= 0]:
                del self._values[value]
            self._index = None

    def index(self) -> _Index:
        with self._lock:
            if self._index is None:
                self._index = _Index(list(self._values))
            return self._index

    def scrub(self, text: str) -> str:
        return self.index().scrub(text)

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._index = None


class _Index:
    """What to look for, built once per set of secrets."""

    def __init__(self, values: list[str]) -> None:
        whole: set[str] = set()
        for value in values:
            for piece in (value, *value.split(".")):
                if len(piece) >= _SHORTEST:
                    escaped = json.dumps(piece)[1:-1]
                    whole.update((piece, escaped, json.dumps(escaped)[1:-1]))
        self.whole = sorted(whole, key=len, reverse=True)
        self.grams = frozenset(value[i:i + FRAGMENT] for value in values
                               for i in range(len(value) - FRAGMENT + 1))
        self.chars = frozenset(c for gram in self.grams for c in gram)
        self.longest = max(map(len, values), default=0)
        chars = "".join(sorted(self.chars))
        self.runs = re.compile(f"[{re.escape(chars)}]{{{FRAGMENT},}}") if chars else None

    def cut(self, text: str, limit: int) -> str:
        """``text[:limit]`` less any start of a secret the cut may have split.

        A secret's characters just before the cut could be the first few of a
        secret, too few to recognise; up to a secret's length of them go.
        """
        end = limit
        while end > 0 and limit - end < self.longest and text[end - 1] in self.chars:
            end -= 1
        return text[:end]

    def scrub(self, text: str) -> str:
        for value in self.whole:
            if value in text:
                text = text.replace(value, REDACTED)
        if self.runs is None:
            return text
        return self.runs.sub(self._fragments, text)

    def _fragments(self, match: re.Match[str]) -> str:
        """A run of a secret's characters, with every piece copied from a secret redacted."""
        run = match.group()
        hidden = bytearray(len(run))
        for i in range(len(run) - FRAGMENT + 1):
            if run[i:i + FRAGMENT] in self.grams:
                hidden[i:i + FRAGMENT] = b"\1" * FRAGMENT
        if not any(hidden):
            return run
        out, i = [], 0
        while i < len(run):
            j = i
            while j < len(run) and hidden[j] == hidden[i]:
                j += 1
            out.append(REDACTED if hidden[i] else run[i:j])
            i = j
        return "".join(out)


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
    """``text`` cut to ``limit`` characters, with every trace of a current secret redacted.

    Cut first, so a huge text costs no more than ``limit`` to search, and a
    secret the cut splits leaves none of its characters behind.
    """
    index = SECRETS.index()
    if len(text) <= limit:
        return index.scrub(text)
    head = index.cut(text, limit)
    return f"{index.scrub(head)}... [{len(text) - len(head)} more characters cut]"


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
