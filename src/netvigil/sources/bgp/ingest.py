"""Backfill: RIB and update archives of many collectors → per-bin BGP visibility facts.

Files are ordered by time (RIBs before updates of the same minute); each collector's routing
state starts at its RIB and is rolled forward by every update element in time order (a k-way
merge across collectors). At each 5-minute boundary the state is measured (value of bin
``[t, t+300)`` = state after every element stamped before ``t+300``) and handed to a
:class:`~netvigil.model.facts.FactSink` as a :class:`~netvigil.model.facts.BgpVisibility` fact;
:class:`netvigil.pipeline.bgp.BgpAggregator` turns it into per-entity points.

Resuming after a crash never double counts: points are upserts keyed by (entity, signal, bin),
and a resumed run replays from the latest RIB of each collector that precedes the first file
not yet recorded as done, recomputing (identically) the bins it rewrites. Progress is a sink
cursor (``bgp:ingest:done``) flushed with the facts it covers. Collectors that send nothing
for a bin are source-health cursors (``bgp:health:<collector>``), never a visibility drop.

Time is bounded by the data, not by a bad stamp (issue 12, defect 4): a record of an update file
stamped more than :data:`RECORD_SLACK` from the file's time is a corrupt record under the error
policy, and a stretch of more than :data:`MAX_FILL_BINS` bins without any element (files years
apart) is one silent span per collector rather than one emitted bin per 5 minutes.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from netvigil.model.facts import FactSink
from netvigil.sources.bgp.fastrib import RibColumns, read_rib_columns
from netvigil.sources.bgp.fastupdates import UpdateColumns, columns_of, read_update_columns
from netvigil.sources.bgp.mrt.errors import ErrorPolicy, ReadStats
from netvigil.sources.bgp.mrt.io import open_mrt
from netvigil.sources.bgp.mrt.reader import MrtReader
from netvigil.sources.bgp.mrt.records import HEADER
from netvigil.sources.bgp.visibility import RoutingState, Snapshot, VisibilityConfig

SOURCE = "bgp"
DONE_KEY = "bgp:ingest:done"
_NAME_TIME = re.compile(r"(\d{8})[.\-_]?(\d{4})")
_COLLECTOR = re.compile(r"^(rrc\d\d|route-views[\w.\-]*|pch[\w.\-]*)$", re.I)
_RIB_NAME = re.compile(r"^(bview|rib)\b", re.I)
# A stretch with no element from any collector longer than this is a source gap, recorded once
# as a silent span of every collector, not MAX_FILL_BINS+ copies of the last state (issue 12,
# defect 4: one bad record time made 11 million bins). One hour: a RIS or RouteViews collector
# with its dozens of peers is never quiet for a whole hour while it is recording.
MAX_FILL_BINS = 12
# A record of an update file stamped further than this before or after the file's time is a
# corrupt record under the policy. Update files span 5 (RIS) or 15 (RouteViews) minutes; the
# slack allows a collector's clock skew and a late rotation.
RECORD_SLACK = 6 * 3600


@dataclass(frozen=True, order=True)
class ArchiveFile:
    time: int
    order: int  # 0 = RIB, 1 = updates (RIBs first at equal times)
    collector: str
    path: Path

    @property
    def is_rib(self) -> bool:
        return self.order == 0

    @property
    def key(self) -> str:
        st = self.path.stat()
        return f"{self.collector}:{self.path.name}:{st.st_size}"


def classify(path: Path, collector: str | None = None) -> ArchiveFile:
    """Collector, kind and time of an archive file, from its name or its first record."""
    coll = collector
    if coll is None:
        for part in reversed(path.resolve().parts[:-1]):
            if _COLLECTOR.match(part):
                coll = part
                break
        else:
            coll = path.parent.name or "collector"
    first_type, first_ts = _peek(path)
    m = _NAME_TIME.search(path.name)
    ts = first_ts
    if m:
        ts = int(datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M").replace(
            tzinfo=UTC).timestamp())
    is_rib = first_type in (12, 13) or (first_type is None and bool(_RIB_NAME.match(path.name)))
    return ArchiveFile(ts, 0 if is_rib else 1, coll, path)


def _peek(path: Path) -> tuple[int | None, int]:
    with open_mrt(path) as s:
        head = s.read(12)
    if len(head) < 12:
        return None, 0
    ts, typ, _sub, _len = HEADER.unpack_from(head)
    return typ, ts


@dataclass
class IngestReport:
    """What a run did. ``bins_without_full_feed`` counts bins where no peer met the full-feed
    rule in either family (those bins are missing, not zero); ``largest_v4``/``threshold_v4``
    are the last snapshot's largest IPv4 table and the count a full-feed peer had to exceed."""

    files: int = 0
    skipped_done: int = 0
    elements: int = 0
    bins: int = 0
    bins_without_full_feed: int = 0
    full_feed_v4: int = 0  # in the last bin
    full_feed_v6: int = 0
    largest_v4: int = 0
    threshold_v4: int = 0
    largest_v6: int = 0
    threshold_v6: int = 0
    problems: list[str] = field(default_factory=list)
    silent: dict[str, list[list[int]]] = field(default_factory=dict)

    @property
    def no_full_feed(self) -> bool:
        """Every bin measured lacked a full-feed peer: the run produced no series."""
        return self.bins > 0 and self.bins_without_full_feed == self.bins

    def note_bin(self, snap: Snapshot) -> None:
        self.bins += 1
        if snap.full_feed_v4 == 0 and snap.full_feed_v6 == 0:
            self.bins_without_full_feed += 1
        self.full_feed_v4, self.full_feed_v6 = snap.full_feed_v4, snap.full_feed_v6
        self.largest_v4, self.threshold_v4 = snap.largest_v4, snap.threshold_v4
        self.largest_v6, self.threshold_v6 = snap.largest_v6, snap.threshold_v6


def rib_from_elems(path: Path, policy: ErrorPolicy) -> RibColumns:
    """TABLE_DUMP v1 (or anything not TABLE_DUMP_V2) through the general reader."""
    from netvigil.sources.bgp.mrt.attributes import format_ip

    reader = MrtReader(path, policy)
    peers: dict[tuple[str, int], int] = {}
    rows: list[tuple[int, int, int, int, int]] = []
    ts = 0
    for e in reader:
        if e.kind != "B" or e.nlri is None:
            continue
        ts = ts or e.timestamp
        g = peers.setdefault((format_ip(e.peer_ip), e.peer_asn), len(peers))
        width = 4 if e.nlri.afi == 1 else 8
        o = e.attrs.origin_asns() if e.attrs else ()
        rows.append((g, e.nlri.afi, int.from_bytes(e.nlri.addr[:width], "big"), e.nlri.plen,
                     o[-1] if o else 0))
    arr = np.array(rows, dtype=np.uint64).reshape(-1, 5)
    cols = RibColumns(ts, [p[0] for p in peers], [p[1] for p in peers], "", stats=reader.stats)
    cols.peer = arr[:, 0].astype(np.int32)
    cols.afi = arr[:, 1].astype(np.uint8)
    cols.net = arr[:, 2]
    cols.plen = arr[:, 3].astype(np.uint8)
    cols.origin = arr[:, 4].astype(np.uint32)
    return cols


class BgpIngester:
    """Turns archives into per-bin :class:`BgpVisibility` facts handed to a :class:`FactSink`.

    The sink (normally :class:`netvigil.pipeline.Pipeline`) turns facts into series; the
    ingester only keeps its progress (``bgp:ingest:done``) and source health
    (``bgp:health:<collector>``) as cursors flushed with the facts, so points and progress
    become durable together.
    """

    def __init__(
        self,
        sink: FactSink,
        config: VisibilityConfig | None = None,
        policy: ErrorPolicy = ErrorPolicy.SKIP,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.sink = sink
        self.config = config or VisibilityConfig()
        self.policy = policy
        self.progress = progress or (lambda _msg: None)
        self.state = RoutingState(self.config)

    # -------------------------------------------------------------- planning
    def _done(self) -> set[str]:
        return set(json.loads(self.sink.cursor(DONE_KEY) or "[]"))

    def plan(self, files: Sequence[ArchiveFile]) -> tuple[list[ArchiveFile], int]:
        """Files to (re)process, in order, and how many were already done and not replayed."""
        done = self._done()
        ordered = sorted(files)
        pending = [f for f in ordered if f.key not in done]
        if not pending:
            return [], len(ordered)
        first = pending[0].time
        start = len(ordered)
        for coll in {f.collector for f in ordered}:
            ribs = [i for i, f in enumerate(ordered)
                    if f.collector == coll and f.is_rib and f.time <= first]
            cand = ribs[-1] if ribs else next(
                (i for i, f in enumerate(ordered) if f.collector == coll), len(ordered))
            start = min(start, cand)
        todo = ordered[start:]
        return todo, len(ordered) - len(todo)

    # -------------------------------------------------------------- running
    def run(self, files: Sequence[ArchiveFile], end: int | None = None) -> IngestReport:
        """Ingest ``files`` (those :meth:`plan` keeps). ``end``: the caller keeps only the bins
        before the one holding ``end`` (an epoch of :mod:`netvigil.distributed.bgp`), so the
        run stops at the first RIB at or after ``end`` reached once every bin before that bin
        is closed: loading it, and measuring the bins it opens, can change no bin the caller
        keeps (bins only close forward). It saved an epoch's worker two RIB reads and a
        snapshot, 9 % of its CPU, on the scaling benchmark (docs/scaling.md)."""
        todo, skipped = self.plan(files)
        rep = IngestReport(files=len(todo), skipped_done=skipped)
        if not todo:
            return rep
        done = self._done()
        step = self.config.step
        collectors = sorted({f.collector for f in todo})
        # group: consecutive updates between RIB loads are merged in time order
        i = 0
        bin_start: int | None = None
        last_snap: Snapshot | None = None
        active: dict[str, int] = {}
        stopped = False
        while i < len(todo):
            f = todo[i]
            if f.is_rib and end is not None and f.time >= end and bin_start is not None \
                    and bin_start >= end // step * step:
                stopped = True
                break
            if f.is_rib:
                cols = self._read_rib(f.path, rep)
                t = cols.timestamp or f.time
                if abs(t - f.time) > RECORD_SLACK:
                    rep.problems.append(f"{f.path.name}: RIB time {t} far from the file's time "
                                        f"{f.time}; using the file's time")
                    t = f.time
                if bin_start is None:
                    bin_start = t // step * step
                else:
                    bin_start, last_snap, active = self._roll(bin_start, t, last_snap, active,
                                                              collectors, rep)
                    # progress with the bins and health it covers: a resumed run restarts
                    # at this RIB, and everything before its bin is written (crash safety)
                    self.sink.flush({DONE_KEY: json.dumps(sorted(done)),
                                     **health_cursors(self.sink, rep.silent)})
                self.state.load_rib(f.collector, cols)
                rep.elements += len(cols)
                last_snap = None
                active[f.collector] = 1
                done.add(f.key)
                i += 1
                continue
            j = i
            while j < len(todo) and not todo[j].is_rib:
                j += 1
            group = todo[i:j]
            bin_start, last_snap, active = self._apply_group(group, bin_start, last_snap,
                                                             active, collectors, rep)
            for g in group:
                done.add(g.key)
            i = j
            if bin_start is not None:
                # the group's files end at their nominal end: close the bins they covered
                group_end = max(g.time for g in group) + step
                bin_start, last_snap, active = self._roll(bin_start, group_end, last_snap,
                                                          active, collectors, rep)
            # not flushed as done here: the open bin and the health spans of the group are
            # written only by the next RIB's flush or the final one, and a file must not be
            # "done" before they are (a kill between the two lost them for good, issue 12)
        if bin_start is not None and not stopped and (active or last_snap is None):
            self._emit(bin_start, last_snap, active, collectors, rep)
        cursors = {DONE_KEY: json.dumps(sorted(done))}
        cursors.update(health_cursors(self.sink, rep.silent))
        self.sink.flush(cursors)
        return rep

    def _read_rib(self, path: Path, rep: IngestReport) -> RibColumns:
        with open_mrt(path) as s:
            head = s.read(12)
        typ = HEADER.unpack_from(head)[1] if len(head) >= 12 else 13
        cols = read_rib_columns(path, self.policy) if typ == 13 else rib_from_elems(
            path, self.policy)
        self._note(path, cols.stats, rep)
        self.progress(f"rib {path.name}: {len(cols)} routes")
        return cols

    def _columns(self, f: ArchiveFile, rep: IngestReport, work: int) -> UpdateColumns:
        """The elements of update file ``f`` as rows: the compiled reader, else the full
        one (:mod:`netvigil.sources.bgp.fastupdates`); its records must lie within
        ``RECORD_SLACK`` of the file's time."""
        window = (f.time - RECORD_SLACK, f.time + RECORD_SLACK)
        got = read_update_columns(f.path, self.policy, window, work)
        if got is None:
            reader = MrtReader(f.path, self.policy, time_window=window)
            got = columns_of(reader), reader.stats
        cols, stats = got
        self._note(f.path, stats, rep)
        return cols

    def _apply_group(self, group: Sequence[ArchiveFile], bin_start: int | None,
                     last: Snapshot | None, active: dict[str, int], collectors: list[str],
                     rep: IngestReport) -> tuple[int | None, Snapshot | None, dict[str, int]]:
        """Roll the state through consecutive update files (no RIB between them).

        Their elements are taken in the order ``heapq.merge`` of the files by element time
        gives (ties: the earlier file; within a file, file order), and each is applied in
        the bin open when it comes: a bin closes (:meth:`_roll`) at the first element at
        or after its end. Per bin, the state takes the bin's rows at once
        (:meth:`RoutingState.apply_columns`), so the per-element work is compiled or
        vectorised; the result is the one of applying them one at a time."""
        work = sum(g.path.stat().st_size for g in group)
        parts = [self._columns(g, rep, work) for g in group]
        n = sum(len(c) for c in parts)
        if not n:
            return bin_start, last, active
        times = np.concatenate([c.time for c in parts])
        order = merge_order([c.time for c in parts])
        t = times[order]
        # rows' peers: registered in order of first use, as one element at a time does
        file_of = np.repeat(np.arange(len(parts)), [len(c) for c in parts])
        base = np.cumsum([0] + [len(c.peers) for c in parts])
        peer = (np.concatenate([c.peer for c in parts]).astype(np.int64) + base[file_of])[order]
        _, first = np.unique(peer, return_index=True)
        gid_of = np.zeros(int(base[-1]), np.int64)
        for k in np.sort(first).tolist():
            p = int(peer[k])
            f = int(np.searchsorted(base, p, side="right")) - 1
            addr, asn = parts[f].peers[p - int(base[f])]
            gid_of[p] = self.state.peer_id(group[f].collector, addr, asn)
        gid = gid_of[peer]
        coll = file_of[order]
        kind, afi, net, plen, origin = (np.concatenate([getattr(c, a) for c in parts])[order]
                                        for a in ("kind", "afi", "net", "plen", "origin"))
        step = self.config.step
        if bin_start is None:
            bin_start = int(t[0]) // step * step
        # element i closes bins iff its bin is past every earlier element's (and the open one)
        fl = t // step * step
        seen = np.maximum.accumulate(np.concatenate([[bin_start], fl[:-1]]))
        starts = np.flatnonzero(fl > seen).tolist()
        bounds = [0, *[s for s in starts if s > 0], n]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            bin_start, last, active = self._roll(bin_start, int(t[lo]), last, active,
                                                 collectors, rep)
            self.state.apply_columns(gid[lo:hi], kind[lo:hi], afi[lo:hi], net[lo:hi],
                                     plen[lo:hi], origin[lo:hi])
            for f in np.unique(coll[lo:hi]).tolist():
                active[group[f].collector] = 1
            last = None
            rep.elements += hi - lo
        return bin_start, last, active

    @staticmethod
    def _note(path: Path, stats: ReadStats, rep: IngestReport) -> None:
        if not stats.ok:
            rep.problems.append(
                f"{path.name}: skipped {stats.skipped}, truncated {stats.truncated}"
                + (f" (first at byte {stats.problems[0][0]}: {stats.problems[0][2]})"
                   if stats.problems else ""))

    def _roll(self, bin_start: int, ts: int, last: Snapshot | None, active: dict[str, int],
              collectors: list[str], rep: IngestReport
              ) -> tuple[int, Snapshot | None, dict[str, int]]:
        """Close the bins before the one holding ``ts``; returns (open bin, snapshot, active).

        Up to :data:`MAX_FILL_BINS` empty bins carry the state forward (nothing changed); a
        longer gap is one missing span — a silent span of every collector in the health
        cursors — and the open bin jumps to ``ts``, so time and memory do not grow with it.
        """
        step = self.config.step
        if ts < bin_start + step:
            return bin_start, last, active
        last = self._emit(bin_start, last, active, collectors, rep)
        active = {}
        bin_start += step
        target = ts // step * step
        if target - bin_start > MAX_FILL_BINS * step:
            for coll in collectors:
                _add_span(rep.silent, coll, bin_start, target)
            return target, None, active
        while bin_start < target:
            last = self._emit(bin_start, last, active, collectors, rep)
            bin_start += step
        return bin_start, last, active

    def _emit(self, t: int, last: Snapshot | None, active: dict[str, int],
              collectors: list[str], rep: IngestReport) -> Snapshot:
        """Measure bin ``[t, t+step)`` (state after every element before its end) and emit it."""
        snap = last if last is not None else self.state.snapshot(t + self.config.step)
        silent = tuple(c for c in collectors if c not in active)
        for coll in silent:
            _add_span(rep.silent, coll, t, t + self.config.step)
        self.sink.emit(snap.to_fact(t, self.config.step, silent))
        rep.note_bin(snap)
        return snap


def merge_order(times: Sequence[npt.NDArray[np.int64]]) -> npt.NDArray[np.int64]:
    """Positions (in the concatenation of ``times``) in the order ``heapq.merge`` of the
    streams by time yields them: the smallest head first, ties to the earlier stream. For
    streams in time order that is a stable sort; a stream out of order (a record stamped
    before its predecessor) is merged as ``heapq.merge`` does it, head by head."""
    if all(bool(np.all(t[1:] >= t[:-1])) for t in times):
        return np.argsort(np.concatenate(times), kind="stable")
    offsets = np.cumsum([0] + [len(t) for t in times])
    streams = [zip(t.tolist(), range(int(o), int(o) + len(t)), strict=True)
               for t, o in zip(times, offsets, strict=False)]
    return np.fromiter((k for _, k in heapq.merge(*streams)), np.int64, int(offsets[-1]))


def _add_span(silent: dict[str, list[list[int]]], coll: str, a: int, b: int) -> None:
    spans = silent.setdefault(coll, [])
    if spans and spans[-1][1] == a:
        spans[-1][1] = b
    else:
        spans.append([a, b])


def health_cursors(sink: FactSink, silent: dict[str, list[list[int]]]) -> dict[str, str]:
    """``bgp:health:<collector>`` cursors: stored silent spans merged with this run's."""
    out: dict[str, str] = {}
    for coll, spans in silent.items():
        key = f"bgp:health:{coll}"
        old = json.loads(sink.cursor(key) or "[]")
        out[key] = json.dumps(_merge_spans(old + spans))
    return out


def _merge_spans(spans: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def discover(paths: Sequence[Path], directory: Path | None, collector: str | None
             ) -> list[ArchiveFile]:
    found: list[Path] = list(paths)
    if directory is not None:
        found += sorted(p for p in directory.rglob("*")
                        if p.is_file() and not p.name.startswith("."))
    return [classify(p, collector) for p in found]
