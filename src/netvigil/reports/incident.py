"""Incident reports in the style of NetBlocks' (issue 10, deliverable 4): one event, explained.

A report is built once as facts (:class:`IncidentReport`: headline, transitions, restorations,
affected regions and networks, blocked platforms, impact, rank, caveats, citations) and then
rendered to Markdown, HTML or PDF by :mod:`netvigil.reports.render`; the renderers never
compute, so the three formats cannot disagree with each other or with the API (the event's
times and lowest level are the stored event's).

Levels are "share of ordinary connectivity" as NetBlocks writes them (anchors §3.3): the
event's primary data-plane series divided by its median over the week before the event
(the same normalisation as the PNG chart, :func:`netvigil.reports.chart.normalise`).
Transitions are the changes between level bands (:data:`BANDS`) that last at least
:data:`MIN_RUN` bins, so one noisy bin is not a "restoration".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from netvigil.events.serialize import share_lost
from netvigil.impact import Impact, for_event
from netvigil.model import (
    EntityRef,
    EntityType,
    Event,
    EventKind,
    Series,
    SourceFamily,
    signal_kind,
)
from netvigil.model.errors import NetVigilError
from netvigil.reports.chart import normalise
from netvigil.reports.netblocks import percent, platform_name, primary_evidence, sentence
from netvigil.store import Store

WEEK = 7 * 86_400
#: Level bands, lowest first: (upper bound of the share of ordinary connectivity, words).
BANDS: tuple[tuple[float, str], ...] = (
    (0.10, "near-total blackout"),
    (0.50, "major disruption"),
    (0.90, "partial disruption"),
    (float("inf"), "ordinary levels"),
)
#: A band must hold this many bins to count as a transition (one noisy bin is not one).
MIN_RUN = 3
#: Platform blocks this long before the event still belong to its story (Kazakhstan: the
#: messaging apps were blocked about a day before the national cut).
PLATFORM_LEAD = 3 * 86_400
#: Events of one entity and kind less than this apart are one episode, reported together with
#: the gaps as restorations (Kazakhstan 2022: a nightly restoration split the cut into five
#: detected events; NetBlocks reported one blackout "with short daily restorations").
EPISODE_GAP = 12 * 3600


class ReportError(NetVigilError):
    pass


@dataclass(frozen=True)
class Transition:
    time: int
    level: float  # share of ordinary connectivity at the start of the new band
    what: str  # "fell to", "partial restoration to", "restored to", "fell again to"
    band: str


@dataclass(frozen=True)
class Restoration:
    start: int
    end: int
    level: float  # highest level reached

    @property
    def hours(self) -> float:
        return (self.end - self.start) / 3600


@dataclass(frozen=True)
class IncidentReport:
    event: Event
    episode: tuple[Event, ...]  # the event and its neighbours within EPISODE_GAP, by start
    headline: str
    summary: str
    severity: str  # band words for the deepest level
    share_lost: float
    signal: str | None  # the series levels are read from
    transitions: tuple[Transition, ...]
    restorations: tuple[Restoration, ...]
    affected: tuple[Event, ...]  # regions and networks of the country, overlapping
    platforms: tuple[Event, ...]  # platform blocks overlapping or just before
    impact: Impact | None
    rank: int
    recorded: int
    series: tuple[Series, ...]
    reconstruction: bool
    caveats: tuple[str, ...] = field(default=())
    citations: tuple[str, ...] = field(default=())

    @property
    def start(self) -> int:
        return self.episode[0].start

    @property
    def end(self) -> int | None:
        return self.episode[-1].end

    @property
    def rank_words(self) -> str:
        if self.recorded <= 1:
            return "the only event of its kind on record for this entity"
        if self.rank == 1:
            return f"the most serious on record (of {self.recorded} recorded events)"
        return f"number {self.rank} of {self.recorded} recorded events by severity"


def band(level: float) -> str:
    for upper, words in BANDS:
        if level < upper:
            return words
    return BANDS[-1][1]


def _band_index(level: float) -> int:
    return next(i for i, (upper, _) in enumerate(BANDS) if level < upper or i == len(BANDS) - 1)


def level_runs(levels: np.ndarray) -> list[tuple[int, int, int]]:
    """(start index, end index exclusive, band index) runs of one band; a run shorter than
    MIN_RUN bins joins the run before it; missing bins (NaN) extend the run they are in."""
    runs: list[list[int]] = []
    for i, lv in enumerate(levels):
        b = runs[-1][2] if lv != lv and runs else (_band_index(float(lv)) if lv == lv else -1)
        if b < 0:
            continue
        if runs and runs[-1][2] == b:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, b])
    merged: list[list[int]] = []
    for run in runs:
        if merged and (run[1] - run[0] < MIN_RUN or merged[-1][2] == run[2]):
            merged[-1][1] = run[1]
        elif len(merged) == 1 and merged[0][1] - merged[0][0] < MIN_RUN:
            merged[0] = [merged[0][0], run[1], run[2]]  # a short first run joins the next
        else:
            merged.append(run)
    return [(a, b, c) for a, b, c in merged]


def transitions(series: Series, event: Event, baseline_until: int,
                end: int) -> tuple[list[Transition], list[Restoration]]:
    """Band changes inside the event, each with the run's median level; a rise that is
    followed by another fall is a restoration (Kazakhstan's short daily ones), the last
    rise is the event's end."""
    inside = (series.times >= event.start) & (series.times < end)
    times = series.times[inside]
    levels = normalise(series, baseline_until)[inside]
    out: list[Transition] = []
    restorations: list[Restoration] = []
    runs = level_runs(levels)
    worst = len(BANDS)
    for k, (a, b, idx) in enumerate(runs):
        chunk = levels[a:b]
        lv = float(np.nanmedian(chunk)) if np.any(chunk == chunk) else float("nan")
        t = int(times[a])
        if k == 0:
            what = "rose to" if lv > 1 else "fell to"  # a Tor surge event rises
        elif idx > runs[k - 1][2]:
            what = "restored to" if idx == len(BANDS) - 1 else "partial restoration to"
        else:
            what = "fell again to" if idx >= worst else "fell further to"
        out.append(Transition(t, lv, what, BANDS[idx][1]))
        rising = k > 0 and idx > runs[k - 1][2]
        # a rise right after a rise is the same restoration still climbing; a chain that the
        # event's end closes (no run after it) is the recovery, not a restoration
        if rising and restorations and restorations[-1].end == t:
            last = restorations.pop()
            t, lv = last.start, max(last.level, float(np.nanmax(chunk)))
        else:
            lv = float(np.nanmax(chunk))
        if rising and k + 1 < len(runs):
            stop = int(times[b]) if b < len(times) else end
            restorations.append(Restoration(t, stop, lv))
        worst = min(worst, idx)
    return out, restorations


def _primary_series(store: Store, event: Event, start: int, end: int) -> Series | None:
    ev = primary_evidence(event)
    names = [ev.signal] if ev is not None else []
    names += [s.signal for s in event.signals if s.signal not in names]
    for name in names:
        if signal_kind(name).family is SourceFamily.PLATFORM:
            continue
        s = store.read_series(event.entity, name, start, end)
        if len(s):
            return s
    return None


def _country(store: Store, ref: EntityRef) -> str | None:
    if ref.type is EntityType.COUNTRY:
        return ref.code
    if ref.type is EntityType.REGION:
        return ref.code.split("-", 1)[0]
    for ent in store.read_entities(ref.type):
        if ent.ref == ref and ent.parent is not None:
            return ent.parent.code
    return None


def _severity_key(e: Event) -> float:
    duration = (e.end if e.end is not None else e.start + 3600) - e.start
    depth = 1.0 - e.min_ratio if e.min_ratio == e.min_ratio else 0.0
    return depth * duration


def _children(store: Store, country: str, event: Event, end: int) -> list[Event]:
    parents = {e.ref: e.parent for e in store.read_entities(EntityType.ASN)}
    out = []
    for e in store.read_events(None, event.start, end):
        if e.id == event.id or e.kind is EventKind.PLATFORM_BLOCK:
            continue
        if e.entity.type is EntityType.REGION and e.entity.code.startswith(country + "-"):
            out.append(e)
        elif e.entity.type is EntityType.ASN:
            parent = parents.get(e.entity)
            if parent is not None and parent.code == country:
                out.append(e)
    return sorted(out, key=lambda e: (e.entity.type.value, e.start, e.entity.code))


def _platforms(store: Store, country: str, event: Event, end: int) -> list[Event]:
    ref = EntityRef(EntityType.COUNTRY, country)
    found = store.read_events(ref, event.start - PLATFORM_LEAD, end)
    blocks = [e for e in found if e.kind is EventKind.PLATFORM_BLOCK and e.id != event.id]
    blocks += [e for e in found if e.id == event.id and any(
        signal_kind(s.signal).family is SourceFamily.PLATFORM for s in e.signals)]
    return blocks


def find_event(store: Store, event_id: str) -> Event:
    for e in store.read_events():
        if e.id == event_id:
            return e
    raise ReportError(f"no event with id {event_id!r} in the store (list them with "
                      "`netvigil events`)")


def episode_of(store: Store, event: Event) -> list[Event]:
    """``event`` and the events of the same entity and kind chained to it by gaps under
    EPISODE_GAP, in time order."""
    same = sorted((e for e in store.read_events(event.entity) if e.kind is event.kind),
                  key=lambda e: e.start)
    i = next(k for k, e in enumerate(same) if e.id == event.id)
    lo = hi = i
    while lo > 0 and same[lo - 1].end is not None and \
            same[lo].start - same[lo - 1].end <= EPISODE_GAP:  # type: ignore[operator]
        lo -= 1
    while hi + 1 < len(same) and same[hi].end is not None and \
            same[hi + 1].start - same[hi].end <= EPISODE_GAP:  # type: ignore[operator]
        hi += 1
    return same[lo:hi + 1]


def build_report(store: Store, event_id: str, *, now: int | None = None) -> IncidentReport:
    """Everything a report says about ``event_id`` (and its episode), read from ``store``."""
    event = find_event(store, event_id)
    now = now if now is not None else int(datetime.now(UTC).timestamp())
    episode = episode_of(store, event)
    whole = replace(event, start=episode[0].start, end=episode[-1].end,
                    min_ratio=min(e.min_ratio for e in episode))
    end = whole.end if whole.end is not None else min(now, _last_point(store, event, now))
    series = _primary_series(store, event, whole.start - WEEK, end + 86_400)
    trans: list[Transition] = []
    rest: list[Restoration] = []
    if series is not None:
        trans, rest = transitions(series, whole, whole.start, end)
    share_lost = _share_lost(event)
    severity = band(1.0 - share_lost) if event.kind is not EventKind.PLATFORM_BLOCK else \
        "platform restriction"
    country = _country(store, event.entity)
    affected = _children(store, country, whole, end) if country else []
    platforms = _platforms(store, country, whole, end) if country else []
    impact = _impact(store, whole, country, now)
    peers = [e for e in store.read_events(event.entity) if e.kind is event.kind]
    ranked = sorted(peers, key=_severity_key, reverse=True)
    rank = next(i for i, e in enumerate(ranked, 1) if e.id == event.id)
    reconstruction = store.get_state("provenance:reconstruction") is not None
    return IncidentReport(
        event=event, episode=tuple(episode), headline=_headline(whole, severity, rest, end),
        summary=sentence(event, reconstruction=reconstruction), severity=severity,
        share_lost=share_lost, signal=None if series is None else series.signal,
        transitions=tuple(trans), restorations=tuple(rest), affected=tuple(affected),
        platforms=tuple(platforms), impact=impact, rank=rank, recorded=len(peers),
        series=_chart_series(store, whole, end), reconstruction=reconstruction,
        caveats=_caveats(event, series, reconstruction, impact, len(episode)),
        citations=_citations(event, impact))


def _last_point(store: Store, event: Event, now: int) -> int:
    lasts = [i.last for i in store.list_series() if i.entity == event.entity and i.last]
    return max(lasts, default=now)


def _share_lost(event: Event) -> float:
    lost = share_lost(event)  # the one readable severity (events.serialize)
    return 0.0 if lost is None else min(max(lost, 0.0), 1.0)


def _impact(store: Store, event: Event, country: str | None, now: int) -> Impact | None:
    if event.kind is EventKind.PLATFORM_BLOCK or country is None:
        return None
    return for_event(event, now=now, country=country)


def _chart_series(store: Store, event: Event, end: int) -> tuple[Series, ...]:
    names = sorted({s.signal for s in event.signals})
    lo, hi = event.start - 2 * 86_400, end + 86_400
    out = [store.read_series(event.entity, n, lo, hi) for n in names]
    return tuple(s for s in out if len(s))


def _duration_words(seconds: int) -> str:
    days, rem = divmod(seconds, 86_400)
    hours = round(rem / 3600)
    if hours == 24:
        days, hours = days + 1, 0
    parts = ([f"{days} day{'s' if days != 1 else ''}"] if days else []) + (
        [f"{hours} hour{'s' if hours != 1 else ''}"] if hours or not days else [])
    return " ".join(parts)


def _headline(event: Event, severity: str, rest: Sequence[Restoration], end: int) -> str:
    name = event.entity_name or event.entity.code
    d = datetime.fromtimestamp(event.start, UTC)
    start = f"{d:%H:%M} UTC on {d.day} {d:%B %Y}"
    if event.kind is EventKind.PLATFORM_BLOCK:
        if (event.assessment or {}).get("circumvention", {}).get("summary") and not any(
                s.signal.startswith("platform:") for s in event.signals):
            return f"{name}: circumvention demand from {start}"  # a Tor surge alone
        names = sorted({platform_name(s.signal) for s in event.signals})
        return f"{name}: {', '.join(names)} restricted from {start}"
    span = "ongoing" if event.end is None else f"lasting {_duration_words(end - event.start)}"
    words = severity if severity != "ordinary levels" else "disruption"
    tail = (f", with {len(rest)} short restoration{'s' if len(rest) != 1 else ''}"
            if rest else "")
    return f"{name}: {words} from {start}, {span}{tail}"


def _caveats(event: Event, series: Series | None, reconstruction: bool,
             impact: Impact | None, episode: int) -> tuple[str, ...]:
    out = []
    if episode > 1:
        out.append(f"This event is one of {episode} detected events of the same kind less than "
                   f"{EPISODE_GAP // 3600} hours apart; the report covers them as one episode "
                   "(timeline, restorations and impact over the whole episode, restorations "
                   "included in the duration).")
    if reconstruction:
        out.append("RECONSTRUCTION: the store holds data generated from the public timeline "
                   "of the event, not measured data.")
    if series is None:
        out.append("No data-plane series for this entity: levels over time are not shown.")
    health = event.assessment.get("health") if event.assessment else None
    if isinstance(health, dict):
        silent = [k for k, v in health.items() if v in ("silent", "missing", "no-data")]
        if silent:
            out.append(f"Sources silent during the event (unknown, not counted as down): "
                       f"{', '.join(sorted(silent))}.")
    out.append("Levels are relative to the median of the week before the event; a holiday or "
               "an earlier outage in that week lowers the reference.")
    if impact is not None:
        out.extend(impact.caveats)
    return tuple(out)


def _citations(event: Event, impact: Impact | None) -> tuple[str, ...]:
    fams = {signal_kind(s.signal).family for s in event.signals}
    out = []
    if SourceFamily.PROBING in fams:
        out.append("Active probing of /24 blocks, Trinocular belief (Quan, Heidemann, "
                   "Pradkin, SIGCOMM 2013).")
    if SourceFamily.BGP in fams:
        out.append("BGP visibility from RIPE RIS / RouteViews MRT archives and RIS Live "
                   "(full-feed peers as in IODA).")
    if SourceFamily.PLATFORM in fams:
        out.append("Platform tests in OONI's data format (OONI, ooni.org; CC BY-SA 4.0 data).")
    methods = sorted({s.method for s in event.signals})
    out.append(f"Detection: {', '.join(methods) or 'unknown'}; rules: "
               f"{', '.join(event.rules) or 'none recorded'}.")
    if impact is not None:
        for fig in (impact.population, impact.internet, impact.gdp):
            if fig is not None:
                out.append(f"{fig.source}" + (f", {fig.year}" if fig.year else "") + ".")
        out += [c.citation for c in impact.costs]
    return tuple(dict.fromkeys(out))


def level_text(level: float) -> str:
    return percent(level) + " of ordinary levels"
