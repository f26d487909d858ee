"""Several vantage points: combining states, silent and isolated probers, and the entity values
the pipeline derives from their replayed lines (facts_from_lines → ProbingAggregator)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from netvigil.geo.lookup import GeoLookup
from netvigil.model import EntityRef, InputError
from netvigil.pipeline.probing import ProbingAggregator, ProbingOptions
from netvigil.sources.probing.belief import BlockState
from netvigil.sources.probing.signals import BlockRound, facts_from_lines, read_jsonl
from netvigil.sources.probing.targets import TargetList, from_blocks
from netvigil.sources.probing.vantage import collect, combine

BASE = (198 << 24) | (18 << 16)
KZ = EntityRef.parse("country/KZ")
U, D, Q, N = BlockState.UP, BlockState.DOWN, BlockState.UNCERTAIN, BlockState.UNPROBED


def targets(n: int) -> TargetList:
    blocks = [(BASE + (k << 8), [BASE + (k << 8) + h for h in range(1, 21)], 0.8)
              for k in range(n)]
    return from_blocks(blocks, entities=[(KZ,)] * n).targets


def row(vp: str, t: int, k: int, state: int, lost: int = 0) -> BlockRound:
    return BlockRound(vp, float(t), f"198.18.{k}.0/24", state, 0.99 if state == U else 0.01,
                      1 + lost, 1 if state == U else 0, lost, 1.0 if state == U else math.nan)


def kz_values(rows: list[BlockRound], t: TargetList, signal: str = "probing",
              min_coverage: float = 1.0) -> dict[int, float]:
    """The stored value per bin: the last emission of each bin wins, as the store upserts."""
    agg = ProbingAggregator(GeoLookup((), (), use_iptocc=False),
                            ProbingOptions(min_coverage=min_coverage))
    out: dict[int, float] = {}
    for fact in facts_from_lines(rows, t, 600):
        for b in agg.points(fact):
            m = (b.entity_codes == "KZ") & (b.signals == signal)
            out.update(zip(b.times[m].tolist(), b.values[m].tolist(), strict=True))
    return out


def test_combine_any_up_wins_all_down_needed_for_down() -> None:
    pv = np.array([[U, D, D, N, Q, N],
                   [D, D, N, N, D, Q]], dtype=np.int8)
    assert combine(pv).tolist() == [U, D, D, N, Q, Q]


def test_silent_prober_leaves_a_health_fact_and_no_dip() -> None:
    t = targets(3)
    rows = [row(vp, s, k, U) for s in (0, 600) for k in range(3) for vp in ("a", "b")]
    rows += [row("a", 1200, k, U) for k in range(3)]  # b is silent in the third round
    got = collect(rows, t, 600, expected=["a", "b", "c"])
    assert (got.states == U).all()
    status = {(h.vantage, h.time): h.status for h in got.health}
    assert status[("b", 1200)] == "silent"
    assert all(status[("c", s)] == "silent" for s in (0, 600, 1200))  # never reported at all
    assert kz_values(rows, t) == {0: 3.0, 600: 3.0, 1200: 3.0}


def test_unreported_blocks_make_the_value_missing_not_zero() -> None:
    t = targets(2)
    rows = [row("a", 0, k, U) for k in range(2)] + [row("a", 600, 0, U)]
    values = kz_values(rows, t)
    assert values[0] == 2.0 and math.isnan(values[600])
    assert kz_values(rows, t, min_coverage=0.5)[600] == 1.0


def test_a_vantage_point_that_sees_everything_down_is_isolated() -> None:
    t = targets(10)
    rows = [row("a", 0, k, U) for k in range(10)] + [row("b", 0, k, D) for k in range(10)]
    got = collect(rows, t, 600)
    status = {h.vantage: h.status for h in got.health}
    assert status == {"a": "ok", "b": "isolated"}
    assert (got.states == U).all()
    assert got.seen_by(0, 4) == {"a": "up", "b": "down"}


def test_real_outage_seen_by_every_vantage_point_is_down() -> None:
    t = targets(2)
    rows = [row(vp, 0, 0, D, lost=3) for vp in "ab"] + [row(vp, 0, 1, U) for vp in "ab"]
    got = collect(rows, t, 600)
    assert got.states[0].tolist() == [D, U]
    assert kz_values(rows, t) == {0: 1.0}
    assert kz_values(rows, t, "probing-loss")[0] == pytest.approx(100 * 6 / 8)


def test_bad_round_line_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text('{"round_start": 0, "block": "198.18.0.0/24", "state": "up", "belief": 0.9,'
                 ' "probes_sent": 1, "replies": 1}\n{"state": "sideways"}\n')
    with pytest.raises(InputError) as exc:
        list(read_jsonl([p]))
    assert exc.value.line == 2
