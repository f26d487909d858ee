"""Single process beside ``--engine dask`` (1 and 2 local workers), end to end through the CLI.

The scaling figure (issue 11, deliverable 6; docs/scaling.md section 1, "Current figures"),
one command (about 3 min on this 2-core VM, quiet)::

    .venv/bin/python benchmarks/bench_dask.py --phase workers --repeat 3

(defaults: ``--measurements 40000``; ``--bgp-hours 16 --bgp-prefixes 20000 --bgp-updates
200``; ``--entities 480 --days 30`` = 4,147,200 detection points; ``--rows ooni,bgp,detect``
picks rows, in both phases). ``--repeat K`` runs 1 then 2 workers K times, interleaved, each
on fresh clusters, and reports the run of median wall time per worker count with every
repeat's own ratio; ``--detect-shards N`` gives both worker counts the same N detection
shards. Detection at a size where the phase is seconds, not one: ``--rows detect --entities
4800 --detect-cache DIR`` (41.5 M points). ``--phase e2e`` runs the CLI rows below,
``--phase all`` (default) both.

Every e2e row is a fresh ``netvigil`` process, as a user runs it, into a fresh store (copy):
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
* ``detect`` — ``netvigil detect`` (the registry's default detector, first run: every
  series from scratch) on a store of ``--entities`` series (20 countries, the rest ASes
  under them) x ``--days`` days of a 5-minute ``bgp`` series with outages, points/s; dask
  rows shard by country. Then ``detect +1 bin``: one more bin for every series (its last
  value again, written before the clock) and ``netvigil detect`` again on each engine's
  store, series/s: an observatory's round, every series resuming from its detector state.

``--standing`` adds a row ``standing``: the dask commands against a 2-worker cluster the
benchmark starts and warms before the clock (``--scheduler ADDRESS``), the shape of an
observatory that keeps its cluster running, where ``local:N`` rows pay a cluster start, the
workers' first imports and the stop in every command.

The speed-up of 2 workers over 1 (``dask2 / dask1``) end to end includes everything that
does not divide: the cluster start (about 1-3 s), the driver's serial part (BGP: the geo
aggregation of every bin's visible /24s; OONI: the merge of chunk sums) and the store
write. So ``--phase workers`` times **only the distributed phase**, on one cluster per
worker count made as the commands make it (:func:`netvigil.distributed.engine.dask_client`,
``local:1`` then ``local:2``) and started before the clock, through the same library calls
the commands make (Amdahl's split made visible):

* ``ooni judge`` — :func:`read_measurements_dask` into a fresh work folder, minus the same
  call again on the finished folder (every chunk resumed: only the driver's merge runs);
* ``bgp epochs`` — :func:`ingest_dask` into a sink that keeps nothing, fresh minus resumed;
* ``detect shards`` — :func:`run_detection_dask` on a copy of the store made before the
  clock (planning, shards and the driver's merge), ``--shards-per-worker`` shards per worker
  (default 1, the CLI's); it also prints the points each shard reads, the costliest
  country group (shards never split one: the speed-up bound it sets) and the driver's
  serial part (plan + merge, wall). ``--detect-cache DIR`` keeps the generated store for
  the next run (``--entities 4800``, 41.5 M points, takes minutes to write).

``--plain`` (ooni and detect rows) also runs, after each Dask run, the same work as plain
processes without Dask (OONI: the same chunks through the task's function; detection: the
same shards; one process, then two at once; ``benchmarks/pairs.py``) and, once before
the repeats, the machine's reference pairs (compute, memory stream, fresh pages: two
processes at once against one). It prints the plain processes' ratio beside Dask's: the
ceiling this machine gives two processes on this work, in the same minutes, which says
whether a figure under the goal is Dask's or the machine's.

Both clusters are warmed the same way before the clock (``_warm``: the task modules, one
OONI file judged, one short series detected, so numba kernels are loaded: a running cluster
has paid that once; for ``bgp``, one epoch of the archive on every worker: ``_warm_bgp``).
Per phase it prints:

* **wall**: rate per worker count and ``workers2 / workers1``, with the load average;
* **own-core speed-up**: one worker's CPU seconds over the busiest of the two workers'
  (``time.process_time`` on each worker, before and after): the speed-up if each worker had
  a core of its own, imbalance and per-task overhead included, other sessions' load
  excluded. A projection from measured CPU time, not a wall-clock figure;
* **total CPU 2 workers / 1 worker**: the two workers' CPU seconds summed over one worker's
  (1.00 = the work divides without overhead), split by thread: ``tasks`` (the Dask task
  threads: our code), ``loop`` (the worker's event loop: comms, result (de)serialisation,
  heartbeats and Dask's statistical profiler, which ticks every 10 ms however long the wall
  is, so it grows with a loaded machine's wall time) and ``other`` (native threads: DuckDB's).

On a shared machine a second process also gains CPU share from the other sessions, and CPU
seconds themselves inflate under contention, so a loaded figure is not a quiet one (both are
printed with the load, neither adjusted). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pairs  # noqa: E402  (plain processes: the ceiling a 2-worker figure is read against)
from bench_ooni_import import generate  # noqa: E402  (the same replicated OONI data)

if TYPE_CHECKING:
    from distributed import Client

    from netvigil.distributed.detect import ShardedRun

NETVIGIL = str(Path(sys.executable).with_name("netvigil"))
T0 = 1_641_081_600  # 2022-01-02 00:00 UTC
STEP = 300
Engines = Sequence[tuple[str, list[str]]]
ENGINES: Engines = (("single", []), ("dask1", ["--engine", "dask", "--scheduler", "local:1"]),
           ("dask2", ["--engine", "dask", "--scheduler", "local:2"]))


def _run(args: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run([NETVIGIL, *args], capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"netvigil {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return dt, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def _detect_store(path: Path, n_entities: int, days: int) -> int:
    """Countries, each with ASes (the country as parent): a daily cycle with noise and one
    6-hour outage per 3rd entity. One ``write_points`` call per batch of about 8 M points
    (per-entity calls took a minute at 2 M points; one call for 161 M points, 70,000 series
    x 8 days, ran the machine's 24 GB out)."""
    from netvigil.model import Entity, make_ref
    from netvigil.store.duck import Store

    rng = np.random.default_rng(7)
    ccs = ["KZ", "UZ", "EG", "IR", "IQ", "SY", "ET", "MM", "PK", "IN", "TR", "RU", "BY", "CU",
           "VE", "SD", "LY", "DZ", "TM", "TJ"]
    day = 86_400 // STEP
    n = days * day
    k = np.arange(n)
    times = T0 + STEP * k.astype(np.int64)
    per_batch = max(1, 8_000_000 // n)
    with Store(path) as store:
        for lo in range(0, n_entities, per_batch):
            types, codes, values, ents = [], [], [], []
            for i in range(lo, min(n_entities, lo + per_batch)):
                cc = ccs[i % len(ccs)]
                if i < len(ccs):
                    etype, code = "country", cc
                else:
                    etype, code = "asn", str(64_000 + i)
                    ents.append(Entity(make_ref("asn", code), f"AS{code}",
                                       make_ref("country", cc)))
                level = 200.0 + 50 * (i % 9)
                v = level * (1 + 0.1 * np.sin(2 * np.pi * k / day)) + rng.normal(0, level * .01,
                                                                                  n)
                if i % 3 == 0:
                    start = int((7.2 + 0.05 * (i % 10)) * day)
                    v[start:start + 72] = level * 0.05
                types.append(np.full(n, etype, object))
                codes.append(np.full(n, code, object))
                values.append(np.round(v))
            m = len(values)
            store.write_points(np.concatenate(types), np.concatenate(codes),
                               np.full(n * m, "bgp", object), np.tile(times, m),
                               np.concatenate(values), source="bench", step=STEP)
            store.upsert_entities(ents)
    return n * n_entities


def _stamp(t: int) -> str:
    """``YYYYMMDD.HHMM`` of an archive file name (RIS and RouteViews naming)."""
    return time.strftime("%Y%m%d.%H%M", time.gmtime(t))


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
            ts = T0 + 3 * 86_400 + h * 3600
            synthetic_rib(d / f"bview.{_stamp(ts)}.gz", n_prefixes=n_prefixes, n_peers=10,
                          ts=ts, seed=seed)
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
            (d / f"updates.{_stamp(t)}.gz").write_bytes(
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
        print(f"{name:12s} {label:8s} {amount / dt:12,.0f} {unit}/s  {dt:7.2f} s"
              f"  x{single / dt:5.2f} vs single")
    print(f"{name:12s} scaling dask2 / dask1 = {times['dask1'] / times['dask2']:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--measurements", type=int, default=40_000)
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--entities", type=int, default=480)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--bgp-hours", type=int, default=16)
    ap.add_argument("--bgp-prefixes", type=int, default=20_000)
    ap.add_argument("--bgp-updates", type=int, default=200)
    ap.add_argument("--phase", choices=("all", "e2e", "workers"), default="all",
                    help="e2e: CLI processes; workers: the distributed phase alone")
    ap.add_argument("--rows", default=",".join(ROWS),
                    help="which of ooni,bgp,detect to run (both phases)")
    ap.add_argument("--chunk-files", type=int, default=0,
                    help="ooni files per task in --phase workers (0: the CLI's default)")
    ap.add_argument("--shards-per-worker", type=int, default=1,
                    help="detect shards per worker in --phase workers (1: the CLI's default)")
    ap.add_argument("--detect-shards", type=int, default=0,
                    help="--phase workers: this many detect shards for 1 and 2 workers alike"
                         " (the same partitions: 0 = --shards-per-worker x workers)")
    ap.add_argument("--standing", action="store_true",
                    help="--phase e2e: also run the dask commands against a 2-worker cluster"
                         " started and warmed before the clock (--scheduler ADDRESS), as an"
                         " observatory keeps one running: row 'standing'")
    ap.add_argument("--plain", action="store_true",
                    help="--phase workers, ooni and detect rows: also the same work as"
                         " plain processes (no Dask, one per worker) and the machine's"
                         " reference pairs (benchmarks/pairs.py)")
    ap.add_argument("--detect-cache", type=Path, default=None,
                    help="keep the generated detect store in this folder and reuse it"
                         " (named by --entities and --days; 41.5 M points take minutes)")
    a = ap.parse_args()
    # a parallel figure means nothing on a busy machine: say how busy it was
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start")
    if a.phase in ("all", "workers"):
        workers_phase(a)
    if a.phase == "workers":
        return 0
    rows = [r for r in a.rows.split(",") if r]
    with tempfile.TemporaryDirectory() as tmp_, contextlib.ExitStack() as stack:
        tmp = Path(tmp_)
        engines = list(ENGINES)
        if a.standing:
            from netvigil.detect.registry import DEFAULT
            from netvigil.distributed.engine import dask_client

            client = stack.enter_context(dask_client("local:2"))
            engines.append(("standing", ["--engine", "dask", "--scheduler",
                                         client.scheduler.address]))
            # warmed before any clock as the worker phase's clusters are (_warm)
            files, _ = generate(tmp / "warm", 200, 1)
            client.run(_warm, str(files[0]), DEFAULT)
        if "ooni" in rows:
            _e2e_ooni(a, tmp, engines)
        if "bgp" in rows:
            _e2e_bgp(a, tmp, engines)
        if "detect" in rows:
            _e2e_detect(a, tmp, engines)
    return 0


def _warm_cli(args: list[str]) -> None:
    """Run a command once, untimed, before its rows: what the first run after an install
    pays once (numba's on-disk kernel cache; the GeoLite2 region table, cached per resolved
    file path, so per clone: ``geo/mmdb.py``) is paid here, not inside the first timed row,
    which is the single process every ratio divides by. Measured 2026-12-03 on the
    benchmark's ``bgp ingest``: 25.2 s with both caches empty, 13.5-16.8 s with both full
    (docs/scaling.md)."""
    _run(args)


def _e2e_ooni(a: argparse.Namespace, tmp: Path, engines: Engines) -> None:
    files, size = generate(tmp / "bucket", a.measurements, a.hours)
    print(f"ooni input: {a.measurements} measurements in {len(files)} files, "
          f"{size / 2**20:.1f} MiB gz")
    _warm_cli(["ooni", "import", "--dir", str(tmp / "bucket"), "--store",
               str(tmp / "o-warm.duckdb")])
    best: dict[str, float] = {}
    for r in range(a.repeat):
        for label, extra in engines:
            dt, _ = _run(["ooni", "import", "--dir", str(tmp / "bucket"), "--store",
                          str(tmp / f"o-{label}-{r}.duckdb"), *extra])
            best[label] = min(best.get(label, dt), dt)
    _rows("ooni import", "measurements", a.measurements, best)


def _e2e_bgp(a: argparse.Namespace, tmp: Path, engines: Engines) -> None:
    elems = _bgp_day(tmp / "mrt", a.bgp_hours, a.bgp_prefixes, a.bgp_updates)
    print(f"bgp input: {a.bgp_hours} h, 2 collectors, {elems:,} update elements, "
          f"RIBs of {a.bgp_prefixes:,} prefixes x 10 peers")
    _warm_cli(["bgp", "ingest", "--dir", str(tmp / "mrt"), "--store",
               str(tmp / "b-warm.duckdb")])
    best: dict[str, float] = {}
    same: dict[str, bool] = {}
    for r in range(a.repeat):
        for label, extra in engines:
            store = tmp / f"b-{label}-{r}.duckdb"
            dt, _ = _run(["bgp", "ingest", "--dir", str(tmp / "mrt"), "--store",
                          str(store), *extra])
            best[label] = min(best.get(label, dt), dt)
            if extra:
                same[label] = _points(store) == _points(tmp / f"b-single-{r}.duckdb")
    _rows("bgp ingest", "elements", elems, best)
    print(f"bgp ingest   identical points to single: {same}")


def _e2e_detect(a: argparse.Namespace, tmp: Path, engines: Engines) -> None:
    pts = _detect_input(tmp / "d.duckdb", a)
    print(f"detect input: {a.entities} series x {a.days} days = {pts:,} points")
    shutil.copy(tmp / "d.duckdb", tmp / "d-warm.duckdb")
    _warm_cli(["detect", "--store", str(tmp / "d-warm.duckdb")])
    best: dict[str, float] = {}
    after: dict[str, float] = {}
    for r in range(a.repeat):
        for label, extra in engines:
            store = tmp / f"d-{label}-{r}.duckdb"
            shutil.copy(tmp / "d.duckdb", store)
            dt, _ = _run(["detect", "--store", str(store), *extra])
            best[label] = min(best.get(label, dt), dt)
            series = _next_bin(store)  # before the clock
            dt, _ = _run(["detect", "--store", str(store), *extra])
            after[label] = min(after.get(label, dt), dt)
    _rows("detect", "points", pts, best)
    _rows("detect +1 bin", "series", series, after)


def _next_bin(store: Path) -> int:
    """One more 5-minute bin for every series of a detected store, each the value of its
    last bin: an observatory's round after the first run (every series resumes from its
    detector state). Returns the series count."""
    from netvigil.store.duck import Store

    with Store(store) as s:
        cols = s.connection.execute(
            "SELECT entity_type, entity_code, signal, time + ? AS time, value FROM points"
            " WHERE time = (SELECT max(time) FROM points)", [STEP]).fetchnumpy()
        s.write_points(cols["entity_type"].astype(object), cols["entity_code"].astype(object),
                       cols["signal"].astype(object), cols["time"].astype(np.int64),
                       cols["value"].astype(np.float64), source="bench", step=STEP)
    return len(cols["time"])


class _Drop:
    """A FactSink that keeps nothing: the BGP worker phase without the driver's pipeline."""

    def emit(self, fact: object) -> None:
        return None

    def flush(self, cursors: object = None) -> None:
        return None

    def cursor(self, key: str) -> str | None:
        return None


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def _warm(sample: str, detector: str) -> None:
    """On a worker, before any clock: what a long-running worker has already paid (the task
    modules, DuckDB, the OONI verdict tables: one file ``sample`` judged; the detector's
    compiled kernels and the worker's shard store: one short series detected through
    :func:`detect_shard`), so that a per-process start-up cost is not counted once per
    worker as if it were work. Both worker counts are warmed the same way."""
    import duckdb

    import netvigil.distributed.bgp  # noqa: F401
    from netvigil.distributed.detect import detect_shard
    from netvigil.distributed.ooni import judge_file
    from netvigil.model import ErrorPolicy
    from netvigil.store.duck import Store

    duckdb.connect().close()
    judge_file(Path(sample), ErrorPolicy.SKIP)
    n = 8 * 86_400 // STEP
    k = np.arange(n)
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "warm.duckdb") as store:
            store.write_points(np.full(n, "country", object), np.full(n, "KZ", object),
                               np.full(n, "bgp", object), T0 + STEP * k.astype(np.int64),
                               np.round(500 + 50 * np.sin(2 * np.pi * k / 288)),
                               source="warm", step=STEP)
        detect_shard(str(Path(tmp) / "warm.duckdb"), str(Path(tmp) / "out.duckdb"),
                     [("country", "KZ")], detector, False)
    # the points read's compiled ordering kernel, which a short series does not load
    # (netvigil.store.grouping.MIN_ROWS)
    from netvigil.store.grouping import by_series

    by_series(np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1), 1, compiled=True)


def _warm_bgp(files: list[object], epoch: tuple[int | None, int | None], folder: str) -> None:
    """On a worker, before the BGP clock: one epoch of the benchmark's own archive (the
    first), as a backfill worker has run one before its next. A process's first epoch paid
    0.35-0.5 CPU s more than its later ones (45,000 page faults against 18,000-24,000: the
    heap and glibc's mmap threshold growing), a per-process cost that 2 workers would pay
    twice for 2 epochs and 1 worker once (docs/scaling.md, BGP)."""
    from netvigil.distributed.bgp import ingest_epoch
    from netvigil.sources.bgp.visibility import VisibilityConfig

    ingest_epoch(files, epoch, VisibilityConfig(), "skip",  # type: ignore[arg-type]
                 str(Path(folder) / f"warm-{os.getpid()}.npz"))


def _worker_cpu() -> tuple[float, float, float]:
    """On a worker: CPU seconds so far of (the process, its event-loop thread, its task
    threads). The event loop runs Dask's own work (comms, (de)serialising task results,
    heartbeats, the statistical profiler); the rest of the process beyond these two is
    native threads (DuckDB's, numba's) and threads that ended."""
    import threading

    loop = tasks = 0.0
    for t in threading.enumerate():
        if t.ident is None:
            continue
        try:
            c = time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        except OSError:  # ended since enumerate()
            continue
        if t is threading.main_thread():
            loop += c
        elif "Dask-Default-Threads" in t.name:
            tasks += c
    return time.process_time(), loop, tasks


def _cpu(client: Client) -> dict[str, tuple[float, float, float]]:
    return dict(client.run(_worker_cpu))  # type: ignore[no-untyped-call]


@dataclass
class Phase:
    """One distributed phase: wall seconds, the driver's part, and per worker the CPU
    seconds of (process, event loop, task threads) it used."""

    wall: float
    fold: float
    cpu: list[tuple[float, float, float]]

    def total(self, i: int = 0) -> float:
        """Sum over workers of CPU part ``i`` (0 process, 1 event loop, 2 tasks)."""
        return sum(c[i] for c in self.cpu)

    def busiest(self) -> float:
        return max(c[0] for c in self.cpu)


def _phase(client: Client, prepare: Callable[[Path], Path], run: Callable[[Path], object],
           work: Path, resumable: bool) -> Phase:
    """Time ``run`` on what ``prepare`` made (outside the clock); with ``resumable``, run it
    again on the finished work folder (every task resumed: only the driver's fold) and
    subtract that."""
    shutil.rmtree(work, ignore_errors=True)
    arg = prepare(work)
    c0 = _cpu(client)
    t = time.perf_counter()
    out = run(arg)
    wall = time.perf_counter() - t
    c1 = _cpu(client)
    if getattr(out, "bins", 0) and out.bins_without_full_feed == out.bins:  # type: ignore[attr-defined]
        raise SystemExit("bgp: no full-feed peer in any bin (raise --bgp-prefixes above the "
                         "era rule's 20,000 floor): the snapshot would measure nothing")
    fold = 0.0
    if resumable:
        t = time.perf_counter()
        run(arg)
        fold = time.perf_counter() - t
    cpu = [(c1[w][0] - c0[w][0], c1[w][1] - c0[w][1], c1[w][2] - c0[w][2]) for w in c0]
    return Phase(max(wall - fold, 1e-9), fold, sorted(cpu, reverse=True))


def _show(n: int, name: str, ph: Phase, load: str) -> None:
    parts = ", ".join(f"{p:.2f} (tasks {t:.2f}, loop {lp:.2f}, other {p - t - lp:.2f})"
                      for p, lp, t in ph.cpu)
    print(f"  {n} worker(s): {name:13s} wall {ph.wall:7.2f} s (driver part {ph.fold:.2f} s),"
          f" worker CPU s {parts}, {load}")


def _median(runs: list[tuple[Phase, str]]) -> tuple[Phase, str]:
    """The run of median wall time (the lower middle one of an even count)."""
    return sorted(runs, key=lambda r: r[0].wall)[(len(runs) - 1) // 2]


def _summary(name: str, amount: int, unit: str,
             by_n: dict[int, list[tuple[Phase, str]]]) -> None:
    """Per phase: rates, wall ratio, own-core ratio, total and per-part CPU ratios, load;
    of the median run per worker count, with every repeat's own ratio beside it."""
    (p1, l1), (p2, l2) = _median(by_n[1]), _median(by_n[2])
    r1, r2 = amount / p1.wall, amount / p2.wall
    each = " ".join(f"{a[0].wall / b[0].wall:.2f}x" for a, b in zip(by_n[1], by_n[2],
                                                                    strict=True))
    print(f"{name:14s} wall:  1 worker {r1:10,.0f} {unit}/s ({l1}), 2 workers"
          f" {r2:10,.0f} {unit}/s ({l2}): workers2 / workers1 = {r2 / r1:.2f}x"
          f" (median of {len(by_n[1])}; per repeat {each})")
    # the wall speed-up if each worker had a core of its own: one worker's CPU seconds over
    # the busiest of the two workers' (imbalance and overhead included)
    print(f"{name:14s} cpu:   1 worker {amount / p1.total():10,.0f} {unit}/cpu-s; own-core"
          f" speed-up {p1.total() / p2.busiest():.2f}x (busiest of 2: {p2.busiest():.2f} s of"
          f" {p2.total():.2f})")
    print(f"{name:14s} total CPU 2 workers / 1 worker = {p2.total() / p1.total():.2f}x"
          f" (tasks {p2.total(2):.2f} / {p1.total(2):.2f} s ="
          f" {p2.total(2) / max(p1.total(2), 1e-9):.2f}x; event loop {p2.total(1):.2f} /"
          f" {p1.total(1):.2f} s; other {p2.total() - p2.total(1) - p2.total(2):.2f} /"
          f" {p1.total() - p1.total(1) - p1.total(2):.2f} s)")


ROWS = ("ooni", "bgp", "detect")


def workers_phase(a: argparse.Namespace) -> None:
    """The distributed phase alone, on a running LocalCluster of 1 then 2 workers (module
    docstring)."""
    from netvigil.detect.registry import DEFAULT
    from netvigil.distributed.bgp import epoch_files, epochs, ingest_dask
    from netvigil.distributed.detect import run_detection_dask
    from netvigil.distributed.engine import dask_client
    from netvigil.distributed.ooni import read_measurements_dask
    from netvigil.sources.bgp.ingest import discover
    from netvigil.sources.bgp.mrt.errors import ErrorPolicy
    from netvigil.sources.bgp.visibility import VisibilityConfig
    from netvigil.sources.ooni.reader import bucket_files

    rows = [r for r in a.rows.split(",") if r]
    if unknown := set(rows) - set(ROWS):
        raise SystemExit(f"--rows: unknown {sorted(unknown)} (known: {','.join(ROWS)})")
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        generate(tmp / "bucket", a.measurements, a.hours)
        paths = bucket_files(tmp / "bucket")
        elems = _bgp_day(tmp / "mrt", a.bgp_hours, a.bgp_prefixes, a.bgp_updates) \
            if "bgp" in rows else 0
        archives = discover([], tmp / "mrt", None) if "bgp" in rows else []
        pts = _detect_input(tmp / "d.duckdb", a) if "detect" in rows else 0
        amounts = {"ooni judge": (a.measurements, "measurements"),
                   "bgp epochs": (elems, "update elements"), "detect shards": (pts, "points")}
        print(f"worker phase inputs: ooni {a.measurements} measurements in {len(paths)} files;"
              f" bgp {a.bgp_hours} h, {elems:,} update elements + RIBs of"
              f" {a.bgp_prefixes:,} prefixes x 10 peers; detect {pts:,} points"
              f" ({a.entities} series x {a.days} days, {DEFAULT}); rows {rows}")
        got: dict[str, dict[int, list[tuple[Phase, str]]]] = {}
        plain = [r for r in ("ooni", "detect") if a.plain and r in rows]
        plain_walls: dict[str, dict[int, list[float]]] = {r: {1: [], 2: []} for r in plain}
        if plain:
            print("the machine, two plain processes at once against one (benchmarks/pairs.py):")
            refs = pairs.references()
        # repeats interleave the worker counts, so a slow minute of the machine falls on
        # both; each repeat makes its clusters afresh (as a command does)
        for n in [n for _ in range(a.repeat) for n in (1, 2)]:
            shards = a.detect_shards or n * a.shards_per_worker
            with dask_client(f"local:{n}") as client:  # the clusters the commands make
                client.run(_warm, str(paths[0]), DEFAULT)  # type: ignore[no-untyped-call]
                if archives:  # every worker: one epoch, before the clock (_warm_bgp)
                    ep0 = epochs(archives)[0]
                    client.run(_warm_bgp, epoch_files(archives, ep0), ep0,  # type: ignore[no-untyped-call]
                               str(tmp))
                # files per task: the library's default (the CLI's) for both counts
                per = {"per_chunk": a.chunk_files} if a.chunk_files else {}
                runs: dict[str, tuple[Callable[[Path], Path], Callable[[Path], object],
                                      bool]] = {
                    "ooni judge": (lambda w: w, lambda w, per=per: read_measurements_dask(
                        client, paths, "skip", w, **per), True),
                    "bgp epochs": (lambda w: w, lambda w: ingest_dask(
                        client, archives, _Drop(), VisibilityConfig(), ErrorPolicy.SKIP, w),
                        True),
                    "detect shards": (lambda w: _copy(tmp / "d.duckdb", w),
                                      lambda s, k=shards: _shards_note(run_detection_dask(
                                          client, s, detector=DEFAULT, shards=k)), False),
                }
                for name, (prepare, run, resumable) in runs.items():
                    if name.split()[0] not in rows:
                        continue
                    ph = _phase(client, prepare, run, tmp / f"{name.split()[0]}-{n}",
                                resumable)
                    got.setdefault(name, {}).setdefault(n, []).append((ph, _load()))
                    _show(n, name, ph, _load())
            for row in plain:  # the same work without Dask, in the same minute (pairs.py)
                runs_ = pairs.plain_shards(tmp / "d.duckdb", DEFAULT, n) \
                    if row == "detect" else pairs.plain_chunks(  # the library's default
                        paths, n, a.chunk_files or read_measurements_dask.__kwdefaults__[
                            "per_chunk"])  # (the CLI's) when not given, as the Dask row
                plain_walls[row][n].append(max(r.wall for r in runs_))
                print(f"  {n} plain process(es): {PLAIN_ROW[row]:13s} wall"
                      f" {plain_walls[row][n][-1]:7.2f} s, CPU s " + ", ".join(
                          f"{r.user + r.system:.2f} (system {r.system:.2f}, {r.faults:,}"
                          " minor faults)" for r in runs_) + f", {_load()}")
        for name, by_n in got.items():
            _summary(name, *amounts[name], by_n)
        for row in plain:
            _plain_summary(PLAIN_ROW[row], plain_walls[row], got[PLAIN_ROW[row]], refs)


#: rows ``--plain`` also runs as plain processes, and the worker-phase row each stands beside
PLAIN_ROW = {"ooni": "ooni judge", "detect": "detect shards"}


def _plain_summary(name: str, walls: dict[int, list[float]],
                   dask: dict[int, list[tuple[Phase, str]]], refs: dict[str, float]) -> None:
    """A Dask row's figure beside the same work as plain processes and the machine's
    reference pairs (``--plain``): how much of the ceiling this machine gives two processes
    on this work Dask reaches, and which kind of work the ceiling resembles."""
    p1, p2 = sorted(walls[1]), sorted(walls[2])
    m1, m2 = p1[(len(p1) - 1) // 2], p2[(len(p2) - 1) // 2]
    each = " ".join(f"{x / y:.2f}x" for x, y in zip(walls[1], walls[2], strict=True))
    d = _median(dask[1])[0].wall / _median(dask[2])[0].wall
    print(f"{name:14s} plain processes (no Dask): 1 process {m1:.2f} s, 2 at once"
          f" {m2:.2f} s: 2 / 1 = {m1 / m2:.2f}x (median of {len(p1)}; per repeat {each})")
    print(f"{name:14s} Dask workers2 / workers1 {d:.2f}x = {d / (m1 / m2):.2f} of the"
          f" plain processes' ratio (Dask's as its wall above); machine"
          f" pairs: " + ", ".join(f"{k} {v:.2f}x" for k, v in refs.items()))


def _detect_input(path: Path, a: argparse.Namespace) -> int:
    """The detect store at ``path``: generated, or (``--detect-cache``) linked from the
    cache folder, where it is generated once per ``--entities`` x ``--days``."""
    if a.detect_cache is None:
        return _detect_store(path, a.entities, a.days)
    a.detect_cache.mkdir(parents=True, exist_ok=True)
    cached = a.detect_cache / f"detect-{a.entities}x{a.days}.duckdb"
    if not cached.exists():
        tmp = cached.with_name(cached.name + ".tmp")
        tmp.unlink(missing_ok=True)
        _detect_store(tmp, a.entities, a.days)
        tmp.rename(cached)
    path.symlink_to(cached.resolve())  # only ever copied (_copy), never written
    return int(a.entities * a.days * 86_400 // STEP)


def _shards_note(run: ShardedRun) -> ShardedRun:
    """Print how the packing split the points to read, and the bound a group sets."""
    total = sum(run.costs)
    print(f"  detect: {run.shards} shard(s), points to read per shard {list(run.costs)};"
          f" costliest group {run.largest_group:,} (speed-up bound"
          f" {total / max(run.largest_group, 1):.1f}x); driver's serial part (plan + merge)"
          f" {run.driver_seconds:.2f} s wall")
    return run


def _copy(src: Path, work: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(src, work / src.name))


if __name__ == "__main__":
    sys.exit(main())
