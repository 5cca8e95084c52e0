"""SIGTERM and SIGINT as a request to stop: one helper for one-shot runs and the service.

While :func:`caught` holds, the signals set :attr:`Caught.stop` (and are
recorded, so the exit code can name the first) instead of killing the
process: a rotation already past its write finishes, one that has not written
yet is abandoned. A second SIGINT raises ``KeyboardInterrupt`` as usual
(someone insists). With ``hangup`` (``rotator start``), SIGHUP counts in
:attr:`Caught.hangups` instead of killing the process: load the settings again.
The previous handlers come back when the block ends.

A handler runs in the main thread, between two of its bytecodes: if it took a
lock the main thread happened to hold at that moment (a ``threading.Event``'s,
while the main thread waits on or clears that event), the process would hang
for good. So the handler takes no lock the main thread ever holds: it counts,
appends and sets :attr:`Caught.stop` (which only other threads wait on). And a
signal may be delivered to any thread, when the Python handler runs only once
the main thread runs again: so the main thread sleeps in :meth:`Caught.wait`, a
``select`` on the pipe that :func:`signal.set_wakeup_fd` has the interpreter
write a byte to, in C, whichever thread the signal reached.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

Handler = Callable[[int, FrameType | None], object] | int | None

#: The signals that ask rotator to stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class Caught:
    """What the signals said while the block ran."""

    #: Set by SIGTERM and SIGINT. Worker threads wait on it; the main thread only
    #: reads it, and sleeps in :meth:`wait` (see the module's docstring).
    stop: threading.Event = field(default_factory=threading.Event)
    received: list[str] = field(default_factory=list)  # stop signal names, in order
    hangups: int = 0  # SIGHUPs caught so far (hangup=True): each asks for a reload
    _pipe: tuple[int, int] = (-1, -1)  # (read, write): the interpreter's wakeup fd

    @property
    def first(self) -> str | None:
        """The first signal received ("SIGTERM"), if any."""
        return self.received[0] if self.received else None

    def wait(self, timeout: float | None = None) -> None:
        """Sleep until a signal is caught (or ``timeout`` seconds pass): the main thread's wait.

        A signal caught before the call ends the next call at once: its byte waits
        in the pipe.
        """
        ready, _, _ = select.select([self._pipe[0]], [], [], timeout)
        if ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._pipe[0], 4096)


@contextmanager
def caught(on_first_interrupt: Callable[[], None] | None = None, *,
           hangup: bool = False) -> Iterator[Caught]:
    """While the block runs, SIGTERM and SIGINT ask it to stop instead of killing it.

    ``on_first_interrupt`` is called on the first SIGINT (Ctrl-C), to tell the
    person who pressed it what happens now. ``hangup``: SIGHUP too is caught, as
    a request to reload (:attr:`Caught.hangup`).
    """
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    state = Caught(_pipe=(read, write))
    previous: dict[signal.Signals, Handler] = {}

    def on_signal(signum: int, _: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            state.hangups += 1
            return
        state.received.append(signal.Signals(signum).name)
        if signum == signal.SIGINT and state.stop.is_set():
            raise KeyboardInterrupt
        state.stop.set()
        if signum == signal.SIGINT and on_first_interrupt is not None:
            on_first_interrupt()

    wakeup = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    try:
        for sig in (*STOP_SIGNALS, *((signal.SIGHUP,) if hangup else ())):
            previous[sig] = signal.signal(sig, on_signal)
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(wakeup)
        os.close(read)
        os.close(write)
