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
* **cause**: evidence rules ``cause.*`` (simultaneity across independent ASes, round-hour
  start, recurrence, data plane cut while BGP stays visible, platform blocking shortly
  before) combined as a noisy-or of their weights; from ``government_at`` on the event is
  ``likely government-ordered``, a lone network or region with no evidence ``likely
  technical``, otherwise ``undetermined``. These are indicators, never proof; the
  assessment lists each with its detail so a reader can weigh it.
"""

from __future__ import annotations

import csv
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from netvigil.model import EntityRef, Event, Series, SourceFamily, signal_kind

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
    sibling_starts: Sequence[tuple[EntityRef, int]]  # other ASes of the country: event starts
    platform_starts: Sequence[int]  # platform-block starts on the entity or its country
    bgp_present: bool  # the entity has a BGP series with data in the event window
    bgp_alerting: bool


def cause(event: Event, sched: dict[str, Any] | None, ctx: CauseContext,
          members: Sequence[EntityRef] = ()) -> tuple[dict[str, Any], list[str]]:
    """The cause assessment and the ids of the evidence rules that fired."""
    cfg = load_config()["cause"]
    evidence: list[dict[str, Any]] = []

    def fire(name: str, detail: str) -> None:
        evidence.append({"rule": cfg[name]["id"], "weight": float(cfg[name]["weight"]),
                         "detail": detail})

    sim = cfg["simultaneous-ases"]
    near = sorted({str(r) for r, t in ctx.sibling_starts
                   if abs(t - event.start) <= int(sim["window_s"])})
    asn_members = [m for m in members if m.type.value == "asn"]
    if event.entity.type.value == "asn":
        near = sorted(set(near) | {event.entity.fqid})
    elif asn_members:
        near = sorted(set(near) | {m.fqid for m in asn_members})
    if len(near) >= int(sim["min_ases"]):
        fire("simultaneous-ases", f"{len(near)} ASes down within {int(sim['window_s'])} s: "
             + ", ".join(near[:10]))
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
def surges(series: Series) -> list[tuple[int, float]]:
    """(day start, value / median of the days before) for every surge day of a daily count
    (rule ``evidence.circumvention-surge``: at least ``factor`` times the median of the
    ``baseline_days`` before it, ``min_baseline_days`` of them with data)."""
    cfg = load_config()["evidence"]["circumvention-surge"]
    days, need = int(cfg["baseline_days"]), int(cfg["min_baseline_days"])
    factor = float(cfg["factor"])
    vals, out = series.values, []
    for i in range(need, len(vals)):
        base = vals[max(0, i - days):i]
        base = base[~np.isnan(base)]
        if base.size < need or np.isnan(vals[i]):
            continue
        med = float(np.median(base))
        if med > 0 and vals[i] >= factor * med:
            out.append((series.start + i * series.step, round(float(vals[i]) / med, 3)))
    return out


def circumvention(event: Event, end: int, found: Mapping[str, Sequence[tuple[int, float]]]
                  ) -> dict[str, Any] | None:
    """The surge days (``found``: per signal, from :func:`surges`) within the window of a
    platform-block ``event`` ending at ``end``, or None."""
    cfg = load_config()["evidence"]["circumvention-surge"]
    lo = event.start - int(cfg["window_s"])
    hits = {sig: [{"day": t, "ratio": r} for t, r in days if lo <= t <= end]
            for sig, days in sorted(found.items())}
    hits = {sig: v for sig, v in hits.items() if v}
    if not hits:
        return None
    return {"rule": cfg["id"], "factor": float(cfg["factor"]),
            "baseline_days": int(cfg["baseline_days"]), "surges": hits}


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
