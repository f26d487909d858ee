"""What two processes at once get from this machine, without Dask: the ceiling a 2-worker
figure is read against (used by ``bench_dask.py --phase workers --plain``).

Issue 11 sets its 1.8x goal "on work that is not I/O-bound". Whether a job is bound by the
machine's memory system rather than its cores is measured here, not assumed, with plain
processes (``multiprocessing``, spawn) started and warmed before the clock and released
together by one event, so nothing of Dask (scheduler, comms, nanny) is in these figures:

* **reference pairs**, one unit of work alone, then two units at once in two processes;
  ``pair ratio = 2 x wall(alone) / wall(slower of the pair)`` (2.00 = two cores give twice
  the throughput):

  - ``compute``: a pure-Python integer loop (registers and L1 cache only);
  - ``memory stream``: ``np.copyto`` between two 256 MiB arrays allocated before the
    clock (memory bandwidth, no page faults);
  - ``fresh pages``: 256 MiB arrays allocated, written and freed (``np.ones``): every page
    faulted in and zeroed by the kernel, as a detection read's columns are (docs/scaling.md);

* **OONI judging as plain processes** (:func:`plain_chunks`): the Dask run's chunks judged
  by its task function, all in one process, then dealt to two at once;
* **detection shards as plain processes**: :func:`netvigil.distributed.detect.detect_shard`
  (the Dask task's own function) on every country group in one process, then on the two
  halves the driver's packing makes (:func:`~netvigil.distributed.detect.pack_shards`) in
  two processes at once; ``ratio = wall(one) / wall(slower of two)``, the quantity Dask's
  ``workers2 / workers1`` measures, minus the driver's plan and merge.

The processes get the environment a Dask nanny gives its workers
(``distributed.nanny.pre-spawn-environ``: ``MALLOC_TRIM_THRESHOLD_`` among others), so the
C library behaves as it does in a worker.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1 << 20
_ARRAY = 256 * MIB


@dataclass(frozen=True)
class Run:
    """One process's timed part: wall and CPU seconds, minor page faults."""

    wall: float
    user: float
    system: float
    faults: int


@contextmanager
def _worker_environ() -> Iterator[None]:
    """The variables a Dask nanny sets before it spawns a worker, for the processes started
    inside (spawned children copy ``os.environ``); put back afterwards."""
    import dask.config
    import distributed  # noqa: F401  (its defaults join dask's configuration on import)

    env = {k: str(v) for k, v in
           (dask.config.get("distributed.nanny.pre-spawn-environ") or {}).items()}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _compute(units: int) -> None:
    x = 0
    for i in range(units * 20_000_000):
        x = (x + i * 7) & 0xFFFF


def _stream(units: int, buffers: list[Any]) -> None:
    src, dst = buffers
    for _ in range(units * 48):
        np.copyto(dst, src)


def _fresh(units: int) -> None:
    for _ in range(units * 36):
        a = np.ones(_ARRAY // 8)
        del a


def _child(kind: str, arg: Any, ready: Any, go: Any, out: Any) -> None:
    """In a spawned process: prepare (outside the clock), signal ready, wait for ``go``,
    then time the work and send a :class:`Run`."""
    buffers: list[Any] = []
    if kind == "stream":
        buffers = [np.ones(_ARRAY // 8), np.zeros(_ARRAY // 8)]
    elif kind == "chunks":
        from netvigil.distributed.ooni import judge_chunk, judge_file
        from netvigil.model import ErrorPolicy

        lists, sample, scratch = arg
        judge_file(Path(sample), ErrorPolicy.SKIP)  # warm: modules, verdict tables
    elif kind == "shard":
        from netvigil.distributed.detect import detect_shard

        store, members, detector, scratch = arg
        # warm: numba kernels, the worker's shard store, DuckDB (as bench_dask's _warm)
        detect_shard(store, str(Path(scratch) / f"warm-{os.getpid()}.duckdb"),
                     members[:1], detector, False)
    ready.set()
    go.wait()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    if kind == "compute":
        _compute(arg)
    elif kind == "stream":
        _stream(arg, buffers)
    elif kind == "fresh":
        _fresh(arg)
    elif kind == "chunks":
        for i, paths in enumerate(lists):
            judge_chunk(paths, "skip", str(Path(scratch) / f"chunk-{os.getpid()}-{i}.json"))
    else:
        detect_shard(store, str(Path(scratch) / f"out-{os.getpid()}.duckdb"), members,
                     detector, False)
    t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    out.put(Run(t1 - t0, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime,
                r1.ru_minflt - r0.ru_minflt))


def together(kind: str, args: Sequence[Any]) -> list[Run]:
    """Run ``kind`` once per item of ``args``, each in its own spawned process, all
    released at the same moment once every one is ready; their runs, in ``args`` order."""
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    procs = []
    with _worker_environ():
        for arg in args:
            ready, out = ctx.Event(), ctx.Queue()
            p = ctx.Process(target=_child, args=(kind, arg, ready, go, out))
            p.start()
            procs.append((p, ready, out))
    for p, ready, _ in procs:
        while not ready.wait(1.0):
            if not p.is_alive():
                raise SystemExit(f"pairs: a {kind} process died before it was ready"
                                 f" (exit {p.exitcode})")
    go.set()
    runs = [out.get(timeout=600) for _, _, out in procs]
    for p, _, _ in procs:
        p.join()
    return runs


def pair_ratio(kind: str, arg: Any) -> tuple[float, Run, list[Run]]:
    """``2 x wall(alone) / wall(slower of two at once)`` for one reference kind, once."""
    alone = together(kind, [arg])[0]
    pair = together(kind, [arg, arg])
    return 2 * alone.wall / max(r.wall for r in pair), alone, pair


#: printed name -> the child's kind; each takes about 2 s alone on this VM
REFERENCES = {"compute": "compute", "memory stream": "stream", "fresh pages": "fresh"}


def references(rounds: int = 3) -> dict[str, float]:
    """The three reference pair ratios of this machine, now: each the median of ``rounds``
    alternated rounds (alone, then a pair), every round printed (module docstring)."""
    got = {}
    for name, kind in REFERENCES.items():
        tries = [pair_ratio(kind, 1) for _ in range(rounds)]
        ratios = sorted(t[0] for t in tries)
        got[name] = ratios[(len(ratios) - 1) // 2]
        each = "; ".join(f"{a.wall:.2f} s alone, {max(r.wall for r in p):.2f} s a pair"
                         f" (system {a.system:.2f} / {max(r.system for r in p):.2f})"
                         for _, a, p in tries)
        print(f"  machine pair, {name:13s}: pair ratio {got[name]:.2f}x (median of"
              f" {rounds}; {each})")
    return got


def plain_shards(store: Path, detector: str, n: int) -> list[Run]:
    """Detection of every country group of ``store`` as ``n`` shards (the driver's packing)
    in ``n`` plain processes at once; their runs. The store is only read."""
    from netvigil.detect.registry import get_detector
    from netvigil.distributed.detect import country_groups, pack_shards
    from netvigil.store.duck import Store

    with Store(store, read_only=True) as st:
        groups = country_groups(st, get_detector(detector).method)
    parts = pack_shards(groups, n)
    with tempfile.TemporaryDirectory() as scratch:
        return together("shard", [(str(store.resolve()), [(e.type.value, e.code)
                                                           for e in part], detector, scratch)
                                  for part in parts])


def plain_chunks(paths: Sequence[Path], n: int, per_chunk: int) -> list[Run]:
    """OONI judging of ``paths`` in ``n`` plain processes at once: the chunks the Dask run
    makes (:func:`netvigil.distributed.ooni.chunks`, ``per_chunk`` files each), each judged
    by the Dask task's own function (``judge_chunk``), dealt out biggest first to the
    process with the fewest bytes so far (what Dask's byte priorities and free workers
    come to); their runs."""
    from netvigil.distributed.ooni import chunks

    parts = chunks(list(paths), per_chunk)
    size = [sum(p.stat().st_size for p in part) for part in parts]
    lists: list[list[list[str]]] = [[] for _ in range(n)]
    load = [0] * n
    for i in sorted(range(len(parts)), key=lambda i: -size[i]):
        k = load.index(min(load))
        lists[k].append([str(p.absolute()) for p in parts[i]])
        load[k] += size[i]
    with tempfile.TemporaryDirectory() as scratch:
        return together("chunks", [(lst, str(paths[0]), scratch) for lst in lists])
