"""Benchmark (issue 8, deliverable 7): detection at world scale, each detector beside the
reference ``ioda.median``.

Run: ``.venv/bin/python benchmarks/bench_detect_scale.py [--countries 250] [--regions 5000]
[--ases 70000] [--days 7] [--store-series 2000] [--store-days 2] [--skip-store]
[--skip-kernel]``

Data (seeded, generated here, shares nothing with the detectors): one ``bgp`` series (native
step 300 s) per entity, 250 countries + 5,000 regions + 70,000 ASes = 75,250 series; levels
log-uniform from 5 to 50,000 (small ASes to countries), a diurnal rhythm of 0-60 %, Poisson
noise, ~0.5 % of bins missing, ~1 % of series with a 2-hour cut to 5 %.

1. **One pass**, every series x ``--days`` days from scratch, through each detector's batch
   ``update`` (the path ``run_detection`` takes): goal < 30 s on 2 cores.
2. **One new bin** for every series from the states saved by pass 1, through ``update``:
   goal < 5 s.
3. **End to end one new bin** (``--skip-store`` skips it): ``run_detection`` over a DuckDB
   store holding ``--store-series`` series x ``--store-days`` of history already detected,
   then one more bin written and detected (read new rows and states, advance, write alerts,
   states, events and their assessment).

Wall clock on the shared 2-core machine; the first call of a detector compiles its numba
kernel (cached on disk), so each figure is the best of ``--repeat`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from netvigil.detect.protocol import Detector, PointChunk
from netvigil.detect.registry import REFERENCE, detector_names, get_detector
from netvigil.events.runner import run_detection
from netvigil.model import EntityRef, make_ref
from netvigil.store.duck import Store

STEP = 300
T0 = 1_641_254_400


def keys(countries: int, regions: int, ases: int) -> list[tuple[EntityRef, str]]:
    out: list[tuple[EntityRef, str]] = []
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    codes = [a + b for a in letters for b in letters][:countries]
    out += [(make_ref("country", c), "bgp") for c in codes]
    out += [(make_ref("region", f"{codes[i % countries]}-{i // countries}"), "bgp")
            for i in range(regions)]
    out += [(make_ref("asn", str(64_512 + i)), "bgp") for i in range(ases)]
    return out


def values(n_series: int, n_bins: int, seed: int, start_bin: int = 0) -> np.ndarray:
    """(n_series, n_bins) counts; see the module docstring."""
    rng = np.random.default_rng(seed)
    level = np.exp(rng.uniform(np.log(5), np.log(50_000), n_series))[:, None]
    amp = rng.uniform(0, 0.6, n_series)[:, None]
    phase = rng.uniform(0, 24, n_series)[:, None]
    hours = ((start_bin + np.arange(n_bins)) * STEP / 3600.0)[None, :]
    mu = level * (1 - amp * 0.5 * (1 + np.cos((hours - phase) / 24 * 2 * np.pi)))
    cut = rng.random(n_series) < 0.01
    where = rng.integers(0, max(1, n_bins - 24), n_series)
    for k in np.flatnonzero(cut):
        mu[k, where[k]:where[k] + 24] *= 0.05
    v: np.ndarray = rng.poisson(mu).astype(np.float64)
    v[rng.random(v.shape) < 0.005] = np.nan
    return v


def chunk_of(ks: list[tuple[EntityRef, str]], v: np.ndarray, start_bin: int) -> PointChunk:
    n, m = v.shape
    offsets = np.arange(n + 1, dtype=np.int64) * m
    times = np.tile(T0 + (start_bin + np.arange(m, dtype=np.int64)) * STEP, n)
    return PointChunk(ks, offsets, times, v.reshape(-1))


def best(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    out = None
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def kernel_rows(names: list[str], ks: list[tuple[EntityRef, str]], days: int,
                repeat: int) -> None:
    n_bins = days * 86400 // STEP
    t = time.perf_counter()
    v = values(len(ks), n_bins, 1)
    nxt = values(len(ks), 1, 2, start_bin=n_bins)
    print(f"data: {len(ks):,} series x {n_bins} bins = {v.size / 1e6:.1f}M points "
          f"(generated in {time.perf_counter() - t:.1f} s)")
    full = chunk_of(ks, v, 0)
    one = chunk_of(ks, nxt, n_bins)
    ref_pass = ref_bin = None
    print(f"{'detector':20s} {'one pass':>10s} {'x ref':>7s} {'new bin':>9s} {'x ref':>7s} "
          f"{'alerts':>8s} {'state MB':>9s}")
    for name in names:
        det: Detector = get_detector(name)
        det.update(chunk_of(ks[:2], v[:2, :300], 0), [None, None])  # compile
        t_pass, upd = best(partial(det.update, full, [None] * len(ks)), repeat)
        states = upd.states  # type: ignore[attr-defined]
        t_bin, _ = best(partial(det.update, one, states), repeat)
        if name == REFERENCE:
            ref_pass, ref_bin = t_pass, t_bin
        mb = sum(len(s) for s in states) / 1e6
        print(f"{name:20s} {t_pass:9.2f}s {t_pass / (ref_pass or t_pass):6.2f}x "
              f"{t_bin:8.3f}s {t_bin / (ref_bin or t_bin):6.2f}x "
              f"{len(upd.alerts):8,d} {mb:9.1f}")  # type: ignore[attr-defined]


def write_bins(store: Store, ks: list[tuple[EntityRef, str]], v: np.ndarray,
               start_bin: int) -> None:
    """All series, bins ``start_bin...``, in one set-based write."""
    n, m = v.shape
    types = [k[0].type.value for k in ks for _ in range(m)]
    codes = [k[0].code for k in ks for _ in range(m)]
    sigs = [k[1] for k in ks for _ in range(m)]
    times = np.tile(T0 + (start_bin + np.arange(m, dtype=np.int64)) * STEP, n)
    store.write_points(types, codes, sigs, times, v.reshape(-1),
                       source="bench", step=STEP)


def store_rows(names: list[str], n_series: int, days: int) -> None:
    n_bins = days * 86400 // STEP
    ks = keys(250, 5000, 70_000)[:n_series]
    v = values(len(ks), n_bins + 1, 3)
    print(f"\nend to end: {len(ks):,} series x {n_bins} bins of history in a DuckDB store, "
          "then one new bin")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            with Store(Path(tmp) / f"{name}.duckdb") as store:
                t = time.perf_counter()
                write_bins(store, ks, v[:, :n_bins], 0)
                t_write = time.perf_counter() - t
                det = get_detector(name)
                t = time.perf_counter()
                run_detection(store, detector=det)
                t_first = time.perf_counter() - t
                t = time.perf_counter()
                write_bins(store, ks, v[:, n_bins:], n_bins)
                t_write_bin = time.perf_counter() - t
                t = time.perf_counter()
                rep = run_detection(store, detector=det)
                t_bin = time.perf_counter() - t
                print(f"{name:20s} write {t_write:6.1f}s  first run {t_first:7.1f}s  "
                      f"write bin {t_write_bin:5.2f}s  new bin {t_bin:6.2f}s  "
                      f"(entities touched {rep.entities_touched}, events {rep.events_written})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--countries", type=int, default=250)
    ap.add_argument("--regions", type=int, default=5000)
    ap.add_argument("--ases", type=int, default=70_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--detector", action="append", default=None,
                    help="detectors to run (default: all of the registry)")
    ap.add_argument("--store-series", type=int, default=2000)
    ap.add_argument("--store-days", type=int, default=2)
    ap.add_argument("--skip-store", action="store_true")
    ap.add_argument("--skip-kernel", action="store_true")
    args = ap.parse_args()
    names = args.detector or detector_names()
    if REFERENCE not in names:
        names = [REFERENCE, *names]
    if not args.skip_kernel:
        kernel_rows(names, keys(args.countries, args.regions, args.ases), args.days,
                    args.repeat)
    if not args.skip_store:
        store_rows(names, args.store_series, args.store_days)


if __name__ == "__main__":
    main()
