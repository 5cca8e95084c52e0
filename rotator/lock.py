"""One writer per connection on a host: an advisory ``flock`` per connection.

A rotation (read, mint, ask Apple, write, verify, hook) holds the lock of its
connection, a file in the lock folder (``ROTATOR_LOCK_DIR``, else
``$XDG_RUNTIME_DIR/rotator``, else ``/tmp/rotator-<uid>``). The holder writes
its pid into the file; a run that finds the lock held logs that it waits and
for whom, and waits within the run's deadline (a stop request cuts the wait
short). The kernel releases a ``flock`` when the process ends, however it
ends, so a killed run never leaves a lock behind; the files themselves stay
(removing a lock file while another run waits on it would split the lock).

The folder is created mode 0700 and refused when it is not the user's own or
when others can write to it (they could hold every lock, or swap the files).

Nothing here knows about Auth0: the rotation steps get a
:data:`Acquire` callable (see :meth:`Locks.acquirer`) and call it with the key
of what they are about to read.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from rotator.errors import ConfigError, DeadlineError, RotatorError

if TYPE_CHECKING:
    from rotator.deadline import Deadline
    from rotator.logs import Logger

#: How often a waiting run tries the lock again.
POLL = 0.05
#: ``acquire(ref)`` holds the lock of ``ref`` (a connection name or id) for the
#: ``with`` block and says whether it had to wait for another run first.
Acquire = Callable[[str], AbstractContextManager[bool]]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class LockError(RotatorError):
    """The lock could not be taken (its file cannot be opened, the wait ran out)."""


def prepare(folder: Path, setting: str = "ROTATOR_LOCK_DIR") -> Path:
    """Create ``folder`` (mode 0700) if missing; refuse one others could use against us."""
    fix = "set ROTATOR_LOCK_DIR to a folder of your own that only you can write"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except FileExistsError:
        raise ConfigError(f"lock folder {folder} ({setting}) is not a folder; {fix}") from None
    except OSError as exc:
        raise ConfigError(
            f"lock folder {folder} ({setting}) cannot be created "
            f"({exc.strerror or type(exc).__name__}); {fix}"
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"lock folder {folder} ({setting}) is not a folder; {fix}")
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"lock folder {folder} ({setting}) belongs to uid {info.st_uid}, not to the user "
            f"rotator runs as (uid {os.geteuid()}); {fix}"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"lock folder {folder} ({setting}) can be written by others "
            f"(mode {stat.S_IMODE(info.st_mode):o}); chmod 700 it, or {fix}"
        )
    return folder


def file_name(tenant: str, ref: str) -> str:
    """The lock file of connection ``ref`` (a name or a con_ id) on ``tenant``.

    Readable for people listing the folder, bounded in length, and unique: the
    hash covers the exact pair, so two names that sanitise alike never share.
    """
    digest = hashlib.sha256(f"{tenant}\0{ref}".encode()).hexdigest()[:16]
    readable = _UNSAFE.sub("_", f"{tenant}_{ref}")[:100]
    return f"{readable}.{digest}.lock"


def _holder(fd: int) -> str:
    """The pid the holder wrote into the lock file ("unknown" while it has not yet)."""
    with contextlib.suppress(OSError):
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return text
    return "unknown"


class Locks:
    """The lock files of one (already prepared) lock folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, tenant: str, ref: str) -> Path:
        return self.folder / file_name(tenant, ref)

    @contextlib.contextmanager
    def hold(
        self, tenant: str, ref: str, deadline: Deadline, log: Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> Iterator[bool]:
        """Hold the lock of ``ref`` on ``tenant``; yields whether another run held it first."""
        path = self.path(tenant, ref)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise LockError(f"cannot open the lock file {path} "
                            f"({exc.strerror or type(exc).__name__}); check ROTATOR_LOCK_DIR"
                            ) from None
        try:
            waited = self._take(fd, path, ref, deadline, log, clock)
            pid = f"{os.getpid()}\n".encode()
            os.pwrite(fd, pid, 0)
            os.ftruncate(fd, len(pid))
            yield waited
        finally:
            os.close(fd)  # releases the lock

    @staticmethod
    def _take(fd: int, path: Path, ref: str, deadline: Deadline, log: Logger,
              clock: Callable[[], float]) -> bool:
        started: float | None = None
        holder = "unknown"
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise LockError(f"cannot lock {path} ({exc.strerror})") from None
            else:
                if started is not None:
                    log.info("lock.acquired", connection_ref=ref, lock_file=str(path),
                             waited_seconds=round(clock() - started, 3), after_pid=holder)
                return started is not None
            if started is None:
                started, holder = clock(), _holder(fd)
                log.warning("lock.waiting", connection_ref=ref, holder_pid=holder,
                            lock_file=str(path), deadline_seconds=round(deadline.remaining()),
                            note="another rotator run is rotating this connection; "
                                 "waiting for it to finish, then reading the connection again")
            if deadline.interrupt.is_set():
                raise DeadlineError(f"stopped by a signal while waiting for the lock held by "
                                    f"pid {holder}; nothing was written")
            if deadline.passed():
                raise LockError(
                    f"another rotator run (pid {holder}) held the lock {path} for the whole "
                    f"deadline of {deadline.seconds:g} s; nothing was written. If that run is "
                    "stuck, stop it; a killed run releases its lock"
                )
            deadline.interrupt.wait(min(POLL, deadline.remaining()))

    def acquirer(self, tenant: str, deadline: Deadline, log: Logger) -> Acquire:
        """The per-connection seam a rotation takes: ``acquire(ref)``."""

        def acquire(ref: str) -> AbstractContextManager[bool]:
            return self.hold(tenant, ref, deadline, log)

        return acquire


def prepared(lock_dir: tuple[Path, str] | None) -> Locks | None:
    """The locks of a loaded configuration's folder, prepared (None: settings take no lock)."""
    return Locks(prepare(*lock_dir)) if lock_dir is not None else None


def unlocked(ref: str) -> AbstractContextManager[bool]:
    """For read-only runs and unit tests: no lock, never waited."""
    return contextlib.nullcontext(False)
