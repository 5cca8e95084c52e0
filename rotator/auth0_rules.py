"""What Auth0 asks of rotator, as rules that need no network: the scopes it must hold.

The Auth0 side of the seam (:class:`rotator.auth0.Tenant`, and the tests'
fakes) applies these; the rotation steps never name Auth0. Nothing here
imports a network library.
"""

from __future__ import annotations

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
