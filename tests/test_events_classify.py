"""Classification rules (``data/events/classify.toml``): scope roll-up, kind, mobile-only and
cause, each naming its rule id. Roll-ups run through a real DuckDB store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from netvigil.detect.seasonal import Seasonal
from netvigil.events import classification as cl
from netvigil.events.runner import run_detection
from netvigil.model import (
    Entity,
    EntityRef,
    Event,
    EventKind,
    EventStatus,
    Scope,
    Series,
    SignalEvidence,
    make_ref,
)

T0 = 1_573_776_000  # 2019-11-15 00:00 UTC
STEP = 300
PER_H = 3600 // STEP
CUT = T0 + 2 * 86400 + 12 * 3600 + 600  # 12:10 UTC on day 2 (not a round hour)
IR = make_ref("country", "IR")
KZ = make_ref("country", "KZ")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    from netvigil.store.duck import Store

    with Store(tmp_path / "nv.duckdb") as s:
        yield s


def values(down: bool, level: float = 500.0, left: float = 0.03, hours: int = 8) -> np.ndarray:
    v = np.full(4 * 86400 // STEP, level)
    if down:
        i = (CUT - T0) // STEP
        v[i:i + hours * PER_H] = level * left
    return v


def put(store: Any, ref: EntityRef, parent: EntityRef, down: bool, signal: str = "probing",
        **kw: Any) -> None:
    store.upsert_entities([Entity(ref, ref.code, parent)])
    store.write_series(Series(ref, signal, T0, STEP, values(down, **kw)), source="test")


def test_most_regions_down_make_one_national_event_listing_them(store: Any) -> None:
    regions = [make_ref("region", f"IR-0{i}") for i in range(1, 5)]
    for i, r in enumerate(regions):
        put(store, r, IR, down=i < 3)  # three of four provinces cut at once
    run_detection(store, detector=Seasonal())
    (nat,) = store.read_events(IR)
    assert nat.scope is Scope.NATIONAL and nat.start == CUT and nat.end == CUT + 8 * 3600
    assert "scope.rollup-regions" in nat.rules
    members = nat.assessment["scope"]["members"]
    assert sorted(m["entity"] for m in members) == [r.fqid for r in regions[:3]]
    assert nat.assessment["class"]["kind"] == "full-shutdown"
    assert len(store.read_events(regions[0])) == 1  # the regions keep their own events


def test_one_region_down_is_not_national(store: Any) -> None:
    for i in range(1, 5):
        put(store, make_ref("region", f"IR-0{i}"), IR, down=i == 1)
    run_detection(store, detector=Seasonal())
    assert store.read_events(IR) == []


def test_mobile_operators_cut_while_the_fixed_incumbent_stays_up(store: Any) -> None:
    put(store, make_ref("asn", "9198"), KZ, down=False)  # Kazakhtelecom, fixed
    put(store, make_ref("asn", "29355"), KZ, down=True, left=0.3)  # Kcell, mobile
    put(store, make_ref("asn", "48503"), KZ, down=True, left=0.3)  # Tele2, mobile
    run_detection(store, detector=Seasonal())
    (nat,) = store.read_events(KZ)
    assert "scope.rollup-ases" in nat.rules and "class.mobile-only" in nat.rules
    mob = nat.assessment["mobile_only"]
    assert mob["mobile_down"] == ["29355", "48503"] and mob["fixed_up"] == ["9198"]
    assert nat.assessment["class"]["kind"] == "partial-outage"
    fired = [e["rule"] for e in nat.assessment["cause"]["evidence"]]
    assert "cause.simultaneous-ases" in fired and "cause.simultaneous-ases" in nat.rules


def test_the_mobile_operators_down_are_national_even_as_a_minority_of_ases(store: Any) -> None:
    put(store, make_ref("asn", "9198"), KZ, down=False)  # fixed, in the table
    for asn in ("64500", "64501", "64502"):  # not in the table, up
        put(store, make_ref("asn", asn), KZ, down=False)
    put(store, make_ref("asn", "29355"), KZ, down=True, left=0.3)
    put(store, make_ref("asn", "48503"), KZ, down=True, left=0.3)
    run_detection(store, detector=Seasonal())
    (nat,) = store.read_events(KZ)
    assert nat.scope is Scope.NATIONAL and (nat.start, nat.end) == (CUT, CUT + 8 * 3600)
    assert "scope.rollup-mobile" in nat.rules and "scope.rollup-ases" not in nat.rules
    assert nat.assessment["scope"]["from"] == "mobile"
    assert nat.assessment["mobile_only"]["mobile_down"] == ["29355", "48503"]


def test_mobile_only_needs_every_down_as_mobile() -> None:
    kcell, kt = make_ref("asn", "29355"), make_ref("asn", "9198")
    assert cl.mobile_only([kcell, kt], [kcell, kt]) is None
    assert cl.mobile_only([kcell], [kcell]) is None  # no fixed network observed up
    assert cl.mobile_only([make_ref("asn", "64512")], [kt]) is None  # not in the table
    assert all(t.source for t in cl.network_types().values())


def evidence(signal: str, ratio: float, level: str = "critical") -> SignalEvidence:
    return SignalEvidence(signal, "netvigil.seasonal", 0, None, 1.0, ratio, ratio * 100, 100.0,
                          level)


def event(start: int, hours: float, *signals: SignalEvidence,
          entity: EntityRef = KZ) -> Event:
    end = start + int(hours * 3600)
    return Event(f"e{start}", entity, entity.code, start, end, EventStatus.ENDED,
                 Scope.for_entity(entity), EventKind.OUTAGE, 1.0, 0.6,
                 min(s.min_ratio for s in signals), signals, ())


@pytest.mark.parametrize(("signals", "kind", "rule"), [
    ((evidence("probing", 0.02),), "full-shutdown", "class.full-shutdown"),
    ((evidence("probing", 0.4),), "partial-outage", "class.partial-outage"),
    ((evidence("platform:whatsapp", 0.1),), "platform-block", "class.platform-block"),
    ((evidence("gtr", 0.6, "warning"),), "throttling", "class.throttling"),
    ((evidence("probing-latency", 3.0, "warning"),), "throttling", "class.throttling"),
])
def test_kind_rules(signals: tuple[SignalEvidence, ...], kind: str, rule: str) -> None:
    assert cl.kind(event(T0, 2, *signals), None) == (kind, rule)


def test_nightly_cuts_are_intermittent_with_their_schedule() -> None:
    night = 18 * 3600 + 30 * 60  # 18:30 UTC = 01:00 Myanmar
    evs = [event(T0 + d * 86400 + night, 8, evidence("probing", 0.14)) for d in range(5)]
    end_of = {e.id: e.end or 0 for e in evs}
    sched = cl.schedule(evs[-1], cl.History.of(evs, end_of), end_of[evs[-1].id])
    assert sched is not None
    assert (sched["start_utc"], sched["duration_s"], sched["occurrences"]) == \
        ("18:30", 8 * 3600, 5)
    assert cl.kind(evs[-1], sched) == ("intermittent", "class.intermittent")
    # two nights are not yet a pattern
    assert cl.schedule(evs[1], cl.History.of(evs[:2], end_of), end_of[evs[1].id]) is None


def context(**kw: Any) -> cl.CauseContext:
    base: dict[str, Any] = {"step": STEP, "sibling_ases": (), "platform_starts": (),
                            "bgp_present": False, "bgp_alerting": False}
    return cl.CauseContext(**{**base, **kw})


def test_cause_evidence_and_verdicts() -> None:
    on_hour = T0 + 2 * 86400 + 14 * 3600
    ev = event(on_hour, 6, evidence("probing", 0.02))
    got, fired = cl.cause(ev, None, context(bgp_present=True,
                                            platform_starts=(on_hour - 3 * 3600,)))
    assert fired == ["cause.round-hour", "cause.bgp-visible", "cause.platform-before"]
    assert got["likely"] == "government-ordered" and got["weight"] > 0.5
    # a lone AS, starting off the hour, routes withdrawn with it: likely technical
    asn = make_ref("asn", "64500")
    lone = event(on_hour + 420, 2, evidence("probing", 0.02), evidence("bgp", 0.0),
                 entity=asn)
    got, fired = cl.cause(lone, None, context(bgp_present=True, bgp_alerting=True))
    assert fired == [] and got["likely"] == "technical"
    # hourly data: every start is on the hour, which is then no evidence
    assert cl.cause(ev, None, context(step=3600))[1] == []


def test_simultaneous_ases_from_the_sibling_index_as_from_every_pair() -> None:
    """The index answers what a scan of every (AS, start) pair answers: the distinct ASes
    starting within the window, the entity itself (an AS) or its members (a roll-up) added,
    counted, the first ten named; a national cut's window is resolved once."""
    rng = np.random.default_rng(3)
    sim = int(cl.load_config()["cause"]["simultaneous-ases"]["window_s"])
    pairs = [(make_ref("asn", str(64_000 + int(rng.integers(300)))),
              T0 + int(rng.integers(0, 40)) * 300) for _ in range(900)]
    index = cl.SiblingIndex(pairs)
    min_ases = int(cl.load_config()["cause"]["simultaneous-ases"]["min_ases"])
    fired_count = 0
    for k in range(60):
        start = T0 + int(rng.integers(0, 40)) * 300 + 60 * int(rng.integers(0, 5))
        entity = (make_ref("asn", str(64_000 + int(rng.integers(300)))) if k % 3
                  else make_ref("country", "KZ"))
        members = ([make_ref("asn", str(64_000 + int(m))) for m in rng.integers(0, 400, 5)]
                   if k % 3 == 0 else [])
        siblings = {r.fqid for r, t in pairs if abs(t - start) <= sim}
        assert index.within(start - sim, start + sim) == tuple(sorted(siblings))
        own = {entity.fqid} if entity.type.value == "asn" else {m.fqid for m in members}
        near = sorted(siblings | own)
        got, _ = cl.cause(event(start, 6, evidence("probing", 0.02), entity=entity), None,
                          context(sibling_ases=index.within(start - sim, start + sim)),
                          members)
        fired = [e for e in got["evidence"] if e["rule"] == "cause.simultaneous-ases"]
        if len(near) >= min_ases:
            fired_count += 1
            assert fired[0]["detail"] == (f"{len(near)} ASes down within {sim} s: "
                                          + ", ".join(near[:10]))
        else:
            assert not fired
    assert fired_count > 30
    assert index.within(T0, T0 + sim) is index.within(T0, T0 + sim)  # resolved once


def test_probability_rises_with_corroboration_and_depth() -> None:
    weak = cl.probability(event(T0, 0.2, evidence("probing", 0.7, "warning")))
    strong = cl.probability(event(T0, 6, evidence("probing", 0.02), evidence("bgp", 0.1)))
    assert 0 < weak < 0.5 < strong < 1
