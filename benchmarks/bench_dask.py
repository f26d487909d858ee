"""Single process beside ``--engine dask`` (1 and 2 local workers), end to end through the CLI.

Run: ``.venv/bin/python benchmarks/bench_dask.py [--measurements 20000] [--hours 48]
[--entities 60] [--days 9] [--repeat 1]``.

Every row is a fresh ``netvigil`` process, as a user runs it, into a fresh store (copy):
cluster start, task shipping, the driver's fold/merge and the store write are all inside the
figure. Rows (rate, wall time, and the ratio to the named peer, ``single``):

* ``ooni import`` — ``netvigil ooni import --dir`` on the replicated real OONI fixtures of
  ``benchmarks/bench_ooni_import.py`` (bucket layout), measurements/s; dask rows with the
  default ``--chunk-files 64``;
* ``bgp ingest`` — ``netvigil bgp ingest --dir`` on a synthetic day (``--bgp-hours``) of real
  MRT written by ``netvigil.testing.mrt_encode``: ``rrc00`` with a RIB every 8 h and
  ``route-views2`` every 2 h (their real cadences; ``--bgp-prefixes`` prefixes x 10 peers
  each) and a 5-minute update file per collector (``--bgp-updates`` random announcements and
  withdrawals each), elements/s of the single run; every dask row also checks that its
  stored points equal the single run's (``identical``);
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


def _bgp_day(root: Path, hours: int, n_prefixes: int, per_file: int) -> int:
    """The synthetic archive (module docstring); returns the update elements written."""
    import gzip
    import random

    from netvigil.testing.mrt_encode import bgp4mp_update, synthetic_rib

    rng = random.Random(11)
    n = 0
    for coll, every, seed in (("rrc00", 8, 1), ("route-views2", 2, 2)):
        d = root / coll
        d.mkdir(parents=True)
        for h in range(0, hours, every):
            synthetic_rib(d / f"bview.20220105.{h:02d}00.gz", n_prefixes=n_prefixes,
                          n_peers=10, ts=T0 + 3 * 86_400 + h * 3600, seed=seed)
        for f in range(hours * 12):
            t = T0 + 3 * 86_400 + 300 * f
            parts = []
            for k in range(per_file):
                p = rng.randrange(10)
                pfx = f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.0/24"
                ip, asn = f"10.0.{p}.1", 64_500 + p
                parts.append(bgp4mp_update(t + k * 300 // per_file, ip, asn, withdraw=[pfx])
                             if rng.random() < 0.4 else bgp4mp_update(
                                 t + k * 300 // per_file, ip, asn, announce=[pfx],
                                 as_path=[asn, 174, rng.randrange(1000, 60_000)]))
            hh, mm = divmod(5 * f, 60)
            (d / f"updates.20220105.{hh:02d}{mm:02d}.gz").write_bytes(
                gzip.compress(b"".join(parts), 1))
            n += per_file
    return n


def _points(store: Path) -> list[tuple[object, ...]]:
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute("SELECT entity_type, entity_code, signal, time, value FROM points"
                           " ORDER BY ALL").fetchall()
    finally:
        con.close()


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
    ap.add_argument("--bgp-hours", type=int, default=24)
    ap.add_argument("--bgp-prefixes", type=int, default=50_000)
    ap.add_argument("--bgp-updates", type=int, default=300)
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

        elems = _bgp_day(tmp / "mrt", a.bgp_hours, a.bgp_prefixes, a.bgp_updates)
        print(f"bgp input: {a.bgp_hours} h, 2 collectors, {elems:,} update elements, "
              f"RIBs of {a.bgp_prefixes:,} prefixes x 10 peers")
        best = {}
        same = {}
        for r in range(a.repeat):
            for label, extra in ENGINES:
                store = tmp / f"b-{label}-{r}.duckdb"
                dt, _ = _run(["bgp", "ingest", "--dir", str(tmp / "mrt"), "--store",
                              str(store), *extra])
                best[label] = min(best.get(label, dt), dt)
                if extra:
                    same[label] = _points(store) == _points(tmp / f"b-single-{r}.duckdb")
        _rows("bgp ingest", "elements", elems, best)
        print(f"bgp ingest   identical points to single: {same}")

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
