"""The architecture as checked rules (issue 7): import tiers, no cycles, no harness at run time.

The contracts live in ``[tool.importlinter]`` of pyproject.toml and ``make imports`` runs
them; these tests run the same check so ``pytest`` alone catches a broken rule, prove the
contracts are not vacuous (an injected upward import is reported), and scan the source for
imports of ``netvigil.testing`` independently of import-linter.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest

from netvigil.cli.main import cli
from netvigil.model import ErrorPolicy
from prereq import require

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "netvigil"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the dev extra (pip install -e '.[dev]')")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_contracts_name_every_tier_and_forbid_cycles() -> None:
    by_type = {str(c["type"]): c for c in _contracts()}
    tiers = by_type["layers"]
    assert tiers["exhaustive"] is True, "a new top-level package must be placed in a tier"
    named = {
        part.strip().strip("()")
        for layer in tiers["layers"]  # type: ignore[attr-defined]
        for part in layer.replace(":", "|").split("|")
    }
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    unplaced = packages - named - set(tiers["exhaustive_ignores"])  # type: ignore[arg-type]
    assert not unplaced, f"packages in no tier: {sorted(unplaced)}"
    assert "acyclic_siblings" in by_type
    assert by_type["forbidden"]


def test_contracts_report_an_upward_import(tmp_path: Path) -> None:
    """Inject ``model -> cli`` into a copy of the package: the tier contract must break."""
    copy = tmp_path / "netvigil"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "data"))
    init = copy / "model" / "__init__.py"
    init.write_text(init.read_text() + "\nimport netvigil.cli.main  # injected by the test\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = _lint_imports(tmp_path, env)
    assert result.returncode != 0, result.stdout
    assert "netvigil.model is not allowed to import netvigil.cli" in result.stdout, result.stdout


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])


def _imported_modules(path: Path, package: str) -> set[str]:
    """Absolute module names a file imports, function-level and relative imports included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith("netvigil."):  # importlib.import_module("netvigil.x")
                names.add(node.value)
    return names


def test_no_runtime_module_imports_the_test_harnesses() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in mods if m.startswith("netvigil.testing"))
        for path in sorted(SRC.rglob("*.py"))
        if "testing" not in path.relative_to(SRC).parts[:1]
        for mods in [_imported_modules(path, _package_of(path))]
        if any(m == "netvigil.testing" or m.startswith("netvigil.testing.") for m in mods)
    }
    assert not offenders, f"netvigil.testing is for tests only: {offenders}"


def test_the_harness_scan_sees_imports(tmp_path: Path) -> None:
    """The scanner itself must see absolute, relative and function-level imports."""
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from ..testing import netns\n    import netvigil.testing.mrt_encode\n"
    )
    found = _imported_modules(module, "netvigil.detect")
    assert "netvigil.testing.netns" in found
    assert "netvigil.testing.mrt_encode" in found


# ------------------------------------------------------------------ prerequisites (prereq.py)
def test_a_missing_prerequisite_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        require(False, "needs root")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true.*needs root"):
        require(False, "needs root")
    require(True, "present prerequisites never stop a test")


@pytest.mark.parametrize(("ci", "outcome"), [(None, "skipped"), ("true", "errors")])
def test_the_prerequisite_marker_stops_a_whole_module(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None, outcome: str,
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(
        "from prereq import requires\n"
        "pytestmark = requires(False, 'no network namespaces here')\n"
        "def test_a():\n    pass\n"
        "def test_b():\n    pass\n"
    )
    counts = pytester.runpytest("-p", "no:cacheprovider").parseoutcomes()
    assert counts.get(outcome) == 2, counts


# Skips that are not missing prerequisites (the test does not apply to this host at all).
NOT_A_PREREQUISITE = {
    ("test_probing_icmp.py", "skipif"),  # a little-endian-only trap: nothing to install
}


def test_tests_skip_only_through_prereq() -> None:
    """A bare ``pytest.skip``/``skipif``/``importorskip`` would skip silently in CI too."""
    found = set()
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name == "prereq.py":
            continue
        for call in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            node = call.func if isinstance(call, ast.Call) else None
            if isinstance(node, ast.Attribute) and node.attr in {"skip", "skipif", "importorskip"}:
                base = node.value
                if isinstance(base, ast.Name) and base.id == "pytest" or (
                    isinstance(base, ast.Attribute) and base.attr == "mark"
                ):
                    found.add((path.name, node.attr, node.lineno))
    bare = sorted(f for f in found if (f[0], f[1]) not in NOT_A_PREREQUISITE)
    assert not bare, f"use prereq.require/missing/requires (fail in CI) instead: {bare}"


def test_one_iso_time_formatter() -> None:
    """Instants are spelled by ``netvigil.model.times.iso_utc`` only (issue 7: one formatter);
    a display format (e.g. the timeline's minutes) must not be an ISO 8601 ``T`` format."""
    home = SRC / "model" / "times.py"
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted(SRC.rglob("*.py")) if path != home
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and "%Y-%m-%dT" in node.value
    ]
    assert not offenders, f"use netvigil.model.times.iso_utc instead: {offenders}"


def test_no_untyped_store() -> None:
    """``store: Any`` hides the store from mypy and lets a source write to it without an import
    the contracts would see; a store parameter names ``SeriesStore`` (or ``Store``) instead."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.arg) or node.arg != "store" or node.annotation is None:
                continue
            if "Any" in ast.unparse(node.annotation):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"type these store parameters: {offenders}"


def _on_error_options(group: click.Group) -> list[tuple[str, click.Parameter]]:
    out = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):
            out += [(f"{name} {n}", p) for n, p in _on_error_options(cmd)]
        else:
            out += [(name, p) for p in cmd.params if p.name == "on_error"]
    return out


def test_one_error_policy_vocabulary() -> None:
    """Issue 7: two error-policy vocabularies. One enum, ``netvigil.model.ErrorPolicy``, is
    defined, and every ``--on-error`` option offers exactly its values."""
    defining = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted(SRC.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.ClassDef) and node.name.endswith(("ErrorPolicy", "OnError"))
    ]
    assert len(defining) == 1 and defining[0].startswith("src/netvigil/model/errors.py:"), defining
    options = _on_error_options(cli)
    assert options, "no command has --on-error"
    values = sorted(p.value for p in ErrorPolicy)
    wrong = {name: sorted(p.type.choices) for name, p in options
             if not isinstance(p.type, click.Choice) or sorted(p.type.choices) != values}
    assert not wrong, f"--on-error must offer exactly {values}: {wrong}"


def test_the_command_table_names_what_each_module_registers() -> None:
    """``netvigil.cli.main.COMMANDS`` (command -> module, read before any module is
    imported) says exactly what each module's ``register`` adds: a command missing from the
    table would not be found, a wrong module would not define it."""
    import importlib

    from netvigil.cli.main import COMMANDS

    registered: dict[str, str] = {}
    for module in sorted(set(COMMANDS.values())):
        probe = click.Group("probe")
        importlib.import_module(module).register(probe)
        registered |= {name: module for name in probe.commands}
    assert registered == COMMANDS


def test_a_command_imports_only_its_own_module() -> None:
    """A fresh process running ``netvigil store --help`` loads the store command's module
    and none of the other command modules (the serve stack, OONI, probing, Dask...)."""
    code = ("import sys\nfrom netvigil.cli.main import cli\n"
            "try:\n    cli(['store', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('netvigil.cli.')"
            " and m.endswith('_cmd')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip().splitlines()[-1] == "['netvigil.cli.store_cmd']", out
