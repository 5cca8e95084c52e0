"""What happened to each connection in one run: the facts every reporter reads.

``rotation`` and ``runner`` fill an :class:`Outcome` per connection; ``status``
prints them, ``metrics`` exports them, ``service`` turns them into readiness,
``cli`` into an exit code, ``hooks`` into an ``on_failure`` call. An outcome
states facts (checked, rotated, failed at which step). Whether a connection
is healthy is decided once, by :func:`trouble`: the exit code, ``run.finished``
counts, ``status``, ``/readyz`` and the metrics all ask it, so they cannot
disagree.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum

from rotator.modes import Mode
from rotator.seams import Verdict


class Step(StrEnum):
    """The steps of a check and a rotation: the one spelling logs, hooks and outcomes use."""

    CONNECT = "connect"  # building the tenant's client (its CA bundle, its settings)
    TOKEN = "token"  # noqa: S105 - fetching an access token (a step name, not a password)
    READ = "read"  # reading the connection, and refusing what is unsafe to write
    APPLE_CHECK = "apple_check"  # asking Apple about a secret
    MINT = "mint"
    WRITE = "write"
    VERIFY = "verify"
    HOOK = "hook"  # the post-rotate hook
    UNKNOWN = "unknown"  # a check that crashed before naming its step

    @property
    def after_write(self) -> bool:
        """Whether the write may have landed by this step (a stop no longer abandons it)."""
        return self in (Step.WRITE, Step.VERIFY, Step.HOOK)


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
    mode: Mode = field(default_factory=Mode)  # what the run did, as the command chose it
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
    step: Step | None = None  # where it failed
    error: str | None = None
    hook_failed: bool = False  # the rotation stands; the post-rotate hook did not succeed
    missing_scopes: list[str] = field(default_factory=list)  # check-config --online


def trouble(outcome: Outcome, now: float) -> str | None:
    """Why ``outcome``'s connection is not healthy after its run, or None when it is.

    The one health predicate. A phrase that follows the connection's name
    ("apple failed at read"). ``now`` (epoch seconds) judges the live secret's
    expiry, which only a read-only check (``status``) takes as its result.

    A failed post-rotate hook leaves the connection healthy (its new secret
    stands; ``rotator_hook_failures_total`` counts the hook) and fails the run:
    see :attr:`Report.succeeded`.
    """
    o = outcome
    if o.abandoned:
        return "was stopped by a signal before it finished"
    if o.apple == "refused":  # first: sign-ins fail now, whatever else went wrong
        return "cannot sign users in: Apple refuses the live secret"
    if o.error is not None:
        return f"failed at {o.step or Step.UNKNOWN}"
    if o.missing_scopes:
        return f"has a token lacking {', '.join(o.missing_scopes)}"
    if o.apple == "unknown" and o.live:
        return "has a live secret Apple could not be asked about"
    if o.mode.judges_live_secret:
        if o.exp is None:
            return "has no live secret"
        if o.exp <= now:
            return "has a live secret that has expired"
        if o.mode.warn_within is not None and o.exp - now <= o.mode.warn_within:
            return "has a live secret expiring within --warn-within"
    return None



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
    """Every connection's outcome, in configuration order, and when it was judged."""

    outcomes: list[Outcome] = field(default_factory=list)
    at: float = field(default_factory=time.time)  # epoch seconds

    @property
    def failed(self) -> list[Outcome]:
        """The outcomes that are not healthy (:func:`trouble`)."""
        return [o for o in self.outcomes if trouble(o, self.at) is not None]

    @property
    def succeeded(self) -> bool:
        """Every connection healthy and every post-rotate hook run: exit code 0."""
        return not self.failed and not any(o.hook_failed for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        """For ``run.finished``: ``failed`` and ``hook_failed`` are what the exit code counts."""
        return {
            "checked": sum(o.checked for o in self.outcomes),
            "rotated": sum(o.rotated for o in self.outcomes),
            "failed": len(self.failed),
            "hook_failed": sum(o.hook_failed for o in self.outcomes),
            "abandoned": sum(o.abandoned for o in self.outcomes),
        }
