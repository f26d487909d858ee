"""Incremental event rebuild = rebuild from scratch (issue 8 deliverable 7, decision 30).

``run_detection`` on a new bin rebuilds only the tail of each touched entity's events (from
a clean cut before the earliest change) and keeps settled events as stored unless their
assessment can depend on what changed (recurrence, simultaneous sibling ASes, a platform
block of the country before them). The property checked here: after a multi-bin feed in
uneven chunks, the stored events equal those of ``run_detection(rebuild=True)`` on the same
store: ids, times, rules, evidence and the whole assessment except its lifecycle history
(which records the path, so it differs by design).

The feed is one country (KZ) with three regions and four ASes (three of them mobile in the
shipped AS table, so mobile-only and simultaneity rules fire), nightly cuts at one time of
day on two ASes at once (curfew: ``class.intermittent`` settles only as nights accumulate,
which re-assesses earlier nights), an AS cut for 10 minutes and closed before a sibling
goes down 15 minutes after it (simultaneity re-assesses the closed one), a platform block
on the country before a regional cut, a multi-region cut (national roll-up), and Poisson
noise. Values come from this file's own
seeded generator, never from a detector's thresholds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from netvigil.detect import IodaMedian, load_rules
from netvigil.detect.protocol import Detector
from netvigil.detect.registry import get_detector
from netvigil.events.runner import run_detection
from netvigil.model import Entity, EntityRef, Event, make_ref
from netvigil.store.duck import Store

STEP = 300
DAY_BINS = 288
T0 = 1_641_254_400 - 1_641_254_400 % 86400  # midnight UTC
KZ = make_ref("country", "KZ")
REGIONS = [make_ref("region", c) for c in ("KZ-ALA", "KZ-AST", "KZ-KAR")]
ASES = [make_ref("asn", a) for a in ("29355", "21299", "48503", "9198")]
DAYS = 5
SIBLING = 3 * DAY_BINS + 200  # fed one bin at a time around it


def _feed(rng: np.random.Generator) -> dict[tuple[EntityRef, str], np.ndarray]:
    n = DAYS * DAY_BINS
    hours = np.arange(n) * STEP / 3600.0
    out: dict[tuple[EntityRef, str], np.ndarray] = {}

    def base(level: float) -> np.ndarray:
        return level * (1 - 0.3 * 0.5 * (1 + np.cos((hours - 14) / 24 * 2 * np.pi)))

    for ref, level in [(KZ, 30000.0), *[(r, 6000.0) for r in REGIONS],
                       *[(a, 4000.0) for a in ASES]]:
        out[(ref, "bgp")] = np.full(n, level / 10)
        out[(ref, "ping-slash24")] = base(level / 4)
    out[(KZ, "platform:whatsapp")] = np.full(n, 2000.0)
    for day in range(1, DAYS):  # curfew on two ASes: 01:00-03:00 UTC every night
        lo = day * DAY_BINS + 12
        for a in ASES[:2]:
            for sig in ("bgp", "ping-slash24"):
                out[(a, sig)][lo:lo + 24] *= 0.05
    for sig in ("bgp", "ping-slash24"):  # one AS down 10 min, another 15 min after it
        out[(ASES[2], sig)][SIBLING:SIBLING + 2] *= 0.02
        out[(ASES[3], sig)][SIBLING + 3:SIBLING + 20] *= 0.02
    block = 3 * DAY_BINS + 100  # the platform block, then a regional cut 6 h later
    out[(KZ, "platform:whatsapp")][block:block + 60] = 20.0
    for r in REGIONS:  # all regions down at once: a national roll-up
        out[(r, "ping-slash24")][block + 72:block + 96] *= 0.02
    out[(REGIONS[0], "bgp")][4 * DAY_BINS + 30:4 * DAY_BINS + 60] *= 0.3
    for k, v in out.items():  # BGP prefix counts are steady; probing and platforms noisy
        noisy = np.round(v) if k[1] == "bgp" else rng.poisson(v).astype(np.float64)
        noisy[rng.random(n) < 0.01] = np.nan
        out[k] = noisy
    return out


def _write(store: Store, feed: dict[tuple[EntityRef, str], np.ndarray], lo: int,
           hi: int) -> None:
    keys = sorted(feed, key=lambda k: (k[0].type.value, k[0].code, k[1]))
    m = hi - lo
    store.write_points([k[0].type.value for k in keys for _ in range(m)],
                       [k[0].code for k in keys for _ in range(m)],
                       [k[1] for k in keys for _ in range(m)],
                       np.tile(T0 + np.arange(lo, hi, dtype=np.int64) * STEP, len(keys)),
                       np.concatenate([feed[k][lo:hi] for k in keys]),
                       source="test", step=STEP)


def _comparable(events: list[Event]) -> dict[str, dict[str, Any]]:
    out = {}
    for e in events:
        assessment = {k: v for k, v in e.assessment.items() if k != "history"}
        out[e.id] = {"entity": e.entity.fqid, "start": e.start, "end": e.end,
                     "status": e.status.value, "kind": e.kind.value, "scope": e.scope.value,
                     "score": e.score, "min_ratio": e.min_ratio, "signals": e.signals,
                     "rules": e.rules, "assessment": assessment}
    return out


def _short_median() -> Detector:
    """The reference with a 2-hour history so it alerts (often) within a short feed."""
    rules = {fam: replace(r, history=24 * STEP, warmup=12 * STEP, maxduration=288 * STEP,
                          minduration=0) for fam, r in load_rules().items()}
    return IodaMedian(rules)


@pytest.mark.parametrize("make", [_short_median, lambda: get_detector("netvigil.seasonal")],
                         ids=["ioda.median-short", "netvigil.seasonal"])
def test_incremental_events_equal_rebuild(tmp_path: Path, make: Any) -> None:
    feed = _feed(np.random.default_rng(8))
    det = make()
    with Store(tmp_path / "s.duckdb") as store:
        store.upsert_entities([Entity(a, f"AS{a.code}", KZ) for a in ASES])
        first = 3 * DAY_BINS
        _write(store, feed, 0, first)
        run_detection(store, detector=det)
        rng = np.random.default_rng(3)
        lo, runs = first, 0
        while lo < DAYS * DAY_BINS:  # uneven chunks, some of one bin
            step = int(rng.choice([1, 1, 60, 90, 120]))
            if SIBLING - 2 <= lo + step and lo <= SIBLING + 8:
                step = 1 if lo >= SIBLING - 2 else SIBLING - 2 - lo
            hi = min(DAYS * DAY_BINS, lo + step)
            _write(store, feed, lo, hi)
            run_detection(store, detector=det)
            lo, runs = hi, runs + 1
        incremental = _comparable(store.read_events())
        run_detection(store, detector=det, rebuild=True)
        scratch = _comparable(store.read_events())
    assert runs > 8
    assert len(scratch) >= 10
    # the feed exercises what the incremental path must keep exact
    rules = {r for e in scratch.values() for r in e["rules"]}
    assert {"class.intermittent", "cause.recurrence"} <= rules
    assert any(e["scope"] == "national" for e in scratch.values())
    assert "cause.simultaneous-ases" in {r for e in scratch.values()
                                        if e["entity"] == ASES[2].fqid for r in e["rules"]}
    assert sorted(incremental) == sorted(scratch)
    for eid, want in scratch.items():
        assert incremental[eid] == want, eid


IR = make_ref("country", "IR")
IR_REGIONS = [make_ref("region", f"IR-{i:02d}") for i in range(1, 5)]
IR_ASES = [make_ref("asn", str(a)) for a in (44244, 58224, 197207, 16322, 31549, 12880)]
H = 12  # bins per hour


def _country_feed(rng: np.random.Generator) -> dict[tuple[EntityRef, str], np.ndarray]:
    """A country with a signal of its own, its regions and ASes: every region down on
    day 1 10:00-12:00 while the country's own signal is down only 10:40-11:10 (the roll-up
    annotates that shorter event: its span outlives the event), an AS down at 12:05 (a
    change one simultaneity window from inside that span, after it closed); four of six
    ASes down day 2 12:00-12:05 and a fifth at 12:10 (within the simultaneity window of
    the settled national event's start), one AS alone at 20:00 (a change after both)."""
    n = 3 * DAY_BINS
    out = {(r, "ping-slash24"): np.full(n, 1500.0) for r in [IR, *IR_REGIONS, *IR_ASES]}
    d1, d2 = DAY_BINS, 2 * DAY_BINS
    for r in IR_REGIONS:
        out[(r, "ping-slash24")][d1 + 10 * H:d1 + 12 * H] *= 0.02
    out[(IR, "ping-slash24")][d1 + 10 * H + 8:d1 + 10 * H + 14] *= 0.02
    out[(IR_ASES[5], "ping-slash24")][d1 + 12 * H + 1:d1 + 12 * H + 3] *= 0.02
    for a in IR_ASES[:4]:
        out[(a, "ping-slash24")][d2 + 12 * H:d2 + 12 * H + 1] *= 0.02
    out[(IR_ASES[4], "ping-slash24")][d2 + 12 * H + 2:d2 + 12 * H + 8] *= 0.02
    out[(IR_ASES[5], "ping-slash24")][d2 + 20 * H:d2 + 20 * H + 6] *= 0.02
    return {k: rng.poisson(v).astype(np.float64) for k, v in out.items()}


def test_incremental_national_rollup_equals_rebuild(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The country is rebuilt from a cut (its settled national events kept as stored) and
    still equals a rebuild: the cut never falls inside a roll-up span (an annotated own
    event's members) and lies a simultaneity window before the earliest change."""
    from netvigil.events import runner

    cuts: list[int | None] = []
    real_cut = runner._country_cut

    def spy(*args: Any) -> int | None:
        cuts.append(real_cut(*args))
        return cuts[-1]

    monkeypatch.setattr(runner, "_country_cut", spy)
    feed = _country_feed(np.random.default_rng(11))
    det = _short_median()
    with Store(tmp_path / "s.duckdb") as store:
        store.upsert_entities([Entity(r, r.code, IR) for r in IR_REGIONS]
                              + [Entity(a, f"AS{a.code}", IR) for a in IR_ASES])
        lo = DAY_BINS + 9 * H
        _write(store, feed, 0, lo)
        run_detection(store, detector=det)
        # (until, bins per run): one bin at a time where a national event closes and
        # the next change arrives in the run after it
        for until, size in [(DAY_BINS + 11 * H + 10, 6), (DAY_BINS + 12 * H + 4, 1),
                            (2 * DAY_BINS + 12 * H - 1, 5 * H), (2 * DAY_BINS + 12 * H + 4, 1),
                            (3 * DAY_BINS, 4 * H)]:
            while lo < until:
                hi = min(until, lo + size)
                _write(store, feed, lo, hi)
                run_detection(store, detector=det)
                lo = hi
        incremental = _comparable(store.read_events())
        run_detection(store, detector=det, rebuild=True)
        scratch = _comparable(store.read_events())
    national = sorted((e for e in scratch.values() if e["entity"] == IR.fqid),
                      key=lambda e: e["start"])
    rules = [set(e["rules"]) for e in national]
    assert any("scope.rollup-regions" in r and e["end"] is not None and max(
        m["end"] or e["end"] for m in e["assessment"]["scope"]["members"]) > e["end"]
        for e, r in zip(national, rules, strict=True))  # an own event, annotated
    assert any("scope.rollup-ases" in r and "cause.simultaneous-ases" in r for r in rules)
    first = national[0]["start"]
    assert any(c is not None and c > first for c in cuts), cuts  # settled events kept
    assert sorted(incremental) == sorted(scratch)
    for eid, want in scratch.items():
        assert incremental[eid] == want, eid
