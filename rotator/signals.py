"""SIGTERM and SIGINT as a request to stop: one helper for one-shot runs and the service.

While :func:`caught` holds, the signals set :attr:`Caught.stop` (and are
recorded, so the exit code can name the first) instead of killing the
process: a rotation already past its write finishes, one that has not written
yet is abandoned. A second SIGINT raises ``KeyboardInterrupt`` as usual
(someone insists). The previous handlers come back when the block ends.
"""

from __future__ import annotations

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

    stop: threading.Event = field(default_factory=threading.Event)
    received: list[str] = field(default_factory=list)  # signal names, in order

    @property
    def first(self) -> str | None:
        """The first signal received ("SIGTERM"), if any."""
        return self.received[0] if self.received else None


@contextmanager
def caught(on_first_interrupt: Callable[[], None] | None = None) -> Iterator[Caught]:
    """While the block runs, SIGTERM and SIGINT ask it to stop instead of killing it.

    ``on_first_interrupt`` is called on the first SIGINT (Ctrl-C), to tell the
    person who pressed it what happens now.
    """
    state = Caught()
    previous: dict[signal.Signals, Handler] = {}

    def on_signal(signum: int, _: FrameType | None) -> None:
        state.received.append(signal.Signals(signum).name)
        if signum == signal.SIGINT and state.stop.is_set():
            raise KeyboardInterrupt
        state.stop.set()
        if signum == signal.SIGINT and on_first_interrupt is not None:
            on_first_interrupt()

    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, on_signal)
    try:
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
