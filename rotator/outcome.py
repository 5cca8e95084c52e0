"""What happened to each connection in one run: the facts every reporter reads.

``rotation`` and ``runner`` fill an :class:`Outcome` per connection; ``status``
prints them, ``metrics`` exports them, ``service`` turns them into readiness,
``cli`` into an exit code, ``hooks`` into an ``on_failure`` call. An outcome
states facts (checked, rotated, failed at which step); what they mean for an
exit code is decided in ``cli`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

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
    abandoned: bool = False  # stopped before its write (a signal); the old secret stays
    step: Step | None = None  # where it failed
    error: str | None = None
    hook_failed: bool = False  # the rotation stands; the post-rotate hook did not succeed
    missing_scopes: list[str] = field(default_factory=list)  # check-config --online

    @property
    def ok(self) -> bool:
        """No step failed (a failed hook counts: what it should have done is not done)."""
        return self.error is None and not self.hook_failed and not self.abandoned

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
