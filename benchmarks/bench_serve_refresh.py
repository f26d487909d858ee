"""serve's in-memory snapshot after one appended bin: patched vs rebuilt whole (issue 10).

One command (needs the load benchmark's 45.7M-bin store; builds it when missing, ~3 min)::

    .venv/bin/python benchmarks/bench_serve_refresh.py [--rounds 3] [--store PATH]

What it does, through the code serve runs (``netvigil.serve.memory`` over a real
:class:`~netvigil.serve.gate.StoreGate` and DuckDB file):

1. Copies the store of ``benchmarks/bench_serve_load.py`` (30 days of 5-minute ``bgp``
   series for every country and region, compacted; ``$TMPDIR/netvigil-bench-serve/``) to
   ``$TMPDIR/netvigil-bench-refresh/`` so that benchmark's store is never written, and
   builds the first snapshot.
2. Each round writes one 5-minute bin of every series through the gate's writer (the write
   ``netvigil run`` makes every bin), then brings the snapshot up to date twice at the same
   store version, side by side: **patch** (:func:`~netvigil.serve.memory.patch_snapshot`:
   read the ``series`` rows and the new points, place them in each series' room) and the
   peer, **rebuild** (:func:`~netvigil.serve.memory.build_snapshot`: every point read
   again, what serve did after every write before), with the patched snapshot alive as
   serve holds the previous one while building.
3. Prints per round: CPU seconds of the process (``time.process_time``: every thread,
   DuckDB's included), wall seconds, and peak extra memory (Linux: the process' peak
   resident set reset through ``/proc/self/clear_refs`` before each, minus the resident
   set before), and the ratios rebuild / patch; then checks that both snapshots answer
   every series alike (``read_series`` over all time), so the figures compare equal work.

The patch runs first in each round, on a store the gate has just reopened after the write
(cold), the rebuild after it on the open store: the order favours the peer.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import bench_serve_load as load  # noqa: E402  (the load benchmark's store and entities)
from netvigil.cli.common import open_store  # noqa: E402
from netvigil.model.entities import make_ref  # noqa: E402
from netvigil.serve.gate import StoreGate  # noqa: E402
from netvigil.serve.memory import SeriesSnapshot, build_snapshot, patch_snapshot  # noqa: E402

MB = 1 << 20


def _status(field: str) -> int:
    """A ``/proc/self/status`` figure in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run ``fn`` once: its result, CPU and wall seconds, peak extra resident bytes."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)
    rss0 = _status("VmRSS")
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return out, {"cpu": cpu, "wall": wall, "peak_mb": (_status("VmHWM") - rss0) / MB}


def write_bin(gate: StoreGate, when: int, rng: np.random.Generator) -> int:
    """One bin of every series at ``when``, through the gate's writer; the series count."""
    refs = [make_ref(t, c) for t, c in load.entities()]
    n = len(refs)
    with gate.writer() as store:
        store.write_points([r.type.value for r in refs], [r.code for r in refs], ["bgp"] * n,
                           np.full(n, when, dtype=np.int64), rng.uniform(50, 20_000, n),
                           source="bench-refresh", step=load.STEP)
    return n


def same_answers(a: SeriesSnapshot, b: SeriesSnapshot) -> int:
    """Series both snapshots answer alike over all time (raises on the first difference)."""
    n = 0
    for ref, stored in a.catalogue.series.items():
        for s in stored:
            x, y = a.read_series(ref, s.signal), b.read_series(ref, s.signal)
            if (x.start, x.step) != (y.start, y.step) or not np.array_equal(
                    x.values, y.values, equal_nan=True):
                raise SystemExit(f"patched and rebuilt differ on {ref.fqid} {s.signal}")
            n += 1
    return n


def private_copy(args: argparse.Namespace) -> Path:
    """The load benchmark's store copied (with its WAL) where only this script writes."""
    source = args.store or load._store_path(args)
    if not source.exists():
        load.ensure_store(source, args)
    work = Path(tempfile.gettempdir()) / "netvigil-bench-refresh"
    work.mkdir(parents=True, exist_ok=True)
    target = work / "refresh.duckdb"
    for suffix in ("", ".wal"):
        src, dst = Path(str(source) + suffix), Path(str(target) + suffix)
        dst.unlink(missing_ok=True)
        if src.exists():
            shutil.copyfile(src, dst)
    with open_store(target, wait=60):  # read-write once: the current code's migrations
        pass
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="appended bins measured")
    ap.add_argument("--store", type=Path, default=None,
                    help="store to copy (default: bench_serve_load.py's 30-day store)")
    args = ap.parse_args()
    args.days, args.fresh, args.compact, args.series_scale = 30, False, True, 1.0
    path = private_copy(args)
    gate = StoreGate(path, open_store, 60.0, watch=False)
    rng = np.random.default_rng(5)
    try:
        snap, first = measure(partial(build_snapshot, gate, 1))
        assert snap is not None
        print(f"store: {path} (a copy of the load benchmark's); first snapshot: "
              f"{snap.points:,} bins of {len(snap.marks):,} series in {first['cpu']:.2f} CPU s"
              f" ({first['wall']:.2f} s wall), arrays {snap.values.size * 9 / MB:,.0f} MB "
              f"with room and free bins")
        with gate.reader() as store:
            row = store.connection.execute("SELECT max(last_time) FROM series").fetchone()
        when = int(row[0]) if row and row[0] is not None else load.END
        print(f"{'round':>5} {'':>14} {'patch':>9} {'rebuild':>9} {'rebuild/patch':>14}")
        for r in range(1, args.rounds + 1):
            when += load.STEP
            n = write_bin(gate, when, rng)
            patched, p = measure(partial(patch_snapshot, gate, snap, 2 * r))
            rebuilt, b = measure(partial(build_snapshot, gate, 2 * r + 1))
            assert rebuilt is not None
            for label, key, unit in (("CPU", "cpu", "s"), ("wall", "wall", "s"),
                                     ("peak extra", "peak_mb", "MB")):
                fmt = "{:9.3f}" if unit == "s" else "{:9.0f}"
                ratio = b[key] / p[key] if p[key] > 0 else float("inf")
                print(f"{r:>5} {label + ' ' + unit:>14} {fmt.format(p[key])} "
                      f"{fmt.format(b[key])} {ratio:13.1f}x")
            equal = same_answers(patched, rebuilt)
            print(f"{r:>5} {n:,} bins appended; patched and rebuilt answer alike on "
                  f"{equal:,} series (patch kind={patched.kind}, bins {patched.points:,})")
            del rebuilt
            snap = patched
    finally:
        gate.close()


if __name__ == "__main__":
    main()
