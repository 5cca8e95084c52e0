"""A run's deadline: the moment after which no wait, retry or request may start.

Every run (``run-once``, ``run-now``, ``status``, ``check-config --online``,
each check of ``start``) gets one. Code that waits asks :meth:`Deadline.allows`
first and waits with :meth:`Deadline.sleep`, which a stop request (a signal)
cuts short; code that sends a request takes its timeout from :meth:`timeout`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rotator.errors import DeadlineError


@dataclass(frozen=True)
class Deadline:
    """``seconds`` after the moment it was made, on a monotonic clock."""

    seconds: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    at: float = field(default=0.0)
    #: Set when the run is asked to stop: every wait ends at once.
    interrupt: threading.Event = field(default_factory=threading.Event, repr=False,
                                       compare=False)

    def __post_init__(self) -> None:
        if not self.at:
            object.__setattr__(self, "at", self.clock() + self.seconds)

    def remaining(self) -> float:
        """Seconds left (0 once passed)."""
        return max(0.0, self.at - self.clock())

    def passed(self) -> bool:
        return self.remaining() <= 0

    def allows(self, wait: float) -> bool:
        """Whether waiting ``wait`` seconds still ends before the deadline."""
        return wait < self.remaining()

    def timeout(self, longest: float) -> float:
        """A request timeout: ``longest``, or what is left if that is less (at least 0.1 s)."""
        return max(0.1, min(longest, self.remaining()))

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; a stop request ends the wait with DeadlineError."""
        if self.interrupt.wait(seconds):
            raise DeadlineError("stopped by a signal while waiting to retry; nothing more was sent")

    def check(self, doing: str) -> None:
        """Raise DeadlineError when the deadline has passed."""
        if self.passed():
            raise DeadlineError(
                f"the run's deadline of {self.seconds:g} s passed before {doing}; "
                "raise schedule.deadline if your tenant is this slow"
            )

