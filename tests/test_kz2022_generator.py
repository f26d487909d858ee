"""The Kazakhstan 2022 RECONSTRUCTION generator: determinism and realism (anchors §8.1)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest

from netvigil.model import EntityRef, EntityType, EventKind, Scope
from netvigil.pipeline.bgp import aggregate_bgp, build_atoms
from netvigil.pipeline.entities import BlockLocations, Grouping
from netvigil.pipeline.probing import aggregate_probing
from netvigil.sources import registry
from netvigil.sources.kz2022 import Kz2022Facts, generate, load_scenario

DAY = 86_400


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def country_only(blocks: np.ndarray) -> BlockLocations:
    """Every block in KZ: a stand-in for GeoLookup that keeps these tests geo-independent."""
    return BlockLocations(np.zeros(blocks.size, dtype=np.int16), ("KZ",),
                          np.zeros(blocks.size, dtype=np.int64), "test")


@pytest.fixture(scope="module")
def facts() -> Kz2022Facts:
    return generate()


@pytest.fixture(scope="module")
def national(facts: Kz2022Facts) -> np.ndarray:
    locs = country_only(facts.probing.block_starts)
    mats, _ = aggregate_probing(facts.probing, Grouping.from_locations(locs, asns=False))
    return mats[0].values()[:, 0]


def test_same_seed_same_arrays_other_seed_differs() -> None:
    sc = load_scenario()
    short = dataclasses.replace(sc, end=sc.start + 2 * DAY)
    a, b = generate(7, short), generate(7, short)
    c = generate(8, short)
    for name in ("sent", "replies", "availability", "ever_responsive", "offset"):
        assert np.array_equal(getattr(a.probing, name), getattr(b.probing, name)), name
    assert np.array_equal(a.bgp.carried, b.bgp.carried)
    assert np.array_equal(a.bgp.table_size, b.bgp.table_size)
    assert np.array_equal(a.platform.ok, b.platform.ok)
    assert np.array_equal(a.platform.blocked, b.platform.blocked)
    assert not np.array_equal(a.probing.replies, c.probing.replies)


def test_registry_lists_the_reconstruction() -> None:
    spec = registry.get("kz2022")
    assert spec.reconstruction
    with pytest.raises(KeyError):
        registry.get("nope")


def test_universe_is_real_kz_space_with_real_as_shares(facts: Kz2022Facts) -> None:
    uni = facts.universe
    assert uni.block_starts.size == 12_587  # 424 CIDRs of kz.cidr 2022-01-04
    assert np.all(np.diff(uni.block_starts.astype(np.int64)) > 0)
    share = {a: float(np.mean(uni.block_asn == a)) for a in (9198, 29355, 21299)}
    assert share[9198] > share[29355] > share[21299] > 0.05
    assert uni.as_class[29355] == "mobile" and uni.as_class[9198] == "fixed"
    assert "datacentre" in set(uni.as_class.values())
    assert facts.probing.sent.dtype == np.uint8 and facts.probing.sent.ndim == 2
    assert int(facts.probing.sent.max()) <= facts.probing.max_probes


def test_at_least_seven_days_of_normal_history(facts: Kz2022Facts, national: np.ndarray) -> None:
    sc = facts.scenario
    first = min(p.start for p in sc.phases)
    assert first - sc.start >= 7 * DAY
    assert ts("2022-01-02T00:00") - sc.start >= 7 * DAY
    normal = national[: (first - sc.start) // facts.probing.step]
    base = np.nanmedian(normal[6:])
    assert np.nanmin(normal[6:]) / base > 0.85  # no outage-like dip in the history


def test_diurnal_rhythm_present(facts: Kz2022Facts, national: np.ndarray) -> None:
    per_day = 86_400 // facts.probing.step
    days = national[per_day: 8 * per_day].reshape(7, per_day)
    amplitude = (days.max(axis=1) - days.min(axis=1)) / np.median(days, axis=1)
    assert np.all(amplitude > 0.03)
    # The trough is at night local time (UTC+6): the daily minimum falls 18:00-02:00 UTC.
    hour_of_min = (np.argmin(days, axis=1) * facts.probing.step // 3600) % 24
    assert all(h >= 18 or h <= 2 for h in hour_of_min.tolist())


def test_blackout_is_about_two_percent_of_ordinary(facts: Kz2022Facts,
                                                   national: np.ndarray) -> None:
    sc = facts.scenario
    step = facts.probing.step
    base = np.nanmedian(national[: (ts("2022-01-04T00:00") - sc.start) // step])
    i0 = (ts("2022-01-05T11:00") - sc.start) // step
    i1 = (ts("2022-01-05T23:00") - sc.start) // step
    level = national[i0:i1] / base
    assert np.all((level > 0.01) & (level < 0.04))
    before = national[(ts("2022-01-05T10:20") - sc.start) // step] / base
    assert before > 0.8


def test_bgp_stays_visible_during_blackout(facts: Kz2022Facts) -> None:
    atoms = build_atoms(facts.bgp.prefix_net, facts.bgp.prefix_len)
    covered = atoms.blocks()
    mats = aggregate_bgp(facts.bgp, atoms, atoms.atom_of(covered),
                         Grouping.from_locations(country_only(covered), asns=False))
    vis = mats[0].values()[:, 0]
    base = np.median(vis[: (ts("2022-01-04T00:00") - facts.scenario.start) // facts.bgp.step])
    assert np.all(vis >= 0.99 * base)  # above IODA's BGP warning level, all the time
    spike = (ts("2022-01-05T10:45") - facts.scenario.start) // facts.bgp.step
    assert np.bitwise_count(facts.bgp.carried[spike]).sum() < np.bitwise_count(
        facts.bgp.carried[spike - 3]).sum()  # churn happened, visibility did not move


def test_platform_blocked_from_january_4_and_silent_in_blackout(facts: Kz2022Facts) -> None:
    pf = facts.platform
    total = pf.ok.astype(int) + pf.blocked.astype(int)
    share_ok = pf.ok.sum(axis=1) / np.maximum(1, total.sum(axis=1))
    h = (ts("2022-01-03T12:00") - pf.start) // pf.step
    assert np.all(share_ok[h] > 0.9)
    h = (ts("2022-01-04T08:00") - pf.start) // pf.step
    assert np.all(share_ok[h] < 0.2)
    h = (ts("2022-01-05T18:00") - pf.start) // pf.step
    assert total[h].sum() < total[h - 48].sum() * 0.1  # volume collapse in the blackout


def test_truth_from_the_scenario(facts: Kz2022Facts) -> None:
    kz = EntityRef(EntityType.COUNTRY, "KZ")
    nat = [t for t in facts.truth if t.entity == kz and t.kind is EventKind.OUTAGE]
    assert nat[0].start == ts("2022-01-05T10:45") and nat[0].scope is Scope.NATIONAL
    assert nat[0].min_level < 0.05 and "bgp" in nat[0].silent
    assert nat[-1].end == ts("2022-01-11T02:15")
    kcell = [t for t in facts.truth if t.entity == EntityRef(EntityType.ASN, "29355")]
    assert kcell[0].start == ts("2022-01-04T16:00")
    plat = [t for t in facts.truth if t.kind is EventKind.PLATFORM_BLOCK]
    assert {t.signals[0] for t in plat} == {"platform:whatsapp", "platform:telegram",
                                            "platform:signal"}
    assert all(t.start == ts("2022-01-04T05:00") for t in plat)
    assert all(p.source and p.id for p in facts.scenario.phases)
    assert facts.scenario.raw["scenario"]["status"] == "RECONSTRUCTION"
    assert all(r["status"] == "RECONSTRUCTION" for r in facts.scenario.raw["phase"])
