"""What rotation needs of the outside world: a connection, a destination, an Apple side.

These are the seams. Production passes :class:`rotator.auth0.Tenant` (a
:class:`Destination` through :class:`rotator.auth0_rules.Auth0Connections`) and
:class:`rotator.apple.Apple`; unit tests pass small fakes built on the
emulator's in-process Auth0 and Apple. Nothing here imports a network library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from rotator.deadline import Deadline

#: A JSON value as ``json.loads`` returns it.
JSON = Any

Verdict = Literal["accepted", "refused", "unknown", "off"]


@dataclass(frozen=True)
class Connection:
    """A connection exactly as the Management API returned it."""

    id: str
    name: str
    strategy: str
    display_name: str | None
    #: The options as parsed from the answer's JSON (types kept); None when the
    #: answer left them out (the token lacks ``read:connections_options``).
    options: dict[str, JSON] | None


class Destination(Protocol):
    """Where a secret is published (an Auth0 tenant), as the rotation steps use it.

    The destination knows its own rules: what it refuses to write, what a write
    sends, how a write is verified. The steps only say which connection, which
    Services ID and which new secret.
    """

    @property
    def name(self) -> str:
        """The tenant as logged: its domain."""
        ...

    def read(self, ref: str) -> Connection:
        """The connection with id ``ref`` (``con_...``), else the one named ``ref``, as stored.

        Raises TokenError (no token) or Auth0ReadError (not found, refused, unreachable).
        """
        ...

    def fetch(self, ref: str, services_id: str) -> Connection:
        """:meth:`read`, refusing (RefusedError) what rotator must not write for ``services_id``."""
        ...

    def live_secret(self, conn: Connection) -> str | None:
        """The client secret ``conn`` holds, if any."""
        ...

    def describe_write(self, found: Connection, new: str) -> dict[str, Any]:
        """What publishing ``new`` into ``found`` would send (fields for the dry run's log)."""
        ...

    def publish(self, found: Connection, new: str) -> Connection:
        """Write ``new`` into ``found``, everything else as read; the stored connection.

        Raises Auth0WriteError when the write failed or its answer was lost.
        """
        ...

    def verify(self, found: Connection, stored: Connection, new: str) -> list[str]:
        """VerificationError unless ``stored`` is ``found`` with ``new``; options added besides."""
        ...

    def missing_scopes(self) -> list[str]:
        """The permissions rotator needs that its credentials lack."""
        ...

    def serve(self, deadline: Deadline) -> None:
        """Work for the run with this deadline (a tenant can outlive one run)."""
        ...

    def close(self) -> None:
        """Let go of connections and forget the token."""
        ...


@dataclass(frozen=True)
class AppleAnswer:
    """What Apple said of one secret."""

    verdict: Verdict
    #: For people: Apple's error code, or why it could not be asked.
    detail: str


class AppleSide(Protocol):
    """Apple's token endpoint, asked whether it accepts a client secret."""

    def ask(self, secret: str, services_id: str) -> AppleAnswer:
        """``accepted``, ``refused`` or ``unknown`` (could not be asked)."""
        ...

    def close(self) -> None:
        """Let go of connections."""
        ...
