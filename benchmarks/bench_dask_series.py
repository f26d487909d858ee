"""``netvigil series import`` single process beside ``--engine dask`` (1 and 2 local workers).

Issue 11: the series stage's distributed path (:mod:`netvigil.distributed.series`). Each row
is a fresh ``netvigil`` process, as a user runs it, into a fresh store, on the same files:
cluster start, task shipping, the workers' validation into Parquet parts and the driver's
write of every part in file order (one transaction) are all inside the figure. It prints
rows/s, wall and CPU time per row (CPU: the command and the processes it waited for,
Dask's nannies and workers included), the ratio to the named peer (``single``: the same command
without ``--engine``) and ``dask2 / dask1``, the load average at each start, and whether
the store equals the single run's (points and series, value for value)::

    .venv/bin/python benchmarks/bench_dask_series.py            # 8 CSV files x 250,000 rows
    .venv/bin/python benchmarks/bench_dask_series.py --files 4 --rows 500000 --ioda 2

(``--files 8 --rows 250000 --ioda 1`` ran in 3 min 36 s at load 11-13 on this 2-core VM;
figures in docs/distributed.md, "Series import".)

Inputs (written here, nothing downloaded): ``--files`` CSV files in the long format, each
``--rows`` rows of 5-minute points of 100 ASes under KZ (``bgp``, counts with a few
outages) with a sprinkle of bad lines (non-numeric values, 1 in 5,000), imported with
``--on-error skip``; ``--ioda`` IODA ``signals/raw`` JSON files of 20 series each added to
the list. What does not divide: the driver's store write of every point (serial: one DuckDB
writer), the cluster start (1-3 s) and the parts' Parquet round trip.

Then the split (Amdahl's, made visible) on clusters started before the clock
(:func:`netvigil.distributed.engine.dask_client`, ``local:1`` then ``local:2``), through the
library calls the command makes: ``validate`` = :func:`netvigil.distributed.series.validate_file`
of every file on the workers (gathered), ``load`` = the driver's part
(:func:`netvigil.distributed.series.import_files_dask` on the finished work folder: every
file resumed, only the store write of the parts runs), beside ``single`` (the
single-process :func:`netvigil.series.importers.import_file` loop, in this process).

``--kill`` then imports once more on ``local:2`` and SIGKILLs a worker 0.3 s into one of its
validation tasks: it prints how many times the scheduler sent that task to a worker and
whether the store still equals the single run's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import numpy as np

NETVIGIL = str(Path(sys.executable).with_name("netvigil"))
T0 = 1_640_995_200  # 2022-01-01 00:00 UTC
STEP = 300


def _csv(path: Path, rows: int, seed: int) -> int:
    """``rows`` rows of 100 AS series of 5-minute counts; 1 in 5,000 values is bad."""
    rng = np.random.default_rng(seed)
    per = rows // 100
    times = T0 + seed * per * STEP + np.arange(per) * STEP
    with path.open("w", encoding="utf-8") as fh:
        fh.write("time,entity_type,entity_code,signal,value\n")
        for a in range(100):
            base = rng.integers(50, 5000)
            vals = rng.poisson(base, per).astype(str)
            down = rng.integers(0, per - 24)
            vals[down:down + 24] = "0"
            vals[rng.random(per) < 1 / 5000] = "n/a"
            asn = 64_512 + a
            fh.writelines(f"{t},asn,{asn},bgp,{v}\n" for t, v in zip(times, vals, strict=True))
    return per * 100


def _ioda(path: Path, seed: int, points: int) -> int:
    rng = np.random.default_rng(1000 + seed)
    series = [{"entityType": "asn", "entityCode": str(65_000 + seed * 20 + i),
               "entityName": f"AS {i}", "datasource": "bgp", "from": T0,
               "until": T0 + points * STEP, "step": STEP, "nativeStep": STEP,
               "values": rng.poisson(800, points).tolist()} for i in range(20)]
    path.write_text(json.dumps({"type": "signals", "data": [series]}), encoding="utf-8")
    return 20 * points


def _run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system of the command and every process it
    waited for: Dask's nannies and workers) of one ``netvigil`` run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([NETVIGIL, *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"netvigil {' '.join(args)} failed: {proc.stderr.strip()[-400:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _tables(store: Path) -> list[list[tuple[object, ...]]]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return [con.execute(q).fetchall() for q in (
            "SELECT * FROM points ORDER BY ALL", "SELECT * FROM series ORDER BY ALL")]
    finally:
        con.close()


def _split(work: Path, files: list[Path], rows: int) -> None:
    """The worker phase and the driver's load, timed apart (module docstring)."""
    from netvigil.distributed.engine import dask_client
    from netvigil.distributed.series import import_files_dask, unit_name, validate_file
    from netvigil.pipeline import Pipeline
    from netvigil.series.importers import import_file
    from netvigil.store.duck import Store

    t = time.perf_counter()
    with Store(work / "split-single.duckdb") as store:
        sink = Pipeline(store)
        with store.transaction():
            for f in files:
                import_file(store, f, None, "skip", sink=sink)
    single = time.perf_counter() - t
    print(f"\nsplit (clusters started before the clock; single = import_file loop "
          f"{single:.2f} s, {rows / single:,.0f} rows/s)")
    print(f"{'workers':<9}{'validate s':>11}{'rows/s':>11}{'load s':>8}{'rows/s':>11}"
          f"{'load avg':>9}")
    phase: dict[int, float] = {}
    for n in (1, 2):
        parts = work / f"parts{n}"
        with dask_client(f"local:{n}") as client:
            client.run(lambda: __import__("netvigil.distributed.series"))  # warm imports
            avg = os.getloadavg()[0]
            t = time.perf_counter()
            client.gather([client.submit(validate_file, str(f), None, "skip", str(parts),
                                         unit_name(i, f, None, "skip"), pure=False,
                                         priority=f.stat().st_size)
                           for i, f in enumerate(files)])
            phase[n] = time.perf_counter() - t
            t = time.perf_counter()
            with Store(work / f"load{n}.duckdb") as store:
                done = import_files_dask(client, store, files, None, "skip", parts,
                                         sink=Pipeline(store))
            load = time.perf_counter() - t
            assert done.resumed == len(files)
        print(f"{n:<9}{phase[n]:>11.2f}{rows / phase[n]:>11,.0f}{load:>8.2f}"
              f"{rows / load:>11,.0f}{avg:>9.1f}")
    print(f"validate 2 / 1 workers: {phase[1] / phase[2]:.2f}x")


def _kill(work: Path, files: list[Path], reference: Path) -> None:
    """Fault check (issue 11, item 5): SIGKILL a worker 0.3 s into a validation task of an
    import on ``local:2``; prints whether the scheduler ran the task again and whether the
    store equals ``reference`` (the single run's)."""
    from netvigil.distributed.engine import dask_client
    from netvigil.distributed.series import import_files_dask
    from netvigil.pipeline import Pipeline
    from netvigil.store.duck import Store

    with dask_client("local:2") as client:
        pids = client.run(os.getpid)
        done: dict[str, object] = {}

        def job() -> None:
            with Store(work / "killed.duckdb") as store:
                done["run"] = import_files_dask(client, store, files, None, "skip",
                                                work / "killed-work", sink=Pipeline(store))

        thread = threading.Thread(target=job)
        thread.start()
        killed: tuple[str, list[str]] | None = None
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline:
            for addr, keys in client.processing().items():
                if any(str(k).startswith("series-") for k in keys) and addr in pids:
                    time.sleep(0.3)
                    os.kill(pids[addr], signal.SIGKILL)
                    killed = (addr, [str(k) for k in keys])
                    break
            time.sleep(0.005)
        thread.join(600)
        runs = 0 if killed is None else sum(
            1 for k in killed[1] for e in client.story(k)
            if e[0] == "scheduler" and e[3] == "processing")
    same = "run" in done and _tables(work / "killed.duckdb") == _tables(reference)
    print(f"\nkilled worker: {killed[0] if killed else 'none found'}; its task sent to a "
          f"worker {runs} time(s); store identical to single: {same}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--rows", type=int, default=250_000)
    ap.add_argument("--ioda", type=int, default=0, help="IODA JSON files added (20 series)")
    ap.add_argument("--ioda-points", type=int, default=20_000)
    ap.add_argument("--kill", action="store_true",
                    help="also kill a worker mid-task and compare the store (faults)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-dask-series-"))
    try:
        files, rows = [], 0
        for i in range(a.files):
            files.append(work / f"in-{i:03d}.csv")
            rows += _csv(files[-1], a.rows, i)
        for i in range(a.ioda):
            files.append(work / f"in-{i:03d}.json")
            rows += _ioda(files[-1], i, a.ioda_points)
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"inputs: {len(files)} files, {rows:,} rows, {mb:.0f} MB; "
              f"{os.cpu_count()} cores")
        runs = {"single": [], "dask1": ["--engine", "dask", "--scheduler", "local:1"],
                "dask2": ["--engine", "dask", "--scheduler", "local:2"]}
        wall: dict[str, float] = {}
        ref = None
        print(f"{'row':<8}{'wall s':>9}{'rows/s':>12}{'vs single':>11}{'cpu s':>8}{'load':>7}"
              "  identical")
        for name, extra in runs.items():
            store = work / f"{name}.duckdb"
            load = os.getloadavg()[0]
            wall[name], cpu = _run(["series", "import", *map(str, files), "--on-error",
                                     "skip", "--store", str(store), *extra])
            got = _tables(store)
            if ref is None:
                ref = got
            same = "reference" if name == "single" else str(got == ref)
            print(f"{name:<8}{wall[name]:>9.2f}{rows / wall[name]:>12,.0f}"
                  f"{wall['single'] / wall[name]:>10.2f}x{cpu:>8.2f}{load:>7.1f}  {same}")
        print(f"dask2 / dask1: {wall['dask1'] / wall['dask2']:.2f}x")
        _split(work, files, rows)
        if a.kill:
            _kill(work, files, work / "single.duckdb")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
