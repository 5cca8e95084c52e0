"""Reading the small files rotator is pointed at: secrets, keys, CA bundles, config.

Each read is bounded, so a wrong path (``/dev/zero``, a log file) fails fast
with a message instead of filling memory, and every way it can fail becomes
one line naming the setting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from rotator.errors import ConfigError

#: Largest secret, key or CA file read.
MAX_FILE = 256 * 1024

#: Where :func:`recording` collects the files read: (path, SHA-256 of the bytes read).
_RECORDING: ContextVar[list[tuple[Path, str]] | None] = ContextVar("recording", default=None)


@contextmanager
def recording() -> Iterator[list[tuple[Path, str]]]:
    """Every file read by :func:`read_bounded` in this block, with a digest of its bytes.

    ``rotator start`` uses it to know every file its settings came from, and so
    to notice when one changes.
    """
    seen: list[tuple[Path, str]] = []
    token = _RECORDING.set(seen)
    try:
        yield seen
    finally:
        _RECORDING.reset(token)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Unreadable(Exception):
    """Why a file could not be read: ``kind`` for code, the text for people."""

    def __init__(self, kind: str, words: str) -> None:
        super().__init__(words)
        self.kind = kind  # "missing", "directory", "denied", "large" or "other"


def read_bounded(path: Path, limit: int = MAX_FILE) -> bytes:
    """At most ``limit`` bytes of ``path``; :class:`Unreadable` says why not."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise Unreadable("missing", "does not exist") from None
    except IsADirectoryError:
        raise Unreadable("directory", "is a directory") from None
    except PermissionError:
        raise Unreadable("denied", "permission denied") from None
    except OSError as exc:
        raise Unreadable("other", exc.strerror or type(exc).__name__) from None
    if len(data) > limit:
        raise Unreadable("large", f"larger than {limit // 1024} KiB")
    if (seen := _RECORDING.get()) is not None:
        seen.append((path, digest(data)))
    return data


def read_limited(
    path: Path,
    setting: str,
    what: str,
    limit: int = MAX_FILE,
    *,
    error: type[ConfigError] = ConfigError,
    fix: str = "",
) -> bytes:
    """At most ``limit`` bytes of ``path``, else ``error`` naming ``setting``, ``what``, ``fix``."""
    tail = f"; {fix}" if fix else ""
    try:
        return read_bounded(path, limit)
    except Unreadable as why:
        messages = {
            "missing": f"{path} does not exist{tail}",
            "directory": f"{path} is a directory, not {what}{tail}",
            "denied": f"{path} cannot be read (permission denied); make it readable by the "
                      "user rotator runs as",
            "large": f"{path} is {why}, too big for {what}; check the path{tail}",
        }
        raise error(f"{setting}: {messages.get(why.kind, f'{path} cannot be read ({why}){tail}')}"
                    ) from None
