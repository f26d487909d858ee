"""Aggregation units: Trinocular belief, the >50%-of-full-feed BGP rule, missing vs zero."""

from __future__ import annotations

import numpy as np
import pytest

from netvigil.model import EntityRef, EntityType
from netvigil.pipeline.bgp import aggregate_bgp, build_atoms, visible
from netvigil.pipeline.entities import BlockLocations, EntityMatrix, Grouping, concat_windows
from netvigil.pipeline.platform import aggregate_platform
from netvigil.pipeline.probing import (
    DOWN,
    UNCERTAIN,
    UNPROBED,
    UP,
    BeliefModel,
    aggregate_probing,
    block_states,
    update_belief,
)
from netvigil.sources.kz2022 import BgpFacts, PlatformFacts, ProbingFacts


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-x)))


def probing(sent: list[list[int]], replies: list[list[int]], avail: list[float]) -> ProbingFacts:
    s = np.asarray(sent, dtype=np.uint8)
    nb = s.shape[1]
    return ProbingFacts(
        start=0, step=600, block_starts=(np.arange(nb, dtype=np.uint32) << 8),
        ever_responsive=np.full(nb, 100, dtype=np.uint16),
        availability=np.asarray(avail, dtype=np.float32), offset=np.zeros(nb, dtype=np.int32),
        sent=s, replies=np.asarray(replies, dtype=np.uint8), max_probes=15, loss=0.01,
        initial_belief=0.5)


def test_belief_update_is_bayes_and_clamped() -> None:
    a = 0.5
    b = update_belief(np.array([0.0]), [1], [1], [a])  # prior 0.5, one positive reply
    expected = a * 0.5 / (a * 0.5 + 0.01 * 0.5)
    assert sigmoid(b)[0] == pytest.approx(expected)
    b = update_belief(np.array([0.0]), [1], [0], [a])  # one negative
    assert sigmoid(b)[0] == pytest.approx(0.5 * 0.5 / (0.5 * 0.5 + 0.99 * 0.5))
    many = update_belief(np.array([0.0]), [15], [15], [0.9])
    assert sigmoid(many)[0] == pytest.approx(0.99)  # clamped
    none = update_belief(np.array([0.0]), [15], [0], [0.9])
    assert sigmoid(none)[0] == pytest.approx(0.01)
    same = update_belief(np.array([1.234]), [0], [0], [0.9])  # not probed: unchanged
    assert same[0] == 1.234


def test_order_of_replies_inside_a_round_does_not_matter() -> None:
    seq = [1, 0, 0, 1, 0]
    a, loss = 0.4, 0.01
    x = logit(0.5)
    for r in seq:
        x += np.log(a / loss) if r else np.log((1 - a) / (1 - loss))
    closed = update_belief(np.array([logit(0.5)]), [len(seq)], [sum(seq)], [a])
    assert closed[0] == pytest.approx(np.clip(x, logit(0.01), logit(0.99)))


def test_block_states_thresholds_and_unprobed() -> None:
    f = probing(sent=[[1, 15, 0, 1], [1, 15, 0, 1]],
                replies=[[1, 0, 0, 0], [1, 0, 0, 0]], avail=[0.5, 0.5, 0.5, 0.05])
    states, final = block_states(f)
    assert states[0, 0] == UP  # one positive from 0.5: 0.98 > 0.9
    assert states[0, 1] == DOWN  # 15 negatives at A=0.5
    assert states[0, 2] == UNPROBED
    assert states[0, 3] == UNCERTAIN  # a negative on a sparse block says little
    assert sigmoid(final)[2] == pytest.approx(0.5)
    assert BeliefModel().up == 0.9 and BeliefModel().down == 0.1


def test_probing_counts_up_blocks_and_missing_is_not_zero() -> None:
    f = probing(sent=[[1, 1, 1], [15, 15, 15], [0, 0, 0]],
                replies=[[1, 1, 1], [0, 0, 0], [0, 0, 0]], avail=[0.5, 0.5, 0.5])
    locs = BlockLocations(np.zeros(3, dtype=np.int16), ("KZ",),
                          np.array([9198, 9198, 29355], dtype=np.int64))
    mats, _ = aggregate_probing(f, Grouping.from_locations(locs))
    country = mats[0].values()[:, 0]
    assert country[0] == 3 and country[1] == 0  # measured: everything down is a zero
    assert np.isnan(country[2])  # nothing probed: missing
    assert mats[1].refs == (EntityRef(EntityType.ASN, "9198"), EntityRef(EntityType.ASN, "29355"))
    assert mats[1].values()[0].tolist() == [2.0, 1.0]


def test_probing_windows_chain_and_shards_add() -> None:
    rng = np.random.default_rng(1)
    sent = rng.integers(0, 4, (6, 8)).tolist()
    replies = [[int(rng.integers(0, s + 1)) for s in row] for row in sent]
    f = probing(sent, replies, [0.5] * 8)
    locs = BlockLocations(np.zeros(8, dtype=np.int16), ("KZ",), np.zeros(8, dtype=np.int64))
    g = Grouping.from_locations(locs, asns=False)[0]
    whole, _ = aggregate_probing(f, [g])
    first, prior = aggregate_probing(f, [g], rounds=slice(0, 3))
    second, _ = aggregate_probing(f, [g], rounds=slice(3, 6), prior_logit=prior)
    joined = concat_windows([first[0], second[0]])
    assert np.array_equal(joined.values(), whole[0].values(), equal_nan=True)
    a_idx, b_idx = np.arange(0, 4), np.arange(4, 8)
    ga = Grouping(g.refs, g.index[a_idx])
    gb = Grouping(g.refs, g.index[b_idx])
    sa, _ = aggregate_probing(f, [ga], blocks=a_idx)
    sb, _ = aggregate_probing(f, [gb], blocks=b_idx)
    assert np.array_equal(sa[0].merge(sb[0]).values(), whole[0].values(), equal_nan=True)


def bgp_facts(carriers: list[int], table: list[list[int]]) -> BgpFacts:
    """One /22 prefix (4 /24s) and one more-specific /24 inside it; bitmask rows per bin."""
    n_bins = len(table)
    carried = np.array([[c, 0] for c in carriers], dtype=np.uint32)
    return BgpFacts(
        start=0, step=300, peer_asns=np.arange(1, 5, dtype=np.int64),
        table_size=np.asarray(table, dtype=np.int32),
        prefix_net=np.array([0x0A000000, 0x0A000100], dtype=np.uint32),
        prefix_len=np.array([22, 24], dtype=np.uint8),
        prefix_origin=np.array([1, 1], dtype=np.int64), carried=carried[:n_bins])


def test_visible_needs_more_than_half_of_full_feed_peers() -> None:
    ff = np.array([0b1111, 0b1111, 0b1111, 0b0011, 0], dtype=np.uint32)
    masks = np.array([[0b0111], [0b0011], [0b0001], [0b0001], [0b1111]], dtype=np.uint32)
    vis, has = visible(masks, ff)
    assert vis[:, 0].tolist() == [True, False, False, False, False]  # 3/4 yes, 2/4 no
    assert has.tolist() == [True, True, True, True, False]
    vis2, _ = visible(np.array([[0b0011]], dtype=np.uint32), np.array([0b0011], dtype=np.uint32))
    assert vis2[0, 0]  # 2 of 2 full-feed peers


def test_bgp_counts_covering_routes_and_missing_without_full_feed() -> None:
    full = 500_000
    f = bgp_facts(
        carriers=[0b0111, 0b0011, 0b0111, 0b0111],
        table=[[full] * 4, [full] * 4, [full, full, full, 0], [0] * 4])
    atoms = build_atoms(f.prefix_net, f.prefix_len)
    covered = atoms.blocks()
    assert covered.size == 4
    locs = BlockLocations(np.zeros(4, dtype=np.int16), ("KZ",), np.full(4, 1, dtype=np.int64))
    mats = aggregate_bgp(f, atoms, atoms.atom_of(covered),
                         Grouping.from_locations(locs, asns=False))
    vals = mats[0].values()[:, 0]
    assert vals[0] == 4  # 3 of 4 peers carry the /22: all four /24s visible
    assert vals[1] == 0  # exactly 2 of 4: not visible
    assert vals[2] == 4  # peer 4 session down: 3 of 3 remaining full-feed peers
    assert np.isnan(vals[3])  # no full-feed peer at all: missing, not zero


def test_bgp_more_specific_covers_its_24() -> None:
    f = bgp_facts(carriers=[0b0001], table=[[500_000] * 4])
    f = BgpFacts(f.start, f.step, f.peer_asns, f.table_size, f.prefix_net, f.prefix_len,
                 f.prefix_origin, np.array([[0b0001, 0b1110]], dtype=np.uint32))
    atoms = build_atoms(f.prefix_net, f.prefix_len)
    covered = atoms.blocks()
    locs = BlockLocations(np.zeros(4, dtype=np.int16), ("KZ",), np.zeros(4, dtype=np.int64))
    mats = aggregate_bgp(f, atoms, atoms.atom_of(covered),
                         Grouping.from_locations(locs, asns=False))
    assert mats[0].values()[0, 0] == 1  # only 10.0.1.0/24: the /24 route + the /22 = 4 peers


def test_platform_percent_and_missing_hours() -> None:
    ok = np.array([[[9], [0]], [[0], [0]], [[0], [0]]], dtype=np.uint16)
    blocked = np.array([[[1], [0]], [[5], [0]], [[0], [0]]], dtype=np.uint16)
    f = PlatformFacts(0, 3600, ("whatsapp",), np.array([9198, 29355], dtype=np.int64),
                      ("KZ", "KZ"), ok, blocked)
    mats = aggregate_platform(f)
    country, per_as = mats[0], mats[1]
    assert country.signal == "platform:whatsapp"
    v = country.values()[:, 0]
    assert v[0] == pytest.approx(90.0) and v[1] == 0.0 and np.isnan(v[2])
    assert np.isnan(per_as.values()[0, 1])  # AS29355 ran no tests in hour 0


def test_merge_rejects_mismatched_shards() -> None:
    ref = (EntityRef(EntityType.COUNTRY, "KZ"),)
    a = EntityMatrix("probing", 0, 600, ref, np.zeros((2, 1)), np.ones((2, 1)))
    b = EntityMatrix("probing", 600, 600, ref, np.zeros((2, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError):
        a.merge(b)
