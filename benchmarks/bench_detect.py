"""Benchmark: incremental ``ioda.median`` detection at IODA scale, beside named peers.

Run: ``.venv/bin/python benchmarks/bench_detect.py [--full-series N] [--bin-series N]
[--history-bins N] [--signal bgp] [--sample N] [--skip-full] [--skip-bin]``

Data (seeded, generated here, never shared with the detector): flat integer counts with
0.2 % noise (BGP-like), ~1 % of series with a 2-hour drop to 10 % and ~1 % with a lasting drop,
~0.5 % of bins missing. The signal (default ``bgp``: 300 s, rule ``ioda.median.bgp`` with a
24 h history, so a warm window holds 288 values; ``--signal telescope`` gives 7-day windows)
decides the rule.

1. **Full pass**, 10,000 series x 7 days of 5-minute points (2016 per series, 20.2M points):
   * the batch kernel (``IodaMedian.update`` over all series at once, CSR, from scratch);
   * peer: the pure-Python reference ``IodaMedian.detect`` (one series at a time, the path
     every series took before), on ``--sample`` series, extrapolated;
   * end to end: ``run_detection`` on a store holding those points (first run: every series
     from scratch: read, detect, write alerts, states, events), and the store write of the
     same points beside it.
2. **One new bin** for 70,000 series with ``--history-bins`` of history already detected:
   * peer: ``store.write_points`` of that bin (70,000 rows, one set-based call);
   * ``run_detection`` (read new rows + states, advance, append alerts, upsert states,
     events of touched entities), in process;
   * the real ``netvigil detect --store`` CLI as a subprocess on the next bin (process start,
     imports and numba cache load included);
   * peer: the same bin recomputed from scratch (``run_detection(rebuild=True)``), measured
     on ``--sample`` series of the store with the ``--entity`` filter is not comparable, so
     the from-scratch figure is the full-pass kernel rate applied to the history size.

Timings are wall clock on the shared 2-core machine; single runs are noisy.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from netvigil.detect import IodaMedian
from netvigil.detect import median_kernel as mk
from netvigil.detect.protocol import PointChunk
from netvigil.events.runner import run_detection
from netvigil.model import Series, make_ref
from netvigil.store.duck import Store

T0 = 1_640_995_200  # 2022-01-01T00:00:00Z
STEP = 300


def gen_values(n_series: int, n_bins: int, seed: int, t0_bin: int = 0) -> np.ndarray:
    """(n_series, n_bins) float64 counts; NaN = missing. Bins are absolute from T0."""
    base = np.random.default_rng(0).integers(50, 5000, n_series).astype(np.float64)
    rng = np.random.default_rng(seed)
    # BGP visibility is flat (routes, not users); 0.2 % noise keeps it above the 0.99
    # warning ratio, as real /24 counts are outside outages.
    v = np.rint(base[:, None] * (1.0 + 0.002 * rng.standard_normal((n_series, n_bins))))
    drop = rng.random(n_series) < 0.01
    at = rng.integers(0, max(n_bins - 24, 1), n_series)
    for k in np.flatnonzero(drop):
        v[k, at[k]:at[k] + 24] = np.rint(v[k, at[k]:at[k] + 24] * 0.1)
    lasting = rng.random(n_series) < 0.01
    for k in np.flatnonzero(lasting):
        v[k, at[k]:] = np.rint(v[k, at[k]:] * 0.4)
    v[rng.random(v.shape) < 0.005] = np.nan
    return v


def codes(n: int) -> list[str]:
    return [str(64512 + k) for k in range(n)]


def write_matrix(store: Store, values: np.ndarray, signal: str, t0_bin: int) -> float:
    n, m = values.shape
    cs = np.array(codes(n), dtype=object)
    times = T0 + (t0_bin + np.arange(m, dtype=np.int64)) * STEP
    t = time.perf_counter()
    store.write_points(np.full(n * m, "asn", dtype=object),  # type: ignore[arg-type]
                       np.repeat(cs, m),  # type: ignore[arg-type]
                       np.full(n * m, signal, dtype=object),  # type: ignore[arg-type]
                       np.tile(times, n),
                       values.reshape(-1), source="bench", step=STEP)
    return time.perf_counter() - t


def full_pass(n: int, sample: int, signal: str) -> None:
    bins = 7 * 86400 // STEP
    print(f"\n== full pass: {n:,} series x {bins} bins (7 days, {STEP} s), signal {signal}")
    values = gen_values(n, bins, seed=1)
    pts = n * bins
    det = IodaMedian()
    series = [Series(make_ref("asn", c), signal, T0, STEP, values[k])
              for k, c in enumerate(codes(n))]
    chunk = PointChunk.from_series(series)
    det.update(PointChunk.from_series(series[:2]), [None, None])  # compile / load cache
    t = time.perf_counter()
    upd = det.update(chunk, [None] * n)
    kern = time.perf_counter() - t
    state_bytes = sum(len(s) for s in upd.states)
    print(f"kernel (numba={mk.numba_enabled()}): {kern:.2f} s, {pts / kern / 1e6:.2f} M points/s,"
          f" {len(upd.alerts)} alerts, state {state_bytes / n:.0f} B/series")
    t = time.perf_counter()
    ref = []
    for s in series[:sample]:
        ref += det.detect(s)
    py = time.perf_counter() - t
    py_rate = sample * bins / py
    print(f"peer: reference Python IodaMedian.detect on {sample} series: {py:.2f} s, "
          f"{py_rate / 1e6:.3f} M points/s -> kernel is {pts / kern / py_rate:.1f}x")
    mine = [a for a in upd.alerts if int(a.entity.code) < 64512 + sample]
    print(f"check: kernel alerts == reference alerts on the sample: {mine == ref}")
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "full.duckdb") as store:
            w = write_matrix(store, values, signal, 0)
            t = time.perf_counter()
            rep = run_detection(store)
            e2e = time.perf_counter() - t
        print(f"end to end run_detection (from scratch, all series): {e2e:.2f} s, "
              f"{rep.points_read / e2e / 1e6:.2f} M points/s, {rep.alerts_written} alerts, "
              f"{rep.events_written} events; peer: store write of the same points {w:.2f} s")


def one_bin(n: int, history_bins: int, signal: str) -> None:
    print(f"\n== one new bin: {n:,} series, {history_bins} bins of history, signal {signal}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bin.duckdb"
        with Store(path) as store:
            hist = gen_values(n, history_bins, seed=2)
            w = write_matrix(store, hist, signal, 0)
            del hist
            t = time.perf_counter()
            rep = run_detection(store)
            first = time.perf_counter() - t
            print(f"setup: history write {w:.1f} s; first run_detection (from scratch) "
                  f"{first:.1f} s for {rep.points_read:,} points "
                  f"({rep.points_read / first / 1e6:.2f} M points/s)")
            size = store.connection.execute(
                "SELECT sum(octet_length(state)) FROM detector_state").fetchone()
            print(f"detector_state: {int(size[0]) / n:.0f} B/series" if size and size[0]
                  else "detector_state empty")
            for b in range(2):
                new = gen_values(n, 1, seed=10 + b, t0_bin=history_bins + b)
                wb = write_matrix(store, new, signal, history_bins + b)
                t = time.perf_counter()
                rep = run_detection(store)
                d = time.perf_counter() - t
                print(f"bin {b + 1}: run_detection {d:.2f} s (updated {rep.series_updated:,},"
                      f" recomputed {rep.series_recomputed}, points read {rep.points_read:,},"
                      f" alerts {rep.alerts_written}, entities touched {rep.entities_touched})"
                      f"; peer: store write of the bin {wb:.2f} s -> ratio {d / wb:.1f}x")
            nb = history_bins + 2
            new = gen_values(n, 1, seed=20, t0_bin=nb)
            wb = write_matrix(store, new, signal, nb)
        env = dict(os.environ)
        t = time.perf_counter()
        exe = Path(sys.executable).with_name("netvigil")
        out = subprocess.run([str(exe), "detect", "--store", str(path)],
                             capture_output=True, text=True, env=env, check=False)
        cli = time.perf_counter() - t
        print(f"CLI `netvigil detect` subprocess on the next bin: {cli:.2f} s "
              f"(exit {out.returncode}); peer: store write of that bin {wb:.2f} s")
        print("  " + out.stdout.strip().replace("\n", "\n  "))
        if out.returncode:
            print(out.stderr[-2000:])
        scratch_est = n * (history_bins + 3) / 2.0e6
        print(f"peer: from scratch each bin would read and run {n * (history_bins + 3):,} "
              f"points (>= {scratch_est:.1f} s at 2 M points/s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full-series", type=int, default=10_000)
    p.add_argument("--bin-series", type=int, default=70_000)
    p.add_argument("--history-bins", type=int, default=288)
    p.add_argument("--signal", default="bgp")
    p.add_argument("--sample", type=int, default=200)
    p.add_argument("--skip-full", action="store_true")
    p.add_argument("--skip-bin", action="store_true")
    a = p.parse_args()
    if not a.skip_full:
        full_pass(a.full_series, a.sample, a.signal)
    if not a.skip_bin:
        one_bin(a.bin_series, a.history_bins, a.signal)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
