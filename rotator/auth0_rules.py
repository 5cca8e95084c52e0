"""The Auth0 side of the seam, without the network: what Auth0 asks of a rotation.

:class:`Auth0Connections` turns two primitives (read a connection, PATCH a
body) into what the rotation steps ask of a :class:`~rotator.seams.Destination`:
Auth0's refusals (a strategy other than ``oauth2``, options hidden from the
token, another Services ID), the PATCH body (exactly the options read, with
``client_secret`` replaced, and the ``display_name`` read), its verification
(JSON types included), the scopes. :class:`rotator.auth0.Tenant` adds the
network; the tests' fakes add the emulator's in-process backend. The rotation
steps never name Auth0. Nothing here imports a network library.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from rotator.errors import RefusedError, VerificationError
from rotator.jsonvalue import differing
from rotator.seams import JSON, Connection

#: The Management API scopes the M2M application needs.
SCOPES = (
    "read:connections",
    "update:connections",
    "read:connections_options",
    "update:connections_options",
)


def missing_scopes(granted: frozenset[str]) -> list[str]:
    """The Management API scopes rotator needs that ``granted`` lacks."""
    return [scope for scope in SCOPES if scope not in granted]


def refuse(found: Connection, services_id: str) -> None:
    """Raise RefusedError, saying why and what to change, when rotator must not write ``found``."""
    if found.strategy != "oauth2":
        hint = (
            "a native Apple connection makes its own secret from the key you upload to Auth0; "
            "rotator manages custom social connections (strategy oauth2)"
            if found.strategy == "apple"
            else "rotator manages custom social connections (strategy oauth2) only"
        )
        raise RefusedError(
            f"connection {found.name!r} has strategy {found.strategy!r}: {hint}; "
            "point connection at the custom social connection that signs in with Apple"
        )
    if found.options is None:
        raise RefusedError(
            f"connection {found.name!r} came back without options: the token lacks "
            "read:connections_options, and writing now would wipe every option; grant "
            "read:connections_options and update:connections_options to the M2M application"
        )
    if found.options.get("client_id") != services_id:
        raise RefusedError(
            f"connection {found.name!r} has options.client_id "
            f"{found.options.get('client_id')!r}, not the configured Services ID "
            f"{services_id!r}; fix client_id in the configuration (or the connection)"
        )


def body(found: Connection, new: str) -> dict[str, JSON]:
    """The PATCH body: the options just read with client_secret replaced, and display_name.

    Auth0 replaces the whole ``options`` object on PATCH (an option left out is
    lost) and resets a left-out ``display_name`` to the connection's name.
    """
    options = dict(found.options or {})
    options["client_secret"] = new
    patch: dict[str, JSON] = {"options": options}
    if found.display_name is not None:
        patch["display_name"] = found.display_name
    return patch


def secret_in(conn: Connection) -> str | None:
    """The client secret a connection holds, if any."""
    held = (conn.options or {}).get("client_secret")
    return held if isinstance(held, str) and held else None


class Auth0Connections(ABC):
    """A :class:`~rotator.seams.Destination` on top of an Auth0 tenant's two primitives."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The tenant as logged: its domain."""

    @abstractmethod
    def read(self, ref: str) -> Connection:
        """The connection with id ``ref`` (``con_...``), else the one named ``ref``, as stored."""

    @abstractmethod
    def write(self, conn_id: str, patch: Mapping[str, JSON]) -> Connection:
        """PATCH exactly ``patch``; the stored connection from the answer."""

    @abstractmethod
    def granted_scopes(self) -> frozenset[str]:
        """The scopes of the access token in use (fetching one if needed)."""

    def fetch(self, ref: str, services_id: str) -> Connection:
        """Read ``ref`` and refuse what rotator must not write (RefusedError)."""
        found = self.read(ref)
        refuse(found, services_id)
        return found

    def live_secret(self, conn: Connection) -> str | None:
        return secret_in(conn)

    def describe_write(self, found: Connection, new: str) -> dict[str, Any]:
        """What a write of ``new`` would send, for the dry run's log line."""
        options = found.options or {}
        return {"would_write": list(body(found, new)),
                "options_kept": len(options) - ("client_secret" in options)}

    def publish(self, found: Connection, new: str) -> Connection:
        """Write ``new`` into ``found`` keeping everything else; the stored connection."""
        return self.write(found.id, body(found, new))

    def verify(self, found: Connection, stored: Connection, new: str) -> list[str]:
        """Raise VerificationError unless ``stored`` holds exactly what was sent.

        Every option sent must come back with the same JSON value and type, and
        display_name unchanged. Returns the options Auth0 added on its own (a
        server-side default), which are logged, not failed.
        """
        if stored.options is None:  # the answer left options out: read again
            stored = self.read(found.id)
        sent = body(found, new)["options"]
        held = stored.options or {}
        if bad := differing(sent, held):
            raise VerificationError(
                f"connection {found.name!r} does not hold what was written; options differing: "
                f"{', '.join(bad)}; the new secret may or may not be live, run rotator status"
            )
        wanted = found.display_name
        if wanted is not None and stored.display_name != wanted:
            raise VerificationError(
                f"connection {found.name!r} display_name changed from {wanted!r} to "
                f"{stored.display_name!r}; set it back in the Auth0 dashboard"
            )
        return sorted(set(held) - set(sent))

    def missing_scopes(self) -> list[str]:
        """The scopes rotator needs that the token in use lacks."""
        return missing_scopes(self.granted_scopes())
