"""The scenario simulator: seeded source-level facts for any country (RECONSTRUCTIONS).

One generator, not two: the Kazakhstan 2022 reconstruction (:mod:`netvigil.scenarios.kz2022`)
is one scenario of this simulator, and the detection benchmark's scenarios
(``data/scenarios/catalogue.toml``) are others. Why generate *facts* and not series: the demo
and the benchmark must take the path real data takes (facts → :class:`netvigil.pipeline.Pipeline`
→ store → detection). A scenario plays three sources over a country's real address universe
(country-ip-blocks, CC0, packed in ``netvigil/data/geo``) and its real AS split (ip-location-db,
CC BY 4.0: ``data/geo/asn-ipv4-in-KZ.csv`` and the derived ``data/scenarios/asn-ipv4-in-*.csv``)
and hands a :class:`~netvigil.model.facts.FactSink` the facts the real sources emit
(:mod:`netvigil.model.facts`):

* active probing: a :class:`ProbeRound` per 600 s round with per-/24 counts (probes sent,
  replies, timeouts) of a simulated Trinocular prober that decides its adaptive probes with
  the prober's own belief (:mod:`netvigil.sources.probing.belief`) and selects blocks with the
  prober's selection rule (:class:`netvigil.sources.probing.targets.SelectionRule`);
* BGP: per-peer route observations, a RIB as :class:`RibColumns` plus update
  :class:`BgpElem` s where routes change (session resets, churn, withdrawals), fed through
  :class:`netvigil.sources.bgp.visibility.RoutingState` as the archive ingester does; each
  300 s bin's snapshot is emitted as a :class:`BgpVisibility` fact;
* platform tests: hourly :class:`PlatformTests` per AS and platform (ok / anomaly / failure),
  when the scenario has a ``[platform]`` section;
* OONI measurements (``[ooni]``): a handful per hour from each listed AS, as raw measurement
  documents judged by the OONI importer's own :func:`~netvigil.sources.ooni.meta.read_meta`,
  :func:`~netvigil.sources.ooni.verdict.verdict` and turned into series by the importer's
  ledger rule (:func:`netvigil.sources.ooni.ledger.accept`) — the small-count
  ``ooni-volume`` series of city-level and small-network measurement (issue 8, deliverable
  4), zero-filled exactly as ``netvigil ooni import`` zero-fills real data.

The world around the events: diurnal rhythm (a share of blocks whose addresses sleep at night,
"When the Internet Sleeps", Quan, Heidemann and Pradkin, IMC 2014: strongly diurnal in Asia and
Eastern Europe), a weekly rhythm (weekend days answer less), Trinocular's background of ~0.3 %
unreachable blocks, and source health: prober outages (rounds never emitted) and collector
outages (bins with no full-feed peer, the BGP code's "missing" fact).

Events are of two kinds, both data: the reconstruction's **phases** (class levels over an
interval, later rows win) and the benchmark's **injections** (a target — the country, named
ASes, a network class, an ISO 3166-2 region — cut to a level over one or many intervals, e.g.
every night from 01:00 to 09:00 local; optionally with its routes withdrawn). Blocks belong to
ASes only through the routes the generator announces (origin = the AS of the range in the AS
split); the pipeline attributes probed blocks by those BGP origins.

Truth is the scenario alone (its phases and injections: entity, scope, start, end, level) —
never a detector threshold. Same seed, same facts: each source draws from its own child
``numpy.random.Generator`` in a fixed order.
"""

from __future__ import annotations

import csv
import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from netvigil.model import EntityRef, EntityType, EventKind, Scope
from netvigil.model.errors import InputError
from netvigil.model.facts import BgpVisibility, FactSink, PlatformTests, ProbeRound

if TYPE_CHECKING:
    from netvigil.sources.bgp.fastrib import RibColumns
    from netvigil.sources.bgp.mrt.elem import BgpElem
    from netvigil.sources.bgp.visibility import VisibilityConfig

CLASSES: Final[tuple[str, ...]] = ("fixed", "mobile", "datacentre")
FIXED, MOBILE, DATACENTRE = 0, 1, 2

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
U32 = npt.NDArray[np.uint32]
I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


# ---------------------------------------------------------------------------------------------
# Scenario (the timeline as data)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One row of the timeline: class levels and/or platform levels over [start, end)."""

    id: str
    what: str
    start: int
    end: int
    levels: dict[str, float]
    platforms: dict[str, float]
    source: str
    assumed: bool


@dataclass(frozen=True)
class AsClass:
    asn: int
    cls: str
    name: str
    source: str


@dataclass(frozen=True)
class Injection:
    """One injected event of a benchmark scenario (``[[inject]]`` in the catalogue).

    ``target``: ``country`` (every block), ``asns`` (the blocks of the named ASes), ``class``
    (the blocks of every AS of a network class, e.g. mobile) or ``region`` (the blocks of an
    ISO 3166-2 region); ``spare_asns`` are left untouched. Over each interval a block of the
    target passes packets only while its rank is under ``level`` (the share of ordinary).
    ``withdraw``: the target's prefixes are also withdrawn at every collector peer (a control
    plane cut, Egypt 2011) and re-announced at the interval's end.
    """

    id: str
    cls: str  # the benchmark class this injection belongs to
    target: str
    asns: tuple[int, ...]
    net_class: str
    region: str
    spare_asns: tuple[int, ...]
    level: float
    intervals: tuple[tuple[int, int], ...]
    withdraw: bool
    source: str


@dataclass(frozen=True)
class Scenario:
    """The parsed ``scenario.toml``; ``raw`` keeps every section for the generator's knobs."""

    id: str
    title: str
    label: str
    country: str
    country_name: str
    start: int
    end: int
    geo_date: date
    utc_offset_hours: float
    seed: int
    phases: tuple[Phase, ...]
    as_classes: tuple[AsClass, ...]
    raw: dict[str, Any]
    data_dir: Path
    injections: tuple[Injection, ...] = ()

    @property
    def geo_when(self) -> int:
        """Unix seconds of the geolocation date (00:00 UTC)."""
        return _ts(datetime(self.geo_date.year, self.geo_date.month, self.geo_date.day,
                            tzinfo=UTC))

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw[name]
        assert isinstance(value, dict)
        return value


def _ts(value: object) -> int:
    if not isinstance(value, datetime):
        raise ValueError(f"scenario times must be TOML datetimes with offset, got {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def data_dir(name: str = "scenarios") -> Path:
    """A packaged ``netvigil/data/<name>`` folder (``scenarios``: the benchmark catalogue)."""
    return Path(str(resources.files("netvigil") / "data" / name))


def load_scenario(path: str | Path) -> Scenario:
    """Parse one scenario file (the reconstruction's ``scenario.toml`` format)."""
    file = Path(path)
    return parse_scenario(tomllib.loads(file.read_text(encoding="utf-8")), file.parent)


def parse_scenario(raw: dict[str, Any], base: Path) -> Scenario:
    """A scenario from its TOML tables; relative file names are read from ``base``."""
    sc = raw["scenario"]
    phases = tuple(
        Phase(
            id=str(p["id"]), what=str(p.get("what", "")), start=_ts(p["start"]),
            end=_ts(p["end"]), levels={k: float(v) for k, v in p.get("levels", {}).items()},
            platforms={k: float(v) for k, v in p.get("platforms", {}).items()},
            source=str(p["source"]), assumed=bool(p.get("assumed", False)),
        )
        for p in raw.get("phase", [])
    )
    for p in phases:
        unknown = set(p.levels) - set(CLASSES)
        if unknown:
            raise ValueError(f"phase {p.id}: unknown classes {sorted(unknown)}")
    as_classes = tuple(
        AsClass(int(a["asn"]), str(a["class"]), str(a.get("name", "")), str(a["source"]))
        for a in raw["classes"].get("asn", [])
    )
    geo_date = sc["geo_date"]
    if not isinstance(geo_date, date):
        raise ValueError("scenario.geo_date must be a TOML date")
    start = _ts(sc["start"])
    return Scenario(
        id=str(sc["id"]), title=str(sc["title"]), label=str(sc["label"]),
        country=str(sc["country"]), country_name=str(sc["country_name"]),
        start=start, end=_ts(sc["end"]), geo_date=geo_date,
        utc_offset_hours=float(sc["utc_offset_hours"]), seed=int(sc["seed"]),
        phases=phases, as_classes=as_classes, raw=raw, data_dir=base,
        injections=tuple(_injection(i, start, float(sc["utc_offset_hours"]))
                         for i in raw.get("inject", [])),
    )


_WEEKDAYS: Final[tuple[str, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _injection(row: dict[str, Any], start: int, utc_offset_hours: float) -> Injection:
    """An ``[[inject]]`` row: ``day`` (days after the scenario start, local midnight),
    ``from_hour``/``hours`` (local), ``days`` (repeat on that many consecutive days) and
    ``weekdays`` (only those local weekdays), all resolved here into UTC intervals."""
    day0 = start - round(utc_offset_hours * 3600)  # local midnight of the first day, in UTC
    first = int(row.get("day", 0))
    span = int(row.get("days", 1))
    weekdays = {_WEEKDAYS.index(w) for w in row.get("weekdays", _WEEKDAYS)}
    seconds = int(round(float(row["hours"]) * 3600))
    offset = int(round(float(row.get("from_hour", 0)) * 3600))
    intervals = []
    for d in range(first, first + span):
        t = day0 + d * 86_400 + offset
        if datetime.fromtimestamp(day0 + d * 86_400 + 43_200, UTC).weekday() in weekdays:
            intervals.append((t, t + seconds))
    target = str(row["target"])
    if target not in {"country", "asns", "class", "region"}:
        raise ValueError(f"inject {row.get('id')}: unknown target {target!r}")
    return Injection(
        id=str(row["id"]), cls=str(row["class"]), target=target,
        asns=tuple(int(a) for a in row.get("asns", [])), net_class=str(row.get("net_class", "")),
        region=str(row.get("region", "")),
        spare_asns=tuple(int(a) for a in row.get("spare_asns", [])),
        level=float(row["level"]), intervals=tuple(intervals),
        withdraw=bool(row.get("withdraw", False)), source=str(row.get("source", "")))


class LevelSchedule:
    """Piecewise-constant level per class (and per platform) derived from the phases.

    Later phases override earlier ones class by class; outside every phase the level is 1.
    Evaluation is vectorised: ``at(cls, times)`` is one ``searchsorted``.
    """

    def __init__(self, phases: tuple[Phase, ...], keys: tuple[str, ...], platform: bool) -> None:
        self._steps: dict[str, tuple[I64, F64]] = {}
        for key in keys:
            rows = [p for p in phases if key in (p.platforms if platform else p.levels)]
            cuts = sorted({t for p in rows for t in (p.start, p.end)})
            times = np.asarray(cuts, dtype=np.int64)
            values = np.ones(len(cuts), dtype=np.float64)
            for i, t in enumerate(cuts):
                for p in rows:  # later rows win
                    if p.start <= t < p.end:
                        values[i] = (p.platforms if platform else p.levels)[key]
            self._steps[key] = (times, values)

    def at(self, key: str, times: npt.ArrayLike) -> F64:
        cuts, values = self._steps[key]
        t = np.asarray(times, dtype=np.int64)
        if cuts.size == 0:
            return np.ones(t.shape, dtype=np.float64)
        idx = np.searchsorted(cuts, t, side="right") - 1
        out = np.where(idx >= 0, values[np.clip(idx, 0, None)], 1.0)
        return np.asarray(out, dtype=np.float64)

    def change_points(self, key: str) -> I64:
        return self._steps[key][0]


# ---------------------------------------------------------------------------------------------
# The address universe
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Universe:
    """A country's /24s at the scenario's geo date, their AS (0 = none in the AS table),
    network class and (when an injection targets a region) ISO 3166-2 region."""

    block_starts: U32  # sorted /24 network addresses
    block_asn: I64
    block_class: I8  # index into CLASSES
    as_names: dict[int, str]
    as_class: dict[int, str]
    prefix_net: U32  # routed prefixes (from the AS table ranges), network address
    prefix_len: U8
    prefix_origin: I64
    block_region: tuple[str | None, ...] = ()  # per block; empty for a scenario without injections

    def mask(self, inj: Injection) -> npt.NDArray[np.bool_]:
        """The blocks an injection cuts (its spared ASes excluded)."""
        n = self.block_starts.size
        if inj.target == "country":
            hit = np.ones(n, dtype=bool)
        elif inj.target == "asns":
            hit = np.isin(self.block_asn, np.asarray(inj.asns, dtype=np.int64))
        elif inj.target == "class":
            hit = self.block_class == CLASSES.index(inj.net_class)
        else:
            hit = np.array([r == inj.region for r in self.block_region], dtype=bool)
        spared = np.isin(self.block_asn, np.asarray(inj.spare_asns, dtype=np.int64))
        return np.asarray(hit & ~spared, dtype=np.bool_)


def _universe_blocks(sc: Scenario) -> U32:
    """The country's /24s: the scenario's CIDR list, else the shipped country-ip-blocks
    snapshot for its geo date (via the geo package, the one reader of that data)."""
    name = sc.raw["scenario"].get("universe")
    if name is None:
        from netvigil.geo.lookup import GeoLookup

        return np.asarray(GeoLookup.default().country_blocks(sc.country, sc.geo_date),
                          dtype=np.uint32)
    blocks: list[npt.NDArray[np.uint32]] = []
    for line in (sc.data_dir / name).read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        net = ipaddress.IPv4Network(text, strict=False)
        first = int(net.network_address) >> 8
        count = max(1, net.num_addresses // 256)
        blocks.append(np.arange(first, first + count, dtype=np.uint32) << np.uint32(8))
    return np.unique(np.concatenate(blocks)).astype(np.uint32)


def _sample(sc: Scenario, blocks: U32) -> U32:
    """``sample_blocks`` = N keeps a seeded uniform sample of N blocks (AS shares kept in
    expectation): a benchmark scenario of months costs in proportion to its blocks."""
    n = sc.raw["scenario"].get("sample_blocks")
    if n is None or int(n) >= blocks.size:
        return blocks
    rng = np.random.default_rng(sc.seed).spawn(5)[4]
    keep = np.sort(rng.choice(blocks.size, int(n), replace=False))
    return np.asarray(blocks[keep], dtype=np.uint32)


def _read_universe(sc: Scenario) -> Universe:
    block_starts = _sample(sc, _universe_blocks(sc))

    starts: list[int] = []
    ends: list[int] = []
    asns: list[int] = []
    names: dict[int, str] = {}
    with (sc.data_dir / sc.raw["scenario"]["as_table"]).open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if len(row) < 3 or not row[2].isdigit():
                continue
            starts.append(int(ipaddress.IPv4Address(row[0])))
            ends.append(int(ipaddress.IPv4Address(row[1])))
            asns.append(int(row[2]))
            names.setdefault(int(row[2]), row[3] if len(row) > 3 else "")
    r_start = np.asarray(starts, dtype=np.int64)
    r_end = np.asarray(ends, dtype=np.int64)
    r_asn = np.asarray(asns, dtype=np.int64)
    order = np.argsort(r_start, kind="stable")
    r_start, r_end, r_asn = r_start[order], r_end[order], r_asn[order]
    b = block_starts.astype(np.int64)
    idx = np.searchsorted(r_start, b, side="right") - 1
    ok = (idx >= 0) & (b <= r_end[np.clip(idx, 0, None)])
    block_asn = np.where(ok, r_asn[np.clip(idx, 0, None)], 0).astype(np.int64)

    cls_of: dict[int, str] = {a.asn: a.cls for a in sc.as_classes}
    patterns = [p.lower() for p in sc.section("classes")["datacentre_name_patterns"]]
    for asn, name in names.items():
        if asn not in cls_of and any(p in name.lower() for p in patterns):
            cls_of[asn] = "datacentre"
    default = str(sc.section("classes")["default"])
    lut = {asn: CLASSES.index(cls_of.get(asn, default)) for asn in names}
    block_class = np.array([lut.get(int(a), CLASSES.index(default)) for a in block_asn],
                           dtype=np.int8)

    p_net: list[int] = []
    p_len: list[int] = []
    p_org: list[int] = []
    for s, e, a in zip(r_start.tolist(), r_end.tolist(), r_asn.tolist(), strict=True):
        for net in ipaddress.summarize_address_range(ipaddress.IPv4Address(s),
                                                     ipaddress.IPv4Address(e)):
            if net.prefixlen <= 24:  # longer than /24 is filtered by most peers
                p_net.append(int(net.network_address))
                p_len.append(net.prefixlen)
                p_org.append(a)
    regions: tuple[str | None, ...] = ()
    if sc.injections:  # regions of the cut blocks are affected entities of the truth
        from netvigil.geo.lookup import GeoLookup

        regions = tuple(GeoLookup.default().bulk_regions(block_starts).region_codes())
    return Universe(
        block_starts=block_starts, block_asn=block_asn, block_class=block_class,
        block_region=regions,
        as_names=names, as_class={a: cls_of.get(a, default) for a in names},
        prefix_net=np.asarray(p_net, dtype=np.uint32),
        prefix_len=np.asarray(p_len, dtype=np.uint8),
        prefix_origin=np.asarray(p_org, dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------------
# Truth: the scenario's phases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TruthEvent:
    """One phase of the timeline as it applies to one entity (from scenario.toml only).

    ``level`` is the phase's share of ordinary for that entity; phases that raise the level
    (windows of access, restorations) are listed in :attr:`Simulation.restorations`.
    """

    entity: EntityRef
    scope: Scope
    kind: EventKind
    start: int
    end: int
    level: float
    signals: tuple[str, ...]  # signals expected to see it
    silent: tuple[str, ...]  # signals expected NOT to alert (bgp in a data-plane cut)
    phases: tuple[str, ...]
    cls: str = ""  # benchmark class (injections); "" for the reconstruction's phases
    required: bool = True  # False: affected too, but too small or a side effect (don't care)


def _weights(uni: Universe) -> F64:
    return np.asarray(np.bincount(uni.block_class, minlength=len(CLASSES))
                      / max(1, uni.block_class.size), dtype=np.float64)


def _phase_entities(sc: Scenario, uni: Universe, p: Phase, sched: LevelSchedule
                    ) -> list[tuple[EntityRef, Scope, float, float]]:
    """Who a phase is about, its level and the level just before it: the country when it
    sets every class (levels weighted by the universe's blocks), else the scenario's named
    ASes of the classes it sets (all ASes of a class when the scenario names none)."""
    country = EntityRef(EntityType.COUNTRY, sc.country)
    before = {c: float(sched.at(c, [p.start - 1])[0]) for c in CLASSES}
    if set(p.levels) == set(CLASSES):
        w = _weights(uni)
        level = float(sum(w[k] * p.levels[c] for k, c in enumerate(CLASSES)))
        prior = float(sum(w[k] * before[c] for k, c in enumerate(CLASSES)))
        return [(country, Scope.NATIONAL, level, prior)]
    out: list[tuple[EntityRef, Scope, float, float]] = []
    for cls, level in p.levels.items():
        named = [a.asn for a in sc.as_classes if a.cls == cls]
        asns = named or sorted(a for a, c in uni.as_class.items() if c == cls)
        out += [(EntityRef(EntityType.ASN, str(a)), Scope.NETWORK, level, before[cls])
                for a in asns]
    return out


def derive_truth(sc: Scenario, uni: Universe) -> tuple[tuple[TruthEvent, ...],
                                                       tuple[TruthEvent, ...]]:
    """(events, restorations): one row per phase × entity, straight from scenario.toml.

    A phase that sets an entity's level *below* the level just before it (per the schedule
    the generator follows) is an event — a cut, a throttle, a block; one that raises it is a
    restoration (a window of access inside a shutdown). No detector threshold is involved.
    """
    events: list[TruthEvent] = []
    restorations: list[TruthEvent] = []
    country = EntityRef(EntityType.COUNTRY, sc.country)
    sched = LevelSchedule(sc.phases, CLASSES, platform=False)
    plats = tuple(str(x) for x in sc.raw.get("platform", {}).get("platforms", ()))
    psched = LevelSchedule(sc.phases, plats, platform=True)
    for p in sc.phases:
        for ref, scope, level, prior in _phase_entities(sc, uni, p, sched) if p.levels else []:
            row = TruthEvent(ref, scope, EventKind.OUTAGE, p.start, p.end, level,
                             ("probing",), ("bgp",), (p.id,))
            (events if level < prior else restorations).append(row)
        for plat, level in p.platforms.items():
            prior = float(psched.at(plat, [p.start - 1])[0])
            row = TruthEvent(country, Scope.NATIONAL, EventKind.PLATFORM_BLOCK, p.start, p.end,
                             level, (f"platform:{plat}",), (), (p.id,))
            (events if level < prior else restorations).append(row)
    return tuple(events), tuple(restorations)


def injection_truth(sc: Scenario, uni: Universe) -> tuple[TruthEvent, ...]:
    """One row per injection × interval × entity it cuts, from the injection alone.

    The injection's own target is *required* (a detector must find it): the country, the
    named ASes, every AS of the targeted class, or the region — when it has at least
    ``[truth] required_min_blocks`` /24s in the universe (a network too small to be measured
    by any observatory is listed, not required). Every other entity with cut blocks (the ASes
    and regions inside a national cut, the country around a regional one) is *affected*: an
    event there is neither a hit nor a false alarm. The level is the entity's share of
    ordinary: ``1 − share of its blocks cut × (1 − level)``.
    """
    min_blocks = int(sc.raw.get("truth", {}).get("required_min_blocks", 50))
    country = EntityRef(EntityType.COUNTRY, sc.country)
    rows: list[TruthEvent] = []
    for inj in sc.injections:
        mask = uni.mask(inj)
        groups: list[tuple[EntityRef, Scope, npt.NDArray[np.bool_]]] = [
            (country, Scope.NATIONAL, np.ones(mask.size, dtype=bool))]
        for asn in np.unique(uni.block_asn[mask & (uni.block_asn > 0)]).tolist():
            groups.append((EntityRef(EntityType.ASN, str(asn)), Scope.NETWORK,
                           uni.block_asn == asn))
        regions = np.asarray([r or "" for r in uni.block_region], dtype=object)
        for code in sorted({r for r, m in zip(uni.block_region, mask, strict=True) if m and r}):
            groups.append((EntityRef(EntityType.REGION, code), Scope.REGIONAL,
                           np.asarray(regions == code, dtype=bool)))
        for ref, scope, members in groups:
            cut = float((mask & members).sum()) / max(1, int(members.sum()))
            if cut <= 0.0:
                continue
            own = _is_target(inj, ref, uni)
            required = own and int(members.sum()) >= min_blocks
            signals = ("probing", "bgp") if inj.withdraw else ("probing",)
            kind = EventKind.ROUTING if inj.withdraw else EventKind.OUTAGE
            rows += [TruthEvent(ref, scope, kind, a, b, 1.0 - cut * (1.0 - inj.level), signals,
                                () if inj.withdraw else ("bgp",), (inj.id,), inj.cls, required)
                     for a, b in inj.intervals]
        if inj.withdraw:
            seen = {ref for ref, _, _ in groups}
            rows += [TruthEvent(ref, scope, EventKind.ROUTING, a, b, inj.level, ("bgp",), (),
                                (inj.id,), inj.cls, False)
                     for ref, scope in _routed_entities(sc, uni, inj) if ref not in seen
                     for a, b in inj.intervals]
    return tuple(rows)


def withdrawn_prefixes(inj: Injection, uni: Universe) -> I64:
    """Indexes of the routed prefixes an injection with ``withdraw`` takes out of BGP."""
    if inj.target == "country":
        hit = np.ones(uni.prefix_origin.size, dtype=bool)
    elif inj.target == "asns":
        hit = np.isin(uni.prefix_origin, np.asarray(inj.asns, dtype=np.int64))
    elif inj.target == "class":
        hit = np.array([uni.as_class.get(int(a)) == inj.net_class
                        for a in uni.prefix_origin.tolist()], dtype=bool)
    else:
        raise ValueError(f"inject {inj.id}: a withdrawal needs a country, AS or class target")
    hit &= ~np.isin(uni.prefix_origin, np.asarray(inj.spare_asns, dtype=np.int64))
    return np.asarray(np.flatnonzero(hit), dtype=np.int64)


def _routed_entities(sc: Scenario, uni: Universe, inj: Injection
                     ) -> list[tuple[EntityRef, Scope]]:
    """Everything a withdrawal takes off the routing table: the origin ASes of its prefixes
    and the countries and regions of *all* their /24s (not only the sampled, probed ones;
    some lie outside the country). Affected rows only: an event there is a real consequence,
    neither a hit nor a false alarm. Where the /24s are is the geo package's answer."""
    from netvigil.geo.lookup import GeoLookup

    pfx = withdrawn_prefixes(inj, uni)
    out = [(EntityRef(EntityType.ASN, str(a)), Scope.NETWORK)
           for a in np.unique(uni.prefix_origin[pfx]).tolist()]
    first = uni.prefix_net[pfx].astype(np.int64) >> 8
    count = np.maximum(1, 1 << (24 - uni.prefix_len[pfx].astype(np.int64)))
    blocks = np.unique(np.concatenate([np.arange(f, f + n) for f, n in
                                       zip(first.tolist(), count.tolist(), strict=True)]
                                      or [np.empty(0, np.int64)]) << 8).astype(np.uint32)
    geo = GeoLookup.default()
    countries = {c for c in geo.bulk_blocks(blocks, sc.geo_when, with_asn=False)
                 .country_codes() if c}
    regions = {r for r in geo.bulk_regions(blocks).region_codes() if r}
    out += [(EntityRef(EntityType.COUNTRY, c), Scope.NATIONAL) for c in sorted(countries)]
    out += [(EntityRef(EntityType.REGION, r), Scope.REGIONAL) for r in sorted(regions)]
    return out


def _is_target(inj: Injection, ref: EntityRef, uni: Universe) -> bool:
    """Whether ``ref`` is what the injection is about (its truth is required)."""
    if inj.target == "country":
        return ref.type is EntityType.COUNTRY
    if inj.target == "region":
        return ref.type is EntityType.REGION and ref.code == inj.region
    if ref.type is not EntityType.ASN or int(ref.code) in inj.spare_asns:
        return False
    if inj.target == "asns":
        return int(ref.code) in inj.asns
    return uni.as_class.get(int(ref.code)) == inj.net_class


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


def _night(times: npt.ArrayLike, utc_offset_hours: float, peak_local_hour: float) -> F64:
    """0..1 'how deep in the night' with the peak at ``peak_local_hour`` local time."""
    t = np.asarray(times, dtype=np.float64)
    hours = ((t / 3600.0) + utc_offset_hours) % 24.0
    return np.asarray(0.5 * (1.0 + np.cos(2.0 * np.pi * (hours - peak_local_hour) / 24.0)),
                      dtype=np.float64)


def _by_class(table: dict[str, Any], block_class: I8) -> F64:
    lut = np.array([float(table[c]) for c in CLASSES], dtype=np.float64)
    return np.asarray(lut[block_class], dtype=np.float64)


class SimulatedProber:
    """A Trinocular prober over the country's blocks, as the real one decides (belief.py).

    Each round every target block gets its periodic probe; while the last outcome moved the
    belief towards uncertainty (``belief.wants_more``) it gets another, within the budget of
    ``BeliefModel.max_probes``. Which probes are answered is the scenario's business: a block
    passes packets while its rank is under its class level, and its addresses answer with
    the census availability, less at night for diurnal blocks (and on weekend days by
    ``weekly_depth`` × their diurnal depth: the blocks that sleep at night are the offices and
    homes that also change on rest days). An injection caps the level of the blocks it targets
    while one of its intervals is on.
    """

    def __init__(self, sc: Scenario, uni: Universe, sched: LevelSchedule,
                 rng: np.random.Generator) -> None:
        from netvigil.sources.probing import belief as bm
        from netvigil.sources.probing.targets import SelectionRule

        cfg = sc.section("probing")
        self.sc, self.sched, self.rng, self.bm = sc, sched, rng, bm
        self.model = bm.DEFAULT_MODEL
        self.step = int(cfg["round_seconds"])
        nb = uni.block_starts.size
        cls = uni.block_class
        probeable = rng.random(nb) < _by_class(cfg["probeable"], cls)
        lo = _by_class(cfg["availability_low"], cls)
        hi = _by_class(cfg["availability_high"], cls)
        avail = (lo + (hi - lo) * rng.random(nb)).astype(np.float32)
        ever = rng.integers(15, 257, nb).astype(np.uint16)
        ever[~probeable] = rng.integers(0, 15, int((~probeable).sum())).astype(np.uint16)
        rule = SelectionRule()
        sel = (ever >= rule.min_addresses) & (avail >= rule.min_availability)
        deep = rng.random(nb) < _by_class(cfg["diurnal_share"], cls)
        depth = np.where(deep, 0.9 + 0.1 * rng.random(nb),
                         _by_class(cfg["shallow_depth"], cls) * rng.random(nb))
        slices = int(cfg["slices"])
        slice_of = rng.integers(0, slices, nb)
        rank = rng.random(nb)  # a block passes packets while rank < level(class, t)
        idx = np.flatnonzero(sel)
        self.blocks = uni.block_starts[idx]
        self.availability = avail[idx]
        self.cls = cls[idx].astype(np.int64)
        self.depth, self.slice_of, self.rank = depth[idx], slice_of[idx], rank[idx]
        self.slice_off = np.arange(slices, dtype=np.int64) * (self.step // slices)
        self.belief = bm.initial_beliefs(idx.size, self.model)
        self.bg_down = np.zeros(idx.size, dtype=bool)
        self.p_start = float(cfg["outage_start_per_round"])
        self.p_end = float(cfg["outage_end_per_round"])
        self.peak = float(cfg["night_peak_local_hour"])
        self.weekly = float(cfg.get("weekly_depth", 0.0))
        self.weekend = {_WEEKDAYS.index(d) for d in cfg.get("weekend", ["sat", "sun"])}
        self.cuts = [(inj.level, np.asarray(inj.intervals, dtype=np.int64).reshape(-1, 2),
                      uni.mask(inj)[idx]) for inj in sc.injections]

    def round(self, r: int) -> ProbeRound:
        sc, rng, bm, m = self.sc, self.rng, self.bm, self.model
        start = sc.start + r * self.step
        t_slices = start + self.slice_off
        levels = np.stack([self.sched.at(name, t_slices) for name in CLASSES])
        level = levels[self.cls, self.slice_of]
        for cap, spans, mask in self.cuts:
            inside = (t_slices[:, None] >= spans[:, 0]) & (t_slices[:, None] < spans[:, 1])
            on = np.asarray(inside.any(axis=1), dtype=np.bool_)
            level = np.where(mask & on[self.slice_of], np.minimum(level, cap), level)
        connected = self.rank < level
        flip = rng.random(self.blocks.size)
        self.bg_down = np.where(self.bg_down, flip >= self.p_end, flip < self.p_start)
        night = _night(t_slices, sc.utc_offset_hours, self.peak)[self.slice_of]
        a = self.availability.astype(np.float64)
        if self.weekly > 0.0:
            shift = round(sc.utc_offset_hours * 3600)
            local_day = ((t_slices + shift) // 86_400 + 3) % 7  # 0 = Monday
            rest = np.isin(local_day, list(self.weekend))[self.slice_of]
            a = a * (1.0 - self.weekly * self.depth * rest)
        p_true = np.where(connected & ~self.bg_down, a * (1.0 - self.depth * night), 0.0)
        n = self.blocks.size
        sent = np.zeros(n, dtype=np.uint8)
        replies = np.zeros(n, dtype=np.uint8)
        idx = np.arange(n)
        for _ in range(m.max_probes):
            if idx.size == 0:
                break
            got = rng.random(idx.size) < p_true[idx]
            sent[idx] += 1
            replies[idx] += got.astype(np.uint8)
            before = self.belief[idx]
            after = bm.update(before, got, self.availability[idx], m)
            self.belief[idx] = after
            idx = idx[bm.wants_more(before, after, m)]
        return ProbeRound(
            vantage="kz2022-simulated", round_start=float(start), round_seconds=self.step,
            block_starts=self.blocks, availability=self.availability, sent=sent,
            replies=replies, unreachable=np.zeros(n, dtype=np.uint8), lost=sent - replies)


class SimulatedCollector:
    """~20 collector peers' routes to the country's prefixes: one RIB, then updates where
    routes change (session resets; a blackout's churn — in Kazakhstan never a withdrawal of
    the country, RIPE Labs and Kentik, anchors §8.1; withdrawals of an injection with
    ``withdraw``, as Egypt's on 27 January 2011). Each peer carries the real prefixes (ranges
    of the AS split, up to /24) with their AS as origin, minus a few it filters; partial peers
    carry about half. Only bins with updates cost a new snapshot, as in the archive ingester."""

    def __init__(self, sc: Scenario, uni: Universe, rng: np.random.Generator) -> None:
        from netvigil.sources.bgp.visibility import RoutingState

        cfg = sc.section("bgp")
        self.COLLECTOR = f"{sc.id}-rrc"
        self.sc, self.uni, self.rng = sc, uni, rng
        self.step = int(cfg["bin_seconds"])
        self.peers = [int(a) for a in cfg["peer_asns"]]
        n_ff = int(cfg["full_feed_peers"])
        n_pfx, n_peers = uni.prefix_net.size, len(self.peers)
        carry = np.empty((n_pfx, n_peers), dtype=bool)
        carry[:, :n_ff] = rng.random((n_pfx, n_ff)) >= float(cfg["static_filter"])
        carry[:, n_ff:] = rng.random((n_pfx, n_peers - n_ff)) < float(cfg["partial_carry"])
        self.carry = carry
        self.n_ff = n_ff
        self.state = RoutingState(self._config())
        self.state.load_rib(self.COLLECTOR, self._rib())
        n_bins = (sc.end - sc.start) // self.step
        self._packed = [ipaddress.IPv4Address(self._peer_ip(k)).packed
                        for k in range(len(self.peers))]
        self.updates: dict[int, list[tuple[int, int, int, str]]] = {}
        self._plan_resets(n_bins, float(cfg["reset_per_bin"]))
        if "bgp_churn" in sc.raw:
            self._plan_churn(n_bins)
        self._plan_withdrawals(n_bins)
        self._last: BgpVisibility | None = None
        self.snapshots = 0

    def _config(self) -> VisibilityConfig:
        """The BGP code's own ``ff-v4-share`` rule, chosen by its id, never a number here.

        The reconstruction carries only each peer's routes to KZ (~1.2k of a 2022 table's
        ~880k), so the era rule's floor in prefixes cannot apply; the BGP code's slice rule
        keeps its share of the largest table (:data:`FULL_FEED_RULES`); the visibility rule
        itself (> 50 % of full-feed peers) is untouched.
        """
        from netvigil.sources.bgp.visibility import VisibilityConfig

        return VisibilityConfig(step=self.step, ff_rule_v4="ff-v4-share")

    def _peer_ip(self, k: int) -> str:
        return f"192.0.2.{k + 1}"

    def _rib(self) -> RibColumns:
        from netvigil.sources.bgp.fastrib import RibColumns

        uni = self.uni
        pfx, peer = np.nonzero(self.carry)
        order = np.lexsort((peer, pfx))
        pfx, peer = pfx[order], peer[order]
        cols = RibColumns(self.sc.start, [self._peer_ip(k) for k in range(len(self.peers))],
                          list(self.peers), self.COLLECTOR)
        cols.peer = peer.astype(np.int32)
        cols.afi = np.ones(pfx.size, dtype=np.uint8)
        cols.net = uni.prefix_net[pfx].astype(np.uint64)
        cols.plen = uni.prefix_len[pfx].astype(np.uint8)
        cols.origin = uni.prefix_origin[pfx].astype(np.uint32)
        return cols

    def _elem(self, ts: int, k: int, p: int, kind: str) -> BgpElem:
        from netvigil.sources.bgp.mrt.attributes import Nlri, PathAttributes
        from netvigil.sources.bgp.mrt.elem import BgpElem

        uni = self.uni
        nlri = Nlri(1, int(uni.prefix_net[p]).to_bytes(4, "big"), int(uni.prefix_len[p]))
        attrs = None
        if kind == "A":
            attrs = PathAttributes(origin=0, as_path=[(2, (self.peers[k],
                                                           int(uni.prefix_origin[p])))])
        return BgpElem("BGP4MP", ts, None, kind, self._packed[k], self.peers[k], nlri=nlri,
                       attrs=attrs)

    def _state(self, ts: int, k: int, new_state: int) -> BgpElem:
        from netvigil.sources.bgp.mrt.elem import BgpElem

        return BgpElem("BGP4MP", ts, None, "STATE", self._packed[k], self.peers[k],
                       old_state=6 if new_state != 6 else 1, new_state=new_state)

    def _build(self, plan: list[tuple[int, int, int, str]]) -> list[BgpElem]:
        """Planned (time, peer, prefix, kind) rows as elements (prefix −1: a session drop)."""
        return [self._state(ts, k, 1) if p < 0 else self._elem(ts, k, p, kind)
                for ts, k, p, kind in sorted(plan)]

    def _at(self, b: int, rows: list[tuple[int, int, int, str]]) -> None:
        self.updates.setdefault(b, []).extend(rows)

    def _plan_resets(self, n_bins: int, rate: float) -> None:
        """A session drops (every route gone) and comes back 1–3 bins later, re-announcing."""
        starts = np.argwhere(self.rng.random((n_bins, len(self.peers))) < rate)
        lengths = self.rng.integers(1, 4, len(starts))
        t0 = self.sc.start
        for (b, k), n in zip(starts.tolist(), lengths.tolist(), strict=True):
            self._at(b, [(t0 + b * self.step + 1, k, -1, "STATE")])
            back = b + n
            if back < n_bins:
                ts = t0 + back * self.step + 1
                self._at(back, [(ts, k, int(p), "A") for p in np.flatnonzero(self.carry[:, k])])

    def _plan_churn(self, n_bins: int) -> None:
        """The blackout's update spike: per bin, a share of prefixes withdrawn at a few
        full-feed peers and re-announced in the next bin (well below 50 %: visible)."""
        churn = self.sc.section("bgp_churn")
        step, t0 = self.step, self.sc.start
        c0 = max(0, (_ts(churn["start"]) - t0) // step)
        c1 = min(n_bins, -(-(_ts(churn["end"]) - t0) // step))
        n_pfx = self.uni.prefix_net.size
        for b in range(c0, c1):
            pfx = np.flatnonzero(self.rng.random(n_pfx) < float(churn["prefix_share"]))
            for _ in range(int(churn["peers_per_flap"])):
                ks = self.rng.integers(0, self.n_ff, pfx.size)
                ts = t0 + b * step + 30
                rows = [(p, k) for p, k in zip(pfx.tolist(), ks.tolist(), strict=True)
                        if self.carry[p, k]]
                self._at(b, [(ts, k, p, "W") for p, k in rows])
                if b + 1 < n_bins:
                    self._at(b + 1, [(ts + step, k, p, "A") for p, k in rows])

    def _plan_withdrawals(self, n_bins: int) -> None:
        """Every peer withdraws the target's prefixes at an interval's start (a few seconds
        apart, as a network's routes leave the table) and re-announces them at its end."""
        step, t0 = self.step, self.sc.start
        for inj in (i for i in self.sc.injections if i.withdraw):
            pfx = withdrawn_prefixes(inj, self.uni)
            for a, b in inj.intervals:
                b0, b1 = (a - t0) // step, (b - t0) // step
                for k in range(len(self.peers)):
                    rows = [int(p) for p in pfx if self.carry[p, k]]
                    if 0 <= b0 < n_bins:
                        self._at(b0, [(a + k, k, p, "W") for p in rows])
                    if 0 <= b1 < n_bins:
                        self._at(b1, [(b + k, k, p, "A") for p in rows])

    def bin(self, b: int) -> BgpVisibility:
        """Roll the state through bin ``b``'s updates and measure it at the bin's end."""
        t = self.sc.start + b * self.step
        elems = self._build(self.updates.pop(b, []))
        for e in elems:
            self.state.apply(self.COLLECTOR, e)
        if elems or self._last is None:
            snap = self.state.snapshot(t + self.step)
            self.snapshots += 1
            self._last = snap.to_fact(t, self.step)
        else:
            last = self._last
            self._last = BgpVisibility(t, self.step, last.full_feed_v4, last.full_feed_v6,
                                       last.v4_blocks, last.v4_origin, last.v6_starts,
                                       last.v6_ends, last.v6_by_origin)
        return self._last


def _platform_tests(sc: Scenario, uni: Universe, sched: LevelSchedule,
                    plat_sched: LevelSchedule, rng: np.random.Generator) -> PlatformTests:
    """OONI-style IM tests per hour, per AS of the probes' networks and platform."""
    cfg = sc.section("platform")
    step = int(cfg["bin_seconds"])
    n_bins = (sc.end - sc.start) // step
    platforms = tuple(str(p) for p in cfg["platforms"])
    asn_all, counts = np.unique(uni.block_asn[uni.block_asn > 0], return_counts=True)
    rate = counts / counts.sum() * float(cfg["tests_per_hour"])
    keep = rate >= float(cfg["min_as_tests_per_hour"])
    asns, rate = asn_all[keep], rate[keep]
    mid = sc.start + step * np.arange(n_bins) + step // 2
    activity = 0.4 + 0.6 * (1.0 - _night(mid, sc.utc_offset_hours, 4.0))
    shape = (n_bins, asns.size, len(platforms))
    ok, anomaly, failure = (np.zeros(shape, dtype=np.uint16) for _ in range(3))
    ok_rate, fail_rate = float(cfg["ok_rate"]), float(cfg["failure_rate"])
    for j, asn in enumerate(asns.tolist()):
        conn = sched.at(uni.as_class.get(int(asn), "fixed"), mid)
        lam = rate[j] * activity * conn  # a shutdown silences probes: volume collapse (§4.4)
        for k, plat in enumerate(platforms):
            n = rng.poisson(lam)
            failed = rng.binomial(n, fail_rate)
            good = rng.binomial(n - failed, ok_rate * plat_sched.at(plat, mid))
            ok[:, j, k], anomaly[:, j, k], failure[:, j, k] = good, n - failed - good, failed
    return PlatformTests(sc.start, step, platforms, tuple(sc.country for _ in asns.tolist()),
                         asns.astype(np.int64), ok, anomaly, np.zeros(shape, np.uint16), failure)


def _as_connectivity(sc: Scenario, uni: Universe, sched: LevelSchedule, asn: int,
                     times: I64) -> F64:
    """Share of an AS's blocks passing packets at ``times``: its class level (phases) times,
    for every injection interval on, ``1 − share of its blocks cut × (1 − level)`` (the
    prober's rank rule in expectation). Why: a measurement needs a working connection, so a
    cut silences the probes of the blocks it cuts and no others."""
    members = uni.block_asn == asn
    conn = sched.at(uni.as_class.get(asn, "fixed"), times)
    size = max(1, int(members.sum()))
    for inj in sc.injections:
        share = float((uni.mask(inj) & members).sum()) / size
        for a, b in inj.intervals:
            on = (times >= a) & (times < b)
            conn = np.where(on, conn * (1.0 - share * (1.0 - inj.level)), conn)
    return np.asarray(conn, dtype=np.float64)


def ooni_measurements(sc: Scenario, uni: Universe, rng: np.random.Generator
                      ) -> tuple[I64, I64]:
    """(times, asns) of every simulated OONI measurement, sorted by time (``[ooni]``).

    ``per_hour`` is the mean per AS and hour at the daytime peak and ``night_activity`` the
    share of it at the night's deepest (people run OONI Probe by day; the mobile app's
    automated runs keep some at night). Per hour a Poisson count, times uniform in the hour,
    then each kept with the probability that its AS's connection works at that second
    (:func:`_as_connectivity`): a cut is a collapse of volume, OONI's signature of a shutdown
    (anchors §4.4). Small counts on purpose: city-level and small-network series.
    """
    cfg = sc.section("ooni")
    n_hours = (sc.end - sc.start) // 3600
    hours = sc.start + 3600 * np.arange(n_hours, dtype=np.int64)
    night = _night(hours + 1800, sc.utc_offset_hours,
                   float(sc.section("probing")["night_peak_local_hour"]))
    low = float(cfg["night_activity"])
    activity = low + (1.0 - low) * (1.0 - night)
    sched = LevelSchedule(sc.phases, CLASSES, platform=False)
    times: list[I64] = []
    asns: list[I64] = []
    for asn in (int(a) for a in cfg["asns"]):
        n = rng.poisson(float(cfg["per_hour"]) * activity)
        t = np.repeat(hours, n) + rng.integers(0, 3600, int(n.sum()))
        keep = rng.random(t.size) < _as_connectivity(sc, uni, sched, asn, t)
        times.append(t[keep])
        asns.append(np.full(int(keep.sum()), asn, dtype=np.int64))
    t_all = np.concatenate(times) if times else np.empty(0, np.int64)
    a_all = np.concatenate(asns) if asns else np.empty(0, np.int64)
    order = np.argsort(t_all, kind="stable")
    return (np.asarray(t_all[order], dtype=np.int64), np.asarray(a_all[order], dtype=np.int64))


class ReplayLedger:
    """The accepted-measurement ledger of one replay, in memory: the methods of
    :class:`netvigil.sources.ooni.ledger.Ledger` that ``netvigil ooni import`` finds in the
    store (``netvigil.store.ooni_ledger.OoniLedger``, SQL) answered from a few numpy columns.

    Why: one path. The simulator's measurements become series through the importer's own
    :func:`netvigil.sources.ooni.ledger.accept` (the ``ooni-volume`` rule: a count per hour,
    0 in a silent hour with a measurement of the entity in the 14 days before and one of its
    country at or after it), not through a second copy of that rule; only the storage
    differs, because a replay hands facts to a sink and owns no store. The cost: every row
    of the replay stays in memory (a few thousand for the catalogue's two weeks at a handful
    an hour; ~100 bytes each)."""

    def __init__(self) -> None:
        from netvigil.sources.ooni.facts import LEDGER_COLUMNS

        self.columns = LEDGER_COLUMNS
        self.parts: list[dict[str, npt.NDArray[Any]]] = []
        self.keys: set[str] = set()
        self._all: dict[str, npt.NDArray[Any]] | None = None

    def rows(self) -> dict[str, npt.NDArray[Any]]:
        """Every accepted row (columns)."""
        if self._all is None:
            if not self.parts:
                empty = {c: np.empty(0, dtype=object) for c in self.columns}
                empty.update(hour=np.empty(0, np.int64), asn=np.empty(0, np.int64))
                return empty
            self._all = {c: np.concatenate([p[c] for p in self.parts]) for c in self.columns}
        return self._all

    def insert(self, rows: Mapping[str, npt.NDArray[Any]], source: str
               ) -> dict[str, npt.NDArray[Any]]:
        """Keep the rows whose key is new (first of equal keys); returns them."""
        keep: list[int] = []
        for i, key in enumerate(np.asarray(rows["key"]).tolist()):
            if key not in self.keys:
                self.keys.add(key)
                keep.append(i)
        idx = np.asarray(keep, dtype=np.int64)
        new = {c: np.asarray(rows[c])[idx] for c in self.columns}
        if keep:
            self.parts.append(new)
            self._all = None
        return new

    def rows_in_hours(self, hours: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[Any]]:
        a = self.rows()
        sel = np.flatnonzero(np.isin(a["hour"], hours))
        sel = sel[np.argsort(a["key"][sel].astype(str), kind="stable")]
        return {c: a[c][sel] for c in self.columns}

    def last_hours(self) -> dict[str, int]:
        a = self.rows()
        out: dict[str, int] = {}
        for cc, hour in zip(a["cc"].tolist(), a["hour"].tolist(), strict=True):
            out[cc] = max(out.get(cc, hour), int(hour))
        return out

    def mechanisms(self) -> dict[str, set[str]]:
        a = self.rows()
        out: dict[str, set[str]] = {}
        for plat, mechs in zip(a["platform"].tolist(), a["mechanisms"].tolist(), strict=True):
            if plat is not None and mechs:
                out.setdefault(str(plat), set()).update(str(mechs).split(","))
        return out

    def tested_hours(self, platforms: Sequence[str]) -> npt.NDArray[np.int64]:
        a = self.rows()
        hit = np.asarray([p in platforms for p in a["platform"].tolist()], dtype=bool)
        return np.unique(a["hour"][hit]).astype(np.int64) if hit.size else \
            np.empty(0, np.int64)

    def hour_counts(self, lo: int, hi: int, ccs: Sequence[str],
                    asns: Sequence[int]) -> list[tuple[str, int, int, int]]:
        a = self.rows()
        want_cc, want_asn = set(ccs), {int(x) for x in asns}
        counts: dict[tuple[str, int, int], int] = {}
        for cc, asn, hour in zip(a["cc"].tolist(), a["asn"].tolist(), a["hour"].tolist(),
                                 strict=True):
            if lo <= hour <= hi and (cc in want_cc or int(asn) in want_asn):
                k = (str(cc), int(asn), int(hour))
                counts[k] = counts.get(k, 0) + 1
        return [(c, a_, h, n) for (c, a_, h), n in sorted(counts.items())]


class SimulatedOoni:
    """Hands the simulated measurements to the OONI importer's own code, hour by hour.

    Each measurement is a raw OONI document (``test_name``, ``measurement_start_time``,
    ``probe_cc``, ``probe_asn``, ``probe_network_name`` and a ``measurement_uid``, so each
    is one measurement to the importer's :func:`~netvigil.sources.ooni.importer.identity`
    even when two share a second) read by ``read_meta`` and judged by ``verdict`` as
    ``netvigil ooni import`` does, into a :class:`~netvigil.sources.ooni.facts.FactBuilder`.
    :meth:`emit` hands the builder's rows to :func:`netvigil.sources.ooni.ledger.accept`
    over the replay's :class:`ReplayLedger`, as the CLI hands them over the store's
    ledger: the facts, silent hours between two flushes included, are the importer's.
    """

    def __init__(self, sc: Scenario, uni: Universe, rng: np.random.Generator) -> None:
        from netvigil.sources.ooni.facts import FactBuilder

        self.sc = sc
        self.test_name = str(sc.section("ooni").get("test_name", "ndt"))
        self.names = {a: as_display_name(a, uni, sc) for a in uni.as_names}
        self.times, self.asns = ooni_measurements(sc, uni, rng)
        self.builder = FactBuilder()
        self.ledger = ReplayLedger()
        self.measurements = 0

    def document(self, i: int) -> dict[str, Any]:
        """The ``i``-th simulated measurement as a raw OONI document."""
        t, asn = int(self.times[i]), int(self.asns[i])
        when = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return {"test_name": self.test_name, "measurement_start_time": when,
                "measurement_uid": f"sim-{self.sc.id}-{i}",
                "probe_cc": self.sc.country, "probe_asn": f"AS{asn}",
                "probe_network_name": self.names.get(asn, "")}

    def hour(self, t: int) -> None:
        """Add the measurements of ``[t, t + 1 h)`` to the open builder."""
        from netvigil.sources.ooni.importer import identity
        from netvigil.sources.ooni.meta import read_meta
        from netvigil.sources.ooni.verdict import verdict

        lo, hi = np.searchsorted(self.times, [t, t + 3600])
        for i in range(int(lo), int(hi)):
            doc = self.document(i)
            self.builder.add(read_meta(doc), verdict(doc), identity(doc))
            self.measurements += 1

    def emit(self, sink: FactSink) -> None:
        """The open builder's measurements through the importer's ledger rule into
        ``sink``; the next builder's hours continue the same ledger."""
        from netvigil.sources.ooni.facts import SOURCE, FactBuilder
        from netvigil.sources.ooni.ledger import accept

        accept(self.ledger, self.builder.ledger_rows(), sink, SOURCE)
        self.builder = FactBuilder()


# ---------------------------------------------------------------------------------------------
# The reconstruction
# ---------------------------------------------------------------------------------------------


@dataclass
class Replay:
    """What one replay emitted (counts per fact type)."""

    probe_rounds: int = 0
    bgp_bins: int = 0
    bgp_snapshots: int = 0
    platform_hours: int = 0
    ooni_measurements: int = 0


def source_outages(sc: Scenario, seed: int) -> dict[str, tuple[tuple[int, int], ...]]:
    """Seeded outage windows of the sources themselves (``[outages]``: ``prober_per_30_days``,
    ``collector_per_30_days``, ``min_hours``, ``max_hours``): the prober or the collector is
    silent, the country is not. Missing data, never a drop; no truth row comes from them."""
    cfg = sc.raw.get("outages", {})
    rng = np.random.default_rng(seed).spawn(5)[3]
    days = (sc.end - sc.start) / 86_400
    out: dict[str, tuple[tuple[int, int], ...]] = {}
    for name in ("prober", "collector"):
        n = int(rng.poisson(float(cfg.get(f"{name}_per_30_days", 0.0)) * days / 30))
        lo, hi = float(cfg.get("min_hours", 1)), float(cfg.get("max_hours", 6))
        starts = sc.start + 3600 * rng.integers(0, max(1, int(days * 24)), n)
        lengths = (3600 * (lo + (hi - lo) * rng.random(n))).astype(np.int64)
        out[name] = tuple((int(a), int(a + b)) for a, b in
                          sorted(zip(starts.tolist(), lengths.tolist(), strict=True)))
    return out


def _inside(t: int, spans: tuple[tuple[int, int], ...]) -> bool:
    return any(a <= t < b for a, b in spans)


@dataclass(eq=False)
class Simulation:
    """The scenario, its universe and truth, and the seeded sources that replay it."""

    scenario: Scenario
    universe: Universe
    truth: tuple[TruthEvent, ...]
    restorations: tuple[TruthEvent, ...]
    seed: int
    _platform: PlatformTests | None = field(default=None, repr=False)

    def platform_tests(self) -> PlatformTests | None:
        """All hours of platform tests (cached; the replay emits them hour by hour); None for a
        scenario without a ``[platform]`` section."""
        if "platform" not in self.scenario.raw:
            return None
        if self._platform is None:
            r_plat = np.random.default_rng(self.seed).spawn(3)[2]
            sc = self.scenario
            sched = LevelSchedule(sc.phases, CLASSES, platform=False)
            plats = tuple(str(p) for p in sc.section("platform")["platforms"])
            self._platform = _platform_tests(sc, self.universe, sched,
                                             LevelSchedule(sc.phases, plats, platform=True),
                                             r_plat)
        return self._platform

    def ooni(self) -> SimulatedOoni | None:
        """The OONI measurement source (child generator 5), or None without ``[ooni]``."""
        if "ooni" not in self.scenario.raw:
            return None
        return SimulatedOoni(self.scenario, self.universe,
                             np.random.default_rng(self.seed).spawn(6)[5])

    def prober(self) -> SimulatedProber:
        rng = np.random.default_rng(self.seed).spawn(3)[0]
        sc = self.scenario
        return SimulatedProber(sc, self.universe, LevelSchedule(sc.phases, CLASSES, False), rng)

    def collector(self) -> SimulatedCollector:
        return SimulatedCollector(self.scenario, self.universe,
                                  np.random.default_rng(self.seed).spawn(3)[1])

    def replay(self, sink: FactSink, *, until: int | None = None,
               flush_seconds: int = 86_400) -> Replay:
        """Emit every fact in time order into ``sink`` (BGP bin, then the probe round of the
        same start, then the hour's platform tests), flushing once per ``flush_seconds``."""
        sc = self.scenario
        end = sc.end if until is None else min(sc.end, until)
        prober, coll, plat = self.prober(), self.collector(), self.platform_tests()
        ooni = self.ooni()
        down = source_outages(sc, self.seed)
        rep = Replay()
        tick = math.gcd(prober.step, coll.step, plat.step if plat is not None else coll.step)
        next_flush = sc.start + flush_seconds
        for t in range(sc.start, end, tick):
            off = t - sc.start
            if off % coll.step == 0:
                fact = coll.bin(off // coll.step)
                if _inside(t, down["collector"]):  # no full-feed peer: a missing bin
                    fact = BgpVisibility(t, coll.step, 0, 0, np.empty(0, np.uint32),
                                         np.empty(0, np.uint32),
                                         silent_collectors=(coll.COLLECTOR,))
                sink.emit(fact)
                rep.bgp_bins += 1
            if off % prober.step == 0 and not _inside(t, down["prober"]):
                sink.emit(prober.round(off // prober.step))
                rep.probe_rounds += 1
            if plat is not None and off % plat.step == 0:
                h = off // plat.step
                sink.emit(PlatformTests(t, plat.step, plat.platforms, plat.probe_cc, plat.asns,
                                        plat.ok[h:h + 1], plat.anomaly[h:h + 1],
                                        plat.confirmed[h:h + 1], plat.failure[h:h + 1]))
                rep.platform_hours += 1
            if ooni is not None and off % 3600 == 0:
                ooni.hour(t)
            if t + tick >= next_flush:
                if ooni is not None:
                    ooni.emit(sink)
                sink.flush({f"scenario.{sc.id}.replayed_until": str(t + tick)})
                next_flush += flush_seconds
        if ooni is not None:
            ooni.emit(sink)
            rep.ooni_measurements = ooni.measurements
        sink.flush({f"scenario.{sc.id}.replayed_until": str(end)})
        rep.bgp_snapshots = coll.snapshots
        return rep


def simulate(sc: Scenario, seed: int | None = None) -> Simulation:
    """A scenario's universe, truth (phases and injections) and seeded sources."""
    uni = _read_universe(sc)
    events, restorations = derive_truth(sc, uni)
    return Simulation(sc, uni, events + injection_truth(sc, uni), restorations,
                      sc.seed if seed is None else seed)


def load_catalogue(path: str | Path | None = None) -> dict[str, Scenario]:
    """The benchmark's scenarios by name (default: ``data/scenarios/catalogue.toml``).

    Each ``[[scenario]]`` row is merged over the catalogue's ``[defaults]`` tables (a row's
    table replaces keys of the default one), so one file states the world once and each
    scenario only what differs.
    """
    file = data_dir() / "catalogue.toml" if path is None else Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:  # its message names line and column
        raise InputError(str(file), None, f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(file), None, f"cannot read: {exc}") from None
    defaults = raw.get("defaults", {})
    out: dict[str, Scenario] = {}
    for i, row in enumerate(raw.get("scenario", [])):
        merged: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v
                                  for k, v in defaults.items()}
        for key, value in row.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        try:
            sc = parse_scenario(merged, file.parent)
        except (KeyError, ValueError, TypeError) as exc:
            what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise InputError(str(file), None, f"scenario #{i + 1}: {what}") from None
        if sc.id in out:
            raise InputError(str(file), None, f"scenario #{i + 1}: duplicate id {sc.id!r}")
        out[sc.id] = sc
    return out


def as_display_name(asn: int, uni: Universe, sc: Scenario) -> str:
    """A short AS name: the scenario's curated name, else the AS table's org name."""
    for a in sc.as_classes:
        if a.asn == asn and a.name:
            return a.name
    name = uni.as_names.get(asn, "")
    return re.sub(r"\s+", " ", name).strip() or f"AS{asn}"
