"""Single process beside ``--engine dask`` (1 and 2 local workers), end to end through the CLI.

Run: ``.venv/bin/python benchmarks/bench_dask.py [--measurements 20000] [--hours 48]
[--entities 60] [--days 9] [--repeat 1]``.

Every row is a fresh ``netvigil`` process, as a user runs it, into a fresh store (copy):
cluster start, task shipping, the driver's fold/merge and the store write are all inside the
figure. Rows (rate, wall time, and the ratio to the named peer, ``single``):

* ``ooni import`` — ``netvigil ooni import --dir`` on the replicated real OONI fixtures of
  ``benchmarks/bench_ooni_import.py`` (bucket layout), measurements/s; dask rows with the
  default ``--chunk-files 64``;
* ``detect`` — ``netvigil detect`` (ioda.median, first run: every series from scratch) on a
  store of ``--entities`` entities (countries with regions and ASes) x ``--days`` days of a
  5-minute ``bgp`` series with outages, points/s; dask rows shard by country.

The speed-up of 2 workers over 1 (``dask2 / dask1``) is the scaling figure; ``dask2 /
single`` is what a user gains on this machine. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ooni_import import generate  # noqa: E402  (the same replicated OONI data)

NETVIGIL = str(Path(sys.executable).with_name("netvigil"))
T0 = 1_641_081_600  # 2022-01-02 00:00 UTC
STEP = 300
ENGINES = (("single", []), ("dask1", ["--engine", "dask", "--scheduler", "local:1"]),
           ("dask2", ["--engine", "dask", "--scheduler", "local:2"]))


def _run(args: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run([NETVIGIL, *args], capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"netvigil {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return dt, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def _detect_store(path: Path, n_entities: int, days: int) -> int:
    """Countries, each with 2 regions-like children (ASes with the country as parent):
    a daily cycle with noise and one 6-hour outage per 3rd entity."""
    from netvigil.model import Entity, make_ref
    from netvigil.store.duck import Store

    rng = np.random.default_rng(7)
    ccs = ["KZ", "UZ", "EG", "IR", "IQ", "SY", "ET", "MM", "PK", "IN", "TR", "RU", "BY", "CU",
           "VE", "SD", "LY", "DZ", "TM", "TJ"]
    day = 86_400 // STEP
    n = days * day
    k = np.arange(n)
    total = 0
    with Store(path) as store:
        ents = []
        for i in range(n_entities):
            cc = ccs[i % len(ccs)]
            if i < len(ccs):
                etype, code = "country", cc
            else:
                etype, code = "asn", str(64_000 + i)
                ents.append(Entity(make_ref("asn", code), f"AS{code}", make_ref("country", cc)))
            level = 200.0 + 50 * (i % 9)
            v = level * (1 + 0.1 * np.sin(2 * np.pi * k / day)) + rng.normal(0, level * .01, n)
            if i % 3 == 0:
                lo = int((7.2 + 0.05 * (i % 10)) * day)
                v[lo:lo + 72] = level * 0.05
            store.write_points(np.full(n, etype, object), np.full(n, code, object),
                               np.full(n, "bgp", object),
                               T0 + STEP * k.astype(np.int64), np.round(v), source="bench",
                               step=STEP)
            total += n
        store.upsert_entities(ents)
    return total


def _rows(name: str, unit: str, amount: int, times: dict[str, float]) -> None:
    single = times["single"]
    for label, dt in times.items():
        print(f"{name:12s} {label:7s} {amount / dt:12,.0f} {unit}/s  {dt:7.2f} s"
              f"  x{single / dt:5.2f} vs single")
    print(f"{name:12s} scaling dask2 / dask1 = {times['dask1'] / times['dask2']:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--measurements", type=int, default=20_000)
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--entities", type=int, default=60)
    ap.add_argument("--days", type=int, default=9)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    # a parallel figure means nothing on a busy machine: say how busy it was
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        files, size = generate(tmp / "bucket", a.measurements, a.hours)
        print(f"ooni input: {a.measurements} measurements in {len(files)} files, "
              f"{size / 2**20:.1f} MiB gz")
        best: dict[str, float] = {}
        for r in range(a.repeat):
            for label, extra in ENGINES:
                dt, _ = _run(["ooni", "import", "--dir", str(tmp / "bucket"), "--store",
                              str(tmp / f"o-{label}-{r}.duckdb"), *extra])
                best[label] = min(best.get(label, dt), dt)
        _rows("ooni import", "measurements", a.measurements, best)

        pts = _detect_store(tmp / "d.duckdb", a.entities, a.days)
        print(f"detect input: {a.entities} series x {a.days} days = {pts:,} points")
        best = {}
        for r in range(a.repeat):
            for label, extra in ENGINES:
                store = tmp / f"d-{label}-{r}.duckdb"
                shutil.copy(tmp / "d.duckdb", store)
                dt, _ = _run(["detect", "--store", str(store), *extra])
                best[label] = min(best.get(label, dt), dt)
        _rows("detect", "points", pts, best)
    return 0


if __name__ == "__main__":
    sys.exit(main())
