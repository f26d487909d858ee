"""Peak memory of ``netvigil series import`` against input size (issue 12, defect 11).

Defect 11 measured ~860 bytes per CSV row (1.73 GB for 2M rows) and 1.93 GB for 2M IODA
values: memory grew with the file. This script runs the real CLI in a child process on
generated files and prints the child's peak RSS (``ru_maxrss`` of the waited child) and wall
time at each of ``--sizes`` (default 0.5M, 2M, 4M) for both formats:

* IODA ``signals/raw`` JSON: values in series of 10,000;
* CSV long format: rows of 5-minute points, ``size / 10,000`` series;
* a 10-row file of each format (the baseline: interpreter, DuckDB, the registry);
* beside each figure: the previous design's peak at that size (:data:`BEFORE`, measured with
  this script before the import budget, same machine) and the named peers in a child process:
  ``json.load`` of the same IODA file (parsing the whole document) and DuckDB ``read_csv`` of
  the same CSV into a table of a fresh database.

Slope = (peak at the largest size - peak at the smallest) / (size difference), in bytes per
value: a bounded import has a slope near 0 (flat within noise), the defect had ~860.

Usage: ``python benchmarks/bench_import_memory.py [--sizes 500000,2000000] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = str(Path(sys.executable).with_name("netvigil"))
T0 = 1_641_340_800
STEP = 300
PER_SERIES = 10_000
REGIONS = ["KZ-10", "KZ-11", "KZ-15", "KZ-19", "KZ-23", "KZ-27", "KZ-31", "KZ-33", "KZ-35",
           "KZ-39", "KZ-43", "KZ-47", "KZ-55", "KZ-59", "KZ-61", "KZ-62", "KZ-63", "KZ-71",
           "KZ-75", "KZ-79"]


def entity(i: int) -> tuple[str, str]:
    return ("region", REGIONS[i]) if i < len(REGIONS) else ("asn", str(1000 + i))


def write_ioda(path: Path, values: int) -> None:
    """IODA envelope, series of PER_SERIES values each (written piecewise: the generator
    must not be the memory peak of the benchmark machine)."""
    with path.open("w", encoding="utf-8") as f:
        f.write('{"type": "signals", "metadata": {}, "data": [[')
        for s in range((values + PER_SERIES - 1) // PER_SERIES):
            n = min(PER_SERIES, values - s * PER_SERIES)
            et, code = entity(s)
            vals = ", ".join("null" if (i * 7 + s) % 97 == 0 else f"{100 + (i * 13 + s) % 50}"
                             for i in range(n))
            head = json.dumps({"entityType": et, "entityCode": code, "datasource": "bgp",
                               "from": T0, "until": T0 + n * STEP, "step": STEP})[:-1]
            f.write(("" if s == 0 else ", ") + head + ', "values": [' + vals + "]}")
        f.write("]]}\n")


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write("time,entity_type,entity_code,signal,value\n")
        n_series = max(1, rows // PER_SERIES)
        for b in range((rows + n_series - 1) // n_series):
            t = T0 + b * STEP
            lines = []
            for s in range(min(n_series, rows - b * n_series)):
                et, code = entity(s)
                lines.append(f"{t},{et},{code},bgp,{100 + (b * 13 + s) % 50}")
            f.write("\n".join(lines) + "\n")


def peak_of(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one child process run to completion."""
    t = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    _pid, status, usage = os.wait4(proc.pid, 0)
    took = time.monotonic() - t
    err = proc.stderr.read().decode() if proc.stderr else ""
    if status != 0:
        raise SystemExit(f"{argv} failed: {err[-2000:]}")
    return usage.ru_maxrss / 1024, took


#: Peak RSS (MB) of the previous design, measured with this script on this machine (2 shared
#: cores under load): IODA streamed but numpy batches registered with DuckDB were held until
#: the import's commit; CSV under a 1 GB DuckDB memory_limit.
BEFORE = {
    "ioda": {500_000: 248, 2_000_000: 328, 4_000_000: 447},
    "csv": {500_000: 264, 2_000_000: 582, 4_000_000: 929},
}
WRITERS = {"ioda": write_ioda, "csv": write_csv}
SUFFIX = {"ioda": "json", "csv": "csv"}


def peer_argv(fmt: str, path: Path, tmp: Path) -> list[str]:
    """The plain peer of a format: parse the whole JSON document / DuckDB read_csv into a
    table (fresh database each time)."""
    if fmt == "ioda":
        return [sys.executable, "-c", "import json,sys; json.load(open(sys.argv[1]))", str(path)]
    db = tmp / f"peer-{path.stem}.duckdb"
    db.unlink(missing_ok=True)
    return [sys.executable, "-c",
            "import duckdb,sys; duckdb.connect(sys.argv[2]).execute("
            "\"CREATE TABLE t AS SELECT * FROM read_csv(?)\", [sys.argv[1]])",
            str(path), str(db)]


def run_format(fmt: str, sizes: list[int], tmp: Path) -> None:
    small = tmp / f"small.{SUFFIX[fmt]}"
    WRITERS[fmt](small, 10)
    base, _ = peak_of([EXE, "series", "import", str(small), "--store",
                       str(tmp / f"base-{fmt}.duckdb")])
    print(f"{fmt}: baseline (10 rows) {base:.0f} MB")
    peaks: dict[int, float] = {}
    for n in sizes:
        path = tmp / f"big-{n}.{SUFFIX[fmt]}"
        WRITERS[fmt](path, n)
        store = tmp / f"{fmt}-{n}.duckdb"
        peak, took = peak_of([EXE, "series", "import", str(path), "--store", str(store)])
        ppeak, ptook = peak_of(peer_argv(fmt, path, tmp))
        peaks[n] = peak
        prev = BEFORE[fmt].get(n)
        print(f"  {fmt} {n:>10,} {path.stat().st_size / 1e6:8.1f} {peak:8.0f} {took:7.1f} "
              f"{'-' if prev is None else f'{prev:.0f}':>8s} {ppeak:8.0f} {ptook:7.1f}")
        path.unlink()
        for extra in (store, store.with_name(store.name + ".wal")):
            extra.unlink(missing_ok=True)
    lo, hi = min(sizes), max(sizes)
    if hi > lo:
        slope = (peaks[hi] - peaks[lo]) * 1024 * 1024 / (hi - lo)
        before = BEFORE[fmt]
        old = ((before[hi] - before[lo]) * 1024 * 1024 / (hi - lo)
               if lo in before and hi in before else None)
        print(f"  {fmt} slope {lo:,} -> {hi:,}: {slope:.1f} B/value, peak ratio "
              f"{peaks[hi] / peaks[lo]:.2f}"
              + ("" if old is None else f" (before: {old:.1f} B/value, ratio "
                                        f"{before[hi] / before[lo]:.2f})"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="500000,2000000,4000000",
                    help="comma-separated values/rows per file")
    ap.add_argument("--formats", default="ioda,csv")
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = args.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        print(f"  {'fmt':4s} {'values':>10s} {'size MB':>8s} {'peak MB':>8s} {'s':>7s} "
              f"{'before':>8s} {'peer MB':>8s} {'peer s':>7s}   (peer: ioda json.load, "
              "csv DuckDB read_csv into a table)")
        for fmt in args.formats.split(","):
            run_format(fmt, sizes, tmp)


if __name__ == "__main__":
    main()
