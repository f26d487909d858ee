"""``netvigil ooni import --dir`` end to end beside a plain ``json.loads`` loop over the same
files.

Run: ``.venv/bin/python benchmarks/bench_ooni_import.py [--measurements 40000] [--hours 48]``.

Volume: the real measurements of ``tests/fixtures/ooni`` (web_connectivity 2014-2025,
telegram, whatsapp, signal, tor, ...: 25 measurements, 2.6-50 KB each) **replicated** with
varied ``report_id`` (and ``measurement_uid``), ``measurement_start_time`` (spread over
``--hours``) and probe AS (10 per country), written in OONI's bucket layout
``raw/YYYYMMDD/HH/CC/testname/*.jsonl.gz`` in a temporary folder. Replication keeps the
real size and shape mix of measurements but not the real distribution of test names
(web_connectivity is about half here and in OONI's own data). Nothing is downloaded.

Rows printed (measurements/s, wall time; the two in-process rows run interleaved, best of
``--repeat``):

* ``json.loads loop`` — the named peer: ``gzip.open`` + ``json.loads`` per line, nothing
  else (no verdicts, no store): the floor any Python importer of these files starts from;
* ``read + verdict`` — NetVigil's reader, base keys and verdicts and fact building, in
  process, no store;
* ``netvigil ooni import`` — the real CLI in a subprocess, into a fresh DuckDB store
  (facts -> pipeline -> points, entities, imports rows), with its peak RSS.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "ooni"
NETVIGIL = str(Path(sys.executable).with_name("netvigil"))
T0 = 1_641_340_800  # 2022-01-05 00:00 UTC


def templates() -> list[dict[str, Any]]:
    out = []
    for p in sorted(FIXTURES.glob("*.json")):
        doc = json.loads(p.read_text())
        if doc.get("probe_cc") not in (None, "", "ZZ"):
            out.append(doc)
    return out


def generate(root: Path, n: int, hours: int) -> tuple[list[Path], int]:
    """Replicate the templates into bucket files; returns the files and bytes written."""
    tpl = templates()
    groups: dict[Path, list[str]] = {}
    for i in range(n):
        doc = dict(tpl[i % len(tpl)])
        t = T0 + (i * 7919) % (hours * 3600)
        doc["measurement_start_time"] = datetime.fromtimestamp(t, UTC).strftime(
            "%Y-%m-%d %H:%M:%S")
        doc["report_id"] = f"bench{i:09d}"
        if "measurement_uid" in doc:  # the importer counts a repeated uid once
            doc["measurement_uid"] = f"{doc['measurement_uid']}_{i}"
        asn = int(str(doc.get("probe_asn", "AS1")).removeprefix("AS") or 1)
        doc["probe_asn"] = f"AS{asn + i % 10}"
        folder = (root / "raw" / time.strftime("%Y%m%d/%H", time.gmtime(t)) /
                  doc["probe_cc"] / doc["test_name"])
        groups.setdefault(folder, []).append(json.dumps(doc))
    files = []
    for folder, lines in groups.items():
        folder.mkdir(parents=True, exist_ok=True)
        f = folder / "bench.n0.0.jsonl.gz"
        with gzip.open(f, "wt", compresslevel=6) as fh:
            fh.write("\n".join(lines) + "\n")
        files.append(f)
    return sorted(files), sum(f.stat().st_size for f in files)


def peer_json_loads(files: list[Path]) -> tuple[int, float]:
    t = time.perf_counter()
    n = 0
    for f in files:
        with gzip.open(f, "rb") as fh:
            for line in fh:
                json.loads(line)
                n += 1
    return n, time.perf_counter() - t


def in_process(files: list[Path]) -> tuple[int, float]:
    from netvigil.sources.ooni.facts import FactBuilder
    from netvigil.sources.ooni.importer import read_measurements

    t = time.perf_counter()
    out = read_measurements(files, "fail", FactBuilder())
    return out.measurements, time.perf_counter() - t


#: A small launcher measures the CLI's peak RSS: a child forked from this process (which
#: holds the generated measurements) would report this process's RSS as its own peak.
LAUNCH = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(p.pid, 0)
print(f"{usage.ru_maxrss}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def cli(root: Path, store: Path) -> tuple[float, float, str]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCH, NETVIGIL, "ooni", "import", "--dir",
                           str(root), "--store", str(store)], capture_output=True, text=True,
                          check=False)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"netvigil ooni import failed: {proc.stderr}")
    rss_kb = int(proc.stderr.strip().splitlines()[-1])
    return dt, rss_kb / 1024, proc.stdout.splitlines()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--measurements", type=int, default=40_000)
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ooni-") as tmp:
        root = Path(tmp) / "bucket"
        t = time.perf_counter()
        files, size = generate(root, args.measurements, args.hours)
        print(f"generated {args.measurements} measurements (replicated real fixtures) in "
              f"{len(files)} bucket files, {size / 1e6:.1f} MB gzip, "
              f"{time.perf_counter() - t:.1f} s")
        # interleaved, best of --repeat each: the machine is shared, order must not decide
        t_peer = t_ours = float("inf")
        for _ in range(args.repeat):
            n_peer, dt = peer_json_loads(files)
            t_peer = min(t_peer, dt)
            n_ours, dt = in_process(files)
            t_ours = min(t_ours, dt)
        t_cli, rss, summary = cli(root, Path(tmp) / "s.duckdb")
        assert n_peer == n_ours == args.measurements, (n_peer, n_ours)
        rows = [("json.loads loop (peer)", t_peer, ""),
                ("read + verdict (in process)", t_ours, ""),
                ("netvigil ooni import (CLI, DuckDB)", t_cli, f"peak RSS {rss:.0f} MB")]
        for name, dt, extra in rows:
            print(f"{name:38s} {args.measurements / dt:10,.0f} measurements/s  {dt:7.2f} s"
                  f"  x{t_peer / dt:5.2f} of the peer  {extra}")
        print(f"CLI: {summary}")


if __name__ == "__main__":
    main()
