"""No core dumps: a crash must not write the secrets in memory to disk.

A process that holds the M2M client secret, a Management API token, the
``.p8`` key and the live Apple secret would write all of them into a core file
on SIGQUIT or a crash (80 MB of it, readable by whoever reads the dump
directory). Every command turns core dumps off as it starts: the soft and hard
``RLIMIT_CORE`` to 0, and on Linux ``PR_SET_DUMPABLE`` to 0, which also keeps
other processes of the same user from attaching a debugger or reading
``/proc/<pid>/mem``. Where either is unavailable it is skipped, silently: it
is a defence in depth, not a promise the platform can always keep.
"""

from __future__ import annotations

import contextlib
import sys

PR_SET_DUMPABLE = 4  # <linux/prctl.h>
PR_GET_DUMPABLE = 3


def disable() -> None:
    """Core dumps off for this process (and, for RLIMIT_CORE, the children it starts)."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            _prctl(PR_SET_DUMPABLE, 0)


def dumpable() -> int | None:
    """``PR_GET_DUMPABLE`` of this process on Linux (0: no dumps), else None."""
    if not sys.platform.startswith("linux"):
        return None
    return _prctl(PR_GET_DUMPABLE, 0)


def _prctl(option: int, value: int) -> int:
    import ctypes  # here: only Linux pays for it

    libc = ctypes.CDLL(None, use_errno=True)
    result = int(libc.prctl(option, value, 0, 0, 0))
    if result < 0:
        raise OSError(ctypes.get_errno(), "prctl failed")
    return result
