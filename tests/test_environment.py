"""Tests for rotator.environment: one table of every variable, read in one module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import variables_read

from rotator import environment

PACKAGE = Path(environment.__file__).parent


def test_every_variable_the_code_reads_is_in_the_table() -> None:
    """Each variable name in rotator's source (test_docs' scan, hooks' own aside) is a row."""
    assert variables_read() - {"HTTPS_PROXY", "NO_PROXY"} <= environment.NAMES


def test_only_the_environment_module_reads_the_environment() -> None:
    """No other module of the package touches os.environ or os.getenv."""
    readers = [path.name for path in PACKAGE.rglob("*.py") if path.name != "environment.py"
               and re.search(r"os\.environ|getenv", path.read_text(encoding="utf-8"))]
    assert readers == []


def test_a_snapshot_keeps_rotators_variables_only() -> None:
    """The snapshot holds rotator's own names and the table's, nothing else of the process's."""
    got = environment.snapshot({"AUTH0_DOMAIN": "t.example", "HOME": "/root", "PATH": "/bin",
                                "ROTATOR_SOMETHING_NEW": "1"})
    assert got == {"AUTH0_DOMAIN": "t.example", "PATH": "/bin", "ROTATOR_SOMETHING_NEW": "1"}


def test_hooks_inherit_no_secret_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """for_children drops every variable the table marks secret, and adds what it is given."""
    for name in environment.SECRETS:
        monkeypatch.setenv(name, "s3cret-value")
    monkeypatch.setenv("AUTH0_DOMAIN", "t.example")
    child = environment.for_children({"ROTATOR_STEP": "read"})
    assert not environment.SECRETS & set(child)
    assert (child["AUTH0_DOMAIN"], child["ROTATOR_STEP"]) == ("t.example", "read")
    assert {"AUTH0_CLIENT_SECRET", "AUTH0_CLIENT_ASSERTION_SIGNING_KEY",
            "APPLE_PRIVATE_KEY"} == environment.SECRETS
