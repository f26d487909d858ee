"""The scenario simulator: catalogue, injections, truth from the scenario, sources, determinism."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, date, datetime

import numpy as np
import pytest

from netvigil.model import EntityRef, EntityType, Scope
from netvigil.model.facts import BgpVisibility, Fact, ProbeRound
from netvigil.scenarios import kz2022, simulator
from netvigil.scenarios.simulator import Scenario, Simulation, load_catalogue, simulate

H = 3600
ISSUE_CLASSES = {"quiet", "national-blackout", "national-bgp-withdrawal", "regional-shutdown",
                 "single-as-outage", "mobile-only", "curfew", "exam", "long-cut-10d",
                 "long-cut-2mo", "partial-degradation", "power-outage", "small-count"}


class ListSink:
    def __init__(self) -> None:
        self.facts: list[Fact] = []

    def emit(self, fact: Fact) -> None:
        self.facts.append(fact)

    def flush(self, cursors: Mapping[str, str] | None = None) -> None:
        pass

    def cursor(self, key: str) -> str | None:
        return None

    def of(self, kind: type) -> list[Fact]:
        return [f for f in self.facts if isinstance(f, kind)]


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Scenario]:
    return load_catalogue()


def window(sim: Simulation, start: int, hours: float) -> ListSink:
    """Replay ``hours`` of the scenario from ``start`` (the sources start there)."""
    sc = sim.scenario
    short = dataclasses.replace(sim, scenario=dataclasses.replace(
        sc, start=start, end=start + int(hours * H)))
    sink = ListSink()
    short.replay(sink)
    return sink


def test_catalogue_covers_every_class_of_the_issue(catalogue: dict[str, Scenario]) -> None:
    classes = {str(sc.raw["class"]) for sc in catalogue.values()}
    assert classes == ISSUE_CLASSES
    for sc in catalogue.values():
        assert sc.raw["scenario"]["status"] == "SIMULATION"
        for inj in sc.injections:  # >= 7 days of ordinary data before every event
            assert min(a for a, _ in inj.intervals) - sc.start >= 7 * 86_400


def test_curfew_nights_are_local_hours_for_days(catalogue: dict[str, Scenario]) -> None:
    sc = catalogue["curfew-mm"]
    (inj,) = sc.injections
    assert len(inj.intervals) == 10
    for k, (a, b) in enumerate(inj.intervals):
        local = datetime.fromtimestamp(a + int(6.5 * H), UTC)
        assert (local.hour, local.minute, b - a) == (1, 0, 8 * H)
        assert a == inj.intervals[0][0] + k * 86_400


def test_exam_cuts_only_on_their_weekdays(catalogue: dict[str, Scenario]) -> None:
    (inj,) = catalogue["exam-sy"].injections
    days = {datetime.fromtimestamp(a + 3 * H, UTC).strftime("%a") for a, _ in inj.intervals}
    assert days == {"Sun", "Wed"}
    assert len(inj.intervals) == 4


def test_truth_requires_the_target_and_spares_the_spared(catalogue: dict[str, Scenario]
                                                         ) -> None:
    curfew = simulate(catalogue["curfew-mm"])
    required = {t.entity for t in curfew.truth if t.required}
    assert required == {EntityRef(EntityType.COUNTRY, "MM")}
    assert all(t.cls == "curfew" for t in curfew.truth)
    assert EntityRef(EntityType.ASN, "18399") not in {t.entity for t in curfew.truth}
    assert any(t.entity.type is EntityType.ASN and not t.required for t in curfew.truth)

    mobile = simulate(catalogue["mobile-kz"])
    req = {t.entity.code for t in mobile.truth if t.required}
    assert req and all(mobile.universe.as_class[int(c)] == "mobile" for c in req)
    assert "9198" not in {t.entity.code for t in mobile.truth}  # fixed lines untouched
    country = [t for t in mobile.truth if t.entity.type is EntityType.COUNTRY]
    assert country and not country[0].required and 0.1 < country[0].level < 1.0

    regional = simulate(catalogue["regional-iq"])
    (reg,) = {(t.entity, t.scope) for t in regional.truth if t.required}
    assert reg == (EntityRef(EntityType.REGION, "IQ-AR"), Scope.REGIONAL)


def test_universe_is_the_countrys_real_space_and_as_split(catalogue: dict[str, Scenario]
                                                          ) -> None:
    from netvigil.geo.lookup import GeoLookup

    sim = simulate(catalogue["partial-eg"])
    uni = sim.universe
    assert uni.block_starts.size == 1500
    real = GeoLookup.default().country_blocks("EG", date(2022, 1, 4))
    assert np.isin(uni.block_starts, real).all()
    asns, counts = np.unique(uni.block_asn[uni.block_asn > 0], return_counts=True)
    assert int(asns[np.argmax(counts)]) == 8452  # TE Data holds the most Egyptian /24s


def test_same_seed_same_facts_other_seed_differs(catalogue: dict[str, Scenario]) -> None:
    sc = catalogue["curfew-mm"]
    t = sc.start + 2 * 86_400

    def replies(seed: int) -> list[bytes]:
        facts = window(simulate(sc, seed), t, 1).of(ProbeRound)
        return [f.replies.tobytes() for f in facts if isinstance(f, ProbeRound)]

    assert replies(5) == replies(5)
    assert replies(5) != replies(6)


def test_single_as_cut_silences_only_that_as(catalogue: dict[str, Scenario]) -> None:
    sim = simulate(catalogue["as-outage-iq"])
    a, _ = sim.scenario.injections[0].intervals[0]
    rounds = window(sim, a + H, 1).of(ProbeRound)
    uni = sim.universe
    asn_of = dict(zip(uni.block_starts.tolist(), uni.block_asn.tolist(), strict=True))
    for r in rounds:
        assert isinstance(r, ProbeRound)
        inside = np.array([asn_of[b] == 21277 for b in r.block_starts.tolist()])
        assert inside.sum() >= 20
        assert int(r.replies[inside].sum()) == 0
        assert r.replies[~inside].mean() > 0.3


def test_withdrawal_removes_routes_but_spares_noor(catalogue: dict[str, Scenario]) -> None:
    sim = simulate(catalogue["withdrawal-eg"])
    a, _ = sim.scenario.injections[0].intervals[0]
    before = window(sim, a - 600, 0.5).of(BgpVisibility)
    vis = [f for f in before if isinstance(f, BgpVisibility)]
    first, last = vis[0], vis[-1]
    assert first.time < a <= last.time
    assert len(set(first.v4_origin.tolist())) > 5
    assert set(last.v4_origin.tolist()) == {20928}  # Noor stays routed, as in 2011


def test_source_outages_are_missing_data(catalogue: dict[str, Scenario]) -> None:
    base = catalogue["curfew-mm"]  # the cuts start on day 8: two ordinary days here
    raw = dict(base.raw)
    raw["outages"] = {"prober_per_30_days": 60, "collector_per_30_days": 60,
                      "min_hours": 1, "max_hours": 2}
    sc = dataclasses.replace(base, raw=raw, end=base.start + 2 * 86_400)
    sim = simulate(sc)
    down = simulator.source_outages(sc, sim.seed)
    assert down["prober"] and down["collector"]
    sink = ListSink()
    sim.replay(sink)
    vis = [f for f in sink.of(BgpVisibility) if isinstance(f, BgpVisibility)]
    silent = [f for f in vis if any(a <= f.time < b for a, b in down["collector"])]
    assert silent and all(f.full_feed_v4 == 0 and f.silent_collectors for f in silent)
    assert all(f.full_feed_v4 > 0 for f in vis if f not in silent)
    starts = [int(f.round_start) for f in sink.of(ProbeRound) if isinstance(f, ProbeRound)]
    assert not any(a <= s < b for s in starts for a, b in down["prober"])
    assert len(starts) < 2 * 144


def test_kz2022_is_a_scenario_of_the_one_simulator() -> None:
    recon = kz2022.generate()
    assert isinstance(recon, Simulation) and kz2022.Kz2022 is Simulation
    assert recon.scenario.injections == ()
    assert all(t.cls == "" for t in recon.truth)


def test_registry_names_the_catalogue_scenarios_after_the_reconstruction() -> None:
    from netvigil.scenarios import registry

    names = list(registry.SCENARIOS)
    assert names[0] == "kz2022" and registry.get("kz2022").reconstruction
    spec = registry.get("exam-sy")
    assert not spec.reconstruction and "SIMULATION" in spec.description
    sim = spec.generate()
    assert isinstance(sim, Simulation) and sim.scenario.id == "exam-sy"
    assert {t.cls for t in sim.truth} == {"exam"}
