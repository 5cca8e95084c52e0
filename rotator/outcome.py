"""What happened to each connection in one run: the facts every reporter reads.

``rotation`` and ``runner`` fill an :class:`Outcome` per connection; ``status``
prints them, ``metrics`` exports them, ``service`` turns them into readiness,
``cli`` into an exit code, ``hooks`` into an ``on_failure`` call. An outcome
states facts (checked, rotated, failed at which step); what they mean for an
exit code is decided in ``cli`` alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from rotator.seams import Verdict

#: The steps of a check and a rotation, as logged in ``rotation.failed``.
STEPS = ("connect", "token", "read", "apple_check", "mint", "write", "verify", "hook")


@dataclass(frozen=True)
class Planned:
    """What a dry run would have written: the new secret's claims, and the options kept."""

    kid: str
    sub: str
    iat: int
    exp: int
    fingerprint: str
    options_kept: int


@dataclass
class Outcome:
    """One connection in one run."""

    connection: str
    tenant: str
    source: str = ""  # where it is configured, for messages
    checked: bool = False  # read and judged
    due: bool | None = None
    reason: str | None = None
    why: str | None = None
    forced: bool = False
    live: bool = False  # the connection held a secret when read
    apple: Verdict = "off"  # Apple's verdict on the secret live after this run
    apple_detail: str = ""
    kid: str | None = None
    sub: str | None = None
    iat: int | None = None  # of the secret live after this run
    exp: int | None = None
    due_at: int | None = None
    fingerprint: str | None = None
    rotated: bool = False
    dry_run: bool = False
    planned: Planned | None = None  # a dry run: what would have been written
    abandoned: bool = False  # stopped before its write (a signal); the old secret stays
    step: str | None = None  # where it failed
    error: str | None = None
    hook_failed: bool = False  # the rotation stands; the post-rotate hook did not succeed
    missing_scopes: list[str] = field(default_factory=list)  # check-config --online

    @property
    def ok(self) -> bool:
        """No step failed (a failed hook counts: what it should have done is not done)."""
        return self.error is None and not self.hook_failed and not self.abandoned


class InFlight:
    """The connections being worked on right now, and the step each is at (thread-safe)."""

    def __init__(self) -> None:
        self._at: dict[int, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def at(self, index: int, name: str, step: str) -> None:
        with self._lock:
            self._at[index] = (name, step)

    def done(self, index: int) -> None:
        with self._lock:
            self._at.pop(index, None)

    def describe(self) -> str:
        """"apple (at write), apple-ios (at read)", or "" when nothing is in flight."""
        with self._lock:
            busy = sorted(self._at.items())
        return ", ".join(f"{name} (at {step})" for _, (name, step) in busy)


@dataclass
class Report:
    """Every connection's outcome, in configuration order."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def counts(self) -> dict[str, int]:
        """For ``run.finished``."""
        return {
            "checked": sum(o.checked for o in self.outcomes),
            "rotated": sum(o.rotated for o in self.outcomes),
            "failed": sum(o.error is not None for o in self.outcomes),
            "hook_failed": sum(o.hook_failed for o in self.outcomes),
            "abandoned": sum(o.abandoned for o in self.outcomes),
        }
