"""``netvigil series import`` end to end (the real CLI in a subprocess) beside DuckDB's own
``read_csv`` of the same file into a table, with wall time and peak RSS of each child.

Run: ``.venv/bin/python benchmarks/bench_import.py [--rows 5000000] [--big 20000000]``.
Files are generated into a temporary directory (ISO 8601 times, ``AS``-prefixed codes so
canonicalisation does work); nothing is downloaded. The old row-by-row parser is quoted from
issue 7 (73k rows/s, 4.16 GB peak for 5M rows), it no longer exists in the tree.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

OLD_ROWS_PER_S = 73_000
OLD_PEAK_GB_5M = 4.16
T0 = 1_641_340_800
NETVIGIL = str(Path(sys.executable).with_name("netvigil"))


def generate(path: Path, n_series: int, n_bins: int, step: int = 300) -> int:
    """Long-format CSV, bin by bin (the order an exporter writes)."""
    with path.open("w") as f:
        f.write("time,entity_type,entity_code,signal,value\n")
        for b in range(n_bins):
            iso = datetime.fromtimestamp(T0 + b * step, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            f.write("".join(f"{iso},asn,AS{s + 1},bgp,{(s * 7 + b) % 1000}\n"
                            for s in range(n_series)))
    return n_series * n_bins


def timed_child(args: list[str]) -> tuple[float, float, str]:
    t = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed: {err or out}")
    return dt, usage.ru_maxrss / 1024, out.strip()


DUCKDB_PEER = """
import sys, duckdb
con = duckdb.connect(sys.argv[2])
con.execute("SET enable_progress_bar = false")
con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{sys.argv[1]}')")
print(con.execute("SELECT count(*) FROM t").fetchone()[0])
"""


def bench_file(label: str, csv: Path, rows: int, tmp: Path) -> float:
    """Import, DuckDB's load, re-import of ``csv``; prints them; returns the import's RSS."""
    store = tmp / f"{label}.duckdb"
    peer_db = tmp / f"{label}-peer.duckdb"
    dt, rss, out = timed_child([NETVIGIL, "series", "import", str(csv), "--store", str(store)])
    pdt, prss, pout = timed_child([sys.executable, "-c", DUCKDB_PEER, str(csv), str(peer_db)])
    rdt, rrss, rout = timed_child([NETVIGIL, "series", "import", str(csv), "--store",
                                   str(store)])
    size = csv.stat().st_size / 1e6
    print(f"\n== {label}: {rows:,} rows, {size:,.0f} MB CSV ==")
    print(f"  netvigil series import  {dt:8.2f} s {rows / dt:>12,.0f} rows/s  peak RSS "
          f"{rss:8,.0f} MB   [{out.split(': ', 1)[-1]}]")
    print(f"  re-import (unchanged)   {rdt:8.2f} s {rows / rdt:>12,.0f} rows/s  peak RSS "
          f"{rrss:8,.0f} MB   [{rout.split(': ', 1)[-1]}]")
    print(f"  DuckDB read_csv->table  {pdt:8.2f} s {rows / pdt:>12,.0f} rows/s  peak RSS "
          f"{prss:8,.0f} MB   [{pout} rows]")
    print(f"  old row parser (issue 7) {rows / OLD_ROWS_PER_S:7.2f} s {OLD_ROWS_PER_S:>12,} "
          f"rows/s  peak RSS {OLD_PEAK_GB_5M * 1024:8,.0f} MB (5M rows)   [quoted]")
    print(f"  ratios: import vs old {OLD_ROWS_PER_S and rows / dt / OLD_ROWS_PER_S:.1f}x "
          f"faster (goal >= 5x); import/DuckDB time {dt / pdt:.1f}x, "
          f"RSS {rss / prss:.2f}x")
    return max(rss, rrss)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--big", type=int, default=0, help="also a file of this many rows (RSS)")
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        tmp = Path(d)
        one_bin = tmp / "one_bin_70k.csv"
        generate(one_bin, 70_000, 1)
        bench_file("one bin x 70,000 series", one_bin, 70_000, tmp)
        main_csv = tmp / "rows.csv"
        n = generate(main_csv, 1000, args.rows // 1000)
        rss = bench_file(f"{n:,} rows (1,000 series x {n // 1000:,} bins)", main_csv, n, tmp)
        if args.big:
            main_csv.unlink()
            big = tmp / "big.csv"
            nb = generate(big, 1000, args.big // 1000)
            brss = bench_file(f"{nb:,} rows (memory bound)", big, nb, tmp)
            print(f"\nmemory bound: peak RSS {rss:,.0f} MB at {n:,} rows, {brss:,.0f} MB at "
                  f"{nb:,} rows: {(brss - rss) * 2**20 / (nb - n):+.1f} B per extra row "
                  "(goal: ~0, bounded whatever the file size)")
    print(f"\nmachine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} "
          "(other jobs share the cores: ratios are the figure to read)")


if __name__ == "__main__":
    main()
