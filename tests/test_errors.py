"""Tests for rotator.errors: the tree as drawn, what each branch exits with, the unexpected line,
and foreign exceptions caught only at the border."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
from conftest import ROOT

import rotator.errors
from rotator import cli
from rotator.errors import RotatorError, unexpected

#: Every exception class rotator.errors defines, by name.
CLASSES = {
    name: value for name, value in vars(rotator.errors).items()
    if isinstance(value, type) and issubclass(value, BaseException)
    and value.__module__ == "rotator.errors"
}
#: The modules the docstring names as the border with foreign libraries.
BORDER = {"secret", "net", "tokens", "auth0", "apple"}
#: The errors that mean bad configuration, a bad key or bad usage (exit 2): nothing contacted.
INVALID = {"ConfigError", "AppleKeyError"}


def drawn_tree() -> dict[str, str | None]:
    """Each class of the tree in the module docstring, with the parent it is drawn under."""
    doc = rotator.errors.__doc__ or ""
    drawing = doc.partition("::\n\n")[2].partition("\n\n")[0]
    parents: dict[str, str | None] = {}
    path: list[str] = []  # the classes on the way down to the current line
    for line in drawing.splitlines():
        name = re.search(r"\w+", line)
        assert name, line
        depth = (name.start() - len(line) + len(line.lstrip())) // 4
        path[depth:] = [name.group()]
        parents[name.group()] = path[depth - 1] if depth else None
    return parents


def test_the_tree_in_the_docstring_is_the_tree_of_classes() -> None:
    """Every class is drawn in the module docstring, under the parent it derives from."""
    drawn = drawn_tree()
    assert set(drawn) == set(CLASSES)
    for name, parent in drawn.items():
        bases = CLASSES[name].__bases__
        assert bases == ((CLASSES[parent],) if parent else (Exception,)), name


def test_every_error_is_a_rotator_error_with_a_one_line_docstring() -> None:
    """One root: each class derives from RotatorError and says in one line what failed."""
    for name, cls in CLASSES.items():
        assert issubclass(cls, RotatorError), name
        assert len((cls.__doc__ or "").splitlines()) == 1, name  # its own, not inherited


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_each_error_ends_a_command_with_the_exit_code_of_its_branch(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A ConfigError (or a child) exits 2, any other RotatorError 1: one line, the message."""
    error = CLASSES[name]

    def failing(args: object) -> str:
        raise error("what failed; what would fix it")

    monkeypatch.setattr(cli, "cmd_mint", failing)
    code = cli.main(["mint"])
    assert code == (2 if name in INVALID else 1)
    assert capsys.readouterr().err == "rotator: error: what failed; what would fix it\n"


def test_unexpected_names_the_type_and_never_the_message() -> None:
    """An error rotator does not know is reported by its type alone: its text may hold a secret."""
    said = unexpected(ValueError("client_secret=s3cr3t-value"))
    assert said == "unexpected error: ValueError"
    assert unexpected(KeyboardInterrupt()) == "unexpected error: KeyboardInterrupt"


def foreign_catches(path: Path) -> list[str]:
    """The third-party names an ``except`` clause in ``path`` catches (``httpx.HTTPError``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    origin: dict[str, str] = {}  # a name bound by an import -> the top package it came from
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                origin[(alias.asname or alias.name).split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                origin[alias.asname or alias.name] = node.module.split(".")[0]
    caught: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            for part in ast.walk(node.type):
                if isinstance(part, ast.Name):
                    package = origin.get(part.id, "")
                    if package and package != "rotator" and package not in sys.stdlib_module_names:
                        caught.append(part.id)
    return caught


def test_foreign_exceptions_are_caught_only_in_the_border_modules() -> None:
    """Only secret, net, tokens, auth0 and apple catch a library's exception (to raise ours)."""
    caught = {p.stem: foreign_catches(p) for p in sorted((ROOT / "rotator").glob("*.py"))}
    assert {module for module, names in caught.items() if names} <= BORDER
    assert caught["net"] == ["httpx"]  # the scan sees one where there is one
