"""Tests for rotator.modes: what a run does and what a command needs, as one value each."""

from __future__ import annotations

import pytest

from rotator.modes import Mode, Needs, Rotate


def test_each_command_has_one_mode() -> None:
    """status, check-config --online, run-once, run-now: one value each, with its properties."""
    assert (Mode.check().rotates, Mode.check().judges_live_secret) == (False, True)
    assert (Mode.online().probe, Mode.online().judges_live_secret) == (True, False)
    assert Mode.rotating() == Mode()
    assert Mode().rotate is Rotate.WHEN_DUE
    assert (Mode.rotating(force=True).forced, Mode.rotating(dry_run=True).dry_run) == (True, True)


@pytest.mark.parametrize("fields", [
    {"rotate": Rotate.NEVER, "dry_run": True},
    {"rotate": Rotate.WHEN_DUE, "probe": True},
    {"rotate": Rotate.ALWAYS, "warn_within": 60},
])
def test_a_mode_that_makes_no_sense_cannot_be_built(fields: dict[str, object]) -> None:
    """A dry run that never rotates, or a rotating probe, is refused (not under -O either)."""
    with pytest.raises(ValueError, match=r"dry run|read-only"):
        Mode(**fields)  # type: ignore[arg-type]


def test_only_mint_does_without_auth0() -> None:
    """Needs.KEY asks for neither Auth0 settings nor a connection name; EVERYTHING asks for both."""
    assert (Needs.KEY.auth0, Needs.KEY.connection_name) == (False, False)
    assert (Needs.EVERYTHING.auth0, Needs.EVERYTHING.connection_name) == (True, True)
