"""The benchmark's small-count class (issue 8, deliverable 4): what the catalogue says is what
the facts carry.

Measured from the emitted facts (probe rounds, OONI volume points), located with the geo
package the pipeline uses, never from the simulator's own tables or a detector's output:

* ``small-region-iq``: the region's probed space is a handful of /24s and its cuts take its
  replies to zero over exactly the truth's intervals, while the rest of the country answers;
* ``small-volume-iq``: the network's OONI volume is a handful per hour and collapses to 0
  for the truth's day, while the other measured networks keep reporting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pytest

from netvigil.geo.lookup import GeoLookup
from netvigil.model import EntityRef, EntityType, Scope
from netvigil.model.facts import Fact, PointBatch, ProbeRound
from netvigil.scenarios.simulator import Scenario, Simulation, load_catalogue, simulate

H = 3600
HANDFUL = (5, 15)  # /24s of a small region (the catalogue's class: "a handful")


class ListSink:
    def __init__(self) -> None:
        self.facts: list[Fact] = []

    def emit(self, fact: Fact) -> None:
        self.facts.append(fact)

    def flush(self, cursors: Mapping[str, str] | None = None) -> None:
        pass

    def cursor(self, key: str) -> str | None:
        return None


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Scenario]:
    return load_catalogue()


def replay(sim: Simulation, start: int, end: int, flush_seconds: int = 86_400) -> ListSink:
    """The scenario's sources over ``[start, end)`` only (the injections keep their times)."""
    sc = sim.scenario
    short = dataclasses.replace(sim, scenario=dataclasses.replace(sc, start=start, end=end))
    sink = ListSink()
    short.replay(sink, flush_seconds=flush_seconds)
    return sink


def required(sim: Simulation) -> list[tuple[EntityRef, Scope, int, int]]:
    return sorted((t.entity, t.scope, t.start, t.end) for t in sim.truth if t.required)


def test_small_region_truth_is_the_catalogues_cuts(catalogue: dict[str, Scenario]) -> None:
    sc = catalogue["small-region-iq"]
    sim = simulate(sc)
    region = EntityRef(EntityType.REGION, sc.injections[0].region)
    spans = [iv for inj in sc.injections for iv in inj.intervals]
    assert required(sim) == sorted((region, Scope.REGIONAL, a, b) for a, b in spans)
    assert sorted(b - a for a, b in spans) == [3 * H, 6 * H]
    assert {t.cls for t in sim.truth} == {"small-count"}


def test_small_region_is_a_handful_of_blocks_cut_to_zero(catalogue: dict[str, Scenario]
                                                         ) -> None:
    sc = catalogue["small-region-iq"]
    sim = simulate(sc)
    a, b = min(iv for inj in sc.injections for iv in inj.intervals)
    day = 24 * H  # the baseline: the same hours the day before (a diurnal world)
    rounds = [f for f in replay(sim, a - day - 2 * H, b + H).facts
              if isinstance(f, ProbeRound)]
    blocks = rounds[0].block_starts
    codes = GeoLookup.default().bulk_regions(blocks).region_codes()
    inside = np.asarray([c == sc.injections[0].region for c in codes])
    assert HANDFUL[0] <= int(inside.sum()) <= HANDFUL[1]  # probed /24s of the region

    def answered(mask: np.ndarray, lo: int, hi: int) -> float:
        """Mean share of the masked blocks with at least one echo reply per round."""
        return float(np.mean([(r.replies[mask] > 0).mean() for r in rounds
                              if lo <= r.round_start < hi]))

    before, during = answered(inside, a - day, b - day), answered(inside, a, b)
    assert before > 0.3 and during == 0.0  # the cut's depth: level 0, no reply at all
    rest_before, rest_during = answered(~inside, a - day, b - day), answered(~inside, a, b)
    assert rest_during == pytest.approx(rest_before, rel=0.1)  # the country keeps answering
    after = answered(inside, b + 1200, b + H)  # the region comes back
    assert after > 0.5 * before


def volume(sink: ListSink, ref: EntityRef) -> dict[int, float]:
    out: dict[int, float] = {}
    for f in sink.facts:
        if not isinstance(f, PointBatch):
            continue
        hit = ((f.signals == "ooni-volume") & (f.entity_types == ref.type.value)
               & (f.entity_codes == ref.code))
        out.update(zip(f.times[hit].tolist(), f.values[hit].tolist(), strict=True))
    return out


def test_small_volume_collapses_for_the_truths_day(catalogue: dict[str, Scenario]) -> None:
    sc = catalogue["small-volume-iq"]
    sim = simulate(sc)
    (inj,) = sc.injections
    ((a, b),) = inj.intervals
    target = EntityRef(EntityType.ASN, str(inj.asns[0]))
    assert required(sim) == [(target, Scope.NETWORK, a, b)] and b - a == 24 * H
    # two flushes inside the window: a silence across them must still be written as zeros
    sink = replay(sim, a - 48 * H, b + 12 * H, flush_seconds=30 * H)
    mine = volume(sink, target)
    hours = range(a - 48 * H, b + 12 * H, H)
    first = min(mine)  # a silence before the first measurement is not known to be one
    assert first < a - 40 * H
    assert set(mine) == set(range(first, b + 12 * H, H))  # then silence is 0, not missing
    during = [mine[t] for t in range(a, b, H)]
    before = [mine[t] for t in range(first, a, H)]
    after = [mine[t] for t in range(b, b + 12 * H, H)]
    assert during == [0.0] * 24
    assert 1.0 <= float(np.mean(before)) <= 10.0  # a handful per hour
    assert sum(after) > 0
    others = [EntityRef(EntityType.ASN, str(x)) for x in sc.section("ooni")["asns"]
              if x not in inj.asns]
    for ref in others:  # the networks measured beside it keep their volume
        theirs = volume(sink, ref)
        assert sum(theirs.get(t, 0.0) for t in range(a, b, H)) > 24
    country = volume(sink, EntityRef(EntityType.COUNTRY, sc.country))
    assert all(country.get(t, 0.0) == sum(volume(sink, r).get(t, 0.0)
                                          for r in [target, *others]) for t in hours)
