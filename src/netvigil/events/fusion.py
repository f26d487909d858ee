"""Fusion: one assessed event per entity and time, with readable severity, signal health,
class, cause, probability, national roll-ups and a lifecycle history (issue 8).

:func:`netvigil.events.build.build_events` already merges the signals of one entity into one
event (ioda-api style: overlapping per-signal events, IODA's score product, the noisy-or
``confidence``). This module adds ``Event.assessment`` and the ids of the rules that fired:

* ``severity``: ``share_lost`` = 1 - observed / ordinary over the event window of its deepest
  count signal, where *ordinary* is the detector's baseline at the deepest point (the value
  a reader compares with); ``deepest_loss`` = 1 - min_ratio; ``duration_s`` (to the data end
  while ongoing); ``people_affected`` is null (no population table is shipped yet). Beside
  IODA's ``score``, which no reader can interpret (values like 1.7e17).
* ``signals``: the health of *every* signal the entity has, not only those that alerted:
  ``alerting``, ``normal`` (data, no alert), ``sparse`` (< half the bins) or ``silent`` (no
  data in the window), with the share of bins observed. A silent source is unknown, not
  evidence of an outage (the detectors never read a gap as a drop).
* ``class``, ``cause``, ``probability`` and ``scope``: :mod:`netvigil.events.classification`.
* ``history``: lifecycle. Each rebuild matches the new events of an entity with the stored
  ones (same entity, overlapping time, both platform blocks or both not) and appends
  ``open``, ``update`` (still ongoing, changed), ``close``, ``merge`` (several stored
  events became one) or ``revise`` (a closed window changed: late data re-evaluated it),
  stamped with the entity's data end (data time, so a rebuild is deterministic).
  Unchanged events keep their history as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from netvigil.events import classification as cl
from netvigil.events.build import combine_evidence, event_id
from netvigil.model import (
    EntityRef,
    Event,
    EventKind,
    EventStatus,
    Observed,
    Scope,
    SourceFamily,
    signal_kind,
)


@dataclass(frozen=True)
class EntityInputs:
    """What assessing one entity's events needs besides the events."""

    series: Mapping[str, Observed]  # every signal of the entity over the events' span
    signals: Sequence[str]  # every signal the store holds for the entity
    data_end: int | None  # last time with data on any signal
    step: int
    #: the event starts of the country's ASes (None: the entity has no country's ASes to
    #: compare with: a region, an AS without a country)
    siblings: cl.SiblingIndex | None = None
    platform_starts: Sequence[int] = ()  # platform-block starts on the entity or its country


def end_or(e: Event, data_end: int | None) -> int:
    """The event end, or the data end while ongoing (at least the start)."""
    if e.end is not None:
        return e.end
    return max(e.start, data_end if data_end is not None else e.start)


def _window(series: Observed | None, lo: int, hi: int) -> np.ndarray:
    """The values of the observed bins in ``[lo, hi)`` (at least the bin at ``lo``); the
    callers count, average or sum the non-NaN ones, so empty bins need not be there."""
    if series is None:
        return np.empty(0)
    return series.between(lo, max(hi, lo + series.step))


def health(event: Event, inputs: EntityInputs) -> list[dict[str, Any]]:
    """Per signal of the entity: state and share of bins observed in the event window."""
    hi = end_or(event, inputs.data_end)
    alerting = {s.signal for s in event.signals}
    out = []
    for sig in sorted(set(inputs.signals) | alerting):
        s = inputs.series.get(sig)
        vals = _window(s, event.start, hi)
        step = s.step if s is not None else inputs.step
        expected = max(1, -(-(max(hi, event.start + step) - event.start) // step))
        coverage = round(float(np.count_nonzero(~np.isnan(vals))) / expected, 4)
        if sig in alerting:
            state = "alerting"
        elif coverage == 0:
            state = "silent"
        elif coverage < 0.5:
            state = "sparse"
        else:
            state = "normal"
        out.append({"signal": sig, "state": state, "coverage": min(coverage, 1.0)})
    return out


def severity(event: Event, inputs: EntityInputs) -> dict[str, Any]:
    counts = [s for s in event.signals if signal_kind(s.signal).higher_is_better
              and signal_kind(s.signal).family is not SourceFamily.PLATFORM]
    pool = counts or list(event.signals)
    deepest = min(pool, key=lambda s: s.min_ratio if s.min_ratio == s.min_ratio else 1.0)
    hi = end_or(event, inputs.data_end)
    vals = _window(inputs.series.get(deepest.signal), event.start, hi)
    vals = vals[~np.isnan(vals)]
    lost = 1.0 - deepest.min_ratio
    if vals.size and deepest.history_value > 0:
        lost = 1.0 - float(vals.mean()) / deepest.history_value
    return {"share_lost": round(min(1.0, max(0.0, lost)), 4),
            "deepest_loss": round(min(1.0, max(0.0, 1.0 - deepest.min_ratio)), 4),
            "signal": deepest.signal, "duration_s": hi - event.start,
            "ongoing": event.end is None, "people_affected": None}


#: rule id recorded on a platform-block event whose blocked tests name their mechanisms
MECHANISMS_RULE = "evidence.platform-mechanisms"
_BLOCKED = "platform-blocked:"


def mechanisms(event: Event, inputs: EntityInputs) -> dict[str, dict[str, int]]:
    """Per blocked platform of ``event``, the blocked tests per mechanism (dns, tcp, tls,
    http-blockpage, ...) in its window, from the ``platform-blocked:<platform>:<mechanism>``
    series the OONI importer and the collector write (docs/ooni.md); empty when the entity
    has none (the demo's synthetic tests carry no mechanism)."""
    platforms = {s.signal.split(":", 1)[1] for s in event.signals
                 if s.signal.startswith("platform:")}
    hi = end_or(event, inputs.data_end)
    out: dict[str, dict[str, int]] = {}
    for sig, series in inputs.series.items():
        if not sig.startswith(_BLOCKED):
            continue
        platform, _, mech = sig[len(_BLOCKED):].partition(":")
        if platform not in platforms or not mech:
            continue
        vals = _window(series, event.start, hi)
        total = int(np.nansum(vals)) if vals.size else 0
        if total > 0:
            out.setdefault(platform, {})[mech] = total
    return {p: dict(sorted(m.items())) for p, m in sorted(out.items())}


def assess(events: Sequence[Event], inputs: EntityInputs,
           members: Mapping[str, Sequence[Event]] | None = None,
           observed_children: Sequence[EntityRef] = (), *,
           context: Sequence[Event] = (),
           reuse: Mapping[str, Mapping[str, Any]] | None = None) -> list[Event]:
    """Each event of one entity with its assessment and the rule ids that fired.

    ``context``: the entity's other events, not assessed here but part of its recurrence
    history (an incremental rebuild keeps settled events as stored). ``reuse``: by event id,
    the stored assessment of a closed event whose window of data is unchanged; its
    ``severity`` and ``signals`` (functions of that window only) are kept, and whether BGP
    had data in it is read back from its stored ``cause.bgp-visible`` evidence (the only
    rule it feeds), so re-assessing it needs none of its points.
    """
    ordered = sorted(events, key=lambda e: e.start)
    end_of = {e.id: end_or(e, inputs.data_end) for e in [*ordered, *context]}
    history = cl.History.of(sorted([*ordered, *context], key=lambda e: e.start), end_of)
    out = []
    bgp = [s for s in inputs.signals if signal_kind(s).family is SourceFamily.BGP]
    # each event asks the country's index for the ASes starting inside its simultaneity
    # window only (all cl.cause reads), resolved once per window (cl.SiblingIndex): a
    # national cut of thousands of ASes was quadratic when each got every sibling's start
    sim = int(cl.load_config()["cause"]["simultaneous-ases"]["window_s"])
    for ev in ordered:
        sched = cl.schedule(ev, history, end_of[ev.id])
        kind, kind_rule = cl.kind(ev, sched)
        mem = list((members or {}).get(ev.id, ()))
        kept = (reuse or {}).get(ev.id)
        if kept is not None:
            bgp_present = any(e["rule"] == cl.load_config()["cause"]["bgp-visible"]["id"]
                              for e in kept.get("cause", {}).get("evidence", []))
        else:
            bgp_present = any(np.count_nonzero(~np.isnan(
                _window(inputs.series.get(s), ev.start, end_of[ev.id]))) for s in bgp)
        ctx = cl.CauseContext(
            step=inputs.step,
            sibling_ases=(inputs.siblings.within(ev.start - sim, ev.start + sim)
                          if inputs.siblings is not None else ()),
            platform_starts=inputs.platform_starts, bgp_present=bgp_present,
            bgp_alerting=any(signal_kind(s.signal).family is SourceFamily.BGP
                             for s in ev.signals))
        cause, cause_rules = cl.cause(ev, sched, ctx, [m.entity for m in mem])
        rules = [kind_rule, *cause_rules, cl.load_config()["probability"]["id"]]
        assessment: dict[str, Any] = {
            **dict(ev.assessment),
            "class": {"kind": kind, "rule": kind_rule, "schedule": sched},
            "severity": kept["severity"] if kept is not None else severity(ev, inputs),
            "signals": kept["signals"] if kept is not None else health(ev, inputs),
            "cause": cause,
            "probability": cl.probability(ev, len(mem), end_of[ev.id] - ev.start),
        }
        if ev.kind is EventKind.PLATFORM_BLOCK:
            mech = (kept.get("mechanisms") if kept is not None
                    else mechanisms(ev, inputs)) or {}
            if mech:
                assessment["mechanisms"] = mech
                rules.append(MECHANISMS_RULE)
        if mem:
            assessment["scope"] = {**assessment.get("scope", {}),
                                   "members": [_member(m) for m in mem]}
            mobile = cl.mobile_only([m.entity for m in mem], observed_children)
            if mobile is not None:
                assessment["mobile_only"] = mobile
                rules.append(mobile["rule"])
        out.append(replace(ev, assessment=assessment,
                           rules=tuple(dict.fromkeys([*ev.rules, *rules]))))
    return out


def _member(e: Event) -> dict[str, Any]:
    return {"entity": e.entity.fqid, "name": e.entity_name, "start": e.start, "end": e.end,
            "min_ratio": e.min_ratio}


def national(country: EntityRef, name: str, own: Sequence[Event],
             spans: Sequence[cl.RollupSpan]) -> tuple[list[Event], dict[str, list[Event]]]:
    """The country's events with the roll-up spans folded in, and members by event id.

    A span overlapping one of the country's own events annotates it (one event per entity
    and time); otherwise it becomes a new national event whose evidence is its members'.
    """
    events = list(own)
    members: dict[str, list[Event]] = {}
    for span in spans:
        hit = _best_overlap(events, span)
        scope = {"rule": span.rule, "from": span.rule.rsplit("-", 1)[1]}
        if hit is not None:
            e = events[hit]
            events[hit] = replace(e, assessment={**dict(e.assessment), "scope": scope},
                                  rules=(*e.rules, span.rule))
            known = members.setdefault(events[hit].id, [])
            known.extend(m for m in span.members if m not in known)
            continue
        keyed: dict[tuple[str, str], list[Any]] = {}
        for m in span.members:
            for s in m.signals:
                keyed.setdefault((s.signal, s.method), []).append(s)
        evidence = tuple(combine_evidence(v) for _, v in sorted(keyed.items()))
        kinds = [m.kind for m in span.members]
        kind = max(set(kinds), key=kinds.count) if kinds else EventKind.OUTAGE
        methods = sorted({s.method for s in evidence})
        ev = Event(
            id=event_id(country, span.start, "rollup"), entity=country, entity_name=name,
            start=span.start, end=span.end,
            status=EventStatus.ONGOING if span.end is None else EventStatus.ENDED,
            scope=Scope.NATIONAL, kind=kind,
            score=max((m.score for m in span.members), default=0.0),
            confidence=max((m.confidence for m in span.members), default=0.0),
            min_ratio=min((m.min_ratio for m in span.members), default=float("nan")),
            signals=evidence, rules=(*methods, span.rule), assessment={"scope": scope})
        events.append(ev)
        members[ev.id] = list(span.members)
    return events, members


def _best_overlap(events: Sequence[Event], span: cl.RollupSpan) -> int | None:
    """Index of the country's own connectivity event overlapping ``span`` most, or None.

    A platform block is a different claim (``merge.separate-platform``): a week-long block
    must not absorb the blackout that happens inside it.
    """
    inf = 2**62
    hi = span.end if span.end is not None else inf
    best, best_len = None, 0
    for i, e in enumerate(events):
        if e.kind is EventKind.PLATFORM_BLOCK:
            continue
        overlap = min(hi, e.end if e.end is not None else inf) - max(span.start, e.start)
        if overlap > best_len:
            best, best_len = i, overlap
    return best


def carry_history(old: Sequence[Event], new: Sequence[Event], at: int | None) -> list[Event]:
    """``new`` events with the lifecycle history of the stored ``old`` ones they continue."""
    cfg = cl.load_config()["lifecycle"]
    inf = 2**62
    out = []
    for ev in new:
        hi = inf if ev.end is None else ev.end
        platform = ev.kind is EventKind.PLATFORM_BLOCK
        matched = [o for o in old if o.entity == ev.entity and o.start < hi
                   and (o.end is None or o.end > ev.start)
                   and (o.kind is EventKind.PLATFORM_BLOCK) == platform]
        past: list[dict[str, Any]] = []
        for o in matched:
            past += [h for h in o.assessment.get("history", []) if h not in past]
        past.sort(key=lambda h: (h["at"], h["action"]))
        action = _action(ev, matched)
        if action is not None:
            past.append({"at": at, "action": action, "start": ev.start, "end": ev.end,
                         "status": ev.status.value,
                         "kind": ev.assessment.get("class", {}).get("kind"),
                         "previous": sorted(o.id for o in matched)})
        past = past[-int(cfg["max_entries"]):]
        rules = ev.rules if cfg["id"] in ev.rules else (*ev.rules, cfg["id"])
        out.append(replace(ev, assessment={**dict(ev.assessment), "history": past},
                           rules=rules))
    return out


def _action(ev: Event, matched: Sequence[Event]) -> str | None:
    if not matched:
        return "open"
    if len(matched) > 1:
        return "merge"
    o = matched[0]
    same = (o.start == ev.start and o.end == ev.end
            and o.assessment.get("class") == ev.assessment.get("class")
            and _same_float(o.min_ratio, ev.min_ratio))
    if same:
        return None
    if o.end is None and ev.end is not None:
        return "close"
    return "update" if o.end is None else "revise"


def _same_float(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)
