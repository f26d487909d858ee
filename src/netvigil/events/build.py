"""Alerts -> events, following ioda-api ``OutagesEventsService``.

1. **Per-signal events.** Alerts are grouped by (signal, method) on one entity. An event
   opens at the first non-normal alert and closes at the next ``normal`` one (its time is
   the event end). An event still open at the last alert is ongoing (``end`` None).
2. **Alert-area score.** Each alert starts a segment that lasts until the next alert (or,
   when ongoing, the end of the series). The score is
   ``sum over segments, over the segment's observed bins of drop% * step/60`` with
   ``drop% = |history - value| / max(history, value) * 100``, where ``value`` is the bin's
   value in the series and ``history`` the segment alert's ``history_value`` (the
   inpainted baseline, which MovingStat keeps flat during an outage). Missing bins add
   nothing: missing data is not an outage. Without a series (``series`` lacks the signal)
   the alert's own value is used for the whole segment, as ioda-api does.
3. **Merge.** Per-signal events on one entity whose intervals overlap (``[start, end)``,
   ongoing = open to the right) are merged. A signal with several events in a merged group
   contributes its **maximum** score; the merged score is the **product** of those
   per-signal maxima, which rewards corroboration. Platform-test signals merge only with
   each other (``merge.separate-platform``, see ``_merge_class``).
4. **Judgement.** Scope from the entity type (``Scope.for_entity``); kind and confidence
   from :mod:`netvigil.events.rules`; ``min_ratio`` the lowest value/baseline over all
   signals; ``rules`` lists detector ids, detector rule ids, the kind, merge and confidence
   rule ids; ``id`` = sha256 of ``fqid|start|kind`` (first 16 hex digits), stable while the
   event's start and kind stay the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from netvigil.detect.protocol import Detector
from netvigil.events.rules import (
    CONFIDENCE_RULE,
    MERGE_RULE,
    SEPARATE_PLATFORM_RULE,
    classify,
    confidence,
)
from netvigil.model import (
    Alert,
    EntityRef,
    Event,
    EventStatus,
    Level,
    Observed,
    Scope,
    Series,
    SignalEvidence,
    SourceFamily,
    signal_kind,
)

RuleIdLookup = Callable[[str, str], str | None]  # (method, signal) -> detector rule id


def default_rule_id(method: str, signal: str) -> str | None:
    """The detector rule id that judged ``signal``, for any detector of the registry."""
    from netvigil.detect.registry import DETECTORS

    factory = DETECTORS.get(method)
    if factory is None:
        return None
    rule = _configured(method, factory).configure(signal)
    return None if rule is None else rule.id


_DETECTORS: dict[str, Detector] = {}


def _configured(method: str, factory: Callable[[], Detector]) -> Detector:
    """One detector instance per method (configure only reads its packaged rules)."""
    if method not in _DETECTORS:
        _DETECTORS[method] = factory()
    return _DETECTORS[method]


@dataclass(frozen=True)
class _Segment:
    start: int
    end: int | None  # None: to the end of the data
    level: Level
    alert: Alert


def _signal_events(alerts: Sequence[Alert]) -> list[list[_Segment]]:
    """Split one signal's time-ordered alerts into events (lists of non-normal segments)."""
    events: list[list[_Segment]] = []
    current: list[_Segment] | None = None
    for a in alerts:
        if current is not None:  # close the running segment at this alert
            last = current[-1]
            current[-1] = _Segment(last.start, a.time, last.level, last.alert)
        if a.level is Level.NORMAL:
            if current is not None:
                events.append(current)
                current = None
            continue
        if current is None:
            current = []
        current.append(_Segment(a.time, None, a.level, a))
    if current is not None:
        events.append(current)
    return events


def _evidence(segments: list[_Segment], series: Observed | None) -> SignalEvidence:
    first = segments[0].alert
    score = 0.0
    best = (first.ratio, first.value, first.history_value)
    for seg in segments:
        h = seg.alert.history_value
        if series is None:
            if seg.end is not None:
                v = seg.alert.value
                denom = max(h, v)
                drop = abs(h - v) / denom * 100.0 if denom > 0 else 0.0
                score += drop * (seg.end - seg.start) / 60.0
            continue
        vals = series.between(seg.start, seg.end)
        vals = vals[~np.isnan(vals)]
        if vals.size == 0 or not h > 0:
            continue
        drops = np.abs(h - vals) / np.maximum(vals, h)  # denominator >= h > 0
        score += float(drops.sum()) * 100.0 * series.step / 60.0
        j = int(np.argmin(vals))
        if not vals[j] / h >= best[0]:  # also replaces a NaN ratio
            best = (float(vals[j] / h), float(vals[j]), h)
    worst = max(seg.level for seg in segments)
    return SignalEvidence(
        signal=first.signal,
        method=first.method,
        start=segments[0].start,
        end=segments[-1].end,
        score=round(score, 6),
        min_ratio=round(best[0], 6),
        min_value=best[1],
        history_value=best[2],
        worst_level=worst.label,
    )


def combine_evidence(evs: list[SignalEvidence]) -> SignalEvidence:
    """One evidence row per (signal, method) in a merged event: max score, deepest point."""
    if len(evs) == 1:
        return evs[0]
    deepest = min(evs, key=lambda e: e.min_ratio)
    ends = [e.end for e in evs]
    return SignalEvidence(
        signal=evs[0].signal,
        method=evs[0].method,
        start=min(e.start for e in evs),
        end=None if any(x is None for x in ends) else max(x for x in ends if x is not None),
        score=max(e.score for e in evs),
        min_ratio=deepest.min_ratio,
        min_value=deepest.min_value,
        history_value=deepest.history_value,
        worst_level="critical" if any(e.worst_level == "critical" for e in evs) else "warning",
    )


def _merge_class(signal: str) -> str:
    """Platform tests and connectivity signals never merge into one event.

    IODA merges every overlapping event on an entity because all its signals measure
    connectivity. A platform block (messaging apps unreachable while the network works)
    is a different claim; merging it into a later blackout would move the blackout's start
    to the block's start and hide the order of events (rule ``merge.separate-platform``).
    A throttled service (``throttling:*``) is a third claim, kept apart from both.
    """
    family = signal_kind(signal).family
    if family in (SourceFamily.PLATFORM, SourceFamily.THROTTLING):
        return family.value
    return "connectivity"


def _overlap_groups(evidence: list[SignalEvidence]) -> list[list[SignalEvidence]]:
    """Group time-ordered per-signal events whose ``[start, end)`` intervals overlap."""
    inf = float("inf")
    groups: list[list[SignalEvidence]] = []
    group_end = -inf
    for ev in evidence:
        ev_end = inf if ev.end is None else float(ev.end)
        if groups and ev.start < group_end:
            groups[-1].append(ev)
            group_end = max(group_end, ev_end)
        else:
            groups.append([ev])
            group_end = ev_end
    return groups


def event_id(entity: EntityRef, start: int, kind: str) -> str:
    return hashlib.sha256(f"{entity.fqid}|{start}|{kind}".encode()).hexdigest()[:16]


def build_events(
    entity: EntityRef,
    alerts: Sequence[Alert],
    series: Mapping[str, Series | Observed] | None = None,
    *,
    entity_name: str | None = None,
    rule_id: RuleIdLookup = default_rule_id,
) -> list[Event]:
    """Events of one entity from its alerts (all signals), ordered by start time."""
    by_key: dict[tuple[str, str], list[Alert]] = {}
    for a in alerts:
        if a.entity != entity:
            raise ValueError(f"alert for {a.entity} passed to build_events({entity})")
        by_key.setdefault((a.signal, a.method), []).append(a)

    per_signal: list[SignalEvidence] = []
    for (signal, _method), group in sorted(by_key.items()):
        group.sort(key=lambda a: a.time)
        got = None if series is None else series.get(signal)
        s = Observed.of(got) if isinstance(got, Series) else got
        per_signal.extend(_evidence(segs, s) for segs in _signal_events(group))
    per_signal.sort(key=lambda e: (e.start, e.signal))

    groups: list[list[SignalEvidence]] = []
    classes = sorted({_merge_class(ev.signal) for ev in per_signal})
    for merge_class in classes:
        members = [ev for ev in per_signal if _merge_class(ev.signal) == merge_class]
        groups += _overlap_groups(members)
    groups.sort(key=lambda g: (min(ev.start for ev in g), g[0].signal))

    name = entity_name or entity.code
    events: list[Event] = []
    for grp in groups:
        keyed: dict[tuple[str, str], list[SignalEvidence]] = {}
        for ev in grp:
            keyed.setdefault((ev.signal, ev.method), []).append(ev)
        evidence = tuple(combine_evidence(v) for _, v in sorted(keyed.items()))
        score = 1.0
        for ev in evidence:
            score *= ev.score
        start = min(ev.start for ev in evidence)
        ends = [ev.end for ev in evidence]
        end = None if any(x is None for x in ends) else max(x for x in ends if x is not None)
        kind_rule = classify(evidence)
        rules: list[str] = sorted({ev.method for ev in evidence})
        rules += sorted({r for ev in evidence if (r := rule_id(ev.method, ev.signal))})
        rules += [kind_rule.id, MERGE_RULE]
        rules += [SEPARATE_PLATFORM_RULE] if len(classes) > 1 else []
        rules += [CONFIDENCE_RULE]
        events.append(Event(
            id=event_id(entity, start, kind_rule.kind.value),
            entity=entity,
            entity_name=name,
            start=start,
            end=end,
            status=EventStatus.ONGOING if end is None else EventStatus.ENDED,
            scope=Scope.for_entity(entity),
            kind=kind_rule.kind,
            score=round(score, 6),
            confidence=confidence(evidence),
            min_ratio=min(ev.min_ratio for ev in evidence),
            signals=evidence,
            rules=tuple(rules),
        ))
    return events
