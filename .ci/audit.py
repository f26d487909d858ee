"""`make audit`: known vulnerabilities in the LOCKED dependency set (requirements/lock.txt).

pip-audit queries PyPI's advisory data (the PyPA advisory database pypi.org serves per
release) for exactly what `make` installs: hashed pins, no resolution (``--disable-pip``).
It fails on any finding not listed in ``.ci/audit-ignore`` (one advisory id per line, then a
reason). It never claims more than it checked: it prints how many pins the service knew. When
the service is unreachable, or knows none of the pinned releases (an offline mirror of the
registry), it prints that the audit was SKIPPED and why, and succeeds, so `make test` still runs
on a machine without the advisory service.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
IGNORE = ROOT / ".ci" / "audit-ignore"
BIN = Path(os.environ.get("BIN", ROOT / ".venv" / "bin"))


def ignored() -> list[str]:
    if not IGNORE.exists():
        return []
    ids = (line.split("#")[0].split() for line in IGNORE.read_text().splitlines())
    return [parts[0] for parts in ids if parts]


def main() -> int:
    args = [str(BIN / "pip-audit"), "--requirement", str(LOCK), "--disable-pip",
            "--require-hashes", "--progress-spinner", "off", "--format", "json",
            "--timeout", "15"]
    for vid in ignored():
        args += ["--ignore-vuln", vid]
    run = subprocess.run(args, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"audit: SKIPPED, pip-audit could not reach its advisory service ({last})",
              file=sys.stderr)
        return 0
    deps = report["dependencies"]
    checked = [d for d in deps if "skip_reason" not in d]
    vulns = [(d["name"], d["version"], v["id"]) for d in checked for v in d.get("vulns", [])]
    if not checked:
        print(f"audit: SKIPPED, the advisory service (pypi.org) knows none of the {len(deps)} "
              "locked releases (an offline registry mirror); run `make audit` where PyPI's "
              "advisory data is reachable", file=sys.stderr)
        return 0
    print(f"audit: {len(checked)} of {len(deps)} locked releases checked against PyPI "
          f"advisories, {len(deps) - len(checked)} unknown to the service, "
          f"{len(vulns)} known vulnerabilities", file=sys.stderr)
    for name, version, vid in vulns:
        print(f"audit: {name} {version}: {vid}", file=sys.stderr)
    return 1 if vulns else 0


if __name__ == "__main__":
    sys.exit(main())
