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

Rows printed (measurements/s, wall time, CPU seconds, and the ratio to the peer; the rows
of one repeat run back to back and the repeats interleave, best of ``--repeat`` each: the
machine is shared, order must not decide):

* ``json.loads loop`` — the named peer: ``gzip.open`` + ``json.loads`` per line, nothing
  else (no verdicts, no store), in this process (no interpreter start): the floor any
  Python importer of these files starts from;
* ``read + verdict`` — NetVigil's reader, base keys, verdicts and ledger rows, in process,
  one process, no store;
* ``netvigil ooni import --jobs 1`` / ``--jobs 2`` — the real CLI in a subprocess (start,
  imports, read, ledger, pipeline, one DuckDB transaction) into a fresh store, judged in
  this one process or in two forked workers; CPU is the whole process tree's (workers
  included), peak RSS the largest process's. The CLI's default ``--jobs 0`` picks one
  worker per core not busy by the 1-minute load average (printed).

A last row times ``netvigil --version`` alone: the start (interpreter, every command's
imports) that each CLI row pays and the in-process rows do not; in a tree run with
``PYTHONDONTWRITEBYTECODE`` and no ``__pycache__`` it includes compiling ~100 modules. The
1-minute load average is printed before and after: on a loaded 2-core machine the wall
ratios move with it (CPU seconds much less), and two workers only pay off on idle cores.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from netvigil.cli.ooni_cmd import idle_cores

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


def peer_json_loads(files: list[Path]) -> tuple[int, float, float]:
    t, c = time.perf_counter(), time.process_time()
    n = 0
    for f in files:
        with gzip.open(f, "rb") as fh:
            for line in fh:
                json.loads(line)
                n += 1
    return n, time.perf_counter() - t, time.process_time() - c


def in_process(files: list[Path]) -> tuple[int, float, float]:
    from netvigil.sources.ooni.facts import FactBuilder
    from netvigil.sources.ooni.importer import read_measurements

    t, c = time.perf_counter(), time.process_time()
    out = read_measurements(files, "fail", FactBuilder(), jobs=1)
    return out.measurements, time.perf_counter() - t, time.process_time() - c


#: A small launcher measures the CLI's peak RSS and CPU: a child forked from this process
#: (which holds the generated measurements) would report this process's RSS as its own
#: peak. ``wait4``'s usage covers the CLI and the workers it reaped.
LAUNCH = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(p.pid, 0)
print(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def cli(root: Path, store: Path, jobs: int) -> tuple[float, float, float, str]:
    """Wall s, CPU s (user + sys of the CLI and its workers), peak RSS MB, summary line."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCH, NETVIGIL, "ooni", "import", "--dir",
                           str(root), "--store", str(store), "--jobs", str(jobs)],
                          capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"netvigil ooni import failed: {proc.stderr}")
    rss_kb, cpu = proc.stderr.strip().splitlines()[-1].split()
    return dt, float(cpu), int(rss_kb) / 1024, proc.stdout.splitlines()[0]


def start_only() -> tuple[float, float]:
    """Wall and CPU s of ``netvigil --version``: the CLI's fixed start cost."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCH, NETVIGIL, "--version"],
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - t, float(proc.stderr.strip().splitlines()[-1].split()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--measurements", type=int, default=40_000)
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f} on "
          f"{len(os.sched_getaffinity(0))} cores")
    with tempfile.TemporaryDirectory(prefix="bench-ooni-") as tmp:
        root = Path(tmp) / "bucket"
        t = time.perf_counter()
        files, size = generate(root, args.measurements, args.hours)
        print(f"generated {args.measurements} measurements (replicated real fixtures) in "
              f"{len(files)} bucket files, {size / 1e6:.1f} MB gzip, "
              f"{time.perf_counter() - t:.1f} s")
        best: dict[str, tuple[float, float, str]] = {}

        def keep(name: str, wall: float, cpu: float, extra: str = "") -> None:
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu, extra)

        summary = ""
        for r in range(args.repeat):
            n_peer, dt, cpu = peer_json_loads(files)
            keep("json.loads loop (peer)", dt, cpu)
            n_ours, dt, cpu = in_process(files)
            keep("read + verdict (in process)", dt, cpu)
            assert n_peer == n_ours == args.measurements, (n_peer, n_ours)
            for jobs in (1, 2):
                dt, cpu, rss, summary = cli(root, Path(tmp) / f"s{r}-{jobs}.duckdb", jobs)
                keep(f"netvigil ooni import --jobs {jobs}", dt, cpu, f"peak RSS {rss:.0f} MB")
            keep("netvigil --version (start only)", *start_only())
        t_peer = best["json.loads loop (peer)"][0]
        c_peer = best["json.loads loop (peer)"][1]
        for name, (dt, cpu, extra) in best.items():
            if name.startswith("netvigil --version"):
                print(f"{name:34s} {'':25s} {dt:6.2f} s {'':20s} | CPU {cpu:5.2f} s")
                continue
            print(f"{name:34s} {args.measurements / dt:8,.0f} measurements/s {dt:6.2f} s"
                  f"  x{t_peer / dt:5.2f} of the peer | CPU {cpu:5.2f} s x{c_peer / cpu:5.2f}"
                  f"  {extra}")
        print(f"CLI: {summary}")
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}; the CLI's default --jobs 0 "
          f"would use {idle_cores()} now")


if __name__ == "__main__":
    main()
