"""The Kazakhstan 2022 RECONSTRUCTION generator: facts, determinism, truth from phases."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from netvigil.model import EntityRef, EntityType, EventKind, Scope
from netvigil.model.facts import BgpVisibility, Fact, PlatformTests, ProbeRound
from netvigil.scenarios import registry
from netvigil.scenarios.kz2022 import Kz2022, generate, load_scenario

DAY = 86_400


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


class ListSink:
    """A FactSink that keeps the facts (the pipeline is tested elsewhere)."""

    def __init__(self) -> None:
        self.facts: list[Fact] = []
        self.cursors: dict[str, str] = {}

    def emit(self, fact: Fact) -> None:
        self.facts.append(fact)

    def flush(self, cursors: Mapping[str, str] | None = None) -> None:
        self.cursors.update(cursors or {})

    def cursor(self, key: str) -> str | None:
        return self.cursors.get(key)

    def of(self, kind: type) -> list[Fact]:
        return [f for f in self.facts if isinstance(f, kind)]


def replay(recon: Kz2022, start: str, hours: int) -> ListSink:
    sink = ListSink()
    sc = recon.scenario
    short = dataclasses.replace(recon, scenario=dataclasses.replace(
        sc, start=ts(start), end=ts(start) + hours * 3600))
    short.replay(sink)
    return sink


@pytest.fixture(scope="module")
def recon() -> Kz2022:
    return generate()


def test_registry_lists_the_reconstruction() -> None:
    spec = registry.get("kz2022")
    assert spec.reconstruction
    with pytest.raises(KeyError, match="known: kz2022"):
        registry.get("nope")


def test_same_seed_same_facts_other_seed_differs() -> None:
    a, b, c = (replay(generate(s), "2022-01-05T10:00", 2) for s in (7, 7, 8))
    pa, pb, pc = (s.of(ProbeRound) for s in (a, b, c))
    assert len(pa) == 12
    for x, y in zip(pa, pb, strict=True):
        assert isinstance(x, ProbeRound) and isinstance(y, ProbeRound)
        assert np.array_equal(x.replies, y.replies) and np.array_equal(x.sent, y.sent)
    assert any(not np.array_equal(x.replies, y.replies)  # type: ignore[union-attr]
               for x, y in zip(pa, pc, strict=True))
    ba, bb = a.of(BgpVisibility), b.of(BgpVisibility)
    assert all(np.array_equal(x.v4_blocks, y.v4_blocks)  # type: ignore[union-attr]
               for x, y in zip(ba, bb, strict=True))


def test_universe_is_real_kz_space_with_real_as_shares(recon: Kz2022) -> None:
    uni = recon.universe
    assert uni.block_starts.size == 12_587  # 424 CIDRs of kz.cidr 2022-01-04
    share = {a: float(np.mean(uni.block_asn == a)) for a in (9198, 29355, 21299)}
    assert share[9198] > share[29355] > share[21299] > 0.05
    assert uni.as_class[29355] == "mobile" and uni.as_class[9198] == "fixed"
    assert "datacentre" in set(uni.as_class.values())


def test_one_copy_of_the_as_table() -> None:
    from importlib import resources

    base = resources.files("netvigil") / "data"
    assert (base / "geo" / "asn-ipv4-in-KZ.csv").is_file()
    assert not (base / "kz2022" / "asn-ipv4-in-KZ.csv").is_file()


def test_probe_rounds_are_counts_of_selected_blocks(recon: Kz2022) -> None:
    sink = replay(recon, "2022-01-03T00:00", 1)
    rounds = sink.of(ProbeRound)
    assert len(rounds) == 6
    r = rounds[0]
    assert isinstance(r, ProbeRound) and r.round_seconds == 600
    assert 0.6 * recon.universe.block_starts.size < len(r) < recon.universe.block_starts.size
    assert np.all(r.sent >= 1) and np.all(r.sent <= 15)  # periodic probe + adaptive budget
    assert np.array_equal(r.lost.astype(int) + r.replies, r.sent.astype(int))
    assert float(r.availability.min()) >= 0.1  # the prober's selection rule
    assert np.mean(r.replies > 0) > 0.9  # an ordinary round: most blocks answer


def test_blackout_silences_probes_but_not_routes(recon: Kz2022) -> None:
    before = replay(recon, "2022-01-05T09:00", 1)
    during = replay(recon, "2022-01-05T12:00", 1)
    rb, rd = before.of(ProbeRound)[-1], during.of(ProbeRound)[-1]
    assert isinstance(rb, ProbeRound) and isinstance(rd, ProbeRound)
    up_before = np.mean(rb.replies > 0)
    up_during = np.mean(rd.replies > 0)
    assert up_during / up_before < 0.05  # ~2 % of ordinary
    vb, vd = before.of(BgpVisibility)[-1], during.of(BgpVisibility)[-1]
    assert isinstance(vb, BgpVisibility) and isinstance(vd, BgpVisibility)
    assert vd.full_feed_v4 >= 15 and vd.v4_blocks.size >= 0.99 * vb.v4_blocks.size


def test_churn_spike_changes_the_routing_state(recon: Kz2022) -> None:
    sink = replay(recon, "2022-01-05T10:30", 1)
    vis = sink.of(BgpVisibility)
    assert all(isinstance(v, BgpVisibility) and v.full_feed_v4 > 0 for v in vis)
    # churn updates arrive from 10:45: the bins after it are new snapshots, not re-stamped
    assert vis[3].v4_blocks is not vis[2].v4_blocks  # type: ignore[union-attr]


def test_routes_originate_from_the_as_of_each_range(recon: Kz2022) -> None:
    vis = replay(recon, "2022-01-03T00:00", 1).of(BgpVisibility)[0]
    assert isinstance(vis, BgpVisibility)
    kcell = (vis.v4_blocks >> 16) == 0x0248  # 2.72.0.0/16
    assert kcell.any() and set(vis.v4_origin[kcell].tolist()) == {29355}


def test_platform_tests_hourly_blocked_from_january_4(recon: Kz2022) -> None:
    pt = recon.platform_tests()
    assert isinstance(pt, PlatformTests) and pt.step == 3600
    counted = pt.ok.astype(int) + pt.anomaly + pt.confirmed
    share = pt.ok.sum(axis=1) / np.maximum(1, counted.sum(axis=1))
    h = (ts("2022-01-03T12:00") - pt.start) // 3600
    assert np.all(share[h] > 0.9)
    h = (ts("2022-01-04T08:00") - pt.start) // 3600
    assert np.all(share[h] < 0.2)
    h = (ts("2022-01-05T18:00") - pt.start) // 3600
    assert counted[h].sum() < counted[h - 48].sum() * 0.1  # volume collapse in the blackout
    assert pt.failure.sum() > 0
    sink = replay(recon, "2022-01-03T00:00", 3)
    assert len(sink.of(PlatformTests)) == 3


def test_truth_is_the_scenario_phases(recon: Kz2022) -> None:
    kz = EntityRef(EntityType.COUNTRY, "KZ")
    sc = recon.scenario
    assert "truth" not in sc.raw  # no detector threshold in the scenario
    nat = [t for t in recon.truth if t.entity == kz and t.kind is EventKind.OUTAGE]
    assert [t.phases for t in nat] == [("national-blackout",)]
    back = {t.phases[0]: t for t in recon.restorations if t.entity == kz}
    assert set(back) == {"restoration-address", "partial-restoration"}
    kcell_back = {t.phases[0] for t in recon.restorations
                  if t.entity == EntityRef(EntityType.ASN, "29355")}
    assert kcell_back == {"daily-window-0108", "daily-window-0109", "daily-window-0110"}
    assert 0.2 < back["partial-restoration"].level < 0.5  # weighted by the universe
    assert nat[0].start == ts("2022-01-05T10:45") and nat[0].end == ts("2022-01-11T02:15")
    assert nat[0].scope is Scope.NATIONAL and nat[0].level < 0.05 and "bgp" in nat[0].silent
    kcell = [t for t in recon.truth if t.entity == EntityRef(EntityType.ASN, "29355")]
    assert kcell[0].start == ts("2022-01-04T16:00") and kcell[0].level == 0.55
    plat = [t for t in recon.truth if t.kind is EventKind.PLATFORM_BLOCK]
    assert {t.signals[0] for t in plat} == {"platform:whatsapp", "platform:telegram",
                                            "platform:signal"}
    assert all(t.start == ts("2022-01-04T05:00") for t in plat)
    dc = [t for t in recon.restorations if t.phases == ("datacentre-first",)]
    assert dc and all(t.start == ts("2022-01-07T00:00") for t in dc)
    assert sc.raw["scenario"]["status"] == "RECONSTRUCTION"
    assert all(r["status"] == "RECONSTRUCTION" for r in sc.raw["phase"])
    assert load_scenario().seed == 20220105


def test_blocks_reach_ases_only_through_the_announced_routes(recon: Kz2022,
                                                             tmp_path: Path) -> None:
    """With no AS table in the geo lookup, the pipeline still finds Kcell's probed blocks:
    their AS can only come from the origins of the routes the reconstruction announces."""
    from netvigil.geo.lookup import GeoLookup
    from netvigil.geo.refdata import load_shipped_snapshots
    from netvigil.pipeline import Pipeline
    from netvigil.pipeline.probing import ProbingOptions
    from netvigil.store.duck import Store

    sc = recon.scenario
    short = dataclasses.replace(recon, scenario=dataclasses.replace(
        sc, start=ts("2022-01-03T00:00"), end=ts("2022-01-03T01:00")))
    geo = GeoLookup(load_shipped_snapshots(), (), use_iptocc=False)
    with Store(tmp_path / "s.duckdb") as store:
        p = Pipeline(store, geo, probing=ProbingOptions(block_series=False))
        short.replay(p)
        kcell = store.read_series(EntityRef(EntityType.ASN, "29355"), "probing")
        kz = store.read_series(EntityRef(EntityType.COUNTRY, "KZ"), "probing")
        assert p.cursor("scenario.kz2022.replayed_until") == str(ts("2022-01-03T01:00"))
    assert kcell.values.size == 6 and float(np.nanmin(kcell.values)) > 100
    assert float(np.nanmin(kz.values)) > float(np.nanmax(kcell.values))
