"""What the single-writer design costs: the store held per bin vs. a 300 s bin.

`netvigil run` opens the store read-write only to write a bin and closes it between bins, so
readers (`netvigil events`, `series list`) can open it. This prints, for a store of
SERIES series × DAYS days of 300 s points: open + close (read-write and read-only), a
reader's `list_series` + `read_events`, and one observatory bin (open, one new point per
series through the Pipeline, incremental detection, close) — the time readers may have to
wait — beside the peer design "hold the store open for the life of the process", under
which a reader waits for the whole run (it cannot open at all).

    .venv/bin/python benchmarks/bench_observatory_lock.py [SERIES] [DAYS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from netvigil.events.runner import run_detection
from netvigil.model.facts import PointBatch
from netvigil.pipeline import Pipeline
from netvigil.store.duck import Store

STEP = 300
T0 = 1_700_006_400


def _batch(n_series: int, times: np.ndarray) -> PointBatch:
    k = times.size
    codes = np.repeat(np.array([str(64512 + i) for i in range(n_series)], dtype=object), k)
    t = np.tile(times, n_series).astype(np.int64)
    rng = np.random.default_rng(1)
    v = 1000.0 + rng.normal(0, 5, t.size)
    return PointBatch(np.full(t.size, "asn", dtype=object), codes,
                      np.full(t.size, "bgp", dtype=object), t, v, "bench", STEP)


def _timed(fn: object, reps: int = 5) -> float:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    n_series = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    days = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    n_bins = days * 86400 // STEP
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.duckdb"
        t = time.perf_counter()
        with Store(path) as st:
            p = Pipeline(st)
            p.emit(_batch(n_series, T0 + STEP * np.arange(n_bins)))
            p.flush()
            run_detection(st)
        build = time.perf_counter() - t
        size = path.stat().st_size / 2**20

        def rw() -> None:
            Store(path).close()

        def ro_read() -> None:
            with Store(path, read_only=True) as st:
                st.list_series()
                st.read_events()

        nxt = [n_bins]

        def one_bin() -> None:
            with Store(path) as st:
                p = Pipeline(st)
                p.emit(_batch(n_series, np.array([T0 + STEP * nxt[0]])))
                p.flush()
                run_detection(st)
            nxt[0] += 1

        t_rw, t_ro, t_bin = _timed(rw), _timed(ro_read), _timed(one_bin)
    print(f"store: {n_series} series x {days} days ({n_series * n_bins:,} points, "
          f"{size:.1f} MiB), built in {build:.1f} s")
    print(f"open+close read-write           {t_rw * 1000:8.1f} ms")
    print(f"reader: open ro + list + events {t_ro * 1000:8.1f} ms")
    print(f"one observatory bin (lock held) {t_bin * 1000:8.1f} ms  = {t_bin / 300:.4%} of a "
          f"300 s bin; a reader waits at most this long")
    print("peer: store held open for the run  reader waits for the whole run (cannot open)")


if __name__ == "__main__":
    main()
