"""Tests for rotator.seams: the real Auth0 tenant and Apple client, and the tests' fakes, each
offer every member of their seam with the seam's own signature; the values are frozen; the
module loads no network library."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from typing import Any

import pytest
from fakes import AlteringTenant, FakeApple, FakeTenant

from rotator.apple import Apple
from rotator.auth0 import Tenant
from rotator.seams import AppleAnswer, AppleSide, Connection, Destination

#: What production and the unit tests pass for each seam (mypy checks these assignments).
DESTINATIONS: tuple[type[Destination], ...] = (Tenant, FakeTenant, AlteringTenant)
APPLE_SIDES: tuple[type[AppleSide], ...] = (Apple, FakeApple)


def members(seam: type) -> dict[str, Any]:
    """The members a seam declares: its public methods and properties."""
    return {name: value for name, value in vars(seam).items()
            if not name.startswith("_") and (callable(value) or isinstance(value, property))}


def shape(member: Any) -> tuple[str, list[tuple[str, Any]] | None]:
    """A member's kind and, for a method, its parameters by name and kind (``self`` left out)."""
    if isinstance(member, property):
        return "property", None
    parameters = list(inspect.signature(member).parameters.values())[1:]
    return "method", [(p.name, p.kind) for p in parameters]


def test_the_seams_declare_what_rotation_uses() -> None:
    """Destination: read, refuse, write, verify, scopes, a run's deadline; AppleSide: ask."""
    assert set(members(Destination)) == {
        "name", "read", "fetch", "live_secret", "describe_write", "publish", "verify",
        "missing_scopes", "serve", "close"}
    assert set(members(AppleSide)) == {"ask", "close"}


@pytest.mark.parametrize(("seam", "cls"), [
    *((Destination, cls) for cls in DESTINATIONS), *((AppleSide, cls) for cls in APPLE_SIDES),
], ids=lambda value: value.__name__)
def test_each_implementation_has_every_member_with_the_seams_signature(
    seam: type, cls: type,
) -> None:
    """A property stays a property; a method takes the same parameters, by the same names."""
    for name, declared in members(seam).items():
        assert hasattr(cls, name), f"{cls.__name__} lacks {name}"
        offered = inspect.getattr_static(cls, name)
        assert shape(offered) == shape(declared), f"{cls.__name__}.{name}"


def test_the_values_crossing_the_seams_are_frozen() -> None:
    """A Connection as read and an AppleAnswer as given cannot be changed afterwards."""
    conn = Connection(id="con_x", name="apple", strategy="oauth2", display_name=None,
                      options={"client_secret": "old"})
    answer = AppleAnswer("accepted", "invalid_grant")
    with pytest.raises(dataclasses.FrozenInstanceError):
        conn.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        answer.verdict = "refused"  # type: ignore[misc]


def test_importing_the_seams_loads_no_network_library() -> None:
    """The seams are types only: importing them loads neither httpx nor auth0-python."""
    code = ("import json, sys, rotator.seams; print(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('httpx', 'auth0', 'httpcore', 'jwt', 'cryptography'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert json.loads(proc.stdout) == []
