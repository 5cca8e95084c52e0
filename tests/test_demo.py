"""Tests for rotator.demo: `rotator demo`, the whole flow against its own emulator."""

from __future__ import annotations

import pytest

from rotator import cli


def test_demo_runs_the_whole_flow(capsys: pytest.CaptureFixture[str]) -> None:
    """rotator demo rotates against its own emulator, shows status, and exits 0."""
    code = cli.main(["demo"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "new secret stored: yes" in out
    assert "writes during run-once: 0" in out
