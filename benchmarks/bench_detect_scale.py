"""Benchmark (issue 8, deliverable 7): detection at world scale, each detector beside the
reference ``ioda.median``.

Run: ``.venv/bin/python benchmarks/bench_detect_scale.py [--countries 250] [--regions 5000]
[--ases 70000] [--days 7] [--store-series 75250] [--store-days 2] [--skip-store]
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
   store holding ``--store-series`` series x ``--store-days`` of history already detected
   (regions and ASes under their countries, as an import with a ``parent`` column stores
   them; ASes skewed across countries as registrations are), then one more bin written and
   detected (read new rows and states, advance, write alerts, states, events with their
   assessment and the national roll-ups of the touched countries). The history is written
   once (~3 min at full size: the store's own staged upsert) and copied per detector.

Wall clock on the shared 2-core machine, each figure printed with the load average (other
work on the machine inflates it); the first call of a detector compiles its numba kernel
(cached on disk), so kernel figures are the best of ``--repeat`` runs after one warm-up; the
end-to-end new bin is one run after the detector's first run over the history.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from netvigil.detect.protocol import Detector, PointChunk
from netvigil.detect.registry import REFERENCE, detector_names, get_detector
from netvigil.events.runner import run_detection
from netvigil.model import Entity, EntityRef, EntityType, make_ref
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


def hierarchy(ks: list[tuple[EntityRef, str]]) -> list[Entity]:
    """Every region and AS under a country, as an import with a ``parent`` column stores
    them: regions round-robin (20 per country at full size), ASes skewed as real
    registrations are (country of rank r gets a share ~ 1/r: the largest holds 16 % of
    them, 11,000 at full size, which is what a change in one of its ASes rolls up over)."""
    countries = [r for r, _ in ks if r.type is EntityType.COUNTRY]
    rng = np.random.default_rng(5)
    w = 1.0 / np.arange(1, len(countries) + 1)
    home = iter(rng.choice(len(countries), size=len(ks), p=w / w.sum()).tolist())
    out = []
    for r, _ in ks:
        if r.type is EntityType.REGION:
            out.append(Entity(r, r.code, make_ref("country", r.code.split("-")[0])))
        elif r.type is EntityType.ASN:
            out.append(Entity(r, f"AS{r.code}", countries[next(home)]))
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
                repeat: int) -> dict[str, tuple[float, float]]:
    """One pass and one new bin through each detector's ``update``: seconds by name."""
    out: dict[str, tuple[float, float]] = {}
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
        out[name] = (t_pass, t_bin)
        print(f"{name:20s} {t_pass:9.2f}s {t_pass / (ref_pass or t_pass):6.2f}x "
              f"{t_bin:8.3f}s {t_bin / (ref_bin or t_bin):6.2f}x "
              f"{len(upd.alerts):8,d} {mb:9.1f}  ({load()})")  # type: ignore[attr-defined]
    return out


def write_bins(store: Store, ks: list[tuple[EntityRef, str]], v: np.ndarray,
               start_bin: int, chunk: int = 24) -> None:
    """All series, bins ``start_bin...``, time-major as a feed arrives (``chunk`` bins per
    write, so ``points`` is in time order to within ``chunk`` bins and its zone maps work
    as in a live store), through :meth:`Store.write_staged_points`, the path the CSV
    importer takes: numeric columns registered with DuckDB and joined to a 75,250-row key
    table, so 43M points never become Python strings."""
    n, m = v.shape
    con = store.connection
    keys_np = {"k": np.arange(n, dtype=np.int64),
               "entity_type": np.array([k[0].type.value for k in ks], dtype=object),
               "entity_code": np.array([k[0].code for k in ks], dtype=object),
               "signal": np.array([k[1] for k in ks], dtype=object)}
    con.register("_bench_keys", keys_np)
    try:
        for lo in range(0, m, chunk):
            hi = min(m, lo + chunk)
            rows_np = {"k": np.tile(np.arange(n, dtype=np.int64), hi - lo),
                       "b": np.repeat(np.arange(start_bin + lo, start_bin + hi,
                                                dtype=np.int64), n),
                       "value": np.ascontiguousarray(v[:, lo:hi].T).reshape(-1)}
            con.register("_bench_rows", rows_np)
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _bench_points AS"
                " SELECT q.entity_type, q.entity_code, q.signal,"
                f" {T0} + r.b * {STEP} AS time, r.value, r.b * {n} + r.k AS idx"
                " FROM _bench_rows r JOIN _bench_keys q USING (k)")
            con.unregister("_bench_rows")
            store.write_staged_points("_bench_points", source="bench", step=STEP,
                                      unique_keys=True)
            con.execute("DROP TABLE _bench_points")
    finally:
        con.unregister("_bench_keys")
def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f}"


def store_rows(names: list[str], n_series: int, days: int) -> dict[str, float]:
    """End to end through ``run_detection`` on a DuckDB store: returns new-bin seconds by
    detector. The history is written once and the file copied per detector (each gets the
    same points; alerts, events and states are per store)."""
    n_bins = days * 86400 // STEP
    ks = keys(250, 5000, 70_000)[:n_series]
    v = values(len(ks), n_bins + 1, 3)
    print(f"\nend to end: {len(ks):,} series x {n_bins} bins of history in a DuckDB store "
          "(regions and ASes under their countries), then one new bin")
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "history.duckdb"
        t = time.perf_counter()
        with Store(base) as store:
            store.upsert_entities(hierarchy(ks))
            write_bins(store, ks, v[:, :n_bins], 0)
            store.connection.execute("CHECKPOINT")
        print(f"history written in {time.perf_counter() - t:.1f} s ({load()})")
        for name in names:
            path = Path(tmp) / f"{name}.duckdb"
            shutil.copyfile(base, path)
            with Store(path) as store:
                det = get_detector(name)
                t = time.perf_counter()
                run_detection(store, detector=det)
                t_first = time.perf_counter() - t
                t = time.perf_counter()
                write_bins(store, ks, v[:, n_bins:], n_bins)
                t_write_bin = time.perf_counter() - t
                t = time.perf_counter()
                rep = run_detection(store, detector=det)
                t_bin = out[name] = time.perf_counter() - t
                ratio = f"{t_bin / out[REFERENCE]:6.2f}x" if REFERENCE in out else "     -"
                print(f"{name:20s} first run {t_first:7.1f}s  write bin {t_write_bin:5.2f}s  "
                      f"new bin {t_bin:6.2f}s {ratio}  ({load()}; entities "
                      f"touched {rep.entities_touched:,}, events {rep.events_written:,})")
            path.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--countries", type=int, default=250)
    ap.add_argument("--regions", type=int, default=5000)
    ap.add_argument("--ases", type=int, default=70_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--detector", action="append", default=None,
                    help="detectors to run (default: all of the registry)")
    ap.add_argument("--store-series", type=int, default=75_250)
    ap.add_argument("--store-detector", action="append", default=None,
                    help="detectors of the end-to-end phase (default: those of --detector); "
                         "the reference's first run over the history takes tens of minutes "
                         "at full size")
    ap.add_argument("--store-days", type=int, default=2)
    ap.add_argument("--skip-store", action="store_true")
    ap.add_argument("--skip-kernel", action="store_true")
    args = ap.parse_args()
    names = args.detector or detector_names()
    if REFERENCE not in names:
        names = [REFERENCE, *names]
    kern = {} if args.skip_kernel else kernel_rows(
        names, keys(args.countries, args.regions, args.ases), args.days, args.repeat)
    e2e = {} if args.skip_store else store_rows(args.store_detector or names,
                                                 args.store_series, args.store_days)
    print(f"\nsummary (goals: one pass < 30 s, one new bin < 5 s; {load()})")
    print(f"{'detector':20s} {'one pass':>17s} {'new bin (update)':>17s} "
          f"{'new bin (end to end)':>21s}")

    def cell(table: dict[str, float], name: str) -> str:
        if name not in table:
            return "-"
        ratio = f"{table[name] / table[REFERENCE]:5.2f}x" if REFERENCE in table else "   - "
        return f"{table[name]:7.2f}s {ratio}"

    passes = {k: v[0] for k, v in kern.items()}
    bins = {k: v[1] for k, v in kern.items()}
    for name in names:
        print(f"{name:20s} {cell(passes, name):>17s} {cell(bins, name):>17s} "
              f"{cell(e2e, name):>21s}")


if __name__ == "__main__":
    main()
