"""Logging: structlog, one event per line, JSON unless a person is watching.

Secrets are kept out of log lines by construction (nothing logs them); as a
second line of defence every value registered with :func:`redact` is replaced
by ``[redacted]`` in any string field before a line is written.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRETS: set[str] = set()
_LOCK = threading.Lock()


def redact(value: str | None) -> None:
    """Never let ``value`` appear in a log line (short values are ignored)."""
    if value and len(value) >= 8:
        with _LOCK:
            _SECRETS.add(value)


def _scrub(text: str) -> str:
    for value in _SECRETS:
        if value in text:
            text = text.replace(value, "[redacted]")
    return text


def _redactor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if not _SECRETS:
        return event
    with _LOCK:
        return {k: _scrub(v) if isinstance(v, str) else v for k, v in event.items()}


def use_json(fmt: str | None, stream: TextIO) -> bool:
    """JSON when asked, or when the stream is not a terminal."""
    if fmt is not None:
        return fmt == "json"
    return not (hasattr(stream, "isatty") and stream.isatty())


def configure(fmt: str | None = None, level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog for the whole process."""
    out = stream or sys.stderr
    renderer: Any
    if use_json(fmt, out):
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Tracebacks become plain text (no local variables) before the
            # redactor sees them; they are only ever logged at debug level.
            structlog.processors.format_exc_info,
            _redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get(**context: Any) -> Any:
    """A logger bound to ``context`` (connection, tenant...)."""
    return structlog.get_logger("rotator").bind(**context)
