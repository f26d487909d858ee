"""Tests that keep the docs honest (datasette's tests/test_docs.py is the model)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from netvigil.cli.main import cli
from netvigil.detect.ioda_median import load_rules

ROOT = Path(__file__).resolve().parents[1]
DOCS = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        out.append(f"{prefix}{name}")
        if isinstance(cmd, click.Group):
            out += _commands(cmd, f"{prefix}{name} ")
    return out


def test_every_cli_command_is_documented() -> None:
    missing = [c for c in _commands(cli) if f"netvigil {c}" not in DOCS and f"`{c}`" not in DOCS]
    assert not missing, f"document these commands in README.md or docs/: {missing}"


def test_readme_gives_exactly_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("##", 1)[0]
    assert re.findall(r"^make \w+", setup, flags=re.M) == ["make demo", "make test"]


def test_every_detector_rule_id_is_documented() -> None:
    for rule in load_rules().values():
        assert rule.id in DOCS or rule.id.rsplit(".", 1)[-1] in DOCS, rule.id


def test_ci_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
