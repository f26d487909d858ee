"""The store's series and events held in memory: a chart that misses the answer cache costs
numpy slicing, not a DuckDB statement, and a write never stalls a reader.

Why: at 100 concurrent clients a dashboard asks for thousands of distinct charts (every
entity, every time window), so most chart requests miss the answer cache (cache.py), and an
uncached chart cost one DuckDB statement on ``points`` (11-16 ms on a compacted store, 95 ms
before compaction): at that price 2 cores answer ~100 charts/s and p99 is seconds
(``benchmarks/bench_serve_load.py``, docs/api.md). A 5-minute series of 30 days is 8,640
floats; every country and region (~5,300 series) is ~46M points, 0.41 GB dense, which a
serving machine holds. Slicing a week out of an array in memory costs microseconds.

What a snapshot is (:class:`SeriesSnapshot`): at one store version (cache.py), the store's
catalogue (:class:`~netvigil.serve.queries.Catalogue`), every event, and every series laid out
densely on its own grid (``step``, ``origin`` from the ``series`` table): one float64 per bin
from the series' first to last stored point (missing bins NaN) and one bool saying whether a
point is stored there. It answers :meth:`SeriesSnapshot.read_series` and
:meth:`SeriesSnapshot.read_events` exactly as :class:`~netvigil.store.duck.Store` does (same
spans, same NaN, same order; ``tests/test_serve_memory.py`` compares them on every series and
random windows), so the routes compute their answers through the one code path
(``queries.series_view``) from either source. A series the dense layout cannot hold exactly
(a point off its grid, or outside the bounds the ``series`` table records) is kept as its
sorted (time, value) pairs and binned as the store bins it.

How it stays fresh (:class:`SeriesMemory`): a daemon thread compares the store version with
the snapshot's every :data:`POLL_SECONDS`; when it moved, the snapshot is **patched**
(:func:`patch_snapshot`): the ``series`` table says what a write changed (each row's grid,
first and last time, point count and ``rewrites``, the count of writes that changed a
stored value, migration 6), so only the points after a series' previous last one are read
(one statement, its time bound pruning every older row group), checked against the count
the row gained, and placed in the room each series has after its last bin
(:data:`HEADROOM_SECONDS`). A series whose past changed (a value rewritten, a point
inserted inside its span or before it, a new grid) or a new series is read again whole
(one statement each) into free bins at the end of the arrays (:data:`TAIL_SHARE`); a
compaction changes no row, so it costs only the catalogue and events. When that is not
possible (no snapshot yet, the free bins used up, more than :data:`MAX_REREADS` series to
read again) the snapshot is **rebuilt whole** (:func:`build_snapshot`), reading through the
app's :class:`~netvigil.serve.gate.StoreGate` like any request, in chunks of
:data:`CHUNK_SERIES` series so a writer that knocks (``netvigil run``) waits for one chunk,
not the whole build; a build that sees the version move between chunks starts again.

Why patching in place is safe for readers: a patch shares the arrays with the snapshot it
patches but writes only bins no published snapshot can read. A snapshot reads bins
``offset .. offset + n - 1`` of each series; a patch writes either after a series' ``n``
(inside its own room, which older snapshots, whose ``n`` is smaller, never read) or into
free bins past every snapshot's regions; a region a series leaves is never written again.
All of a patch's reads happen before its first write, so a failed or stale patch leaves
nothing a reader sees, and its bins are cleared before reuse. The new snapshot is then
published by one reference assignment: readers hold the old or the new one, **never a mix**.
Until it is published, requests are answered from the previous one: **answers may be stale
by one refresh** (exported as ``netvigil_memory_build_seconds``). The answer cache keeps
snapshot answers under the snapshot's serial, so a snapshot answer is never served as a
newer store's. ``tests/test_serve_memory_patch.py`` checks, over seeded random sequences of
appends, backfills, rewrites, new series and compactions, that a patched snapshot answers
exactly as a fresh build and as DuckDB do, and that the patch path was the one taken.

What it costs: memory (9 bytes per bin of every series, plus a day of room per series and
:data:`TAIL_SHARE` free bins: ~8% more at 5-minute steps; above ``max_points`` bins no
snapshot is built and every request reads DuckDB as before, logged once), a whole re-read
of ``points`` at start and when the free bins run out (after about a day of appends with
the defaults, or when many series change their past), and staleness up to one refresh.
``benchmarks/bench_serve_refresh.py`` prints the CPU time and peak extra memory of one
appended bin, patched against rebuilt, on the 45.7M-bin load store. Hand-written rather
than a library: the snapshot must answer exactly as the store does, which is the store's
own binning rule applied to arrays; no caching library knows it.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple

import duckdb
import numpy as np
import numpy.typing as npt

from netvigil.model import EntityRef, EntityType, Event
from netvigil.model.alerts import Alert
from netvigil.model.errors import NetVigilError
from netvigil.model.series import Series
from netvigil.model.signals import signal_kind
from netvigil.serve.queries import Catalogue

if TYPE_CHECKING:
    from netvigil.serve.gate import StoreGate
    from netvigil.store.duck import Store

log = logging.getLogger(__name__)

MAX_POINTS = 120_000_000  # dense bins held at most (9 bytes each: ~1.1 GB); above, DuckDB
#: Series read per store visit: a knocking writer waits for one chunk. Each chunk also scans
#: the store's not-yet-compacted days whole (no row group prunes by code there), so fewer
#: chunks cost less: 45.7M bins took 4.8-5.1 s of CPU in chunks of 1,500 against 6.4-7.6 s
#: in chunks of 400 (alternated runs, load 11-12; the wall times, 27-46 s, were the
#: machine's contention).
CHUNK_SERIES = 1_500
POLL_SECONDS = 0.1  # how often the refresher compares the store version with the snapshot's
MAX_STALE_SECONDS = 60.0  # a snapshot this long behind the store is not served (DuckDB is)
RETRY_SECONDS = 1.0  # after a failed build (store locked, damaged): try again this much later
#: Room kept after each series' last bin, in seconds of its grid: ``netvigil run`` appends one
#: bin per step, so a day of appends patches every series in place (288 bins at 5 minutes).
HEADROOM_SECONDS = 86_400
#: Free bins after all series, as a share of the bins laid out (at least :data:`TAIL_MIN`):
#: where new series, series read again whole and series that outgrew their room go.
TAIL_SHARE = 0.05
TAIL_MIN = 65_536
#: A patch that would read more series again whole than this rebuilds instead: one series
#: read whole cost 18 ms of CPU on the 45.7M-bin load store (100 random series, load 12; the
#: store's not-yet-compacted days are scanned by each statement), a whole rebuild 3.6-5.2 s,
#: so 50 keeps a patch under a quarter of a rebuild.
MAX_REREADS = 50

SeriesKey = tuple[EntityRef, str]
Pairs = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]  # sorted times, their values


class _Mark(NamedTuple):
    """One row of the store's ``series`` table: what changes when a write touches it."""

    step: int
    origin: int
    first: int | None
    last: int | None
    n: int  # n_points
    rewrites: int  # writes that changed a stored value of the series


_MARKS_SQL = ("SELECT entity_type, entity_code, signal, step, origin, first_time, last_time,"
              " n_points, rewrites FROM series")


def read_marks(store: Store) -> dict[SeriesKey, _Mark]:
    """Every series row's grid, bounds, point count and rewrite count."""
    return {(EntityRef(EntityType(t), c), str(sig)): _Mark(
                int(step), int(origin), None if first is None else int(first),
                None if last is None else int(last), int(n), int(rw))
            for t, c, sig, step, origin, first, last, n, rw
            in store.connection.execute(_MARKS_SQL).fetchall()}


@dataclass(frozen=True)
class _Dense:
    """Where one series lives in the flat arrays: bins ``base .. base + n - 1`` of its grid."""

    offset: int
    base: int  # bin number of the first stored point: (first - origin) // step
    n: int
    step: int
    origin: int
    cap: int  # bins reserved from ``offset`` (``n`` plus room for appends)

    @property
    def t0(self) -> int:
        """Time of the region's first bin."""
        return self.origin + self.base * self.step


@dataclass
class SeriesSnapshot:
    """Series, events and catalogue of one store version, read-only once built."""

    version: tuple[Hashable, ...]
    serial: int
    catalogue: Catalogue
    events: list[Event]
    alerts: dict[EntityRef | None, list[Alert]]  # by entity; None: all, in the store's order
    dense: dict[SeriesKey, _Dense]
    values: npt.NDArray[np.float64]
    present: npt.NDArray[np.bool_]
    sparse: dict[SeriesKey, Pairs]
    marks: dict[SeriesKey, _Mark]  # the series rows this snapshot holds
    used: int  # bins of ``values`` taken by regions (this snapshot's or abandoned ones)
    build_seconds: float = 0.0
    kind: str = "build"  # "build": read whole; "patch": an earlier snapshot patched
    built_at: float = field(default_factory=time.time)
    events_of: dict[EntityRef, list[Event]] = field(init=False)
    bins: int = field(init=False)

    def __post_init__(self) -> None:
        self.events_of = {}
        for e in self.events:  # the store's order within each entity
            self.events_of.setdefault(e.entity, []).append(e)
        self.bins = (sum(d.n for d in self.dense.values())
                     + sum(t.size for t, _ in self.sparse.values()))

    def read_series(self, entity: EntityRef, signal: str, start: int | None = None,
                    until: int | None = None, *, grid: tuple[int, int] | None = None
                    ) -> Series:
        """:meth:`netvigil.store.duck.Store.read_series` from memory (same answer)."""
        if grid is None:
            grid = self.catalogue.grid(entity, signal)
        if grid is None:
            return Series(entity, signal, 0, signal_kind(signal).native_step,
                          np.empty(0, dtype=np.float64))
        key = (entity, signal)
        d = self.dense.get(key)
        if d is not None and (d.step, d.origin) == grid:
            return self._dense_read(entity, signal, d, start, until)
        t, v = self.sparse.get(key, (np.empty(0, np.int64), np.empty(0, np.float64)))
        return bin_points(entity, signal, grid, t, v, start, until)

    def _dense_read(self, entity: EntityRef, signal: str, d: _Dense, start: int | None,
                    until: int | None) -> Series:
        # bins b with start <= origin + b * step < until, relative to the series' base bin
        lo = 0 if start is None else max(0, -((d.origin - start) // d.step) - d.base)
        hi = d.n if until is None else min(d.n, -((d.origin - until) // d.step) - d.base)
        if hi <= lo:
            return Series(entity, signal, 0, d.step, np.empty(0, dtype=np.float64))
        stored = np.flatnonzero(self.present[d.offset + lo:d.offset + hi])
        if stored.size == 0:
            return Series(entity, signal, 0, d.step, np.empty(0, dtype=np.float64))
        a, b = d.offset + lo + int(stored[0]), d.offset + lo + int(stored[-1]) + 1
        first_bin = d.base + lo + int(stored[0])
        return Series(entity, signal, first_bin * d.step + d.origin, d.step,
                      self.values[a:b].copy())

    def read_events(self, entity: EntityRef | None = None, start: int | None = None,
                    until: int | None = None) -> list[Event]:
        """:meth:`netvigil.store.duck.Store.read_events` from memory: events overlapping
        [start, until) (ongoing ones extend to +inf), in the store's order."""
        mine = self.events if entity is None else self.events_of.get(entity, [])
        return [e for e in mine
                if (start is None or e.end is None or e.end > start)
                and (until is None or e.start < until)]

    def read_alerts(self, entity: EntityRef | None = None, start: int | None = None,
                    until: int | None = None) -> list[Alert]:
        """:meth:`netvigil.store.duck.Store.read_alerts` from memory (``start <= time <
        until``, the store's order)."""
        return [a for a in self.alerts.get(entity, [])
                if (start is None or a.time >= start) and (until is None or a.time < until)]

    @property
    def points(self) -> int:
        """Bins held for the series (room and free bins not counted)."""
        return self.bins


def bin_points(entity: EntityRef, signal: str, grid: tuple[int, int],
               t: npt.NDArray[np.int64], v: npt.NDArray[np.float64], start: int | None,
               until: int | None) -> Series:
    """Sorted stored (time, value) pairs placed on the series' grid as ``Store.read_series``
    places them (a bin takes the last point that falls in it, gaps NaN)."""
    step, origin = grid
    keep = np.ones(t.size, dtype=bool)
    if start is not None:
        keep &= t >= start
    if until is not None:
        keep &= t < until
    return Series.from_points(entity, signal, t[keep], v[keep], step, origin)


# ---------------------------------------------------------------------- building
#: One chunk's points with their place in the flat arrays computed by DuckDB (``idx``), and
#: ``bad`` for a point the dense layout cannot hold (before the series' first recorded bin,
#: off its grid, or after its last recorded bin).
_CHUNK_SQL = """
SELECT ids.sid, p.value, ids.offs + (p.time - ids.t0) // ids.step AS idx,
       p.time < ids.t0 OR (p.time - ids.t0) % ids.step <> 0
       OR (p.time - ids.t0) // ids.step >= ids.n AS bad
FROM points p
JOIN (SELECT unnest(?::VARCHAR[]) AS c, unnest(?::VARCHAR[]) AS s, unnest(?::BIGINT[]) AS sid,
             unnest(?::BIGINT[]) AS offs, unnest(?::BIGINT[]) AS t0,
             unnest(?::BIGINT[]) AS step, unnest(?::BIGINT[]) AS n) ids
  ON p.entity_code = ids.c AND p.signal = ids.s
WHERE p.entity_type = ? AND p.entity_code BETWEEN ? AND ?
"""
_SERIES_SQL = ("SELECT time, value FROM points WHERE entity_type = ? AND entity_code = ?"
               " AND signal = ? ORDER BY time")


class _StaleBuild(Exception):
    """The store version moved while a snapshot was being read: start again."""


class _Rebuild(Exception):
    """A patch cannot bring the snapshot up to date: rebuild it whole (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _room(step: int) -> int:
    """Bins kept free after a series' last one for appends (:data:`HEADROOM_SECONDS`)."""
    return max(1, HEADROOM_SECONDS // step)


def _span(first: int | None, last: int | None, step: int, origin: int) -> tuple[int, int]:
    """(base bin, bins) of a series stored from ``first`` to ``last`` on its grid."""
    if first is None or last is None:
        return 0, 0
    base = (first - origin) // step
    return base, (last - origin) // step - base + 1


def _layout(cat: Catalogue, max_points: int
            ) -> tuple[list[tuple[SeriesKey, _Dense]], int] | None:
    """Each catalogued series' place in the flat arrays (with its room for appends) and
    the bins laid out, or None when the series' bins exceed ``max_points``."""
    out: list[tuple[SeriesKey, _Dense]] = []
    total = bins = 0
    for ref in sorted(cat.series, key=lambda r: (r.type.value, r.code)):
        for s in cat.series[ref]:
            base, n = _span(s.first, s.last, s.step, s.origin)
            cap = n + _room(s.step) if n else 0
            out.append(((ref, s.signal), _Dense(total, base, n, s.step, s.origin, cap)))
            total += cap
            bins += n
    return (out, total) if bins <= max_points else None


def _tail(laid_out: int) -> int:
    """Free bins allocated after the laid-out regions."""
    return max(TAIL_MIN, int(laid_out * TAIL_SHARE))


def _chunks(layout: Sequence[tuple[SeriesKey, _Dense]], size: int
            ) -> Iterator[list[int]]:
    """Runs of series ids (indices into ``layout``), one entity type each, ``size`` at most,
    so each chunk's query prunes the store's row groups on (type, code range)."""
    run: list[int] = []
    for sid, ((ref, _), _) in enumerate(layout):
        if run and (len(run) >= size or layout[run[0]][0][0].type is not ref.type):
            yield run
            run = []
        run.append(sid)
    if run:
        yield run


def _read_chunk(store: Store, layout: Sequence[tuple[SeriesKey, _Dense]], run: list[int],
                values: npt.NDArray[np.float64], present: npt.NDArray[np.bool_],
                sparse: dict[SeriesKey, Pairs]) -> None:
    """Place one chunk's points in the dense arrays; a series with a point the layout cannot
    hold goes to ``sparse`` whole (its sorted pairs, read again)."""
    keys = [layout[i][0] for i in run]
    dense = [layout[i][1] for i in run]
    codes = [ref.code for ref, _ in keys]
    res = store.connection.execute(_CHUNK_SQL, [
        codes, [s for _, s in keys], run, [d.offset for d in dense],
        [d.t0 for d in dense], [d.step for d in dense],
        [d.n for d in dense], keys[0][0].type.value, min(codes), max(codes),
    ]).fetchnumpy()
    idx = np.asarray(res["idx"], dtype=np.int64)
    v = np.ma.filled(np.ma.asarray(res["value"], dtype=np.float64), np.nan)
    bad: npt.NDArray[np.bool_] = np.ma.filled(np.ma.asarray(res["bad"], dtype=bool), True)
    if bad.any():
        sid = np.asarray(res["sid"], dtype=np.int64)
        odd = np.unique(sid[bad])
        for s in odd.tolist():
            sparse[layout[s][0]] = _read_pairs(store, layout[s][0])
        ok = ~np.isin(sid, odd)
        idx, v = idx[ok], v[ok]
    values[idx] = v
    present[idx] = True


def build_snapshot(gate: StoreGate, serial: int, max_points: int = MAX_POINTS,
                   chunk_series: int = CHUNK_SERIES) -> SeriesSnapshot | None:
    """Read a snapshot of the store through ``gate`` (None when it would exceed
    ``max_points``). Raises :class:`_StaleBuild` if the version moved during the read."""
    t0 = time.perf_counter()
    version = gate.version()
    with gate.reader() as store:
        if gate.version() != version:
            raise _StaleBuild
        cat = Catalogue(store)
        marks = read_marks(store)
        events = store.read_events()
        every = store.read_alerts()
    planned = _layout(cat, max_points)
    if planned is None:
        return None
    layout, total = planned
    values = np.full(total + _tail(total), np.nan)
    present = np.zeros(values.size, dtype=bool)
    sparse: dict[SeriesKey, Pairs] = {}
    for run in _chunks(layout, chunk_series):
        with gate.reader() as store:
            if gate.version() != version:
                raise _StaleBuild
            _read_chunk(store, layout, run, values, present, sparse)
    dense = {key: d for key, d in layout if key not in sparse}
    return SeriesSnapshot(version, serial, cat, events, _alerts_by_entity(every), dense,
                          values, present, sparse, marks, total,
                          build_seconds=time.perf_counter() - t0)


def _alerts_by_entity(every: list[Alert]) -> dict[EntityRef | None, list[Alert]]:
    alerts: dict[EntityRef | None, list[Alert]] = {None: every}
    for a in every:
        alerts.setdefault(a.entity, []).append(a)
    return alerts


# ---------------------------------------------------------------------- patching
#: The points after each appended series' previous last one (``after``). The literal lower
#: bound (the smallest ``after``) lets DuckDB skip every older row group by its zone map.
_APPENDED_SQL = """
SELECT ids.k, p.time, p.value
FROM points p
JOIN (SELECT unnest(?::VARCHAR[]) AS t, unnest(?::VARCHAR[]) AS c, unnest(?::VARCHAR[]) AS s,
             unnest(?::BIGINT[]) AS k, unnest(?::BIGINT[]) AS after) ids
  ON p.entity_type = ids.t AND p.entity_code = ids.c AND p.signal = ids.s
WHERE p.time > {after} AND p.time > ids.after
"""


def _changes(old: SeriesSnapshot, marks: dict[SeriesKey, _Mark]
             ) -> tuple[list[SeriesKey], list[SeriesKey]]:
    """The series a write changed, by their rows: (appended: same grid, first time and
    rewrite count, a later last time and more points, so presumably only points after the
    previous last one; whole: every other change, and new series: read again whole)."""
    appended: list[SeriesKey] = []
    whole: list[SeriesKey] = []
    for key, m in marks.items():
        was = old.marks.get(key)
        if was == m:
            continue
        if (was is not None and key in old.dense and was.last is not None
                and m.last is not None and m.last > was.last and m.n > was.n
                and (was.step, was.origin, was.first, was.rewrites)
                == (m.step, m.origin, m.first, m.rewrites)):
            appended.append(key)
        else:
            whole.append(key)
    return appended, whole


def _read_appended(store: Store, old: SeriesSnapshot, marks: dict[SeriesKey, _Mark],
                   keys: list[SeriesKey]) -> tuple[dict[SeriesKey, Pairs], list[SeriesKey]]:
    """Each appended series' points after its previous last one, checked against its row:
    as many as the row gained, the last one at its last time, all on its grid. A series
    that fails (a point was also inserted inside its span) is returned to be read whole."""
    if not keys:
        return {}, []
    afters = [int(old.marks[k].last or 0) for k in keys]  # set: _changes checked
    res = store.connection.execute(_APPENDED_SQL.format(after=min(afters)), [
        [r.type.value for r, _ in keys], [r.code for r, _ in keys], [s for _, s in keys],
        list(range(len(keys))), afters]).fetchnumpy()
    k = np.asarray(res["k"], dtype=np.int64)
    t = np.asarray(res["time"], dtype=np.int64)
    v = np.ma.filled(np.ma.asarray(res["value"], dtype=np.float64), np.nan)
    order = np.lexsort((t, k))
    k, t, v = k[order], t[order], v[order]
    ends = np.cumsum(np.bincount(k, minlength=len(keys)))
    good: dict[SeriesKey, Pairs] = {}
    odd: list[SeriesKey] = []
    for i, key in enumerate(keys):
        m, lo, hi = marks[key], (int(ends[i - 1]) if i else 0), int(ends[i])
        tt = t[lo:hi]
        if (hi - lo != m.n - old.marks[key].n or int(tt[-1]) != m.last
                or bool(np.any((tt - m.origin) % m.step))):
            odd.append(key)
        else:
            good[key] = (tt, v[lo:hi])
    return good, odd


def _read_pairs(store: Store, key: SeriesKey) -> Pairs:
    """A series' stored points, sorted by time (NULL values as NaN)."""
    (ref, signal) = key
    pairs = store.connection.execute(
        _SERIES_SQL, [ref.type.value, ref.code, signal]).fetchnumpy()
    return (np.asarray(pairs["time"], dtype=np.int64),
            np.ma.filled(np.ma.asarray(pairs["value"], dtype=np.float64), np.nan))


@dataclass(frozen=True)
class _Write:
    """One region a patch writes: bins ``[clear, stop)`` emptied, ``copy`` bins from
    ``source`` copied to the region's start (a series moved), then the points placed."""

    clear: int
    stop: int
    source: int
    copy: int
    dense: _Dense
    points: Pairs


@dataclass
class _Patch:
    """Where a patch puts what it read, decided before it writes anything."""

    dense: dict[SeriesKey, _Dense]
    sparse: dict[SeriesKey, Pairs]
    used: int
    writes: list[_Write] = field(default_factory=list)

    def take(self, cap: int) -> int:
        """``cap`` free bins after every region: their offset."""
        offset, self.used = self.used, self.used + cap
        return offset


def _plan(old: SeriesSnapshot, marks: dict[SeriesKey, _Mark],
          appended: dict[SeriesKey, Pairs], whole: dict[SeriesKey, Pairs]) -> _Patch:
    """Place appended points after their series' bins (in its room, or the series moved to
    free bins when the room is used up) and series read whole in free bins (or kept as
    pairs when the dense layout cannot hold them, as :func:`build_snapshot` decides)."""
    plan = _Patch({k: d for k, d in old.dense.items() if k in marks},
                  {k: p for k, p in old.sparse.items() if k in marks}, old.used)
    for key, pts in appended.items():
        d, m = old.dense[key], marks[key]
        n = _span(m.first, m.last, m.step, m.origin)[1]
        if n <= d.cap:
            new = replace(d, n=n)
            plan.writes.append(_Write(d.offset + d.n, d.offset + n, d.offset, 0, new, pts))
        else:
            cap = n + _room(m.step)
            new = replace(d, offset=plan.take(cap), n=n, cap=cap)
            plan.writes.append(_Write(new.offset, new.offset + cap, d.offset, d.n, new, pts))
        plan.dense[key] = new
    for key, (t, v) in whole.items():
        m = marks[key]
        base, n = _span(m.first, m.last, m.step, m.origin)
        plan.dense.pop(key, None)
        plan.sparse.pop(key, None)
        t0 = m.origin + base * m.step
        if t.size and (n == 0 or int(t[0]) < t0 or bool(np.any((t - t0) % m.step))
                       or (int(t[-1]) - t0) // m.step >= n):
            plan.sparse[key] = (t, v)
            continue
        cap = n + _room(m.step) if n else 0
        new = _Dense(plan.take(cap), base, n, m.step, m.origin, cap)
        plan.writes.append(_Write(new.offset, new.offset + cap, 0, 0, new, (t, v)))
        plan.dense[key] = new
    return plan


def _write(plan: _Patch, values: npt.NDArray[np.float64],
           present: npt.NDArray[np.bool_]) -> None:
    """Carry out a plan: only bins no published snapshot reads (module docstring)."""
    for w in plan.writes:
        values[w.clear:w.stop] = np.nan
        present[w.clear:w.stop] = False
        d = w.dense
        if w.copy:
            values[d.offset:d.offset + w.copy] = values[w.source:w.source + w.copy]
            present[d.offset:d.offset + w.copy] = present[w.source:w.source + w.copy]
        t, v = w.points
        idx = d.offset + (t - d.t0) // d.step
        values[idx] = v
        present[idx] = True


def patch_snapshot(gate: StoreGate, old: SeriesSnapshot, serial: int,
                   max_points: int = MAX_POINTS, max_rereads: int = MAX_REREADS
                   ) -> SeriesSnapshot:
    """``old`` brought to the store's current version by reading only what changed (module
    docstring, "How it stays fresh"). Raises :class:`_Rebuild` when only a whole build can,
    :class:`_StaleBuild` if the version moved while reading. ``old`` stays valid."""
    t0 = time.perf_counter()
    version = gate.version()
    with gate.reader() as store:
        if gate.version() != version:
            raise _StaleBuild
        cat = Catalogue(store)
        marks = read_marks(store)
        appended, whole = _changes(old, marks)
        if len(whole) > max_rereads:
            raise _Rebuild(f"{len(whole)} series to read whole")
        tails, odd = _read_appended(store, old, marks, appended)
        whole += odd
        if len(whole) > max_rereads:
            raise _Rebuild(f"{len(whole)} series to read whole")
        pairs = {key: _read_pairs(store, key) for key in whole}
        events = store.read_events()
        every = store.read_alerts()
    plan = _plan(old, marks, tails, pairs)
    if plan.used > old.values.size:
        raise _Rebuild("free bins used up")
    bins = (sum(d.n for d in plan.dense.values())
            + sum(t.size for t, _ in plan.sparse.values()))
    if bins > max_points:
        raise _Rebuild(f"{bins} bins > {max_points}")
    _write(plan, old.values, old.present)
    return SeriesSnapshot(version, serial, cat, events, _alerts_by_entity(every), plan.dense,
                          old.values, old.present, plan.sparse, marks, plan.used,
                          build_seconds=time.perf_counter() - t0, kind="patch")


class SeriesMemory:
    """The app's current snapshot and the daemon thread that keeps it fresh."""

    def __init__(self, gate: StoreGate, max_points: int = MAX_POINTS,
                 poll_seconds: float = POLL_SECONDS,
                 max_stale_seconds: float = MAX_STALE_SECONDS) -> None:
        self.gate = gate
        self.max_points = max_points
        self.poll_seconds = poll_seconds
        self.max_stale_seconds = max_stale_seconds
        self.current: SeriesSnapshot | None = None
        self._stale_since: float | None = None  # monotonic time the store was seen to move
        self.serial = 0  # of the newest snapshot
        self.builds = 0  # snapshots read whole
        self.patches = 0  # snapshots patched from the previous one
        self.fallbacks = 0  # patches that could not be made: rebuilt whole instead
        self.fallback_reason: str | None = None  # why, the last time
        self.stale_builds = 0  # builds restarted because the store moved under them
        self.last_error: str | None = None
        self.too_large: tuple[Hashable, ...] | None = None  # the version found too large
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()

    def start(self) -> None:
        if self.max_points <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="netvigil-serve-memory",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def serving(self) -> SeriesSnapshot | None:
        """The snapshot requests read, or None (read the store): none built yet, or the
        store moved more than ``max_stale_seconds`` ago and no build has caught up (builds
        failing or restarted by a continuous writer), so staleness is bounded."""
        snap, since = self.current, self._stale_since
        if snap is None or (since is not None
                            and time.monotonic() - since > self.max_stale_seconds):
            return None
        return snap

    def stale_seconds(self) -> float:
        """How long the store has been ahead of the snapshot (0: up to date)."""
        since = self._stale_since
        return 0.0 if since is None else time.monotonic() - since

    def wait_fresh(self, timeout: float) -> SeriesSnapshot | None:
        """Block until the snapshot matches the store's current version (tests, startup)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while time.monotonic() < deadline:
                snap = self.current
                if snap is not None and snap.version == self.gate.version():
                    return snap
                self._changed.wait(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            snap = self.current
            version = self.gate.version()
            if snap is not None and snap.version != version and self._stale_since is None:
                self._stale_since = time.monotonic()
            if (snap is None or snap.version != version) and self.too_large != version:
                self._refresh(version)
            self._stop.wait(self.poll_seconds)

    def _next(self) -> SeriesSnapshot | None:
        """The current snapshot patched, else one built whole (None: too large)."""
        snap = self.current
        if snap is not None:
            try:
                patched = patch_snapshot(self.gate, snap, self.serial + 1, self.max_points)
            except _Rebuild as why:
                self.fallbacks += 1
                self.fallback_reason = why.reason
                log.info("serve: series snapshot rebuilt whole (%s)", why.reason)
            else:
                self.patches += 1
                self.serial += 1
                return patched
        built = build_snapshot(self.gate, self.serial + 1, self.max_points)
        if built is not None:
            self.builds += 1
            self.serial += 1
        return built

    def _refresh(self, version: tuple[Hashable, ...]) -> None:
        try:
            built = self._next()
        except _StaleBuild:
            self.stale_builds += 1
            return
        except (NetVigilError, OSError, duckdb.Error) as exc:
            if str(exc) != self.last_error:  # once per distinct cause, not every retry
                log.warning("serve: series snapshot not built (%s); retrying", exc)
            self.last_error = str(exc)
            self._stop.wait(RETRY_SECONDS)
            return
        if built is None:
            if self.too_large is None:
                log.warning("serve: the store has more than %d bins; charts read DuckDB",
                            self.max_points)
            self.too_large = version
            return
        self.last_error = None
        # The snapshot (of a patch: its new parts) and everything the app holds long are
        # done growing: move them out of the cyclic collector's reach. A full collection
        # over them paused every request 254 ms, twice in 8 s at 100 clients (gc.callbacks
        # probe, docs/api.md "Load"); reference counting still frees an old snapshot.
        gc.freeze()
        with self._changed:
            self.current = built
            self._stale_since = None if built.version == self.gate.version() else (
                self._stale_since or time.monotonic())
            self._changed.notify_all()


