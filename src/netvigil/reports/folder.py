"""The demo's report folder: timeline, events (JSON/CSV), sentences, chart, truth and README.

Why a folder of plain files: a journalist or a reviewer should be able to open the result
without NetVigil — a table, sentences to quote, a PNG, and machine-readable events in the same
JSON/CSV shape ``netvigil events`` exports. Every file says it is a RECONSTRUCTION.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from netvigil.detect.registry import DEFAULT
from netvigil.events.serialize import event_to_dict, events_to_csv
from netvigil.model import EntityRef, EntityType
from netvigil.model.times import iso_utc
from netvigil.reports.chart import render
from netvigil.reports.netblocks import sentences
from netvigil.reports.timeline import render_table

if TYPE_CHECKING:
    from netvigil.model import Event, Series
    from netvigil.scenarios.kz2022 import Kz2022, Replay, TruthEvent


class DemoResult(Protocol):
    """What the folder is written from (:class:`netvigil.reports.demo.DemoResult`); a
    protocol, so this module does not import the orchestration that calls it."""

    reconstruction: Kz2022
    events: list[Event]
    national: list[Series]
    out_dir: Path
    replay: Replay
    timings: dict[str, float]
    geo_source: str
    elsewhere: int

    @property
    def truth(self) -> tuple[TruthEvent, ...]: ...

CHART = "kz2022-national-signals.png"


def _iso(ts: int | None) -> str | None:
    return iso_utc(ts)


def banner(label: str, title: str) -> str:
    line = "=" * 78
    return (f"{line}\n  {label.upper()}\n  {title}: replayed from a reconstruction built from "
            f"the public timeline,\n  not from measured data.\n{line}")


def write_report(result: DemoResult) -> list[Path]:
    """Write every report file into ``result.out_dir``; returns the paths written."""
    sc = result.reconstruction.scenario
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    meta: dict[str, Any] = {
        "reconstruction": True,
        "label": sc.label,
        "scenario": sc.id,
        "title": sc.title,
        "window": {"start": _iso(sc.start), "end": _iso(sc.end)},
        "sources": sc.raw["scenario"]["sources"],
    }

    table = render_table(result.events)
    p = out / "timeline.txt"
    p.write_text(f"{banner(sc.label, sc.title)}\n\n{table}\n", encoding="utf-8")
    files.append(p)

    p = out / "events.json"
    p.write_text(json.dumps({**meta, "events": [event_to_dict(e) for e in result.events]},
                            indent=2) + "\n", encoding="utf-8")
    files.append(p)

    p = out / "events.csv"
    p.write_text(f"# {sc.label}: {sc.title}\n" + events_to_csv(result.events), encoding="utf-8")
    files.append(p)

    p = out / "sentences.md"
    said = sentences(result.events, reconstruction=True)
    p.write_text(f"# {sc.title} — {sc.label}\n\n" + "".join(f"- {s}\n" for s in said),
                 encoding="utf-8")
    files.append(p)

    p = out / "truth.json"
    truth = [{"entity": t.entity.fqid, "scope": t.scope.value, "kind": t.kind.value,
              "start": _iso(t.start), "end": _iso(t.end), "level": t.level,
              "signals": list(t.signals), "silent": list(t.silent), "phases": list(t.phases)}
             for t in result.truth]
    restored = [{"entity": t.entity.fqid, "start": _iso(t.start), "end": _iso(t.end),
                 "level": t.level, "phases": list(t.phases)}
                for t in result.reconstruction.restorations]
    p.write_text(json.dumps({**meta, "truth": truth, "restorations": restored}, indent=2)
                 + "\n", encoding="utf-8")
    files.append(p)

    country = EntityRef(EntityType.COUNTRY, sc.country)
    national_events = [e for e in result.events if e.entity == country]
    first_phase = min((ph.start for ph in sc.phases), default=sc.end)
    chart = render(result.national, national_events, out / CHART,
                   title=f"{sc.country_name}: national signals, {sc.title}",
                   label=sc.label, baseline_until=first_phase)
    files.append(chart)

    p = out / "README.md"
    p.write_text(_readme(result, [f.name for f in files]), encoding="utf-8")
    files.append(p)
    return files


def _readme(result: DemoResult, names: list[str]) -> str:
    sc = result.reconstruction.scenario
    phases = "\n".join(
        f"| {_iso(ph.start)} | {_iso(ph.end)} | {ph.id} | {ph.what}"
        f"{' (hours assumed)' if ph.assumed else ''} | {ph.source} |"
        for ph in sc.phases)
    listing = "\n".join(f"- `{n}`" for n in names)
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    return f"""# {sc.title} — {sc.label}

**This is a RECONSTRUCTION, not measured data.** `netvigil demo` generated per-/24 probe
rounds, per-peer BGP routes and updates and OONI-style messaging test outcomes from the public
timeline of the January 2022 shutdown in {sc.country_name} (seed {result.reconstruction.seed}),
fed them as facts into NetVigil's one pipeline — the path real data takes (Trinocular beliefs,
BGP routing state and the >50%-of-full-feed-peers rule, blocks attributed to ASes by the
origins of the announced routes, % of tests reachable) — stored the series, ran the
`{DEFAULT}` detector (the default; `ioda.median` is the benchmark's reference) and built
events. Facts replayed: {result.replay.probe_rounds} probe rounds,
{result.replay.bgp_bins} BGP bins ({result.replay.bgp_snapshots} routing snapshots),
{result.replay.platform_hours} hours of platform tests. Events listed: the country, its
regions and the ASes announcing its space; {result.elsewhere} further events are on countries
or regions outside {sc.country_name} where the 2026 AS split's ranges geolocate elsewhere in
the dated country tables (kept in the store, not reported here).
Detected times are bin starts of the detector, not times read from the sources.

## Files

{listing}

## Timeline used (scenario.toml)

| start (UTC) | end (UTC) | phase | what | source |
|---|---|---|---|---|
{phases}

Stable connectivity returns on 11 January ~02:15 UTC (RIPE Labs; Izvestia).

## Data and sources

- Address universe: herrbischoff/country-ip-blocks `ipv4/kz.cidr` at commit
  `295d05687ae6532c498784a15243f4b4cbb45089` (2022-01-04), CC0-1.0.
- AS split and routed prefixes: `@ip-location-db/asn` (2026 data, best available split),
  CC BY 4.0 — RouteViews, NRO, DB-IP (<https://db-ip.com>).
- Geolocation of /24s for aggregation: {result.geo_source or "n/a"}.
- Timeline: {sc.raw["scenario"]["sources"]}.

Run time: {timings}.
"""
