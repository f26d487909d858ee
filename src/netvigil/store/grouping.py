"""Rows of many series put in series order (by ``idx``, then time) after DuckDB returns them
unordered: a counting sort (O(n), one pass) instead of the query's ``ORDER BY``.

Why not ``ORDER BY q.idx, p.time`` in the points read (:meth:`DetectionStore.read_points_after`):
measured on the 41.5 M-point store of ``benchmarks/bench_dask.py --entities 4800`` (one
DuckDB thread, in-process, one read of every series, docs/scaling.md): with the
``ORDER BY`` and a materialised result 919,636 minor page faults (91 bytes of fresh pages
per point) and 2.59 s user + 1.85 s system CPU; streamed without it 281,954 faults (28
bytes per point) and 0.90 s + 0.47-0.75 s. DuckDB's sort materialises every row in its own
4 KiB pages; the counting sort writes two numpy columns (numpy asks for huge pages on
large arrays) in 0.2-0.4 CPU s for 41.5 M rows, where numpy's own stable sorts take
1.2-5.9 s (``np.lexsort``, ``np.argsort(kind="stable")``).

The scan order DuckDB returns is the table's (``preserve_insertion_order``), which is time
order within a series when points were appended in time order; a series whose rows come
back out of time order (a backfilled row appended later) is sorted on its own. Times are
unique within a series (the points primary key), so the result equals the ``ORDER BY``.

Compiled with numba (cached on disk) when the read is large or the kernel is already loaded;
small reads and ``NETVIGIL_NO_NUMBA`` take ``np.lexsort``: the same result (tested in
``tests/test_store_grouping.py``), without numba's import for a few thousand rows.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: below this many rows ``np.lexsort`` runs unless the kernel is already loaded: importing
#: numba and loading the cached kernel costs about a second, lexsort of 1 M rows less
MIN_ROWS = int(os.environ.get("NETVIGIL_NUMBA_MIN_WORK", "1000000"))
_KERNEL: list[Any] = []


def _scatter_py(idx: I64, time: I64, value: F64, offsets: I64, out_time: I64,
                out_value: F64) -> int:
    """Row ``i`` to the next free slot of series ``idx[i]`` (slots from ``offsets``), then
    each series' slice sorted by time if it is not already; ``idx`` is overwritten with
    the sorted series index. Returns the number of series that needed the sort."""
    nxt = offsets[:-1].copy()
    for i in range(idx.shape[0]):
        k = idx[i]
        p = nxt[k]
        nxt[k] = p + 1
        out_time[p] = time[i]
        out_value[p] = value[i]
    resorted = 0
    for k in range(offsets.shape[0] - 1):
        lo, hi = offsets[k], offsets[k + 1]
        for p in range(lo + 1, hi):
            if out_time[p] < out_time[p - 1]:
                o = np.argsort(out_time[lo:hi], kind="mergesort")
                out_time[lo:hi] = out_time[lo:hi][o]
                out_value[lo:hi] = out_value[lo:hi][o]
                resorted += 1
                break
        for p in range(lo, hi):
            idx[p] = k
    return resorted


def _kernel(rows: int) -> Any:
    """The compiled scatter, or None (numpy's path): numba missing or disabled, or a small
    read in a process that has not loaded the kernel yet."""
    if _KERNEL:
        return _KERNEL[0]
    if rows < MIN_ROWS or os.environ.get("NETVIGIL_NO_NUMBA"):
        return None
    try:
        import numba  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    _KERNEL.append(numba.njit(nogil=True, cache=True)(_scatter_py))
    return _KERNEL[0]


def by_series(idx: I64, time: I64, value: F64, n: int,
              compiled: bool | None = None) -> tuple[I64, I64, F64]:
    """``(idx, time, value)`` ordered by ``idx`` (``0 <= idx < n``) then ``time``, as
    ``ORDER BY idx, time`` would give them. ``idx`` may be reused for the result.
    ``compiled``: force the kernel (True) or numpy (False); None decides by size."""
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    time = np.ascontiguousarray(time, dtype=np.int64)
    value = np.ascontiguousarray(value, dtype=np.float64)
    kernel = None if compiled is False else _kernel(MIN_ROWS if compiled else len(idx))
    if kernel is None:
        order = np.lexsort((time, idx))
        return idx[order], time[order], value[order]
    if not idx.flags.writeable:
        idx = idx.copy()
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(idx, minlength=n), out=offsets[1:])
    out_time = np.empty_like(time)
    out_value = np.empty_like(value)
    kernel(idx, time, value, offsets, out_time, out_value)
    return idx, out_time, out_value
