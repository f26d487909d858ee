"""Peak memory of ``netvigil series import`` against input size (issue 12, defect 11).

Defect 11 measured ~860 bytes per CSV row (1.73 GB for 2M rows) and 1.93 GB for 2M IODA
values: memory grew with the file. This script runs the real CLI in a child process on
generated files and prints the child's peak RSS (``ru_maxrss`` of the waited child):

* IODA ``signals/raw`` JSON: ``--values`` values (default 2M) in series of 10,000;
* CSV long format: ``--rows`` rows (default 2M);
* a 10-row file of each format (the baseline: interpreter, DuckDB, the registry);
* the named peers, side by side: ``json.load`` of the same IODA file in a child (what
  parsing the whole document costs, the old design) and DuckDB ``read_csv`` of the CSV into a
  table.

Bytes per value = (peak - baseline peak) / values. A streaming import stays near its baseline
whatever the size; run with two sizes (``--values 500000`` and the default) to see the slope.

Usage: ``python benchmarks/bench_import_memory.py [--values N] [--rows N] [--keep DIR]``
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--values", type=int, default=2_000_000)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = args.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        files = {"ioda": (tmp / "big.json", args.values), "csv": (tmp / "big.csv", args.rows)}
        small = {"ioda": tmp / "small.json", "csv": tmp / "small.csv"}
        write_ioda(files["ioda"][0], args.values)
        write_ioda(small["ioda"], 10)
        write_csv(files["csv"][0], args.rows)
        write_csv(small["csv"], 10)
        print(f"{'input':38s} {'size MB':>8s} {'peak MB':>8s} {'s':>6s} {'B/value':>8s}")
        for fmt in ("ioda", "csv"):
            base, _ = peak_of([EXE, "series", "import", str(small[fmt]), "--store",
                               str(tmp / f"base-{fmt}.duckdb")])
            path, n = files[fmt]
            peak, took = peak_of([EXE, "series", "import", str(path), "--store",
                                  str(tmp / f"{fmt}.duckdb")])
            size = path.stat().st_size / 1e6
            print(f"{'netvigil series import, 10 ' + fmt:38s} {'':>8s} {base:8.0f}")
            print(f"{f'netvigil series import, {n:,} ' + fmt:38s} {size:8.1f} {peak:8.0f} "
                  f"{took:6.1f} {(peak - base) * 1024 * 1024 / n:8.0f}")
        peer, took = peak_of([sys.executable, "-c",
                              "import json,sys; json.load(open(sys.argv[1]))",
                              str(files["ioda"][0])])
        print(f"{'peer: json.load of the IODA file':38s} {'':>8s} {peer:8.0f} {took:6.1f}")
        peer, took = peak_of([sys.executable, "-c",
                              "import duckdb,sys; duckdb.connect(sys.argv[2]).execute("
                              "\"CREATE TABLE t AS SELECT * FROM read_csv(?)\", [sys.argv[1]])",
                              str(files["csv"][0]), str(tmp / "peer.duckdb")])
        print(f"{'peer: DuckDB read_csv into a table':38s} {'':>8s} {peer:8.0f} {took:6.1f}")


if __name__ == "__main__":
    main()
