"""``run_demo``: generate the Kazakhstan 2022 RECONSTRUCTION → aggregate → store → detect → report.

Why this order: the demo must prove the real path works end to end, so nothing here is
demo-specific except the generator. Source-level facts go through the same aggregation a
live deployment would run (:mod:`netvigil.pipeline.probing`, ``.bgp``, ``.platform``), the
series are written to the store, ``events.runner.run_detection`` turns them into alerts and
events, and the reports read the events back from the store.

Entities: the scenario country and every AS with at least ``truth.min_blocks`` (20) /24s in a
signal's ordinary level — below IODA's ``minprediction`` of 20 nothing can be detected, so
writing those series would only cost time (anchors §1.3).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netvigil.model import Entity, EntityRef, EntityType, Event, Series
from netvigil.pipeline.bgp import aggregate_bgp, build_atoms
from netvigil.pipeline.entities import (
    BlockLocations,
    EntityMatrix,
    Grouping,
    Locator,
    geo_locator,
)
from netvigil.pipeline.platform import aggregate_platform
from netvigil.pipeline.probing import aggregate_probing
from netvigil.sources.kz2022 import Kz2022Facts, TruthEvent, as_display_name, generate
from netvigil.store.duck import Store

SOURCE = "kz2022-reconstruction"


@dataclass
class DemoResult:
    """What ``netvigil demo`` prints and the tests check."""

    facts: Kz2022Facts
    series: list[Series]
    events: list[Event]
    truth: tuple[TruthEvent, ...]
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    geo_source: str = ""

    def headline(self, min_share: float = 0.02) -> list[Event]:
        """Events worth printing: the country's, and those of its main ASes (>= ``min_share``
        of the probed /24s) plus its largest data-centre AS; the rest stay in the files."""
        uni = self.facts.universe
        probed = self.facts.probing.sent.any(axis=0)
        asns, counts = np.unique(uni.block_asn[probed & (uni.block_asn > 0)],
                                 return_counts=True)
        total = max(1, int(probed.sum()))
        keep = {str(int(a)) for a, n in zip(asns, counts, strict=True) if n / total >= min_share}
        dc = [(int(n), int(a)) for a, n in zip(asns, counts, strict=True)
              if uni.as_class.get(int(a)) == "datacentre"]
        if dc:
            keep.add(str(max(dc)[1]))
        cc = self.facts.scenario.country
        return [e for e in self.events
                if (e.entity.type is EntityType.COUNTRY and e.entity.code == cc)
                or (e.entity.type is EntityType.ASN and e.entity.code in keep)]

    @property
    def national(self) -> list[Series]:
        cc = self.facts.scenario.country
        return [s for s in self.series
                if s.entity == EntityRef(EntityType.COUNTRY, cc)]


def _keep(pre_event_bins: int, min_level: float) -> Callable[[EntityRef, np.ndarray], bool]:
    def keep(_ref: EntityRef, col: np.ndarray) -> bool:
        head = col[:pre_event_bins]
        head = head[~np.isnan(head)]
        return bool(head.size) and float(np.median(head)) >= min_level
    return keep


def aggregate(facts: Kz2022Facts, locator: Locator = geo_locator
              ) -> tuple[list[Series], str]:
    """All series of the scenario: probing (600 s), bgp (300 s), platform:* (3600 s)."""
    sc = facts.scenario
    when = sc.geo_when
    first_phase = min((p.start for p in sc.phases), default=sc.end)
    min_blocks = float(sc.section("truth")["min_blocks"])
    country = EntityRef(EntityType.COUNTRY, sc.country)

    def wanted(matrices: list[EntityMatrix], min_level: float) -> list[Series]:
        out: list[Series] = []
        for m in matrices:
            pre = max(1, (first_phase - m.start) // m.step)
            keep = _keep(pre, min_level)
            out.extend(m.to_series(lambda ref, col, k=keep: (  # type: ignore[misc]
                ref.type is EntityType.ASN or ref == country) and k(ref, col)))
        return out

    locs: BlockLocations = locator(facts.probing.block_starts, when)
    probing, _ = aggregate_probing(facts.probing, Grouping.from_locations(locs))
    series = wanted(probing, min_blocks)

    atoms = build_atoms(facts.bgp.prefix_net, facts.bgp.prefix_len)
    covered = atoms.blocks()
    bgp_locs = locator(covered, when)
    bgp = aggregate_bgp(facts.bgp, atoms, atoms.atom_of(covered),
                        Grouping.from_locations(bgp_locs))
    series += wanted(bgp, min_blocks)
    series += wanted(aggregate_platform(facts.platform), 0.0)
    return series, locs.source


def entities_for(facts: Kz2022Facts, series: list[Series]) -> list[Entity]:
    """Names for the store: the registry's where it knows the entity, else the scenario's."""
    sc = facts.scenario
    registry = None
    try:
        from netvigil.geo.entities import default_registry

        registry = default_registry()
    except ImportError:  # pragma: no cover - geo is part of the package
        registry = None
    country = EntityRef(EntityType.COUNTRY, sc.country)
    out: dict[EntityRef, Entity] = {}
    for s in series:
        ref = s.entity
        if ref in out:
            continue
        if ref.type is EntityType.COUNTRY:
            name = sc.country_name
            parent = None
        else:
            name = as_display_name(int(ref.code), facts.universe, sc)
            if registry is not None and not any(a.asn == int(ref.code) for a in sc.as_classes):
                known = registry.get(ref)
                if known is not None and known.name and not known.name.isdigit():
                    name = known.name
            parent = country
        out[ref] = Entity(ref, name, parent)
    return list(out.values())


def write_all(store: Store, series: list[Series]) -> None:
    """One columnar write per (signal step) batch: the store upserts, so reruns are no-ops."""
    by_step: dict[int, list[Series]] = {}
    for s in series:
        by_step.setdefault(s.step, []).append(s)
    with store.transaction():
        for step, group in sorted(by_step.items()):
            types = [s.entity.type.value for s in group for _ in range(len(s))]
            codes = [s.entity.code for s in group for _ in range(len(s))]
            sigs = [s.signal for s in group for _ in range(len(s))]
            times = np.concatenate([s.times for s in group])
            values = np.concatenate([s.values for s in group])
            store.write_points(types, codes, sigs, times, values, source=SOURCE, step=step)


def run_demo(store: Store, out_dir: str | Path, *, seed: int | None = None,
             locator: Locator = geo_locator) -> DemoResult:
    """The whole demo; returns the events read back from the store and the written files."""
    from netvigil.events.runner import run_detection
    from netvigil.reports.folder import write_report

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    facts = generate(seed)
    timings["generate"] = time.perf_counter() - t0

    t = time.perf_counter()
    series, geo_source = aggregate(facts, locator)
    timings["aggregate"] = time.perf_counter() - t

    t = time.perf_counter()
    store.upsert_entities(entities_for(facts, series))
    write_all(store, series)
    timings["store"] = time.perf_counter() - t

    t = time.perf_counter()
    run_detection(store)
    sc = facts.scenario
    events = sorted(store.read_events(start=sc.start, until=sc.end),
                    key=lambda e: (e.start, e.entity))
    timings["detect"] = time.perf_counter() - t

    result = DemoResult(facts, series, events, facts.truth, Path(out_dir),
                        timings=timings, geo_source=geo_source)
    t = time.perf_counter()
    result.files = write_report(result)
    timings["report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return result
