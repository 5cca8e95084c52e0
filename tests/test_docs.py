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
from conftest import EXAMPLE_CONFIG, ROOT, variables_read

from rotator import config, environment

PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "deploy" / "README.md",
                *(ROOT / "docs").glob("*.md")])
CONFIGURATION = ROOT / "docs" / "configuration.md"
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
#: Read by httpx and the standard library, as rotator.environment's docstring says.
PROXY_VARIABLES = {"HTTPS_PROXY", "NO_PROXY"}


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
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
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


def test_variables_are_found_by_parsing_the_code() -> None:
    """The scan finds what the loader maps and what other modules read, not what hooks get."""
    found = variables_read()
    assert set(config.ENV_MAP) <= found
    assert {"AUTH0_CLIENT_SECRET", "APPLE_PRIVATE_KEY", "ROTATOR_CONFIG", "SSL_CERT_FILE",
            "HTTPS_PROXY"} <= found
    assert "ROTATOR_EXPIRES_AT" not in found
    assert "ROTATOR_STEP" not in found
    assert "ENV_MAP" not in found


def test_the_proxy_variables_are_the_ones_the_environment_module_names() -> None:
    """The variables read outside the table are the proxies, as rotator.environment says."""
    doc = environment.__doc__ or ""
    for name in PROXY_VARIABLES:
        assert name in doc


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
    assert set(variables) == set(environment.NAMES) | PROXY_VARIABLES


def test_contributing_module_map_names_every_module() -> None:
    """CONTRIBUTING.md's module table has a row for each module of rotator/, and no other."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text.partition("\n## Layout\n")[2]
    rows = re.findall(r"^\| `([\w.]+\.py)` \|", section, re.M)
    assert len(rows) == len(set(rows)), "a module has two rows"
    assert set(rows) == {p.name for p in (ROOT / "rotator").glob("*.py")}


#: What a tests/test_<name>.py may be named after besides a module: a shipped artefact that is
#: no module, and the file or folder it is.
ARTEFACT_TESTS = {
    "alerts": "deploy/prometheus/rotator-rules.yaml",
    "auth0_contract": "tests/contract/auth0-connections-oas.json",
    "deploy": "deploy",
    "docs": "docs",
    "github_actions": "deploy/github-actions/rotate-apple-secret.yml",
    "grafana": "deploy/grafana/rotator-dashboard.json",
    "prometheus": "deploy/prometheus",
}


def subject_of(path: Path) -> Path | None:
    """What tests/<...>/test_<name>.py is named after, or None when it is named after nothing.

    A module of rotator/ (``test_<module>.py``), one of rotator/emulator/
    (``test_emulator_<module>.py``, or ``test_<module>.py`` under tests/emulator/),
    a helper module of tests/ (``test_fakes.py``), or an entry of ARTEFACT_TESTS.
    """
    name = path.stem.removeprefix("test_")
    if path.parent.name == "emulator":
        candidates = [ROOT / "rotator" / "emulator" / f"{name}.py"]
    else:
        candidates = [ROOT / "rotator" / f"{name}.py", ROOT / "tests" / f"{name}.py"]
        if name.startswith("emulator_"):
            module = name.removeprefix("emulator_")
            candidates.append(ROOT / "rotator" / "emulator" / f"{module}.py")
        if name in ARTEFACT_TESTS:
            candidates.append(ROOT / ARTEFACT_TESTS[name])
    return next((c for c in candidates if c.exists() and not c.stem.startswith("test_")), None)


def test_each_test_file_is_named_after_a_module_or_a_shipped_artefact() -> None:
    """tests/test_<name>.py is named after a module (rotator's, the emulator's, or a helper of
    tests/) or an artefact ARTEFACT_TESTS names; each of those entries names a real file."""
    files = sorted((ROOT / "tests").rglob("test_*.py"))
    assert files
    unnamed = [str(f.relative_to(ROOT)) for f in files if subject_of(f) is None]
    assert unnamed == [], (
        "name each test file after the module it tests (tests/test_<module>.py, "
        "tests/test_emulator_<module>.py), or add the artefact it tests to ARTEFACT_TESTS")
    assert all((ROOT / artefact).exists() for artefact in ARTEFACT_TESTS.values())
    assert {f"test_{name}.py" for name in ARTEFACT_TESTS} <= {f.name for f in files}


def test_install_commands_never_use_the_system_pip() -> None:
    """No shown command runs pip or build with the system Python (PEP 668 refuses it)."""
    system_pip = re.compile(r"(?<![\w/.-])(?:python3?\s+-m\s+(?:pip|build)\b|pip3?\s+install\b)")
    shown = [
        (page.name, line) for page in PAGES
        for block in re.findall(r"```(?:sh|bash|console)?\n(.*?)```",
                                page.read_text(encoding="utf-8"), re.S)
        for line in block.splitlines() if system_pip.search(line.split("#")[0])
    ]
    assert shown == []
    assert system_pip.search("python3 -m build --wheel")
    assert not system_pip.search("/opt/rotator/bin/pip install .")


def troubleshooting_snippets() -> set[str]:
    """The quoted message parts of the README's troubleshooting table, split at "..."."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.partition("\n## Troubleshooting\n")[2].partition("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    assert rows, "the README has no troubleshooting table"
    quoted = (part for row in rows for part in re.findall(r"`([^`]+)`", row.split("|")[1]))
    pieces = (piece.strip(" '") for part in quoted for piece in re.split(r"\.\.\.|\bN\b", part))
    return {piece for piece in pieces if len(piece) >= 8}


def raised_messages() -> list[tuple[str, list[str]]]:
    """(where, literal parts) of each rotator error raised with a message of its own words."""
    import rotator.errors

    ours = {name for name in vars(rotator.errors) if name.endswith("Error")}
    found = []
    for path in sorted((ROOT / "rotator").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                    and isinstance(node.exc.func, ast.Name) and node.exc.func.id in ours
                    and node.exc.args):
                continue
            parts = [n.value for n in ast.walk(node.exc.args[0])
                     if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            if any(len(part.strip()) >= 12 for part in parts):
                found.append((f"{path.name}:{node.lineno}", parts))
    return found


def test_troubleshooting_table_covers_every_message_rotator_raises() -> None:
    """Each error rotator raises in words of its own has a row in the README's table."""
    snippets = troubleshooting_snippets()
    messages = raised_messages()
    assert len(messages) > 40, "the scan found too few messages: is it still right?"
    missing = [
        f"{where}: {' ... '.join(parts)}" for where, parts in messages
        if not any(snippet in part for snippet in snippets for part in parts)
    ]
    assert missing == []
