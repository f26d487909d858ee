"""``run_demo``: the Kazakhstan 2022 RECONSTRUCTION → Pipeline → store → detection → report.

Why here (a surface) and not in ``pipeline/``: the demo orchestrates every tier — a scenario
(sources tier) emits facts into :class:`netvigil.pipeline.Pipeline`, the one path real data
takes to the store; :func:`netvigil.events.runner.run_detection` turns stored series into
alerts and events; the report folder reads them back. The core never imports a surface, so
the orchestration lives with the reports.

Nothing here is demo-specific except the scenario: the probe rounds, BGP visibility and
platform tests go through the same aggregators as ``netvigil probe``, ``netvigil bgp ingest``
and OONI ingestion (later). What is stored is the pipeline's decision (rule
``probing.store.min-blocks``: regions and ASes of at least 5 probed /24s, docs/probing.md),
made without knowing the scenario's timeline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netvigil.model import Entity, EntityRef, EntityType, Event, Series
from netvigil.pipeline import Pipeline
from netvigil.pipeline.probing import ProbingOptions
from netvigil.scenarios.kz2022 import Kz2022, Replay, TruthEvent, as_display_name, generate
from netvigil.store.duck import Store

#: The demo's per-block series would be 2 × 8,850 blocks × 2,592 rounds = 46M points: the
#: demo stores entity series only, as a full-Internet deployment does (docs/probing.md).
DEMO_PROBING = ProbingOptions(block_series=False)


@dataclass
class DemoResult:
    """What ``netvigil demo`` prints and the tests check."""

    reconstruction: Kz2022
    events: list[Event]
    national: list[Series]
    out_dir: Path
    replay: Replay
    files: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    geo_source: str = ""
    stored_entities: list[EntityRef] = field(default_factory=list)
    #: events on entities outside the scenario country: /24s of the KZ AS split that the
    #: country or region tables place elsewhere (the split is 2026 data; anchors §8.1)
    elsewhere: int = 0

    @property
    def truth(self) -> tuple[TruthEvent, ...]:
        return self.reconstruction.truth

    def headline(self, min_share: float = 0.02) -> list[Event]:
        """Events worth printing: the country's, and those of its main ASes (>= ``min_share``
        of the country's stored /24s in the AS split) plus its largest data-centre AS; the
        rest stay in the files."""
        uni = self.reconstruction.universe
        asns, counts = np.unique(uni.block_asn[uni.block_asn > 0], return_counts=True)
        total = max(1, int(uni.block_asn.size))
        keep = {str(int(a)) for a, n in zip(asns, counts, strict=True) if n / total >= min_share}
        dc = [(int(n), int(a)) for a, n in zip(asns, counts, strict=True)
              if uni.as_class.get(int(a)) == "datacentre"]
        if dc:
            keep.add(str(max(dc)[1]))
        cc = self.reconstruction.scenario.country
        return [e for e in self.events
                if (e.entity.type is EntityType.COUNTRY and e.entity.code == cc)
                or (e.entity.type is EntityType.ASN and e.entity.code in keep)]


def _in_scenario(ref: EntityRef, country: str, refs: list[EntityRef]) -> bool:
    """The scenario country, its regions and the ASes announcing its address space."""
    if ref.type is EntityType.COUNTRY:
        return ref.code == country
    if ref.type is EntityType.REGION:
        return ref.code.startswith(f"{country}-")
    return ref.type is EntityType.ASN


def entities_for(recon: Kz2022, refs: list[EntityRef]) -> list[Entity]:
    """Names for the store: the registry's where it knows the entity, else the scenario's."""
    from netvigil.geo.entities import default_registry

    sc = recon.scenario
    registry = default_registry()
    country = EntityRef(EntityType.COUNTRY, sc.country)
    curated = {a.asn for a in sc.as_classes}
    out: list[Entity] = []
    for ref in refs:
        if ref.type is EntityType.COUNTRY and ref.code == sc.country:
            out.append(Entity(ref, sc.country_name, None))
        elif ref.type is EntityType.ASN:
            name = as_display_name(int(ref.code), recon.universe, sc)
            known = registry.get(ref)
            if int(ref.code) not in curated and known is not None and known.name \
                    and not known.name.isdigit():
                name = known.name
            out.append(Entity(ref, name, country))
    return out


def run_demo(store: Store, out_dir: str | Path, *, seed: int | None = None) -> DemoResult:
    """The whole demo; returns the events read back from the store and the written files."""
    from netvigil.events.runner import run_detection
    from netvigil.geo.lookup import GeoLookup
    from netvigil.reports.folder import write_report

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    recon = generate(seed)
    sc = recon.scenario
    geo = GeoLookup.default()
    pipeline = Pipeline(store, geo, probing=DEMO_PROBING)
    # a backfill, like one archive file: one consistent point at the end (the store's cost per
    # write call dominates daily flushes: 27.7 s against 19.0 s for the whole replay)
    replay = recon.replay(pipeline, flush_seconds=sc.end - sc.start)
    timings["generate+aggregate+store"] = time.perf_counter() - t0

    t = time.perf_counter()
    # reports and surfaces read this to label everything from this store a reconstruction
    store.set_state("provenance:reconstruction", sc.country)
    refs = sorted({i.entity for i in store.list_series()})
    store.upsert_entities(entities_for(recon, refs))
    run_detection(store)
    stored = store.read_events(start=sc.start, until=sc.end)
    events = sorted((e for e in stored if _in_scenario(e.entity, sc.country, refs)),
                    key=lambda e: (e.start, e.entity))
    timings["detect"] = time.perf_counter() - t

    country = EntityRef(EntityType.COUNTRY, sc.country)
    national = [store.read_series(country, s) for s in
                ("probing", "bgp", "platform:whatsapp", "platform:telegram", "platform:signal")]
    snap = geo.bulk_blocks(recon.universe.block_starts[:1], sc.geo_when)
    result = DemoResult(recon, events, [s for s in national if len(s)], Path(out_dir), replay,
                        timings=timings, geo_source=snap.country_source or "geo",
                        stored_entities=refs, elsewhere=len(stored) - len(events))
    t = time.perf_counter()
    result.files = write_report(result)
    timings["report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return result
