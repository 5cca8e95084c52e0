"""Reading the small files rotator is pointed at: secrets, keys, CA bundles, config.

Every file rotator reads is a regular file, checked on what was opened
(``fstat``) after an open that cannot block, so a FIFO, a device node or a
socket put where a file belongs is refused at once instead of hanging the
run or being read forever. Each read is bounded, so a wrong path (a log
file) fails fast with a message instead of filling memory, and every way it
can fail becomes one line naming the setting.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from rotator.errors import ConfigError

#: Largest secret, key or CA file read.
MAX_FILE = 256 * 1024
#: Largest CA bundle read (a full system bundle is about 200 KiB).
CA_BUNDLE_MAX = 16 * MAX_FILE

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
        self.kind = kind  # "missing", "directory", "special", "denied", "large" or "other"


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, words in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "not a regular file"


def regular_or_absent(path: Path) -> bool:
    """True when ``path`` is a regular file (links followed), False when it does not exist.

    :class:`Unreadable` ("special") when it is anything else (a device node, a
    FIFO, a socket, a directory): nothing may read from it or replace it.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise Unreadable("other", exc.strerror or type(exc).__name__) from None
    if stat.S_ISDIR(mode):
        raise Unreadable("directory", "is a directory")
    if not stat.S_ISREG(mode):
        raise Unreadable("special", f"is {_kind(mode)}, not a regular file")
    return True


def read_bounded(path: Path, limit: int = MAX_FILE) -> bytes:
    """At most ``limit`` bytes of ``path``, a regular file; :class:`Unreadable` says why not.

    The open never blocks (``O_NONBLOCK``: a FIFO with no writer, a tty), and
    what was opened is checked with ``fstat`` before a byte is read, so a
    device or FIFO put in a file's place is refused, not read.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise Unreadable("missing", "does not exist") from None
    except IsADirectoryError:
        raise Unreadable("directory", "is a directory") from None
    except PermissionError:
        raise Unreadable("denied", "permission denied") from None
    except OSError as exc:
        raise Unreadable("other", exc.strerror or type(exc).__name__) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise Unreadable("directory", "is a directory")
        if not stat.S_ISREG(mode):
            raise Unreadable("special", f"is {_kind(mode)}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise Unreadable("other", exc.strerror or type(exc).__name__) from None
    finally:
        os.close(fd)
    if size > limit:
        raise Unreadable("large", f"larger than {limit // 1024} KiB")
    data = b"".join(chunks)
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
            "special": f"{path} {why}; give {what} as a regular file{tail}",
            "denied": f"{path} cannot be read (permission denied); make it readable by the "
                      "user rotator runs as",
            "large": f"{path} is {why}, too big for {what}; check the path{tail}",
        }
        raise error(f"{setting}: {messages.get(why.kind, f'{path} cannot be read ({why}){tail}')}"
                    ) from None
