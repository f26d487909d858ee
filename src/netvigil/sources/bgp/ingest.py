"""Backfill: RIB and update archives of many collectors → ``bgp`` / ``bgp-v6`` series.

Files are ordered by time (RIBs before updates of the same minute); each collector's routing
state starts at its RIB and is rolled forward by every update element in time order (a k-way
merge across collectors). At each 5-minute boundary the state is measured (value of bin
``[t, t+300)`` = state after every element stamped before ``t+300``) and per-entity counts are
upserted into the store.

Resuming after a crash never double counts: points are upserts keyed by (entity, signal, bin),
and a resumed run replays from the latest RIB of each collector that precedes the first file
not yet recorded as done, recomputing (identically) the bins it rewrites. Progress lives in the
store's state table (``bgp:ingest:done``). Collectors that send nothing for a bin are recorded
as source-health facts (``bgp:health:<collector>``), never as a visibility drop.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from netvigil.geo import GeoLookup
from netvigil.model.entities import EntityType, make_ref
from netvigil.model.errors import InvalidEntity
from netvigil.sources.bgp.fastrib import RibColumns, read_rib_columns
from netvigil.sources.bgp.mrt.elem import BgpElem
from netvigil.sources.bgp.mrt.errors import ErrorPolicy, ReadStats
from netvigil.sources.bgp.mrt.io import open_mrt
from netvigil.sources.bgp.mrt.reader import MrtReader
from netvigil.sources.bgp.mrt.records import HEADER
from netvigil.sources.bgp.visibility import RoutingState, Snapshot, VisibilityConfig
from netvigil.store.duck import Store

SOURCE = "bgp"
DONE_KEY = "bgp:ingest:done"
_NAME_TIME = re.compile(r"(\d{8})[.\-_]?(\d{4})")
_COLLECTOR = re.compile(r"^(rrc\d\d|route-views[\w.\-]*|pch[\w.\-]*)$", re.I)
_RIB_NAME = re.compile(r"^(bview|rib)\b", re.I)
_UNSEEN = -2  # region map entry for a /24 not looked up yet (-1 = looked up, no region)


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
    files: int = 0
    skipped_done: int = 0
    elements: int = 0
    bins: int = 0
    points: int = 0
    problems: list[str] = field(default_factory=list)
    silent: dict[str, list[list[int]]] = field(default_factory=dict)


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
    """Turns archives into series in a store. ``geo`` places /24s in countries as of each bin."""

    def __init__(
        self,
        store: Store,
        geo: GeoLookup | None = None,
        config: VisibilityConfig | None = None,
        policy: ErrorPolicy = ErrorPolicy.SKIP,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.geo = geo if geo is not None else GeoLookup.default()
        self.config = config or VisibilityConfig()
        self.policy = policy
        self.progress = progress or (lambda _msg: None)
        self.state = RoutingState(self.config)
        self._seen: set[tuple[str, str, str]] = set()
        self._pending: list[tuple[str, str, str, int, float]] = []
        # Region of every /24 looked up so far (dense over the IPv4 /24 space, built lazily
        # and only when the lookup has a region mmdb): each /24 is looked up once per run.
        self._region_map: npt.NDArray[np.int16] | None = None
        self._regions: list[str] = []
        self._region_index: dict[str, int] = {}

    # -------------------------------------------------------------- planning
    def plan(self, files: Sequence[ArchiveFile]) -> tuple[list[ArchiveFile], int]:
        """Files to (re)process, in order, and how many were already done and not replayed."""
        done = set(json.loads(self.store.get_state(DONE_KEY) or "[]"))
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
    def run(self, files: Sequence[ArchiveFile]) -> IngestReport:
        todo, skipped = self.plan(files)
        rep = IngestReport(files=len(todo), skipped_done=skipped)
        if not todo:
            return rep
        done = set(json.loads(self.store.get_state(DONE_KEY) or "[]"))
        step = self.config.step
        collectors = sorted({f.collector for f in todo})
        # group: consecutive updates between RIB loads are merged in time order
        i = 0
        bin_start: int | None = None
        last_snap: Snapshot | None = None
        active: dict[str, int] = {}
        while i < len(todo):
            f = todo[i]
            if f.is_rib:
                cols = self._read_rib(f.path, rep)
                self.state.load_rib(f.collector, cols)
                rep.elements += len(cols)
                t = cols.timestamp or f.time
                if bin_start is None:
                    bin_start = t // step * step
                last_snap = None
                active[f.collector] = 1
                done.add(f.key)
                i += 1
                continue
            j = i
            while j < len(todo) and not todo[j].is_rib:
                j += 1
            group = todo[i:j]
            streams = [self._elems(g, rep) for g in group]
            for ts, coll, e in heapq.merge(*streams, key=lambda x: x[0]):
                if bin_start is None:
                    bin_start = ts // step * step
                while ts >= bin_start + step:
                    last_snap = self._emit(bin_start, last_snap, active, collectors, rep)
                    active = {}
                    bin_start += step
                self.state.apply(coll, e)
                active[coll] = 1
                last_snap = None
                rep.elements += 1
            for g in group:
                done.add(g.key)
            i = j
            if bin_start is not None:
                # the group's files end at their nominal end: close the bins they covered
                group_end = max(g.time for g in group) + step
                while bin_start + step <= group_end:
                    last_snap = self._emit(bin_start, last_snap, active, collectors, rep)
                    active = {}
                    bin_start += step
            with self.store.transaction():  # points and progress commit together
                self._flush(rep)
                self.store.set_state(DONE_KEY, json.dumps(sorted(done)))
        if bin_start is not None and (active or last_snap is None):
            self._emit(bin_start, last_snap, active, collectors, rep)
        with self.store.transaction():
            self._flush(rep)
            self.store.set_state(DONE_KEY, json.dumps(sorted(done)))
            for coll, spans in rep.silent.items():
                key = f"bgp:health:{coll}"
                old = json.loads(self.store.get_state(key) or "[]")
                merged = _merge_spans(old + spans)
                self.store.set_state(key, json.dumps(merged))
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

    def _elems(self, f: ArchiveFile, rep: IngestReport) -> Iterator[tuple[int, str, BgpElem]]:
        reader = MrtReader(f.path, self.policy)
        for e in reader:
            yield e.timestamp, f.collector, e
        self._note(f.path, reader.stats, rep)

    @staticmethod
    def _note(path: Path, stats: ReadStats, rep: IngestReport) -> None:
        if not stats.ok:
            rep.problems.append(
                f"{path.name}: skipped {stats.skipped}, truncated {stats.truncated}"
                + (f" (first at byte {stats.problems[0][0]}: {stats.problems[0][2]})"
                   if stats.problems else ""))

    def _emit(self, t: int, last: Snapshot | None, active: dict[str, int],
              collectors: list[str], rep: IngestReport) -> Snapshot:
        snap = last if last is not None else self.state.snapshot(t + self.config.step)
        for coll in collectors:
            if coll not in active:
                spans = rep.silent.setdefault(coll, [])
                if spans and spans[-1][1] == t:
                    spans[-1][1] = t + self.config.step
                else:
                    spans.append([t, t + self.config.step])
        self._points(t, snap)
        rep.bins += 1
        return snap

    def _points(self, t: int, snap: Snapshot) -> None:
        counts: dict[tuple[str, str, str], float] = {}
        if snap.v4_blocks.size:
            loc = self.geo.bulk_blocks(snap.v4_blocks, t)
            ci = loc.country_idx.astype(np.int64)
            ok = ci >= 0
            if ok.any():
                bc = np.bincount(ci[ok], minlength=len(loc.countries))
                for idx in np.flatnonzero(bc):
                    counts[(EntityType.COUNTRY.value, loc.countries[idx], "bgp")] = float(bc[idx])
            if self.geo.has_regions:
                ri = self._regions_of(snap.v4_blocks).astype(np.int64)
                ok = ri >= 0
                if ok.any():
                    bc = np.bincount(ri[ok], minlength=len(self._regions))
                    for idx in np.flatnonzero(bc):
                        counts[(EntityType.REGION.value, self._regions[idx], "bgp")] = float(
                            bc[idx])
            asns, n = np.unique(snap.v4_origin, return_counts=True)
            for a, c in zip(asns.tolist(), n.tolist(), strict=True):
                if a:
                    counts[(EntityType.ASN.value, str(a), "bgp")] = float(c)
        for a, c in snap.v6_by_origin.items():
            if a:
                counts[(EntityType.ASN.value, str(a), "bgp-v6")] = float(c)
        if snap.v6_starts.size:
            rng = self.geo.country_ranges_v6(t)
            per = overlap_by_value(snap.v6_starts, snap.v6_ends, rng.starts, rng.ends,
                                   rng.country_idx, len(rng.countries))
            for idx in np.flatnonzero(per):
                counts[(EntityType.COUNTRY.value, rng.countries[idx], "bgp-v6")] = float(per[idx])
        # an entity measured before and absent now is a measured zero (a withdrawn country)
        for k in self._seen:
            counts.setdefault(k, 0.0)
        self._seen.update(counts)
        for (et, code, sig), v in counts.items():
            self._pending.append((et, code, sig, t, v))

    def _regions_of(self, blocks: npt.NDArray[np.uint32]) -> npt.NDArray[np.int16]:
        """Index into ``self._regions`` of each /24 (−1 = none); the mmdb is asked only
        about /24s never seen before in this run (:meth:`GeoLookup.bulk_regions`)."""
        if self._region_map is None:
            self._region_map = np.full(1 << 24, _UNSEEN, dtype=np.int16)
        rmap = self._region_map
        slots = blocks >> np.uint32(8)
        idx: npt.NDArray[np.int16] = rmap[slots]
        miss = idx == _UNSEEN
        if miss.any():
            new = slots[miss]
            found = self.geo.bulk_regions(new << np.uint32(8))
            remap = np.array([*map(self._region_slot, found.regions), -1], dtype=np.int16)
            rmap[new] = remap[found.region_idx]
            idx = rmap[slots]
        return idx

    def _region_slot(self, code: str) -> int:
        """Stable index of a region code in this run (−1 for a code that is not ISO 3166-2)."""
        k = self._region_index.get(code)
        if k is None:
            try:
                canon = make_ref(EntityType.REGION, code).code
            except InvalidEntity:
                k = -1
            else:
                k = len(self._regions)
                self._regions.append(canon)
            self._region_index[code] = k
        return k

    def _flush(self, rep: IngestReport) -> None:
        if not self._pending:
            return
        et, code, sig, t, v = zip(*self._pending, strict=True)
        with self.store.transaction():
            res = self.store.write_points(
                list(et), list(code), list(sig), np.asarray(t, dtype=np.int64),
                np.asarray(v, dtype=np.float64), source=SOURCE, step=self.config.step,
            )
        rep.points += res.written
        self._pending = []


def overlap_by_value(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64],
                     starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64],
                     values: npt.NDArray[np.int64], n_values: int) -> npt.NDArray[np.int64]:
    """Per value, the length of ``∪[a, b)`` inside the ranges ``[starts, ends)`` carrying it.

    Both lists are sorted and disjoint. ``F(x)`` = covered length below ``x`` is the length of
    the intervals ending by ``x`` plus the part of the one straddling it (one searchsorted per
    range bound), so each range's overlap is ``F(end) − F(start)``.
    """
    out = np.zeros(n_values, dtype=np.int64)
    if a.size == 0 or starts.size == 0:
        return out
    cum = np.concatenate([[0], np.cumsum(b - a)])

    def covered_below(x: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        i = np.searchsorted(a, x, side="right")  # intervals starting before x
        j = np.maximum(i - 1, 0)
        part = np.where(i > 0, np.clip(x - a[j], 0, b[j] - a[j]), 0)
        res: npt.NDArray[np.int64] = cum[j] + part
        return np.where(i > 0, res, 0)

    lens = covered_below(ends) - covered_below(starts)
    ok = (lens > 0) & (values >= 0)
    np.add.at(out, values[ok], lens[ok])
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
