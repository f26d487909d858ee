"""Shared helpers of the ``netvigil run`` end-to-end tests (no tests here; named to fit the
tests/test_observatory_*.py files of this work).

The series generator writes the CSV long format from its own constants (a level and a
deterministic ripple); it shares no table or threshold with the detector it is checked by.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXE = str(Path(sys.executable).with_name("netvigil"))
STEP = 300
LEVEL = 1000.0  # visible /24s of the synthetic country in normal times
CUT_LEVEL = 20.0  # after the cut: 2 % of normal


def series_csv(path: Path, entity: str, start: int, n: int, *, cut_at: int | None = None,
               signal: str = "bgp") -> Path:
    """``n`` bins of ``signal`` for ``country/<entity>`` from ``start`` at 300 s; from
    ``cut_at`` on, 2 % of normal. A ±1 % ripple keeps the series from being constant."""
    lines = ["time,entity_type,entity_code,signal,value"]
    for i in range(n):
        t = start + i * STEP
        v = LEVEL * (1 + 0.01 * ((i * 7) % 5 - 2) / 2)
        if cut_at is not None and t >= cut_at:
            v = CUT_LEVEL
        lines.append(f"{t},country,{entity},{signal},{v:g}")
    tmp = path.with_name(path.name + ".tmp")  # writers rename into the folder
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.rename(path)
    return path


def write_config(dir_: Path, body: str) -> Path:
    cfg = dir_ / "observatory.toml"
    cfg.write_text(body, encoding="utf-8")
    return cfg


def start_run(cfg: Path, log: Path, *extra: str, argv_prefix: Sequence[str] = (),
              env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([*argv_prefix, EXE, "run", "--config", str(cfg), "--log", str(log),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def log_records(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def wait_for(pred: Any, timeout: float, what: str, proc: subprocess.Popen[str] | None = None
             ) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"run exited ({proc.returncode}) before {what}: {err[-2000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 60
         ) -> tuple[int, str, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err
