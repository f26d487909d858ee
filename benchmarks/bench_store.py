"""``Store.write_points`` per 5-minute bin beside DuckDB's own bulk load of the same rows.

Run: ``.venv/bin/python benchmarks/bench_store.py [--series 70000] [--history-series 5000]``.

1. One bin of 70,000 new series, then the next bin (goal <= 1 s each), beside a plain
   ``INSERT INTO points SELECT * FROM <numpy>`` into a same-schema table in a fresh DuckDB
   file (the peer: no counts, no series bookkeeping).
2. The per-bin cost after 1, 7 and 30 days of 5-minute history (goal: flat). 70,000 series
   x 30 days is 605M rows, too big for this 2-core/24 GB machine in a benchmark run, so the
   history axis uses ``--history-series`` series (printed); the bin written at each level
   covers the same series.
Rows are synthetic (ASN codes 1..N, signal ``bgp``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

from netvigil.store import Store

T0 = 1_641_340_800
STEP = 300
BINS_PER_DAY = 86_400 // STEP


def columns(n_series: int, times: np.ndarray) -> dict[str, np.ndarray]:
    """Rows for every series at every time in ``times`` (time-major, as a bin arrives)."""
    codes = np.array([str(i + 1) for i in range(n_series)], dtype=object)
    k = len(times)
    rng = np.random.default_rng(int(times[0]))
    return {
        "entity_type": np.full(n_series * k, "asn", dtype=object),
        "entity_code": np.tile(codes, k),
        "signal": np.full(n_series * k, "bgp", dtype=object),
        "time": np.repeat(np.asarray(times, dtype=np.int64), n_series),
        "value": rng.random(n_series * k) * 1000,
    }


def store_write(store: Store, cols: dict[str, np.ndarray]) -> float:
    t = time.perf_counter()
    store.write_points(cols["entity_type"], cols["entity_code"], cols["signal"], cols["time"],
                       cols["value"], source="bench")
    return time.perf_counter() - t


PEER_SCHEMA = """
CREATE TABLE points (entity_type VARCHAR NOT NULL, entity_code VARCHAR NOT NULL,
                     signal VARCHAR NOT NULL, time BIGINT NOT NULL, value DOUBLE)
"""


def peer_write(con: duckdb.DuckDBPyConnection, cols: dict[str, np.ndarray]) -> float:
    t = time.perf_counter()
    con.register("_np", cols)
    con.execute("INSERT INTO points SELECT * FROM _np")
    con.unregister("_np")
    return time.perf_counter() - t


def bins_section(n: int, tmp: Path) -> None:
    print(f"== one bin of {n:,} series (goal <= 1 s) ==")
    peer = duckdb.connect(str(tmp / "peer.duckdb"))
    peer.execute(PEER_SCHEMA)
    with Store(tmp / "bins.duckdb") as store:
        for label, b in (("new series", 0), ("next bin", 1), ("bin after", 2)):
            cols = columns(n, np.array([T0 + STEP * b]))
            ours = store_write(store, cols)
            theirs = peer_write(peer, cols)
            print(f"  {label:<11} Store.write_points {ours:6.3f} s   DuckDB INSERT {theirs:6.3f} s"
                  f"   ratio {ours / theirs:5.1f}x")
        cols = columns(n, np.array([T0 + STEP * 2]))
        again = store_write(store, cols)
        print(f"  same bin again (all unchanged)   {again:6.3f} s")
    peer.close()


def history_section(n: int, days: list[int], tmp: Path) -> None:
    print(f"\n== per-bin cost with history ({n:,} series; 70,000 x 30 days = 605M rows is "
          f"beyond this 2-core machine's benchmark budget) ==")
    peer = duckdb.connect(str(tmp / "peer_hist.duckdb"))
    peer.execute(PEER_SCHEMA)
    with Store(tmp / "hist.duckdb") as store:
        filled = 0
        for d in days:
            while filled < d:  # one day per write: history written through the same path
                times = T0 + STEP * (filled * BINS_PER_DAY + np.arange(BINS_PER_DAY))
                cols = columns(n, times)
                store_write(store, cols)
                peer_write(peer, cols)
                filled += 1
            ours, theirs = [], []
            for j in range(3):
                t = T0 + STEP * (filled * BINS_PER_DAY + j)
                cols = columns(n, np.array([t]))
                ours.append(store_write(store, cols))
                theirs.append(peer_write(peer, cols))
            # remove the probe bins from the day grid so the next fill continues the series
            filled += 1
            rows = store.table_counts()["points"]
            print(f"  after {d:>2} day(s) ({rows:>11,} rows): Store.write_points median "
                  f"{statistics.median(ours):6.3f} s   DuckDB INSERT "
                  f"{statistics.median(theirs):6.3f} s")
    peer.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=70_000)
    ap.add_argument("--history-series", type=int, default=5_000)
    ap.add_argument("--days", default="1,7,30")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bins_section(args.series, tmp)
        history_section(args.history_series, [int(x) for x in args.days.split(",")], tmp)
    print(f"\nmachine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} "
          "(cores shared with other jobs: read the ratios)")


if __name__ == "__main__":
    main()
