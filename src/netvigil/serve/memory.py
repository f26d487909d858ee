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
the snapshot's every :data:`POLL_SECONDS` and rebuilds the snapshot when it moved, reading
through the app's :class:`~netvigil.serve.gate.StoreGate` like any request, in chunks of
:data:`CHUNK_SERIES` series so a writer that knocks (``netvigil run``) waits for one chunk,
not the whole build; a build that sees the version move between chunks starts again. Until
the new snapshot is complete, requests are answered from the previous one: **answers may be
stale by one build** (measured by the load benchmark and exported as
``netvigil_memory_build_seconds``), never a mix of two versions. The answer cache keeps
snapshot answers under the snapshot's serial, so a snapshot answer is never served as a
newer store's.

What it costs: memory (9 bytes per bin of every series; above ``max_points`` bins no
snapshot is built and every request reads DuckDB as before, logged once), a full re-read of
``points`` after every write (one bin per 5 minutes from ``netvigil run``: a few seconds of
one core per write at 46M points), and staleness up to one build. Hand-written rather than a
library: the snapshot must answer exactly as the store does, which is the store's own
binning rule applied to arrays; no caching library knows it.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import numpy.typing as npt

from netvigil.model import EntityRef, Event
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

SeriesKey = tuple[EntityRef, str]


@dataclass(frozen=True)
class _Dense:
    """Where one series lives in the flat arrays: bins ``base .. base + n - 1`` of its grid."""

    offset: int
    base: int  # bin number of the first stored point: (first - origin) // step
    n: int
    step: int
    origin: int


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
    sparse: dict[SeriesKey, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]
    build_seconds: float = 0.0
    built_at: float = field(default_factory=time.time)
    events_of: dict[EntityRef, list[Event]] = field(init=False)

    def __post_init__(self) -> None:
        self.events_of = {}
        for e in self.events:  # the store's order within each entity
            self.events_of.setdefault(e.entity, []).append(e)

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
        return int(self.values.size) + sum(t.size for t, _ in self.sparse.values())


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


def _layout(cat: Catalogue, max_points: int
            ) -> tuple[list[tuple[SeriesKey, _Dense]], int] | None:
    """Each catalogued series' place in the flat arrays, or None above ``max_points``."""
    out: list[tuple[SeriesKey, _Dense]] = []
    total = 0
    for ref in sorted(cat.series, key=lambda r: (r.type.value, r.code)):
        for s in cat.series[ref]:
            if s.first is None or s.last is None:
                n, base = 0, 0
            else:
                base = (s.first - s.origin) // s.step
                n = (s.last - s.origin) // s.step - base + 1
            out.append(((ref, s.signal), _Dense(total, base, n, s.step, s.origin)))
            total += n
    return (out, total) if total <= max_points else None


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
                sparse: dict[SeriesKey, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]],
                ) -> None:
    """Place one chunk's points in the dense arrays; a series with a point the layout cannot
    hold goes to ``sparse`` whole (its sorted pairs, read again)."""
    keys = [layout[i][0] for i in run]
    dense = [layout[i][1] for i in run]
    codes = [ref.code for ref, _ in keys]
    res = store.connection.execute(_CHUNK_SQL, [
        codes, [s for _, s in keys], run, [d.offset for d in dense],
        [d.origin + d.base * d.step for d in dense], [d.step for d in dense],
        [d.n for d in dense], keys[0][0].type.value, min(codes), max(codes),
    ]).fetchnumpy()
    idx = np.asarray(res["idx"], dtype=np.int64)
    v = np.ma.filled(np.ma.asarray(res["value"], dtype=np.float64), np.nan)
    bad: npt.NDArray[np.bool_] = np.ma.filled(np.ma.asarray(res["bad"], dtype=bool), True)
    if bad.any():
        sid = np.asarray(res["sid"], dtype=np.int64)
        odd = np.unique(sid[bad])
        for s in odd.tolist():
            (ref, signal), _ = layout[s]
            pairs = store.connection.execute(
                _SERIES_SQL, [ref.type.value, ref.code, signal]).fetchnumpy()
            sparse[(ref, signal)] = (
                np.asarray(pairs["time"], dtype=np.int64),
                np.ma.filled(np.ma.asarray(pairs["value"], dtype=np.float64), np.nan))
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
        events = store.read_events()
        every = store.read_alerts()
    planned = _layout(cat, max_points)
    if planned is None:
        return None
    layout, total = planned
    values = np.full(total, np.nan)
    present = np.zeros(total, dtype=bool)
    sparse: dict[SeriesKey, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
    for run in _chunks(layout, chunk_series):
        with gate.reader() as store:
            if gate.version() != version:
                raise _StaleBuild
            _read_chunk(store, layout, run, values, present, sparse)
    dense = {key: d for key, d in layout if key not in sparse}
    alerts: dict[EntityRef | None, list[Alert]] = {None: every}
    for a in every:
        alerts.setdefault(a.entity, []).append(a)
    return SeriesSnapshot(version, serial, cat, events, alerts, dense, values, present, sparse,
                          build_seconds=time.perf_counter() - t0)


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
        self.builds = 0
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

    def _refresh(self, version: tuple[Hashable, ...]) -> None:
        try:
            built = build_snapshot(self.gate, self.builds + 1, self.max_points)
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
        self.builds += 1
        self.last_error = None
        # The snapshot and everything the app holds long are done growing: move them out
        # of the cyclic collector's reach. A full collection over them paused every request
        # 254 ms, twice in 8 s at 100 clients (gc.callbacks probe, docs/api.md "Load");
        # reference counting still frees an old snapshot.
        gc.freeze()
        with self._changed:
            self.current = built
            self._stale_since = None if built.version == self.gate.version() else (
                self._stale_since or time.monotonic())
            self._changed.notify_all()


