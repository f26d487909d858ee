"""The locked install (requirements/lock.txt, used by `make`) covers what pyproject.toml
declares, every pin carries hashes, and the build backend is locked too: a dependency edit
without `make lock` fails here, not on a fresh machine (issue 12, reproducible install)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _pins(text: str) -> dict[str, str]:
    return {canonicalize_name(m.group(1)): m.group(2)
            for m in map(PIN.match, text.splitlines()) if m}


def _declared() -> list[Requirement]:
    reqs: list[Requirement] = []
    for path in (ROOT / "pyproject.toml", ROOT / "probe" / "pyproject.toml"):
        meta = tomllib.loads(path.read_text())
        project = meta["project"]
        reqs += [Requirement(r) for r in project.get("dependencies", [])]
        for extra in project.get("optional-dependencies", {}).values():
            reqs += [Requirement(r) for r in extra]
        reqs += [Requirement(r) for r in meta["build-system"]["requires"]]
    return reqs


def test_every_declared_dependency_is_locked_at_a_version_it_allows() -> None:
    pins = _pins(LOCK.read_text())
    problems = []
    for req in _declared():
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req} is not in the lock")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req} but the lock pins {version}")
    assert not problems, "run `make lock`: " + "; ".join(problems)


def test_every_pin_has_a_sha256_hash() -> None:
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text())
    pinned = [b for b in blocks if PIN.match(b)]
    assert len(pinned) > 40
    unhashed = [b.split()[0] for b in pinned if "--hash=sha256:" not in b]
    assert not unhashed


def test_pin_parser_reads_a_pin_and_ignores_comments() -> None:
    text = "# via x\nnumpy==2.4.6 \\\n    --hash=sha256:ab\n    # via y\n"
    assert _pins(text) == {"numpy": "2.4.6"}


def _audit_with(tmp_path: Path, report: dict[str, object]) -> tuple[int, str]:
    """Run .ci/audit.py with a stand-in pip-audit that prints ``report`` (the JSON shape
    pip-audit 2.x writes with --format json); the real one needs the advisory service."""
    import json
    import os
    import subprocess
    import sys

    fake = tmp_path / "pip-audit"
    fake.write_text(f"#!/bin/sh\ncat <<'JSON'\n{json.dumps(report)}\nJSON\n")
    fake.chmod(0o755)
    run = subprocess.run([sys.executable, str(ROOT / ".ci" / "audit.py")], text=True,
                         capture_output=True, env={**os.environ, "BIN": str(tmp_path)})
    return run.returncode, run.stderr


def test_audit_fails_on_a_known_vulnerability(tmp_path: Path) -> None:
    rc, err = _audit_with(tmp_path, {"dependencies": [
        {"name": "foo", "version": "1.0", "vulns": [{"id": "PYSEC-2099-1"}]},
        {"name": "bar", "skip_reason": "Dependency not found on PyPI"}], "fixes": []})
    assert rc == 1
    assert "1 of 2 locked releases checked" in err and "foo 1.0: PYSEC-2099-1" in err


def test_audit_says_skipped_when_the_service_knows_nothing(tmp_path: Path) -> None:
    rc, err = _audit_with(tmp_path, {"dependencies": [
        {"name": "bar", "skip_reason": "Dependency not found on PyPI"}], "fixes": []})
    assert rc == 0 and "SKIPPED" in err


def test_audit_passes_a_clean_checked_set(tmp_path: Path) -> None:
    rc, err = _audit_with(tmp_path, {"dependencies": [
        {"name": "foo", "version": "1.0", "vulns": []}], "fixes": []})
    assert rc == 0 and "1 of 1 locked releases checked" in err and "0 known" in err
