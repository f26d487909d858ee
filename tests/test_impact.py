"""Impact estimates (issue 10, deliverable 5): inputs traced to their tables, three methods
kept apart, published figures beside and never inside. Reference values come from
../shared/data/PROVENANCE.md (KZ GDP 2021 = 197.1 bn US$, internet users 2021 = 90.9 %) and
anchors.md section 8 (Top10VPN: about 16M users), not from the code under test."""

from __future__ import annotations

import datetime as dt

import pytest

from netvigil.impact import estimate, for_event
from netvigil.impact.tables import gdp_usd, internet_share, population
from netvigil.model.entities import EntityRef, EntityType
from netvigil.model.events import Event, EventKind, EventStatus, Scope


def ts(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


CUT = (ts(2022, 1, 5, 10, 40), ts(2022, 1, 11, 2, 40))


def test_tables_hold_the_documented_kazakhstan_figures() -> None:
    gdp = gdp_usd("KZ", 2021)
    users = internet_share("KZ", 2021)
    assert gdp is not None and gdp.value == pytest.approx(197.1e9, rel=1e-3)
    assert users is not None and users.value == pytest.approx(0.909, abs=1e-3)
    pop = population("KZ")
    assert pop is not None and 17e6 < pop.value < 21e6


def test_a_later_year_uses_the_latest_earlier_figure_and_says_which() -> None:
    gdp = gdp_usd("KZ", 2031)
    assert gdp is not None and gdp.year == 2023


def test_kazakhstan_people_affected_matches_the_published_order_of_magnitude() -> None:
    impact = estimate("KZ", *CUT, depth=0.98)
    assert impact.people_affected is not None
    assert 14e6 < impact.people_affected < 18e6  # Top10VPN: about 16M users
    assert [c.method for c in impact.costs] == [
        "cost.gdp-share", "cost.deloitte-tier", "cost.netloss-person-day"]
    assert {p.source for p in impact.published} == {"Top10VPN", "NetBlocks (COST)"}
    for cost in impact.costs:
        assert 0 < cost.low_usd < cost.high_usd and cost.assumptions and cost.citation


def test_costs_scale_with_duration_and_depth() -> None:
    start, end = CUT
    one = estimate("KZ", start, end, depth=0.5)
    two = estimate("KZ", start, start + 2 * (end - start), depth=0.5)
    deep = estimate("KZ", start, end, depth=1.0)
    for a, b, c in zip(one.costs, two.costs, deep.costs, strict=True):
        assert b.high_usd == pytest.approx(2 * a.high_usd)
        assert c.high_usd == pytest.approx(2 * a.high_usd)


def test_connectivity_tier_follows_internet_use() -> None:
    low = estimate("NE", ts(2021, 3, 1), ts(2021, 3, 2), depth=1.0)  # Niger: few users
    tier = next(c for c in low.costs if c.method == "cost.deloitte-tier")
    assert tier.assumptions[0].startswith("low-connectivity")
    high = estimate("KZ", *CUT, depth=1.0)
    tier = next(c for c in high.costs if c.method == "cost.deloitte-tier")
    assert tier.assumptions[0].startswith("high-connectivity")


def test_unknown_country_gives_caveats_and_no_costs() -> None:
    impact = estimate("XK", *CUT, depth=1.0)
    assert impact.costs == () or all(c.method == "cost.netloss-person-day"
                                     for c in impact.costs)
    assert any("GDP" in c for c in impact.caveats)


def test_published_figures_only_for_their_country_and_window() -> None:
    assert estimate("KZ", ts(2023, 1, 5), ts(2023, 1, 6), depth=1).published == ()
    assert estimate("UZ", *CUT, depth=1).published == ()


def test_bad_window_is_refused() -> None:
    with pytest.raises(ValueError):
        estimate("KZ", CUT[1], CUT[0], depth=1)


def _event(ref: EntityRef, end: int | None) -> Event:
    return Event(id="e1", entity=ref, entity_name="x", start=CUT[0], end=end,
                 status=EventStatus.ENDED if end else EventStatus.ONGOING,
                 scope=Scope.for_entity(ref), kind=EventKind.OUTAGE, score=1.0,
                 confidence=0.9, min_ratio=0.02, signals=(), rules=())


def test_for_event_costs_a_national_event_and_an_ongoing_one_up_to_now() -> None:
    kz = EntityRef(EntityType.COUNTRY, "KZ")
    ended = for_event(_event(kz, CUT[1]), now=CUT[1] + 10 * 86400)
    ongoing = for_event(_event(kz, None), now=CUT[1])
    assert ended is not None and ongoing is not None
    assert ended.depth == pytest.approx(0.98) and ongoing.end == CUT[1]
    assert ended.costs[0].high_usd == pytest.approx(ongoing.costs[0].high_usd)
    assert any("upper bound" in c for c in ended.caveats)


def test_for_event_needs_a_share_for_regions_and_a_country_for_ases() -> None:
    region = EntityRef(EntityType.REGION, "KZ-ALA")
    asn = EntityRef(EntityType.ASN, "9198")
    assert for_event(_event(region, CUT[1]), now=CUT[1]) is None
    shared = for_event(_event(region, CUT[1]), now=CUT[1], scope_share=0.25)
    assert shared is not None and shared.country == "KZ"
    assert for_event(_event(asn, CUT[1]), now=CUT[1]) is None
    assert for_event(_event(asn, CUT[1]), now=CUT[1], country="KZ", scope_share=0.5)
