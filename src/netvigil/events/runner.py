"""Detection orchestration, the public entry point: series -> alerts -> events.

:func:`run_detection` is what the demo, ``netvigil detect`` and the observatory loop call.
It lives in ``events`` (above ``detect`` in the tier order) because it also rebuilds events.

Incremental, set-based (issue 7). For a detector (``registry.DEFAULT`` by default, any
:class:`netvigil.detect.protocol.Detector`) every judged series has one ``detector_state``
row: ``config`` (the digest of the rule it was built with), ``cursor`` (the last stored time
consumed) and ``state`` = 8 bytes little-endian *rows consumed* (stored rows, NULL values
included, with ``time <= cursor``) and 8 bytes *rewrites seen* (``series.rewrites``, which
every write that changes a stored value increments) followed by the detector's own opaque
state. One run:

1. one statement reads every series row (grid, bounds ``n_points``/``last_time`` kept by
   the store on write) joined with its state;
2. a series is **recomputed from scratch** when it has no state, its rule digest changed,
   or a write landed at or before its cursor. Inserts are detected by counting: rows with
   ``time > cursor`` are read, and if ``n_points != consumed + new rows`` some row was
   inserted at or before the cursor (a backfill: a late bin, a NULL row, a point before the
   first); a changed value by ``series.rewrites`` differing from the rewrites seen (a
   correction; also one after the cursor, which costs a needless recomputation but is
   rare: sources rewrite a bin only when a late report or a restart re-emits it). Its
   alerts are deleted and the whole series is fed again. A series with
   ``last_time <= cursor``, matching counts and no rewrite is **unchanged** and not touched;
3. one statement reads the new rows of all other changed series (``time > cursor``), one
   more the whole history of the recomputed ones; the detector advances all of them in
   one call; alerts are appended and states upserted in one statement each;
4. events are rebuilt for the touched entities only: those with new alerts, recomputed
   series, or an event still open (its score grows with every new bin). One statement
   reads their stored events (and their siblings'), one their alerts from a clean cut
   before the earliest change (:func:`_clean_cut`; from the first alert for recomputed
   series), one the points from that cut, one DELETE and one INSERT replace the changed
   events; settled events before the cut keep their rows unless their assessment can
   depend on what changed (:func:`_rebuild_events`). The countries above touched regions
   and ASes (national roll-ups, :mod:`netvigil.events.fusion`) are cut the same way, one
   simultaneity window earlier and outside their roll-up spans, reading only the
   children's events alive after the cut (:func:`_country_cut`); every rebuilt event gets
   its assessment and carries the history of the stored one it
   replaces. The result equals ``rebuild=True`` (``tests/test_events_incremental.py``).

Everything from step 3 on runs in one transaction: a failure leaves alerts, events and
states as they were. Re-running without new data changes nothing.

Partitioning. Alerts depend on one series only, and events on the alerts of one entity, so
the unit of work is the **entity**: partition key ``entity.fqid`` (``shard=(i, n)`` keeps
entities with ``crc32(fqid) % n == i``). Runs on different shards touch disjoint alerts,
events and state rows and can go in parallel. Across time, a window ``[t0, t1)`` can be
processed independently if it is read with a look-back of ``history + maxduration``
(14 days for the 7-day rules) so MovingStat is warm and its inpainting state is settled;
events open at ``t1`` are flagged ``overlaps_window`` in CODF and must be joined with the
next window (the same as ioda-api's ``extendWindow``).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from netvigil.detect.protocol import Detector, DetectorRule, PointChunk
from netvigil.detect.registry import default_detector
from netvigil.events import classification, fusion
from netvigil.events.build import build_events
from netvigil.events.rules import CONFIDENCE_RULE
from netvigil.geo.entities import default_registry
from netvigil.model import Alert, EntityRef, EntityType, Event, EventKind, Observed, Scope
from netvigil.store.detection import PointColumns, SeriesKeys
from netvigil.store.duck import Store

_NEG = -(2**62)
_INF = 2**62
_ENVELOPE = 16  # bytes: rows consumed, rewrites seen (int64 LE) before the detector's state


@dataclass(frozen=True)
class DetectionReport:
    series_examined: int
    series_recomputed: int  # from scratch: new series, rule changed, or backfilled
    series_unchanged: int
    series_skipped: int  # signals the detector does not judge (higher is worse)
    alerts_written: int
    entities_touched: int
    events_written: int
    series_updated: int = 0  # resumed from their state with new points
    points_read: int = 0


def in_shard(entity: EntityRef, shard: tuple[int, int] | None) -> bool:
    """Partition key on the entity axis: ``crc32(fqid) % count == index``."""
    if shard is None:
        return True
    index, count = shard
    return zlib.crc32(entity.fqid.encode()) % count == index


def _csr(points: PointColumns, n: int) -> npt.NDArray[np.int64]:
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(points.idx, minlength=n), out=offsets[1:])
    return offsets


def run_detection(
    store: Store,
    entity: EntityRef | None = None,
    *,
    shard: tuple[int, int] | None = None,
    detector: Detector | None = None,
    rebuild: bool = False,
) -> DetectionReport:
    """Detect on every changed series (optionally one entity / one shard); update events.

    ``rebuild`` recomputes every selected series from scratch (after a correction the
    count check cannot see, or to verify the incremental state).
    """
    det: Detector = detector if detector is not None else default_detector()
    method = det.method
    view = store.detection_view(method)
    keys = view.keys
    n_all = len(keys)
    types, codes, signals = keys.entity_type.tolist(), keys.entity_code.tolist(), \
        keys.signal.tolist()
    etypes = {t: EntityType(t) for t in set(types)}
    refs = [EntityRef(etypes[t], c) for t, c in zip(types, codes, strict=True)]

    rules: dict[str, DetectorRule | None] = {}
    digests: dict[str, str] = {}
    examined = skipped = unchanged = 0
    scratch: list[int] = []
    resume: list[int] = []
    for i in range(n_all):
        ref = refs[i]
        if (entity is not None and ref != entity) or not in_shard(ref, shard):
            continue
        examined += 1
        sig = signals[i]
        if sig not in rules:
            rules[sig] = found = det.configure(sig)
            if found is not None:
                digests[sig] = found.digest()
        if rules[sig] is None:
            skipped += 1
            continue
        if view.n_points[i] == 0:
            unchanged += 1
            continue
        blob = view.state[i]
        if rebuild or blob is None or view.config[i] != digests[sig]:
            scratch.append(i)
            continue
        consumed = int.from_bytes(blob[:8], "little", signed=True)
        if int.from_bytes(blob[8:_ENVELOPE], "little", signed=True) != view.rewrites[i]:
            scratch.append(i)  # a stored value changed since the state was saved
        elif view.last_time[i] > view.cursor[i]:
            resume.append(i)
        elif view.n_points[i] != consumed:
            scratch.append(i)  # rows added at or before the cursor
        else:
            unchanged += 1

    # new rows of resumed series; a count mismatch sends a series to the scratch list
    res_idx = np.array(resume, dtype=np.int64)
    new_pts = store.read_points_after(keys.take(res_idx), view.cursor[res_idx])
    counts = np.bincount(new_pts.idx, minlength=len(resume))
    consumed_before = np.array(
        [int.from_bytes(view.state[i][:8], "little", signed=True) for i in resume],
        dtype=np.int64)
    ok = view.n_points[res_idx] == consumed_before + counts
    if not ok.all():
        scratch += res_idx[~ok].tolist()
        keep = np.flatnonzero(ok)
        remap = np.full(len(resume), -1, np.int64)
        remap[keep] = np.arange(len(keep))
        sel = ok[new_pts.idx]
        new_pts = PointColumns(remap[new_pts.idx[sel]], new_pts.time[sel], new_pts.value[sel])
        res_idx = res_idx[keep]
        consumed_before = consumed_before[keep]
    scr_idx = np.array(sorted(scratch), dtype=np.int64)
    full_pts = store.read_points_after(keys.take(scr_idx),
                                       np.full(len(scr_idx), _NEG, np.int64))

    # one detector call for both groups: resumed first, then scratch
    order = np.concatenate([res_idx, scr_idx]).astype(np.int64)
    n_run = len(order)
    idx, times, values = _stack(new_pts, full_pts, len(res_idx))
    offsets = _csr(PointColumns(idx, times, values), n_run)
    states_in: list[bytes | None] = [view.state[i][_ENVELOPE:] for i in res_idx.tolist()]
    states_in += [None] * len(scr_idx)
    chunk = PointChunk([(refs[i], signals[i]) for i in order.tolist()], offsets, times,
                       values)
    if n_run == 0:
        return DetectionReport(examined, 0, unchanged, skipped, 0, 0, 0, 0, 0)
    upd = det.update(chunk, states_in)

    n_rows = np.diff(offsets)
    consumed_after = np.concatenate([consumed_before, np.zeros(len(scr_idx), np.int64)])
    consumed_after = consumed_after + n_rows
    last_seen = np.full(n_run, _NEG, np.int64)
    nonempty = n_rows > 0
    last_seen[nonempty] = times[offsets[1:][nonempty] - 1]
    cursor = np.maximum(view.cursor[order], last_seen)
    cursor[len(res_idx):] = last_seen[len(res_idx):]
    envelopes = [int(c).to_bytes(8, "little", signed=True)
                 + int(w).to_bytes(8, "little", signed=True) + s
                 for c, w, s in zip(consumed_after.tolist(), view.rewrites[order].tolist(),
                                    upd.states, strict=True)]
    configs = [digests[signals[i]] for i in order.tolist()]

    touched: set[EntityRef] = {a.entity for a in upd.alerts}
    touched.update(refs[i] for i in scr_idx.tolist())
    touched.update(refs[order[k]] for k in np.flatnonzero(upd.open_before).tolist())
    surge_signals = set(classification.load_config()["evidence"]["circumvention-surge"]
                        ["signals"])  # new days can found a demand event without an alert
    touched.update(refs[i] for i, n in zip(res_idx.tolist(), n_rows[:len(res_idx)].tolist(),
                                           strict=True) if n and signals[i] in surge_signals)
    ents = sorted(touched, key=lambda e: (e.type.value, e.code))
    changed = _changed_from(upd.alerts, [refs[i] for i in res_idx.tolist()],
                            view.cursor[res_idx], n_rows[:len(res_idx)],
                            [refs[i] for i in scr_idx.tolist()])
    with store.transaction():
        store.append_alerts(method, upd.alerts, replace=keys.take(scr_idx))
        store.write_detector_states(method, keys.take(order), configs, cursor, envelopes)
        held = _Held({int(i): (int(offsets[k]), int(offsets[k + 1]))
                      for k, i in enumerate(order.tolist()) if k >= len(res_idx)},
                     times, values)  # the scratch series: read whole above
        replaced, events, kept = _rebuild_events(store, ents, refs, signals, view.step,
                                                 view.origin, keys, changed, view.last_time,
                                                 held)
        store.replace_events_of(replaced, events, keep=kept)
    return DetectionReport(
        series_examined=examined, series_recomputed=len(scr_idx),
        series_unchanged=unchanged, series_skipped=skipped, alerts_written=len(upd.alerts),
        entities_touched=len(ents), events_written=len(events),
        series_updated=len(res_idx), points_read=len(times))


def _stack(first: PointColumns, second: PointColumns, shift: int
           ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The two reads as one point list, ``second``'s series numbered after ``first``'s.
    When one read is empty (a first run reads no resumed series, a routine run mostly no
    scratch series) its partner's columns are used as they are: at 41.5 M points the copy
    was 1.3 GB of fresh pages for nothing (docs/scaling.md)."""
    if len(second.idx) == 0:
        return first.idx, first.time, first.value
    if len(first.idx) == 0:
        return (second.idx + shift if shift else second.idx), second.time, second.value
    return (np.concatenate([first.idx, second.idx + shift]),
            np.concatenate([first.time, second.time]),
            np.concatenate([first.value, second.value]))


def _changed_from(alerts: Sequence[Alert], resumed: Sequence[EntityRef],
                  cursors: npt.NDArray[np.int64], new_rows: npt.NDArray[np.int64],
                  scratch: Sequence[EntityRef]) -> dict[EntityRef, int]:
    """Per entity, the earliest time this run changed: a new alert, or the first new row
    (after the saved cursor) of a resumed series; ``_NEG`` when a series was recomputed
    (its alerts were replaced from the start). Everything of the entity before it is as
    the previous run left it."""
    out: dict[EntityRef, int] = {}
    for ref, c, n in zip(resumed, cursors.tolist(), new_rows.tolist(), strict=True):
        if n > 0:
            out[ref] = min(out.get(ref, c + 1), c + 1)
    for a in alerts:
        out[a.entity] = min(out.get(a.entity, a.time), a.time)
    for ref in scratch:
        out[ref] = _NEG
    return out


def _clean_cut(old: Sequence[Event], t: int) -> int:
    """The latest time <= ``t`` that no stored event of the entity spans.

    Alerts only append after ``t``, so every stored event ending at or before the cut is
    also an event of a rebuild from scratch, with the same evidence: a per-signal event
    closes at its ``normal`` alert, and a merged group ending at or before the cut cannot
    overlap (``start < end``) anything starting after it (:mod:`netvigil.events.build`).
    """
    return _clean_cut_spans([(e.start, _INF if e.end is None else e.end) for e in old], t)


def _clean_cut_spans(extents: Sequence[tuple[int, int]], t: int) -> int:
    """The latest time <= ``t`` inside none of ``extents`` (``lo < cut < hi``)."""
    cut = t
    spans = sorted(extents, reverse=True)
    moved = True
    while moved:
        moved = False
        for lo, hi in spans:
            if lo < cut < hi:
                cut, moved = lo, True
    return cut


def _raw(e: Event) -> Event:
    """A stored entity event as :func:`build_events` made it: its rules end with the
    confidence rule, the assessment and rules after it were added by fusion."""
    return replace(e, assessment={}, rules=e.rules[:e.rules.index(CONFIDENCE_RULE) + 1])


def _extent(e: Event) -> tuple[int, int]:
    """The time a stored country event stands for: its own span and those of the roll-up
    members listed in its assessment (``scope.members``). A roll-up span lies inside its
    members' union, and every span annotates or becomes exactly one country event, so a
    cut inside no extent is one no roll-up span crosses."""
    lo, hi = e.start, _INF if e.end is None else e.end
    for m in e.assessment.get("scope", {}).get("members", []) if e.assessment else []:
        lo = min(lo, int(m["start"]))
        hi = max(hi, _INF if m["end"] is None else int(m["end"]))
    return lo, hi


def _member_end(e: Event) -> int | None:
    """The latest member end (the start while ongoing) of a stored country event, as
    :func:`fusion.end_or` gives it without a data end; None without members."""
    ends = [int(m["start"]) if m["end"] is None else int(m["end"])
            for m in e.assessment.get("scope", {}).get("members", [])]
    return max(ends) if ends else None


def _near(starts: Sequence[int], marks: Sequence[int], lo: int, hi: int) -> list[bool]:
    """For each start, whether some mark ``m`` has ``lo <= start - m <= hi``."""
    if not marks or not starts:
        return [False] * len(starts)
    d = np.asarray(starts, np.int64)[:, None] - np.asarray(sorted(set(marks)), np.int64)[None]
    return [bool(x) for x in np.any((d >= lo) & (d <= hi), axis=1).tolist()]


def _recurrence_near(head: Sequence[Event], changed: Sequence[int]) -> list[bool]:
    """Head events whose recurrence set (:func:`classification.schedule`) may contain an
    event that changed: a changed start within the window at the same time of day (the
    duration test is left out: conservative, and ongoing durations move every bin)."""
    cfg = classification.load_config()["kind"]["intermittent"]
    tol, window = int(cfg["tolerance_s"]), int(cfg["window_days"]) * classification.DAY
    if not changed or not head:
        return [False] * len(head)
    hs = np.array([e.start for e in head], np.int64)
    du = np.array([(e.end if e.end is not None else _INF) - e.start for e in head], np.int64)
    cs = np.asarray(sorted(set(changed)), np.int64)
    tod = np.abs(hs[:, None] % classification.DAY - cs[None] % classification.DAY)
    tod = np.minimum(tod, classification.DAY - tod)
    hit = ((np.abs(hs[:, None] - cs[None]) <= window) & (tod <= tol)).any(axis=1)
    return [bool(x) for x in hit & (du > 0) & (du < classification.DAY)]


@dataclass(frozen=True)
class _Held:
    """Points this run already read whole, by series (the index in the detection view):
    series ``i``'s rows are ``time[span[i][0]:span[i][1]]`` (ascending) and the same of
    ``value``. The events' evidence reads them from here instead of reading the store
    again: on a first run at 41.5 M points that second read was 0.63 of a 4.1 s shard
    (docs/scaling.md, "Evidence from the detection read")."""

    span: Mapping[int, tuple[int, int]]
    time: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]


_NOTHING_HELD = _Held({}, np.empty(0, np.int64), np.empty(0))


@dataclass
class _Split:
    """An entity rebuilt incrementally: stored events before ``cut`` are kept (``head``),
    the rest are built again from the alerts at or after it (``tail``)."""

    cut: int
    head: list[Event]
    old_tail: list[Event]
    redo: set[str]  # head events whose assessment inputs may have changed


def _rebuild_events(store: Store, ents: list[EntityRef], refs: list[EntityRef],
                    signals: list[str], step: npt.NDArray[np.int64],
                    origin: npt.NDArray[np.int64], keys: SeriesKeys,
                    changed: Mapping[EntityRef, int] | None = None,
                    last_time: npt.NDArray[np.int64] | None = None,
                    held: _Held = _NOTHING_HELD,
                    ) -> tuple[list[EntityRef], list[Event], list[str]]:
    """Events of ``ents`` (and of the countries above them: roll-ups) from their alerts
    and the points their evidence covers (from ``held`` where the run read them), assessed
    (:mod:`netvigil.events.fusion`) and carrying the lifecycle history of the stored
    events they replace.

    Incremental (``changed``: per entity, the earliest time this run changed, see
    :func:`_changed_from`): a region or AS is rebuilt from a clean cut at or before that
    time (:func:`_clean_cut`); its stored events before the cut keep their rows unless
    their assessment can depend on what changed: a changed event in their recurrence
    window (:func:`_recurrence_near`), a sibling AS's changed start within the
    simultaneity window, or a platform block of their country that appeared or went within
    the window before them. Those are assessed again with their stored severity and signal
    health (:func:`fusion.assess` ``reuse``), also on untouched siblings.

    A country (national roll-ups over its children) is cut the same way, at a time inside
    no stored country event's extent (:func:`_extent`: the event and its roll-up members)
    and one simultaneity window before its earliest change or its changed children's cuts:
    the roll-up sweep is then closed at the cut with the same children's events before it,
    so only the children's events alive after it are read (:func:`_country_cut`); a country
    whose settled events would be re-assessed (a recurrence) or whose children changed
    from scratch is rebuilt whole (one more pass). The result equals a rebuild from scratch
    (``tests/test_events_incremental.py``) at a cost proportional to the changed events,
    not to all events of the touched entities and their countries.

    Returns the entities whose events are replaced, their new or changed events, and the
    ids of their stored events that stay as they are.
    """
    whole: set[EntityRef] = set()
    while True:
        done = _rebuild_once(store, ents, refs, signals, step, origin, keys, changed or {},
                             last_time, whole, held)
        if isinstance(done, set):
            whole |= done
            continue
        return done


def _country_cut(country: EntityRef, changed: Mapping[EntityRef, int], kids_cut: int,
                 stored: Sequence[Event]) -> int | None:
    """Where a country's events can be rebuilt from, or None (rebuild it whole).

    Before the cut: its own alerts (cut at or before its earliest change), every child's
    events (cut at or before each changed child's cut) and so every roll-up span closed by
    then are as the previous run left them. The cut lies a simultaneity window before
    that, so no settled country event starts within the window of a changed AS's event.
    """
    t = min(changed.get(country, _INF), kids_cut)
    if t <= _NEG or t >= _INF:
        return None
    sim = int(classification.load_config()["cause"]["simultaneous-ases"]["window_s"])
    return _clean_cut_spans([_extent(e) for e in stored], t - sim)


def _rebuild_once(store: Store, ents: list[EntityRef], refs: list[EntityRef],
                  signals: list[str], step: npt.NDArray[np.int64],
                  origin: npt.NDArray[np.int64], keys: SeriesKeys,
                  changed: Mapping[EntityRef, int],
                  last_time: npt.NDArray[np.int64] | None, whole: set[EntityRef],
                  held: _Held = _NOTHING_HELD,
                  ) -> tuple[list[EntityRef], list[Event], list[str]] | set[EntityRef]:
    """One pass of :func:`_rebuild_events` with the countries in ``whole`` rebuilt whole;
    the set of further countries to rebuild whole when a cut country needs it."""
    if not ents:
        return [], [], []
    parents = _parents(store, refs)
    children: dict[EntityRef, list[EntityRef]] = defaultdict(list)
    tv = {t: t.value for t in EntityType}  # Enum.value is a slow descriptor at 75,000 refs
    for r in sorted(set(refs), key=lambda e: (tv[e.type], e.code)):
        p = parents.get(r)
        if p is not None and p.type is EntityType.COUNTRY and r.type is not EntityType.COUNTRY:
            children[p].append(r)
    countries = {parents[e] for e in ents if e in parents and parents[e] in children}
    countries |= {e for e in ents if e in children}
    all_ents = sorted(set(ents) | countries, key=lambda e: (e.type.value, e.code))
    old_by = store.read_events_of(all_ents)
    names = store.entity_names(all_ents)
    registry = default_registry()
    splits: dict[EntityRef, _Split] = {}
    for ent in all_ents:
        t = changed.get(ent, _NEG)
        name = names.get(ent) or registry.name(ent)
        if ent in countries or t <= _NEG or any(e.entity_name != name for e in old_by[ent]):
            continue  # rebuilt whole (a renamed entity too: its stored events carry the name)
        cut = _clean_cut(old_by[ent], t)
        splits[ent] = _Split(cut, [e for e in old_by[ent] if e.start < cut],
                             [e for e in old_by[ent] if e.start >= cut], set())
    processed = set(all_ents)
    kids_cut: dict[EntityRef, int] = {}  # per country, the earliest cut of its children
    for k in all_ents:
        p = parents.get(k)
        if p in countries and k not in countries:
            kids_cut[p] = min(kids_cut.get(p, _INF), splits[k].cut if k in splits else _NEG)
    for c in sorted(countries, key=lambda e: e.code):
        name = names.get(c) or registry.name(c)
        cut_c = None if c in whole or any(e.entity_name != name for e in old_by[c]) else \
            _country_cut(c, changed, kids_cut.get(c, _INF), old_by[c])
        if cut_c is not None:
            splits[c] = _Split(cut_c, [e for e in old_by[c] if e.start < cut_c],
                               [e for e in old_by[c] if e.start >= cut_c], set())
    alerts = store.read_alerts_of(all_ents, [
        splits[e].cut if e in splits and e not in countries else _NEG for e in all_ents])
    by_entity: dict[EntityRef, list[Alert]] = defaultdict(list)
    since: dict[EntityRef, int] = {}
    for a in alerts:
        by_entity[a.entity].append(a)
        since[a.entity] = min(since.get(a.entity, a.time), a.time)
    first_alert = dict(since)
    for ent, sp in splits.items():
        if ent not in countries:
            since[ent] = sp.cut  # every signal from the cut on: evidence, health, data end
            continue
        # a country's own points are read from its first alert on, as when rebuilt whole
        by_entity[ent] = [a for a in by_entity[ent] if a.time >= sp.cut]
        if ent in first_alert:
            since[ent] = max(sp.cut, first_alert[ent])
    kin_refs = processed | {k for c in countries for k in children[c]}
    view_index = {(r, s): i for i, (r, s) in enumerate(zip(refs, signals, strict=True))
                  if r in kin_refs}
    wanted = sorted(((r, s), since[r]) for (r, s) in view_index if r in since)
    series = _read_series(store, wanted, view_index, step, origin, keys, held)
    built: dict[EntityRef, list[Event]] = {}
    for ent in all_ents:  # a split entity's tail only, for now
        name = names.get(ent) or registry.name(ent)
        built[ent] = (build_events(ent, by_entity[ent], series.get(ent, {}), entity_name=name)
                      if by_entity.get(ent) else [])
    _recurrence_redo({e: sp for e, sp in splits.items() if e not in countries}, splits,
                     built, old_by)
    old_by.update(_kin_events(store, countries, children, splits, processed))

    def current(r: EntityRef) -> list[Event]:
        sp = splits.get(r)
        return sp.head + built[r] if sp is not None else built.get(r, old_by.get(r, []))

    national: dict[EntityRef, tuple[list[Event], dict[str, list[Event]]]] = {}
    holders = _holders(countries, parents, old_by, {k: current(k) for k in built})
    for c in sorted(countries, key=lambda e: e.code):
        csp = splits.get(c)
        national[c] = _national(c, names.get(c) or registry.name(c), built[c], children[c],
                                holders.get(c, []), current,
                                csp.cut if csp is not None else _NEG)
        if csp is not None:
            moved = [*csp.old_tail, *national[c][0]]
            if any(_recurrence_near(csp.head, [e.start for e in moved])):
                whole.add(c)
    if whole & set(splits):
        return whole & set(splits)
    extra = _affected_kin(splits, built, old_by, countries, children)
    cut_kids = sorted((k for k in extra if parents.get(k) in splits),
                      key=lambda e: (e.type.value, e.code))
    for k, evs in store.read_events_of(cut_kids).items():  # only part of them was read
        old_by[k] = evs
        extra[k] = _Split(_INF, list(evs), [], extra[k].redo)
    for ent, sp in splits.items():
        built[ent] = sp.head + built[ent]
    for ent, sp in extra.items():
        splits[ent] = sp
        built[ent] = list(sp.head)
    procs = sorted(set(all_ents) | set(extra), key=lambda e: (e.type.value, e.code))
    signals_of: dict[EntityRef, list[str]] = defaultdict(list)
    step_of: dict[EntityRef, int] = {}
    last_of: dict[EntityRef, int] = {}
    for (r, sig), i in view_index.items():
        signals_of[r].append(sig)
        step_of[r] = min(step_of.get(r, int(step[i])), int(step[i]))
        if last_time is not None and int(last_time[i]) > _NEG:
            last_of[r] = max(last_of.get(r, _NEG), int(last_time[i]))

    def events_of(r: EntityRef) -> list[Event]:
        return built[r] if r in built else old_by.get(r, [])

    def platform_starts(r: EntityRef) -> list[int]:
        mine = [e.start for e in events_of(r) if e.kind is EventKind.PLATFORM_BLOCK]
        p = parents.get(r)
        return mine + ([e.start for e in events_of(p) if e.kind is EventKind.PLATFORM_BLOCK]
                       if p is not None else [])

    holding = _holders(countries, parents, old_by, built)
    siblings_of = _Siblings(holding, events_of)
    out: list[Event] = []
    keep: list[str] = []  # ids of stored events left as they are
    for ent in procs:
        ser = series.get(ent, {})
        ends = [int(s.times[-1]) for s in ser.values() if len(s)]
        data_end = max(ends) if ends else None
        split = splits.get(ent)
        if ent in extra or (split is not None and ent not in countries and data_end is None):
            data_end = last_of.get(ent)  # no points read: the store's last row time
        elif split is not None and ent in countries:
            data_end = last_of.get(ent) if ent in first_alert else None
        members: dict[str, list[Event]] = {}
        observed: list[EntityRef] = []
        own = built[ent]
        if ent in countries:
            observed = [k for k in children[ent] if k.type is EntityType.ASN]
            own, members = national[ent]
            if data_end is None:
                member_ends = [fusion.end_or(m, None) for v in members.values() for m in v]
                member_ends += [x for e in (split.head if split is not None else [])
                                if (x := _member_end(e)) is not None]
                data_end = max(member_ends) if member_ends else None
        kept = [e for e in split.head if e.id not in split.redo] if split else []
        redo = [e for e in split.head if e.id in split.redo] if split else []
        fresh = own if split is None or ent in countries else own[len(split.head):]
        todo = [*(_raw(e) for e in redo), *fresh]
        p = parents.get(ent)
        home = ent if ent in countries else p if ent.type is EntityType.ASN else None
        siblings = (siblings_of.of(home)
                    if home is not None and home in children else None)
        inputs = fusion.EntityInputs(ser, signals_of.get(ent, []), data_end,
                                     step_of.get(ent, 300), siblings, platform_starts(ent))
        kin = [e for k in holding.get(ent, []) if k.type is EntityType.ASN
               for e in events_of(k) if e.kind is EventKind.PLATFORM_BLOCK]
        if split is None:
            assessed = _circumvention(store, ent, parents.get(ent),
                                      fusion.assess(own, inputs, members, observed), data_end,
                                      kin=kin)
            out += fusion.carry_history(old_by.get(ent, []), assessed, data_end)
            continue
        assessed = fusion.assess(todo, inputs, members, observed, context=kept,
                                 reuse={e.id: e.assessment for e in redo})
        assessed = _circumvention(store, ent, parents.get(ent), assessed, data_end,
                                  since=split.cut, kin=kin)
        keep += [e.id for e in kept]
        out += fusion.carry_history(old_by.get(ent, []), assessed, data_end)
    return procs, out, keep


class _Siblings:
    """Per country, the :class:`~netvigil.events.classification.SiblingIndex` of its ASes'
    event starts, built once when an entity of the country is first assessed: the
    simultaneity evidence of an event reads only the ASes starting within its window
    (handing each AS of an 11,000-AS country all the others' starts made a national rebuild
    quadratic)."""

    def __init__(self, children: Mapping[EntityRef, list[EntityRef]],
                 events_of: Callable[[EntityRef], list[Event]]) -> None:
        self._children, self._events_of = children, events_of
        self._index: dict[EntityRef, classification.SiblingIndex] = {}

    def of(self, country: EntityRef) -> classification.SiblingIndex:
        if country not in self._index:
            self._index[country] = classification.SiblingIndex(
                (k, e.start) for k in self._children.get(country, [])
                if k.type is EntityType.ASN for e in self._events_of(k))
        return self._index[country]


def _holders(countries: set[EntityRef], parents: Mapping[EntityRef, EntityRef],
             *sources: Mapping[EntityRef, list[Event]]) -> dict[EntityRef, list[EntityRef]]:
    """Per touched country, its children with any event in ``sources`` (later sources
    win), in the order of ``children``: a roll-up or a sibling index over an 11,000-AS
    country then costs its children with events, not all of them."""
    has: dict[EntityRef, bool] = {}
    for src in sources:
        for k, evs in src.items():
            has[k] = bool(evs)
    out: dict[EntityRef, list[EntityRef]] = defaultdict(list)
    for k, yes in has.items():
        p = parents.get(k)
        if yes and p is not None and p in countries and k.type is not EntityType.COUNTRY:
            out[p].append(k)
    return {c: sorted(v, key=lambda e: (e.type.value, e.code)) for c, v in out.items()}


def _national(country: EntityRef, name: str, own: list[Event], kids: Sequence[EntityRef],
              holders: Sequence[EntityRef], events_of: Callable[[EntityRef], list[Event]],
              after: int) -> tuple[list[Event], dict[str, list[Event]]]:
    """The country's events from ``after`` on: its own (built from its alerts) with the
    roll-up spans of its mobile operators, regions and ASes folded in
    (:func:`fusion.national`), and the members of each by event id. Only the children's
    events alive after ``after`` take part: the sweep is closed there
    (:func:`_country_cut`), so the spans from it on are those of all their events.
    ``holders``: the children with events (the others add nothing but their count)."""
    n_ases = sum(1 for k in kids if k.type is EntityType.ASN)
    n_mobile = sum(1 for k in kids if k.type is EntityType.ASN and classification.is_mobile(k))
    n_regions = sum(1 for k in kids if k.type is EntityType.REGION)
    alive = {k: evs for k in holders
             if (evs := [e for e in events_of(k) if e.scope is not Scope.NATIONAL
                         and (e.end is None or e.end > after)])}
    def mobile(k: EntityRef) -> bool:
        return k.type is EntityType.ASN and classification.is_mobile(k)

    def region(k: EntityRef) -> bool:
        return k.type is EntityType.REGION

    def asn(k: EntityRef) -> bool:
        return k.type is EntityType.ASN

    spans = []
    groups: list[tuple[str, int, Callable[[EntityRef], bool]]] = [
        ("scope.rollup-mobile", n_mobile, mobile), ("scope.rollup-regions", n_regions, region),
        ("scope.rollup-ases", n_ases, asn)]
    for rule, observed, member in groups:
        of_group = {k: v for k, v in alive.items() if member(k)}
        kid_end = {e.id: fusion.end_or(e, None) for v in of_group.values() for e in v}
        spans += classification.rollup(of_group, observed, rule, kid_end)
    return fusion.national(country, name, own, spans)


def _kin_events(store: Store, countries: set[EntityRef],
                children: Mapping[EntityRef, list[EntityRef]],
                splits: Mapping[EntityRef, _Split],
                processed: set[EntityRef]) -> dict[EntityRef, list[Event]]:
    """Stored events of the untouched children of the touched countries: all of them under
    a country rebuilt whole; under a cut country those alive after its cut (the roll-up
    sweep) or starting up to two simultaneity windows before it (the sibling evidence of
    the events assessed: the country's tail, starts of changed ASes, settled events of
    untouched ASes within a window of those) or a window before a settled AS event
    re-assessed for recurrence (its sibling evidence)."""
    sim = int(classification.load_config()["cause"]["simultaneous-ases"]["window_s"])
    rest: list[EntityRef] = []
    window: list[tuple[int, int]] = []
    for c in sorted(countries, key=lambda e: e.code):
        sp = splits.get(c)
        lo = hi = _NEG
        if sp is not None:
            hi, lo = sp.cut, sp.cut - 2 * sim
            for k in children[c]:
                ks = splits.get(k)
                if ks is not None:
                    lo = min([lo, *(e.start - sim for e in ks.head if e.id in ks.redo)])
        for k in children[c]:
            if k not in processed:
                rest.append(k)
                window.append((lo, hi))
    return store.read_events_of(rest, window)


def _circumvention(store: Store, ent: EntityRef, parent: EntityRef | None,
                   events: list[Event], data_end: int | None, since: int = _NEG,
                   kin: Sequence[Event] = ()) -> list[Event]:
    """Platform-block events with their country's Tor surge days as supporting evidence
    (rule ``evidence.circumvention-surge``, :func:`classification.circumvention`): read here
    because the baseline (28 days before the event) lies outside the window assessed. A
    country also gets an event of its own for a surge no block of it or of its ASes
    (``kin``) explains (:func:`classification.demand_events`; from ``since``, the cut of
    an incremental rebuild)."""
    country = ent if ent.type is EntityType.COUNTRY else parent
    blocks = [e for e in events if e.kind is EventKind.PLATFORM_BLOCK]
    if ent.type is EntityType.COUNTRY:
        events = sorted(events + _demand(store, ent, [(e, fusion.end_or(e, data_end))
                                                      for e in [*blocks, *kin]], since),
                        key=lambda e: e.start)
    if country is None or country.type is not EntityType.COUNTRY or not blocks:
        return events
    cfg = classification.load_config()["evidence"]["circumvention-surge"]
    found = {sig: classification.surges(store.read_series(country, sig))
             for sig in cfg["signals"]}  # whole: collapses leave the baseline (daily, small)
    out = []
    for e in events:
        ev = (classification.circumvention(e, fusion.end_or(e, data_end), found)
              if e.kind is EventKind.PLATFORM_BLOCK and not classification.is_demand(e)
              else None)
        out.append(e if ev is None else replace(
            e, assessment={**dict(e.assessment), "circumvention": ev},
            rules=tuple(dict.fromkeys([*e.rules, ev["rule"]]))))
    return out


def _demand(store: Store, country: EntityRef, blocks: list[tuple[Event, int]],
            since: int) -> list[Event]:
    """The country's circumvention-demand events from ``since`` on (the Tor series read
    whole: its baseline skips collapses, however long ago)."""
    cfg = classification.load_config()["evidence"]["circumvention-surge"]
    series = {sig: store.read_series(country, sig) for sig in cfg["signals"]}
    if not any(len(s) for s in series.values()):
        return []
    name = store.entity_names([country]).get(country) or default_registry().name(country)
    return classification.demand_events(country, name, series, blocks, since)


def _moved(ent: EntityRef, splits: Mapping[EntityRef, _Split],
           built: Mapping[EntityRef, list[Event]],
           old_by: Mapping[EntityRef, list[Event]]) -> list[Event]:
    """The events of ``ent`` this run changed: the stored and the new tail of a cut entity,
    every stored and new event of one rebuilt whole."""
    sp = splits.get(ent)
    if sp is None:
        return [*old_by.get(ent, []), *built.get(ent, [])]
    return [*sp.old_tail, *built.get(ent, [])]


def _recurrence_redo(subset: Mapping[EntityRef, _Split], splits: Mapping[EntityRef, _Split],
                     built: Mapping[EntityRef, list[Event]],
                     old_by: Mapping[EntityRef, list[Event]]) -> None:
    """Mark the head events of the cut entities in ``subset`` whose recurrence set may hold
    a changed event (``_Split.redo``)."""
    for ent, sp in subset.items():
        changed = [e.start for e in _moved(ent, splits, built, old_by)]
        hit = _recurrence_near(sp.head, changed)
        sp.redo |= {e.id for e, h in zip(sp.head, hit, strict=True) if h}


def _affected_kin(splits: dict[EntityRef, _Split], built: Mapping[EntityRef, list[Event]],
                  old_by: Mapping[EntityRef, list[Event]], countries: set[EntityRef],
                  children: Mapping[EntityRef, list[EntityRef]]) -> dict[EntityRef, _Split]:
    """Mark the head events of children of touched countries to assess again
    (``_Split.redo``) and return the untouched children that have such events (all their
    events are head: cut at +inf).

    ``built`` holds each split entity's new tail (before the head is prepended) and each
    fully rebuilt entity's events. Changed starts are the old and the new tail's.
    """
    cfg = classification.load_config()["cause"]
    sim = int(cfg["simultaneous-ases"]["window_s"])
    before = int(cfg["platform-before"]["window_s"])

    asn_moves: dict[EntityRef, list[tuple[EntityRef, int]]] = defaultdict(list)
    platform_moves: dict[EntityRef, list[int]] = {}
    for c in countries:
        for k in children[c]:
            if k.type is EntityType.ASN and k in built:
                asn_moves[c] += [(k, e.start) for e in _moved(k, splits, built, old_by)]
        sp = splits.get(c)
        old_p = {e.start for e in (sp.old_tail if sp is not None else old_by.get(c, []))
                 if e.kind is EventKind.PLATFORM_BLOCK}
        new_p = {e.start for e in built.get(c, []) if e.kind is EventKind.PLATFORM_BLOCK}
        platform_moves[c] = sorted(old_p ^ new_p)

    extra: dict[EntityRef, _Split] = {}
    for c in countries:
        every = [t for _, t in asn_moves[c]]  # an untouched AS has no moves of its own
        for k in children[c]:
            sp = splits.get(k)
            if sp is None and k in built:
                continue  # rebuilt whole
            head = sp.head if sp is not None else old_by.get(k, [])
            if not head:
                continue
            starts = [e.start for e in head]
            near = [False] * len(starts)
            if k.type is EntityType.ASN:
                marks = every if sp is None else [t for r, t in asn_moves[c] if r != k]
                near = _near(starts, marks, -sim, sim)
            plat = _near(starts, platform_moves[c], 1, before)
            ids = {e.id for e, a, b in zip(head, near, plat, strict=True) if a or b}
            if sp is not None:
                sp.redo |= ids
            elif ids:
                extra[k] = _Split(_INF, list(head), [], ids)
    return extra


def _parents(store: Store, refs: list[EntityRef]) -> dict[EntityRef, EntityRef]:
    """Parent of each entity: the store's entities table, else the registry for regions
    (ISO 3166-2 codes name their country)."""
    by_key = {(r.type.value, r.code): r for r in set(refs)}
    parsed: dict[str, EntityRef] = {}
    out: dict[EntityRef, EntityRef] = {}
    for t, c, p in store.entity_parents():
        r = by_key.get((t, c))
        if r is not None:
            out[r] = parsed[p] if p in parsed else parsed.setdefault(p, EntityRef.parse(p))
    registry = default_registry()
    for r in by_key.values():
        if r not in out and r.type is EntityType.REGION:
            parent = registry.parent(r)
            if parent is not None:
                out[r] = parent
    return out


def _read_series(store: Store, wanted: list[tuple[tuple[EntityRef, str], int]],
                 view_index: dict[tuple[EntityRef, str], int], step: npt.NDArray[np.int64],
                 origin: npt.NDArray[np.int64], keys: SeriesKeys,
                 held: _Held = _NOTHING_HELD) -> dict[EntityRef, dict[str, Observed]]:
    """The points of ``(entity, signal)`` from the given time on, as their observed bins
    (:class:`~netvigil.model.Observed`: a span of years with a few points costs the points,
    not the years' bins): from ``held`` for a series this run read whole, else read from
    the store (one statement)."""
    rows = np.array([view_index[k] for k, _ in wanted], dtype=np.int64)
    read = [k for k, i in enumerate(rows.tolist()) if i not in held.span]
    pts = store.read_points_after(keys.take(rows[read]),
                                  np.array([wanted[k][1] - 1 for k in read], dtype=np.int64))
    offsets = _csr(pts, len(read))
    cols: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {
        k: (pts.time[offsets[j]:offsets[j + 1]], pts.value[offsets[j]:offsets[j + 1]])
        for j, k in enumerate(read)}
    series: dict[EntityRef, dict[str, Observed]] = defaultdict(dict)
    for k, ((ent, sig), since) in enumerate(wanted):
        i = int(rows[k])
        if k in cols:
            t, v = cols[k]
        else:
            lo, hi = held.span[i]
            lo += int(np.searchsorted(held.time[lo:hi], since))  # time >= since
            t, v = held.time[lo:hi], held.value[lo:hi]
        if t.size == 0:
            continue
        st, org = int(step[i]), int(origin[i])
        bins = (t - org) // st
        # of points in one bin the last one wins, as Series.from_points places them
        last = np.ones(bins.size, dtype=bool)
        last[:-1] = bins[1:] != bins[:-1]
        series[ent][sig] = Observed(bins[last] * st + org, v[last], st)
    return series
