"""Tests for the documentation: links resolve, and the configuration table is complete.

The user-facing pages link to each other by relative path and ``#anchor``; a
page renamed or a heading reworded must not leave a dead link behind. The
configuration table in ``docs/configuration.md`` is the one list of every key
and environment variable: it must name each key the loader accepts (and each
key of the example file) and each variable the code reads, and nothing more.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from rotator import config

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "deploy" / "README.md",
                *(ROOT / "docs").glob("*.md")])
CONFIGURATION = ROOT / "docs" / "configuration.md"
EXAMPLE = ROOT / "config" / "rotator.example.toml"
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
#: Where an environment variable name may start (PATH stands alone).
_ENV_NAME = re.compile(r"^(?:(?:AUTH0|APPLE|ROTATOR|SSL|HTTPS|NO)_[A-Z0-9_]+|PATH)$")


def prose(text: str) -> str:
    """The page without its fenced code blocks (links there are examples, not links)."""
    return _FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor GitHub makes for the page's headings (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for match in _HEADING.finditer(prose(page.read_text(encoding="utf-8"))):
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(page: Path) -> list[str]:
    """The targets of the page's Markdown links outside code blocks."""
    return _LINK.findall(prose(page.read_text(encoding="utf-8")))


def dead_links(page: Path) -> list[str]:
    """The page's relative links whose file, or whose #anchor, does not exist."""
    dead = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        where = (page.parent / path_part).resolve() if path_part else page
        if not where.exists():
            dead.append(f"{target} (no such file)")
        elif anchor and (where.suffix != ".md" or anchor not in anchors(where)):
            dead.append(f"{target} (no such anchor)")
    return dead


def test_slug_follows_github_rules() -> None:
    """Anchors are made as GitHub makes them: case, code, punctuation and colons."""
    assert slug("Runbook: replacing the Apple key") == "runbook-replacing-the-apple-key"
    assert slug("`rotator emulator` and `--write-config`") == "rotator-emulator-and---write-config"
    assert slug("Values: durations, booleans, paths") == "values-durations-booleans-paths"
    assert slug("Terraform and auth0-deploy-cli") == "terraform-and-auth0-deploy-cli"


def test_dead_links_are_found(tmp_path: Path) -> None:
    """A link to a missing file or a missing heading is reported; a good one is not."""
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## Real heading\n", encoding="utf-8")
    page.write_text(
        "# Page\n\n[a](other.md#real-heading) [b](other.md#gone) [c](missing.md) "
        "[d](#page) [e](#nowhere) [f](https://example.com/x)\n\n"
        "```\n[g](inside-a-code-block.md)\n```\n",
        encoding="utf-8",
    )
    assert dead_links(page) == ["other.md#gone (no such anchor)", "missing.md (no such file)",
                                "#nowhere (no such anchor)"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    """Each relative link of the user-facing pages names a file that exists, and a heading in it."""
    assert links(page), f"{page} has no links at all: is the link pattern still right?"
    assert dead_links(page) == []


def test_readme_is_at_most_300_lines_and_keeps_its_commands() -> None:
    """The README stays short and still shows the test and demo commands CI and users run."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    assert "make test" in readme
    assert "make demo" in readme
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^test:", makefile, re.M)
    assert re.search(r"^demo:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def table_rows() -> list[tuple[str, str]]:
    """(key, variable) of each row of the table under "Every key and variable"."""
    text = CONFIGURATION.read_text(encoding="utf-8")
    section = text.partition("\n## Every key and variable\n")[2].partition("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    assert rows, "docs/configuration.md has no table under 'Every key and variable'"
    cells = [[c.strip().strip("`") for c in row.strip("|").split("|")] for row in rows]
    return [(c[0], c[1]) for c in cells]


def loader_keys() -> set[str]:
    """Every key the configuration loader accepts, as the table writes it."""
    keys = {f"{section}.{key}" for section, names in config.SECTIONS.items() for key in names}
    return keys | {"[[connections]] connection", "[[connections]] client_id"}


def example_keys() -> set[str]:
    """Every key of the example file, its commented-out lines included, as the table writes it."""
    text = EXAMPLE.read_text(encoding="utf-8")
    found: set[str] = set()
    section = ""
    for line in text.splitlines():
        bare = line.lstrip("# ").strip()
        header = re.match(r"^\[{1,2}([\w.]+)\]{1,2}", bare)
        if header:
            section = header.group(1)
            continue
        key = re.match(r"^(\w+)\s*=", bare)
        if not key or not section:
            continue
        name = key.group(1)
        if section == "connections":
            found.add(f"[[connections]] {name}" if name in ("connection", "client_id") else
                      f"{'auth0' if name in config.SECTIONS['auth0'] else 'apple'}.{name}")
        else:
            found.add(f"{section.removeprefix('connections.')}.{name}")
    tomllib.loads(text)  # and the file itself still parses
    return found


def variables_read() -> set[str]:
    """Every environment variable rotator reads, found by parsing its source.

    A variable name is a string constant of rotator's modules (the emulator
    aside) shaped like one, except the names rotator only *sets* for its hooks
    (the keys of an ``env={...}`` argument); the proxy variables are read by
    ``urllib.request.getproxies_environment`` wherever rotator calls it.
    """
    found: set[str] = set()
    for path in (ROOT / "rotator").rglob("*.py"):
        if "emulator" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        written = {
            id(key)
            for node in ast.walk(tree) if isinstance(node, ast.keyword) and node.arg == "env"
            and isinstance(node.value, ast.Dict)
            for key in node.value.keys
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and _ENV_NAME.match(node.value) and id(node) not in written:
                found.add(node.value)
            if isinstance(node, ast.Attribute) and node.attr == "getproxies_environment":
                found |= {"HTTPS_PROXY", "NO_PROXY"}
    return found


def test_variables_are_found_by_parsing_the_code() -> None:
    """The scan finds what the loader maps and what other modules read, not what hooks get."""
    found = variables_read()
    assert set(config.ENV_MAP) <= found
    assert {"AUTH0_CLIENT_SECRET", "APPLE_PRIVATE_KEY", "ROTATOR_CONFIG", "SSL_CERT_FILE",
            "HTTPS_PROXY"} <= found
    assert "ROTATOR_EXPIRES_AT" not in found
    assert "ROTATOR_STEP" not in found


def test_configuration_table_lists_every_key_and_nothing_else() -> None:
    """docs/configuration.md's table has a row for each key the loader accepts, and no other."""
    keys = [key for key, _ in table_rows() if key]
    assert len(keys) == len(set(keys)), "a key has two rows"
    assert set(keys) == loader_keys()


def test_every_key_of_the_example_file_is_in_the_table() -> None:
    """Each key config/rotator.example.toml shows, set or commented out, has a row."""
    assert example_keys() <= {key for key, _ in table_rows()}


def test_configuration_table_lists_every_variable_read_and_nothing_else() -> None:
    """The table's variable column is exactly the set of environment variables the code reads."""
    variables = [var for _, var in table_rows() if var]
    assert len(variables) == len(set(variables)), "a variable has two rows"
    assert set(variables) == variables_read()
