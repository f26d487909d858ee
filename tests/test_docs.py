"""Tests that keep the docs honest (datasette's tests/test_docs.py is the model).

Each check parses a table the docs promise (README's command table, the architecture's module
map, tier table and rule table) and fails if the table is empty, so a renamed heading cannot
make a check pass with nothing checked. The old rule-id check accepted the last word of an id
(``ioda.median.traffic`` passed because the word "traffic" occurs anywhere): issue 7.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import click
import pytest

from netvigil.cli.main import cli
from netvigil.detect.ioda_median import load_rules

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "netvigil"
README = (ROOT / "README.md").read_text()
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()


def _section(text: str, heading: str) -> str:
    """The body of the ``## heading…`` section (up to the next ``## ``); fails if absent."""
    match = re.search(rf"^## {re.escape(heading)}[^\n]*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"section '## {heading}' is missing"
    return match.group(1)


def table_rows(text: str, heading: str) -> list[list[str]]:
    """Cells of the first Markdown table in a section, header and rule rows dropped."""
    rows = []
    for line in _section(text, heading).splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows.append(cells)
    body = [r for r in rows[1:] if not all(re.fullmatch(r":?-+:?", c) for c in r)]
    assert body, f"the table under '## {heading}' is empty or missing"
    return body


def _subcommands(group: click.Group) -> dict[str, click.Command]:
    """A group's commands through Click's API (the root group loads its modules lazily, so
    its ``commands`` dict holds only those asked for so far)."""
    ctx = click.Context(group)
    found = {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}
    return {name: cmd for name, cmd in found.items() if cmd is not None}


def _leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for name, cmd in _subcommands(group).items():
        if isinstance(cmd, click.Group):
            out |= _leaf_commands(cmd, (*prefix, name))
        else:
            out.add((*prefix, name))
    return out


def readme_commands() -> set[tuple[str, ...]]:
    """Command paths in README's command table: `netvigil bgp ingest FILES…` -> (bgp, ingest)."""
    found: set[tuple[str, ...]] = set()
    for row in table_rows(README, "Commands"):
        for code in re.findall(r"`netvigil ([^`]+)`", row[0]):
            words = re.findall(r"[a-z][a-z0-9-]*", code.split("[")[0].split(" -")[0])
            path = [w for w in code.split() if w in words]  # drops FILE, TYPE/CODE, IP...
            found.add(tuple(path))
    return found


def _resolves(path: tuple[str, ...]) -> bool:
    cmd: click.Command = cli
    for word in path:
        if not isinstance(cmd, click.Group) or word not in _subcommands(cmd):
            return False
        cmd = _subcommands(cmd)[word]
    return not isinstance(cmd, click.Group)


def test_every_command_in_the_readme_table_exists() -> None:
    documented = readme_commands()
    assert len(documented) >= 5, documented
    unknown = sorted(" ".join(p) for p in documented if not _resolves(p))
    assert not unknown, f"README lists commands `netvigil --help` does not have: {unknown}"


def test_every_cli_command_is_in_the_readme_table() -> None:
    missing = sorted(" ".join(p) for p in _leaf_commands(cli) - readme_commands())
    assert not missing, f"add these commands to README's command table: {missing}"


def module_map() -> list[str]:
    """Paths in the first column of architecture.md's module map, relative to src/netvigil."""
    paths = [p for row in table_rows(ARCHITECTURE, "Module map")
             for p in re.findall(r"`([^`]+)`", row[0])]
    assert paths, "the module map names no module"
    return paths


def test_every_module_in_the_module_map_exists() -> None:
    gone = [p for p in module_map() if not (SRC / p).exists()]
    assert not gone, f"docs/architecture.md's module map names paths that do not exist: {gone}"


def test_every_package_is_in_the_module_map() -> None:
    mapped = {p.split("/")[0] for p in module_map()}
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    unmapped = sorted(packages - mapped)
    assert not unmapped, f"docs/architecture.md's module map misses packages: {unmapped}"


def test_every_module_in_the_tier_table_exists() -> None:
    names = [m for row in table_rows(ARCHITECTURE, "Tiers")
             for m in re.findall(r"`(netvigil(?:\.\w+)+)(?:\.\*)?`", row[2])]
    assert names, "the tier table names no module"
    missing = [m for m in names if importlib.util.find_spec(m) is None]
    assert not missing, f"the tier table names modules that do not exist: {missing}"


def documented_rule_ids() -> set[str]:
    """Rule ids of the ``ioda.median`` table; ``.traffic`` after a full id shares its stem."""
    ids: set[str] = set()
    for row in table_rows(ARCHITECTURE, "The reference detector: `ioda.median`"):
        stem = ""
        for token in re.findall(r"`([^`]+)`", row[0]):
            if token.startswith(".") and stem:
                ids.add(stem + token)
            else:
                ids.add(token)
                stem = token.rsplit(".", 1)[0]
    return ids


def test_the_rule_table_lists_exactly_the_packaged_rules() -> None:
    packaged = {rule.id for rule in load_rules().values()}
    assert documented_rule_ids() == packaged


def test_readme_gives_exactly_the_two_setup_commands() -> None:
    setup = _section(README, "Set-up")
    assert re.findall(r"^make \w+", setup, flags=re.M) == ["make demo", "make test"]


def test_ci_runs_make_test() -> None:
    assert re.search(r"^\s*(exec .*make|run_make|make) test\s*$",
                     (ROOT / ".ci" / "run").read_text(), re.M)


def test_an_empty_table_fails_the_parser() -> None:
    """The guard that keeps these tests from passing with nothing checked."""
    with pytest.raises(AssertionError, match="empty or missing"):
        table_rows("## Commands\n\nNo table here.\n", "Commands")
    with pytest.raises(AssertionError, match="is missing"):
        table_rows("# nothing\n", "Commands")
