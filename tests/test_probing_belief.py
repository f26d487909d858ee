"""Trinocular's belief model (Quan, Heidemann, Pradkin SIGCOMM 2013; trinarkular constants)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netvigil.sources.probing import belief as bm
from netvigil.sources.probing.belief import BeliefModel, BlockState

M = bm.DEFAULT_MODEL


def trinarkular_step(b: float, a: float, positive: bool) -> float:
    """The C code's update_bayesian_belief, transcribed: works on P(down)."""
    ppd = ((1.0 - 0.01) / 256) * (1.0 - b)
    if positive:
        down = ppd / (ppd + a * b)
    else:
        down = (1.0 - ppd) / ((1.0 - ppd) + (1 - a) * b)
    return 1 - min(max(down, 0.01), 0.99)


def test_reply_probabilities_come_from_availability_and_loss() -> None:
    p_up, p_down = bm.reply_probabilities([0.3, 0.8])
    assert p_up.tolist() == pytest.approx([0.3, 0.8])
    assert p_down == pytest.approx(0.99 / 256)


@pytest.mark.parametrize("b", [0.99, 0.7, 0.5, 0.2, 0.01])
@pytest.mark.parametrize("a", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("positive", [True, False])
def test_update_matches_the_paper_bayes_rule(b: float, a: float, positive: bool) -> None:
    pd = 0.99 / 256
    like_up, like_down = (a, pd) if positive else (1 - a, 1 - pd)
    expected = min(max(like_up * b / (like_up * b + like_down * (1 - b)), 0.01), 0.99)
    got = float(bm.update(np.array([b]), np.array([positive]), np.array([a]))[0])
    assert got == pytest.approx(expected, rel=1e-5)


def test_positive_update_agrees_with_trinarkular() -> None:
    for b, a in [(0.5, 0.3), (0.05, 0.75), (0.99, 0.5)]:
        assert float(bm.update([b], [True], [a])[0]) == pytest.approx(
            trinarkular_step(b, a, True), rel=1e-4)


def test_negative_update_is_exact_bayes_not_trinarkulars_shortcut() -> None:
    # trinarkular's negative branch drops the prior P(down) = 1 - B from the numerator, so one
    # lost probe takes a dense block from 0.99 to 0.17; the paper's Bayes rule gives 0.95.
    assert trinarkular_step(0.99, 0.8, False) == pytest.approx(0.165, abs=0.001)
    assert float(bm.update([0.99], [False], [0.8])[0]) == pytest.approx(0.9521, abs=1e-4)


def test_beliefs_are_clamped_to_one_and_ninety_nine_percent() -> None:
    b = np.full(3, 0.99, dtype=np.float32)
    for _ in range(5):
        b = bm.update(b, [True, True, True], [0.9, 0.9, 0.9])
    assert np.allclose(b, 0.99)
    for _ in range(30):
        b = bm.update(b, [False] * 3, [0.9, 0.9, 0.9])
    assert np.allclose(b, 0.01)


def test_classify_uses_point_nine_and_point_one_thresholds() -> None:
    states = bm.classify([0.95, 0.9, 0.5, 0.1, 0.05])
    assert states.tolist() == [BlockState.UP, BlockState.UNCERTAIN, BlockState.UNCERTAIN,
                               BlockState.UNCERTAIN, BlockState.DOWN]


def test_one_lost_probe_does_not_take_a_dense_block_down() -> None:
    b = bm.update([0.99], [False], [0.8])
    assert bm.classify(b)[0] == BlockState.UP  # 0.952: still up, but it fell...
    assert bm.wants_more([0.99], b)[0]  # ...so Trinocular asks for another probe


def test_wants_more_follows_trinarkular_rule() -> None:
    before = np.array([0.99, 0.99, 0.01, 0.01, 0.5, 0.5], dtype=np.float32)
    after = np.array([0.95, 0.99, 0.4, 0.01, 0.6, 0.95], dtype=np.float32)
    assert bm.wants_more(before, after).tolist() == [True, False, True, False, True, False]


@given(a=st.floats(0.1, 0.95), cap=st.integers(1, 15))
@settings(max_examples=60, deadline=None)
def test_probes_to_resolve_is_exactly_enough_negatives(a: float, cap: int) -> None:
    b0 = np.array([0.99], dtype=np.float32)
    need = int(bm.probes_to_resolve(b0, [a], cap=cap)[0])
    assert 1 <= need <= cap
    b = b0
    for _ in range(need - 1):
        b = bm.update(b, [False], [a])
    if need < cap:
        assert bm.classify(b)[0] != BlockState.DOWN  # one fewer is not enough
    b = bm.update(b, [False], [a])
    if need < cap:
        assert bm.classify(b)[0] == BlockState.DOWN


def test_a_down_block_needs_positives_to_come_back() -> None:
    need = int(bm.probes_to_resolve([0.01], [0.8])[0])
    b = np.array([0.01], dtype=np.float32)
    for _ in range(need):
        b = bm.update(b, [True], [0.8])
    assert bm.classify(b)[0] == BlockState.UP


def test_update_sequence_applies_probes_in_order_with_clamp() -> None:
    outcomes = np.array([[0, 0, 1, -1], [1, -1, -1, -1], [-1, -1, -1, -1]], dtype=np.int8)
    a = np.array([0.7, 0.7, 0.7])
    got = bm.update_sequence(np.full(3, 0.99), outcomes, a)
    b = np.float32(0.99)
    for o in (0, 0, 1):
        b = bm.update([b], [o == 1], [0.7])[0]
    assert got[0] == pytest.approx(float(b))
    assert got[1] == pytest.approx(0.99)
    assert got[2] == pytest.approx(0.99)  # no probe: unchanged


@given(r=st.integers(0, 3), n_extra=st.integers(0, 3), a=st.floats(0.2, 0.9))
@settings(max_examples=50, deadline=None)
def test_update_counts_equals_sequence_when_clamp_does_not_bind(r: int, n_extra: int,
                                                                a: float) -> None:
    start = 0.5
    n = r + n_extra
    seq = np.array([[0] * n_extra + [1] * r + [-1] * (6 - n)], dtype=np.int8)
    by_seq = bm.update_sequence([start], seq, [a], BeliefModel(belief_min=1e-6,
                                                                belief_max=1 - 1e-6,
                                                                down=0.1, up=0.9))
    by_counts = bm.update_counts([start], [r], [n], [a], BeliefModel(belief_min=1e-6,
                                                                     belief_max=1 - 1e-6))
    assert float(by_counts[0]) == pytest.approx(float(by_seq[0]), rel=1e-3, abs=1e-6)


def test_recovery_probe_count_is_trinarkular_formula() -> None:
    a = np.array([0.1, 0.5, 0.9, 0.01])
    expected = [min(15, math.ceil(math.log(0.2) / math.log(1 - x))) for x in a]
    assert bm.recovery_probes(a).tolist() == expected


def test_recovery_backoff_rounds_one_to_four_eight_then_every_sixteenth() -> None:
    due = [k for k in range(70) if bm.recovery_due([k])[0]]
    assert due == [1, 2, 3, 4, 8, 16, 32, 48, 64]


def test_model_rejects_inconsistent_thresholds() -> None:
    with pytest.raises(ValueError):
        BeliefModel(up=0.05, down=0.1)


def test_one_round_of_a_million_blocks_is_vectorised() -> None:
    n = 1_000_000
    rng = np.random.default_rng(1)
    b = bm.initial_beliefs(n)
    a = rng.uniform(0.1, 0.95, n).astype(np.float32)
    pos = rng.random(n) < 0.9
    out = bm.update(b, pos, a)
    assert out.dtype == np.float32 and out.shape == (n,)
    assert (bm.classify(out) != BlockState.DOWN).all()


def test_availability_of_one_is_capped_so_one_lost_probe_is_not_an_outage() -> None:
    b = bm.update([0.99], [False], [1.0])
    assert bm.classify(b)[0] == BlockState.UP  # with A = 1 exactly it would be 0.0099: down
    for _ in range(3):
        b = bm.update(b, [False], [1.0])
    assert bm.classify(b)[0] != BlockState.DOWN
    b = bm.update(b, [False], [1.0])
    assert bm.classify(b)[0] == BlockState.DOWN  # five in a row decide
