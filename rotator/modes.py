"""The run vocabulary: what a run does, and what a command needs of the configuration.

A command chooses one :class:`Mode` and hands it, unchanged, through the run
(:mod:`rotator.runner`) to the rotation steps (:mod:`rotator.rotation`) and
into every :class:`~rotator.outcome.Outcome`, where the health predicate reads
it. A command chooses one :class:`Needs` and hands it to the loader
(:mod:`rotator.config`). This module imports nothing heavy (``rotator mint``
uses it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum


class Rotate(StrEnum):
    """Whether a run writes a new secret."""

    NEVER = "never"  # read, judge and ask Apple only (status, check-config --online)
    WHEN_DUE = "when_due"  # run-once, each check of start
    ALWAYS = "always"  # run-now


@dataclass(frozen=True, kw_only=True)
class Mode:
    """What one run does to every connection it looks at."""

    rotate: Rotate = Rotate.WHEN_DUE
    #: Everything but the write (run-once/run-now --dry-run).
    dry_run: bool = False
    #: check-config --online: each token's scopes, and Apple's word on a secret
    #: minted now as well as on the live one.
    probe: bool = False
    #: status --warn-within: a live secret expiring within this many seconds fails.
    warn_within: int | None = None

    def __post_init__(self) -> None:
        if self.dry_run and self.rotate is Rotate.NEVER:
            raise ValueError("a dry run is a rotation that does not write")
        if (self.probe or self.warn_within is not None) and self.rotate is not Rotate.NEVER:
            raise ValueError("probe and warn_within belong to read-only runs")

    @classmethod
    def check(cls, warn_within: int | None = None) -> Mode:
        """``status``: read each connection, judge its live secret, ask Apple; write nothing."""
        return cls(rotate=Rotate.NEVER, warn_within=warn_within)

    @classmethod
    def online(cls) -> Mode:
        """``check-config --online``: as ``status``, plus scopes and a freshly minted secret."""
        return cls(rotate=Rotate.NEVER, probe=True)

    @classmethod
    def rotating(cls, *, force: bool = False, dry_run: bool = False) -> Mode:
        """``run-once`` (due ones), ``run-now`` (``force``), each check of ``start``."""
        return cls(rotate=Rotate.ALWAYS if force else Rotate.WHEN_DUE, dry_run=dry_run)

    @property
    def rotates(self) -> bool:
        return self.rotate is not Rotate.NEVER

    @property
    def forced(self) -> bool:
        return self.rotate is Rotate.ALWAYS

    @property
    def judges_live_secret(self) -> bool:
        """Whether the live secret, as found, is the run's result (``status``).

        A rotating run replaces a secret that is missing, expired or refused (or
        fails saying why); a probe asks whether rotator could work, and a dry run
        what a rotation would do.
        """
        return self.rotate is Rotate.NEVER and not self.probe


class Needs(Enum):
    """What a command needs of the configuration."""

    #: ``mint``: the Apple key, team and key ids and a Services ID; contacts nothing,
    #: so neither Auth0 settings nor a connection name are asked for.
    KEY = "key"
    #: Every other command: Auth0 as well, and each connection's name.
    EVERYTHING = "everything"

    @property
    def auth0(self) -> bool:
        return self is Needs.EVERYTHING

    @property
    def connection_name(self) -> bool:
        return self is Needs.EVERYTHING
