"""Classification of events as rules-as-data (``data/events/classify.toml``), issue 8.

Every rule has a stable id; an event names the rules that fired in ``Event.rules`` and
explains them in ``Event.assessment``:

* **scope** (``scope.rollup-regions`` / ``scope.rollup-ases`` / ``scope.rollup-mobile``):
  where at least ``min_share`` of a country's observed regions (or ASes, or mobile
  operators), and ``min_members`` of them, are in an event at once, the country gets one
  national event listing them (:func:`rollup`). IODA has no such
  step: Iran's November 2019 provinces all alerted with no national event (issue 8).
* **kind** (``class.*``), first that holds: ``platform-block``; ``intermittent`` (recurring
  at one time of day, with its schedule); ``throttling`` (volumes or loss/latency only, or
  only ``throttling``-family signals: ``throttling:<p>`` / ``tls-handshake:<p>``, a service
  slowed beside a same-server baseline; such an event is ``throttling`` even when it
  recurs — its schedule is still in the assessment — and never ``platform-block``);
  ``full-shutdown`` (the deepest count kept <= 10 % of its ordinary level);
  ``partial-outage``. The IODA-style ``Event.kind`` (outage/routing/...) is kept beside it.
* **mobile-only** (``class.mobile-only``): every AS down is a mobile operator in the shipped
  AS -> network-type table (``data/events/asn_network_type.csv``, sources per row) and an
  observed fixed AS of the country is not down.
* **circumvention** (``evidence.circumvention-surge``): a platform-block event whose country's
  daily Tor user estimates (``tor-users`` / ``tor-bridge-users``) surged during it — a day
  at least ``factor`` times the median of the ``baseline_days`` before it — names the surge
  days as supporting evidence of blocking (:func:`surges`, :func:`circumvention`). The
  collapse direction of the same counts is the detectors' (a shutdown).
* **circumvention demand** (``event.circumvention-demand``): a run of days on which the
  country's Tor users surged by a stricter ``factor`` with no platform-block event of the
  country to attach them to (OONI has no coverage there) is an event of its own, kind
  ``platform-block``, the surge its only evidence, a fixed low-moderate confidence and a
  sentence ("Tor use from Kazakhstan rose 10x on 4 January 2022: circumvention demand, a
  sign of blocking"; :func:`demand_events`). Why a rule and not the detector: the
  detectors judge the fall of a count only (``netvigil.seasonal``'s lower tail; a daily
  series feeds one slot of its profile, a level detector), so the upward departure is
  judged here, on the daily grid, with its thresholds as data.
* **cause**: evidence rules ``cause.*`` (simultaneity across independent ASes, round-hour
  start, recurrence, data plane cut while BGP stays visible, platform blocking shortly
  before) combined as a noisy-or of their weights; from ``government_at`` on the event is
  ``likely government-ordered``, a lone network or region with no evidence ``likely
  technical``, otherwise ``undetermined``. These are indicators, never proof; the
  assessment lists each with its detail so a reader can weigh it.
"""

from __future__ import annotations

import csv
import heapq
import math
import tomllib
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from itertools import islice
from typing import Any

import numpy as np
import numpy.typing as npt

from netvigil.events.build import event_id
from netvigil.model import (
    EntityRef,
    Event,
    EventKind,
    EventStatus,
    Scope,
    Series,
    SignalEvidence,
    SourceFamily,
    signal_kind,
)

DAY = 86400


@cache
def load_config() -> dict[str, Any]:
    """The packaged rule table (read once)."""
    text = (resources.files("netvigil.data") / "events" / "classify.toml").read_text("utf-8")
    return tomllib.loads(text)


@dataclass(frozen=True)
class NetworkType:
    asn: str
    country: str
    network_type: str  # mobile | fixed | mixed
    source: str


@cache
def network_types() -> dict[str, NetworkType]:
    """AS -> network type, from the shipped table (each row names its source)."""
    name = load_config()["mobile"]["only"]["table"]
    text = (resources.files("netvigil.data") / "events" / name).read_text("utf-8")
    out = {}
    for row in csv.DictReader(text.splitlines()):
        out[row["asn"]] = NetworkType(row["asn"], row["country"], row["network_type"],
                                      row["source"])
    return out


# -- kind -------------------------------------------------------------------------------------
def _family(signal: str) -> SourceFamily:
    return signal_kind(signal).family


def _is_count(signal: str) -> bool:
    return signal_kind(signal).higher_is_better


#: families that judge a service, not connectivity: never a shutdown's depth or data plane
SERVICE_FAMILIES = (SourceFamily.PLATFORM, SourceFamily.THROTTLING)


def _slowed_only(signals: Sequence[str]) -> bool:
    """Every signal is a throttling one (``throttling:*``, ``tls-handshake:*``)."""
    return bool(signals) and all(_family(s) is SourceFamily.THROTTLING for s in signals)


def tod(t: int) -> int:
    """Seconds since midnight UTC."""
    return t % DAY


@dataclass(frozen=True)
class History:
    """The events of one entity as arrays (start, duration), for :func:`schedule`."""

    starts: npt.NDArray[np.int64]
    durations: npt.NDArray[np.int64]

    @classmethod
    def of(cls, events: Sequence[Event], end_of: Mapping[str, int]) -> History:
        return cls(np.array([e.start for e in events], dtype=np.int64),
                   np.array([end_of[e.id] - e.start for e in events], dtype=np.int64))


def schedule(event: Event, history: History, end: int) -> dict[str, Any] | None:
    """The recurring schedule this event belongs to, or None (rule ``class.intermittent``).

    ``history``: all events of the entity; ``end``: this event's end (or the data end while
    ongoing). Matches are events within ``window_days`` before or after this one, starting
    at the same time of day (``tolerance_s``) and lasting within ``duration_spread``.
    """
    cfg = load_config()["kind"]["intermittent"]
    tol, window = int(cfg["tolerance_s"]), int(cfg["window_days"]) * DAY
    spread = float(cfg["duration_spread"])
    mine = end - event.start
    if mine <= 0 or mine >= DAY:
        return None
    st, du = history.starts, history.durations
    d = np.abs(st % DAY - event.start % DAY)
    same = ((np.abs(st - event.start) <= window) & (np.minimum(d, DAY - d) <= tol)
            & (np.abs(du - mine) <= spread * mine))
    if int(same.sum()) < int(cfg["min_occurrences"]):
        return None
    starts = np.sort(st[same] % DAY)
    mid = int(starts[len(starts) // 2])
    return {"start_utc": f"{mid // 3600:02d}:{mid % 3600 // 60:02d}",
            "duration_s": int(np.sort(du[same])[int(same.sum()) // 2]),
            "occurrences": int(same.sum()), "first": int(st[same].min()),
            "last": int(st[same].max())}


def kind(event: Event, sched: dict[str, Any] | None) -> tuple[str, str]:
    """(kind, rule id): the first kind rule that holds."""
    rules = sorted(load_config()["kind"].items(), key=lambda kv: kv[1]["order"])
    sigs = [s.signal for s in event.signals]
    counts = [s for s in event.signals if _is_count(s.signal)
              and _family(s.signal) not in SERVICE_FAMILIES]
    slowed = _slowed_only(sigs)
    for name, cfg in rules:
        if name == "platform-block" and sigs and all(
                _family(s) is SourceFamily.PLATFORM for s in sigs):
            return name, cfg["id"]
        if name == "intermittent" and sched is not None and not slowed:
            return name, cfg["id"]
        if name == "throttling" and sigs and (slowed or all(
                _family(s) is SourceFamily.TRAFFIC or not _is_count(s) for s in sigs)):
            return name, cfg["id"]
        if name == "full-shutdown" and counts and min(
                s.min_ratio for s in counts) <= float(cfg["max_ratio"]):
            return name, cfg["id"]
    last = rules[-1]
    return last[0], last[1]["id"]


# -- cause ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CauseContext:
    """What the cause rules need beyond the event itself."""

    step: int  # the finest step of the entity's series
    #: the country's ASes (the entity's own may be among them) with an event starting within
    #: the simultaneity window of this event: distinct ids, sorted (:meth:`SiblingIndex.within`)
    sibling_ases: Sequence[str]
    platform_starts: Sequence[int]  # platform-block starts on the entity or its country
    bgp_present: bool  # the entity has a BGP series with data in the event window
    bgp_alerting: bool


class SiblingIndex:
    """The event starts of one country's ASes, sorted once, each with its AS: what the
    simultaneity rule asks is which distinct ASes start within a window
    (:meth:`within`).

    Why an index and not a list of (AS, start) pairs per entity (as before): in a national
    cut k ASes start within one window, so each of the k was handed the k-1 others and
    :func:`cause` made a set of their names per event: O(k^2) Python steps. Measured on the
    70,000-series store of ``benchmarks/bench_dask.py --entities 70000 --days 8`` (20
    countries of 3,500 ASes, a third of them cut at one of ten times), a quarter of the
    entities in one process under cProfile: 30.8 s of the 40 s went to assessing events,
    20.5 s of it building those lists and sets (6.8 M ``EntityRef.__str__`` calls). Here a
    window is resolved once (``numpy.unique`` over its slice, cached by the slice), and
    :func:`cause` merges the entity into the sorted names without copying them.
    """

    def __init__(self, starts: Iterable[tuple[EntityRef, int]]) -> None:
        pairs = [(r.fqid, int(t)) for r, t in starts]
        self._names = sorted({n for n, _ in pairs})
        pos = {n: i for i, n in enumerate(self._names)}
        times = np.array([t for _, t in pairs], dtype=np.int64)
        ids = np.array([pos[n] for n, _ in pairs], dtype=np.int64)
        order = np.argsort(times, kind="stable")
        self._times, self._ids = times[order], ids[order]
        self._seen: dict[tuple[int, int], tuple[str, ...]] = {}

    def within(self, lo: int, hi: int) -> tuple[str, ...]:
        """Sorted distinct ids of the ASes with an event starting in ``[lo, hi]``."""
        a = int(np.searchsorted(self._times, lo, "left"))
        b = int(np.searchsorted(self._times, hi, "right"))
        found = self._seen.get((a, b))
        if found is None:
            found = self._seen[(a, b)] = tuple(
                self._names[i] for i in np.unique(self._ids[a:b]).tolist())
        return found


def _union_head(names: Sequence[str], extra: Iterable[str], n: int) -> tuple[int, list[str]]:
    """Size and first ``n`` of ``sorted(set(names) | set(extra))`` for sorted, distinct
    ``names``, in O(len(extra) log len(names)): ``names`` is shared by every event of a
    window and not copied."""
    add = sorted({x for x in extra
                  if (i := bisect_left(names, x)) == len(names) or names[i] != x})
    return len(names) + len(add), list(islice(heapq.merge(names[:n], add[:n]), n))


def cause(event: Event, sched: dict[str, Any] | None, ctx: CauseContext,
          members: Sequence[EntityRef] = ()) -> tuple[dict[str, Any], list[str]]:
    """The cause assessment and the ids of the evidence rules that fired."""
    cfg = load_config()["cause"]
    evidence: list[dict[str, Any]] = []

    def fire(name: str, detail: str) -> None:
        evidence.append({"rule": cfg[name]["id"], "weight": float(cfg[name]["weight"]),
                         "detail": detail})

    sim = cfg["simultaneous-ases"]
    asn_members = [m for m in members if m.type.value == "asn"]
    own = ([event.entity.fqid] if event.entity.type.value == "asn"
           else [m.fqid for m in asn_members])
    count, head = _union_head(ctx.sibling_ases, own, 10)
    if count >= int(sim["min_ases"]):
        fire("simultaneous-ases", f"{count} ASes down within {int(sim['window_s'])} s: "
             + ", ".join(head))
    if ctx.step < 3600 and event.start % 3600 == 0:
        fire("round-hour", f"started at {event.start % DAY // 3600:02d}:00 UTC")
    if sched is not None:
        fire("recurrence", f"{sched['occurrences']} times at {sched['start_utc']} UTC")
    data_plane = [s for s in event.signals if _is_count(s.signal)
                  and _family(s.signal) not in (SourceFamily.BGP, *SERVICE_FAMILIES)
                  and s.worst_level == "critical"]
    if data_plane and ctx.bgp_present and not ctx.bgp_alerting:
        fire("bgp-visible", f"{data_plane[0].signal} critical while BGP routes stayed visible")
    before = [t for t in ctx.platform_starts
              if 0 < event.start - t <= int(cfg["platform-before"]["window_s"])]
    if before and not all(_family(s.signal) is SourceFamily.PLATFORM for s in event.signals):
        fire("platform-before", f"platform block {(event.start - max(before)) // 3600} h before")
    miss = 1.0
    for ev in evidence:
        miss *= 1.0 - ev["weight"]
    weight = round(1.0 - miss, 6)
    lone = event.entity.type.value != "country" and not members
    if weight >= float(cfg["government_at"]):
        likely = "government-ordered"
    elif not evidence and lone:
        likely = "technical"
    else:
        likely = "undetermined"
    return ({"likely": likely, "weight": weight, "evidence": evidence},
            [ev["rule"] for ev in evidence])


# -- probability --------------------------------------------------------------------------
FEATURES = ("families", "depth", "log2_bins", "members")


def features(event: Event, members: int = 0, duration: int | None = None) -> list[float]:
    """The logistic's inputs: independent families alerting (critical 1, warning 0.5), depth
    (1 - min_ratio), log2 of the duration in 5-minute bins, roll-up members (at most 10)."""
    fams: dict[SourceFamily, float] = {}
    for s in event.signals:
        w = 1.0 if s.worst_level == "critical" else 0.5
        fams[_family(s.signal)] = max(fams.get(_family(s.signal), 0.0), w)
    depth = max((1.0 - s.min_ratio for s in event.signals if s.min_ratio == s.min_ratio),
                default=0.0)
    if duration is None:
        duration = event.duration if event.duration is not None else 0
    return [sum(fams.values()), max(0.0, min(1.0, depth)),
            math.log2(max(1.0, duration / 300.0)), float(min(members, 10))]


def coefficients(event: Event) -> dict[str, float]:
    """The detector's fitted coefficients (``[probability.by_detector."<method>"]``), else
    the defaults: a probability is only calibrated for the detector it was fitted on."""
    cfg = load_config()["probability"]
    methods = sorted({s.method for s in event.signals})
    table = cfg.get("by_detector", {}).get(methods[0] if methods else "", cfg)
    return {k: float(table[k]) for k in ("intercept", *FEATURES)}


def probability(event: Event, members: int = 0, duration: int | None = None) -> float:
    """Logistic probability that the event is real (rule ``confidence.logistic``)."""
    coef = coefficients(event)
    logit = coef["intercept"] + sum(coef[name] * x for name, x in
                                    zip(FEATURES, features(event, members, duration),
                                        strict=True))
    return round(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit)))), 6)


# -- circumvention demand ----------------------------------------------------------------
def surge_days(series: Series, factor: float | None = None) -> list[tuple[int, float, float]]:
    """(day start, value, baseline) for every surge day of a daily count: at least
    ``factor`` (default: rule ``evidence.circumvention-surge``'s) times the baseline, the
    median of the last ``baseline_days`` days with data that were not in a collapse
    (``min_baseline_days`` of them at least). A collapse day is below 1/``factor`` (the
    rule's) of its own baseline and never enters a later one, as the detectors freeze
    their baseline in an outage: without that, the return to ordinary use after a collapse
    longer than half the window read as a surge. Upward only: the fall of the same count
    is the detectors' (a collapse). One pass over the whole series, O(days x window)."""
    cfg = load_config()["evidence"]["circumvention-surge"]
    days, need = int(cfg["baseline_days"]), int(cfg["min_baseline_days"])
    rule_factor = float(cfg["factor"])
    factor = rule_factor if factor is None else factor
    ordinary: list[float] = []
    out = []
    for i, v in enumerate(series.values.tolist()):
        if v != v:  # NaN: no estimate that day
            continue
        med = float(np.median(ordinary[-days:])) if len(ordinary) >= need else None
        if med is not None and med > 0 and v >= factor * med:
            out.append((series.start + i * series.step, float(v), med))
        if med is None or v * rule_factor >= med:
            ordinary.append(float(v))
    return out


def surges(series: Series, factor: float | None = None) -> list[tuple[int, float]]:
    """(day start, value / median of the days before) for every surge day
    (:func:`surge_days`, rule ``evidence.circumvention-surge``)."""
    return [(t, round(v / med, 3)) for t, v, med in surge_days(series, factor)]


def _in_window(day: int, block: Event, end: int) -> bool:
    """A surge day counts for a platform block ending at ``end`` when it starts at most
    ``window_s`` before the block and no later than its end."""
    cfg = load_config()["evidence"]["circumvention-surge"]
    return block.start - int(cfg["window_s"]) <= day <= end


def circumvention(event: Event, end: int, found: Mapping[str, Sequence[tuple[int, float]]]
                  ) -> dict[str, Any] | None:
    """The surge days (``found``: per signal, from :func:`surges`) within the window of a
    platform-block ``event`` ending at ``end``, or None."""
    cfg = load_config()["evidence"]["circumvention-surge"]
    hits = {sig: [{"day": t, "ratio": r} for t, r in days if _in_window(t, event, end)]
            for sig, days in sorted(found.items())}
    hits = {sig: v for sig, v in hits.items() if v}
    if not hits:
        return None
    return {"rule": cfg["id"], "factor": float(cfg["factor"]),
            "baseline_days": int(cfg["baseline_days"]), "surges": hits}


def is_demand(event: Event) -> bool:
    """An event founded on a Tor surge alone (rule ``event.circumvention-demand``)."""
    return load_config()["event"]["circumvention-demand"]["id"] in event.rules


def _episodes(days: Sequence[int]) -> list[list[int]]:
    """Runs of consecutive days."""
    runs: list[list[int]] = []
    for d in sorted(set(days)):
        if runs and d - runs[-1][-1] == DAY:
            runs[-1].append(d)
        else:
            runs.append([d])
    return runs


def demand_events(country: EntityRef, name: str, series: Mapping[str, Series],
                  blocks: Sequence[tuple[Event, int]], since: int) -> list[Event]:
    """Events of circumvention demand (rule ``event.circumvention-demand``): each run of
    consecutive days on which a Tor series of the country (``series``: the rule's signals)
    surged by the rule's ``factor`` (:func:`surge_days`), unless a platform-block event of
    the country (``blocks``: (event, end)) has one of its days in its window — then the
    surge is that block's evidence (:func:`circumvention`), not a second event.

    Why an event at all: where OONI has no coverage a surge is the only trace of blocking
    there is; why kind ``platform-block`` and not a new kind: circumvention demand is a sign
    of blocking, and every surface (API, CODF, dashboard, alerts, reports) already knows the
    kind, keeps it out of national roll-ups and names it as blocking. The cost: such an
    event names no platform, and a shutdown after it reads it as a block before it
    (``cause.platform-before``). Its confidence is the rule's fixed low-moderate value.
    Runs starting before ``since`` are left out (an incremental rebuild keeps them stored).
    """
    cfg = load_config()["event"]["circumvention-demand"]
    ev_cfg = load_config()["evidence"]["circumvention-surge"]
    factor = float(cfg["factor"])
    found = {sig: surge_days(s, factor) for sig, s in sorted(series.items()) if len(s)}
    per_day: dict[int, dict[str, tuple[float, float]]] = defaultdict(dict)
    for sig, days in found.items():
        for t, v, med in days:
            per_day[t][sig] = (v, med)
    out = []
    for run in _episodes(list(per_day)):
        if run[0] < since or any(_in_window(d, b, end) for d in run for b, end in blocks):
            continue
        out.append(_demand_event(country, name, run, per_day, series, cfg, ev_cfg, factor))
    return out


def _demand_event(country: EntityRef, name: str, run: list[int],
                  per_day: Mapping[int, Mapping[str, tuple[float, float]]],
                  series: Mapping[str, Series], cfg: Mapping[str, Any],
                  ev_cfg: Mapping[str, Any], factor: float) -> Event:
    """One run of surge days as an event (:func:`demand_events`)."""
    start = run[0]
    last_data = max(s.end for s in series.values() if len(s))
    end = None if run[-1] + DAY >= last_data else run[-1] + DAY  # surging at the data end
    evidence = []
    score = 1.0
    for sig in sorted({s for d in run for s in per_day[d]}):
        days = [(d, *per_day[d][sig]) for d in run if sig in per_day[d]]
        low = min(days, key=lambda x: x[1] / x[2])
        sig_score = sum(abs(v - med) / max(v, med) * 100.0 * DAY / 60.0 for _d, v, med in days)
        score *= sig_score
        evidence.append(SignalEvidence(
            signal=sig, method=str(ev_cfg["id"]), start=days[0][0],
            end=None if end is None else days[-1][0] + DAY, score=round(sig_score, 6),
            min_ratio=round(low[1] / low[2], 6), min_value=low[1], history_value=low[2],
            worst_level="warning"))
    surges_by = {e.signal: [{"day": d, "ratio": round(per_day[d][e.signal][0]
                                                       / per_day[d][e.signal][1], 3)}
                            for d in run if e.signal in per_day[d]] for e in evidence}
    peak = max((r["ratio"], r["day"]) for v in surges_by.values() for r in v)
    conf = float(cfg["confidence"])
    ongoing_to = end if end is not None else last_data
    when = datetime.fromtimestamp(peak[1], UTC)
    summary = (f"Tor use from {name} rose {peak[0]:.0f}x on {when.day} {when:%B %Y}: "
               "circumvention demand, a sign of blocking")
    assessment: dict[str, Any] = {
        "class": {"kind": EventKind.PLATFORM_BLOCK.value, "rule": cfg["id"], "schedule": None},
        "severity": {"share_lost": 0.0, "deepest_loss": 0.0, "signal": evidence[0].signal,
                     "duration_s": ongoing_to - start, "ongoing": end is None,
                     "people_affected": None, "peak_ratio": peak[0]},
        "signals": [{"signal": sig, "state": "alerting" if sig in surges_by else "normal",
                     "coverage": 1.0} for sig in sorted(series)],
        "cause": {"likely": "undetermined", "weight": 0.0, "evidence": []},
        "probability": conf,
        "circumvention": {"rule": ev_cfg["id"], "factor": factor,
                          "baseline_days": int(ev_cfg["baseline_days"]),
                          "surges": surges_by, "summary": summary},
    }
    return Event(
        id=event_id(country, start, str(cfg["id"])), entity=country, entity_name=name,
        start=start, end=end, status=EventStatus.ONGOING if end is None else EventStatus.ENDED,
        scope=Scope.NATIONAL, kind=EventKind.PLATFORM_BLOCK, score=round(score, 6),
        confidence=conf, min_ratio=min(e.min_ratio for e in evidence),
        signals=tuple(evidence), rules=(str(ev_cfg["id"]), str(cfg["id"])),
        assessment=assessment)


# -- mobile-only --------------------------------------------------------------------------
def mobile_only(down: Sequence[EntityRef], observed: Sequence[EntityRef]) -> \
        dict[str, Any] | None:
    """Assessment of ``class.mobile-only`` for ASes ``down`` among the ``observed`` ASes of a
    country, or None when it does not hold (or the table does not know them)."""
    table = network_types()
    down_asn = sorted({r.code for r in down if r.type.value == "asn"})
    if not down_asn or any(a not in table for a in down_asn):
        return None
    if any(table[a].network_type != "mobile" for a in down_asn):
        return None
    fixed_up = [r.code for r in observed if r.type.value == "asn" and r.code not in down_asn
                and r.code in table and table[r.code].network_type != "mobile"]
    if not fixed_up:
        return None
    return {"rule": load_config()["mobile"]["only"]["id"], "mobile_down": sorted(down_asn),
            "fixed_up": sorted(fixed_up),
            "sources": {a: table[a].source for a in sorted(down_asn)}}


def is_mobile(ref: EntityRef) -> bool:
    """An AS the shipped table calls a mobile operator."""
    known = network_types().get(ref.code) if ref.type.value == "asn" else None
    return known is not None and known.network_type == "mobile"


# -- scope roll-up -----------------------------------------------------------------------
def _service_level(e: Event) -> bool:
    """A platform block or a throttled service: its network is not down, so it never counts
    toward a national roll-up."""
    return e.kind.value == "platform-block" or _slowed_only([s.signal for s in e.signals])


@dataclass(frozen=True)
class RollupSpan:
    rule: str
    start: int
    end: int | None
    members: tuple[Event, ...]


def rollup(child_events: Mapping[EntityRef, Sequence[Event]], observed: int, rule: str,
           end_of: Mapping[str, int]) -> list[RollupSpan]:
    """Intervals where at least ``min_share`` of ``observed`` children (and ``min_members``)
    are in an event at once, with the member events overlapping each interval.

    A sweep over event boundaries: +1 at a child's first event start, -1 at its end (a child
    with overlapping events counts once). The interval opens when the count reaches the
    threshold and closes when it falls below; ongoing members keep it open (end None).
    """
    cfg = load_config()["scope"][rule.split(".", 1)[1]]
    need = max(int(cfg["min_members"]), math.ceil(float(cfg["min_share"]) * observed))
    if observed <= 0 or sum(1 for v in child_events.values() if v) < need:
        return []
    inf = 2**62
    marks: list[tuple[int, int, EntityRef]] = []
    for ref, evs in child_events.items():
        for e in evs:
            if _service_level(e):
                continue
            marks.append((e.start, 1, ref))
            marks.append((inf if e.end is None else end_of[e.id], -1, ref))
    marks.sort(key=lambda m: (m[0], m[1]))
    active: dict[EntityRef, int] = {}
    spans: list[tuple[int, int]] = []
    opened: int | None = None
    for t, delta, ref in marks:
        active[ref] = active.get(ref, 0) + delta
        if active[ref] == 0:
            del active[ref]
        if opened is None and len(active) >= need:
            opened = t
        elif opened is not None and len(active) < need:
            spans.append((opened, t))
            opened = None
    if opened is not None:
        spans.append((opened, inf))
    out = []
    for lo, hi in spans:
        members = tuple(e for evs in child_events.values() for e in evs
                        if not _service_level(e) and e.start < hi
                        and (e.end is None or end_of[e.id] > lo))
        out.append(RollupSpan(cfg["id"], lo, None if hi >= inf else hi, members))
    return out
