"""End to end: the full-size 2010 RIB through ``netvigil bgp ingest`` beside ``bgpdump -m``.

Setup: ``benchmarks/make_full_rib.py`` (deterministic, cached) and ``bash
benchmarks/setup_bgp_peers.sh`` (Debian bgpdump). Each command runs in a fresh process, as a
user runs it: ``bgpdump -m FILE > /dev/null`` and ``netvigil bgp ingest FILE --store NEW``
(default options: era full-feed rule, geo as of the bin, regions from the mmdb, store writes
through the Pipeline). ``--cold-regions`` also times a run with the region-table cache off.

    .venv/bin/python benchmarks/bench_bgp_ingest.py [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NETVIGIL = Path(sys.executable).with_name("netvigil")


def _time(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.PIPE if "bgpdump" not in cmd[0] else
                         subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                         check=True)
    return time.perf_counter() - t0, (res.stdout or "").strip()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--cold-regions", action="store_true")
    a = ap.parse_args()
    out = subprocess.run([sys.executable, str(HERE / "make_full_rib.py")], check=True,
                         capture_output=True, text=True).stdout.strip()
    rib = Path(out.split(" ")[0].rstrip(":"))
    print(f"input: {out}")
    if shutil.which("bgpdump") is None:
        print("bgpdump missing: run bash benchmarks/setup_bgp_peers.sh", file=sys.stderr)
        return 1
    modes = [("warm region cache", dict(os.environ))]
    if a.cold_regions:
        modes.append(("region cache off", {**os.environ, "NETVIGIL_CACHE": "off"}))
    for _ in range(a.runs):
        t_dump, _ = _time(["bgpdump", "-m", str(rib)])
        print(f"bgpdump -m {rib.name} > /dev/null: {t_dump:.2f} s")
        for label, env in modes:
            with tempfile.TemporaryDirectory() as tmp:
                t_nv, text = _time([str(NETVIGIL), "bgp", "ingest", str(rib), "--store",
                                    str(Path(tmp) / "s.duckdb")], env)
            print(f"netvigil bgp ingest ({label}): {t_nv:.2f} s  -> {text}")
            print(f"  ratio bgpdump / netvigil = {t_dump / t_nv:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
