"""What rotation needs of the outside world: a connection, an Auth0 side, an Apple side.

These are the seams. Production passes :class:`rotator.auth0.Tenant` and
:class:`rotator.apple.Apple`; unit tests pass small fakes built on the
emulator's in-process Auth0 and Apple. Nothing here imports a network library.
"""

from __future__ import annotations

from collections.abc import Mapping
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


class Auth0Side(Protocol):
    """One tenant's Management API, as rotation uses it."""

    @property
    def name(self) -> str:
        """The tenant as logged: its domain."""
        ...

    def read(self, ref: str) -> Connection:
        """The connection with id ``ref`` (``con_...``), else the one named ``ref``.

        Raises TokenError (no token) or Auth0ReadError (not found, refused, unreachable).
        """
        ...

    def write(self, conn_id: str, body: Mapping[str, JSON]) -> Connection:
        """PATCH exactly ``body``; the stored connection from the answer.

        Raises Auth0WriteError when the PATCH failed or its answer was lost.
        """
        ...

    def serve(self, deadline: Deadline) -> None:
        """Work for the run with this deadline (a tenant can outlive one run)."""
        ...

    def granted_scopes(self) -> frozenset[str]:
        """The scopes of the access token in use (fetching one if needed)."""
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
