"""The pipeline's aggregators: one Trinocular belief chained per (vantage, block), several
vantage points, AS attribution by BGP origins, the storage rule, platform shares."""

from __future__ import annotations

import numpy as np
import pytest

from netvigil.geo.lookup import GeoLookup
from netvigil.geo.refdata import load_shipped_snapshots
from netvigil.model import EntityRef, EntityType
from netvigil.model.facts import PlatformTests, PointBatch, ProbeRound
from netvigil.pipeline import Pipeline
from netvigil.pipeline.entities import RouteOrigins
from netvigil.pipeline.platform import PlatformAggregator
from netvigil.pipeline.probing import ProbingAggregator, ProbingOptions
from netvigil.sources.probing import belief as bm
from netvigil.store.duck import Store

KZ = EntityRef(EntityType.COUNTRY, "KZ")
KCELL_BLOCKS = (np.arange(40, dtype=np.uint32) << np.uint32(8)) + np.uint32(0x02480000)  # 2.72/13


@pytest.fixture(scope="module")
def geo() -> GeoLookup:
    """Country snapshots only: no AS range table, so an AS can only come from BGP origins."""
    return GeoLookup(load_shipped_snapshots(), (), use_iptocc=False)


def rnd(blocks: np.ndarray, sent: list[int] | np.ndarray, replies: list[int] | np.ndarray, *,
        t: float = 1_641_000_000.0, vantage: str = "vp1", avail: float = 0.7,
        overrides: tuple[tuple[EntityRef, ...] | None, ...] | None = None,
        rtt_block: np.ndarray | None = None, rtt: np.ndarray | None = None) -> ProbeRound:
    s = np.asarray(sent, dtype=np.uint8)
    r = np.asarray(replies, dtype=np.uint8)
    return ProbeRound(vantage, t, 600, blocks, np.full(blocks.size, avail, np.float32), s, r,
                      np.zeros(blocks.size, np.uint8), s - r,
                      rtt_block=np.empty(0, np.int32) if rtt_block is None else rtt_block,
                      rtt=np.empty(0) if rtt is None else rtt, entity_overrides=overrides)


def values(batches: list[PointBatch], etype: str, code: str, signal: str) -> list[float]:
    out: list[float] = []
    for b in batches:
        m = (b.entity_types == etype) & (b.entity_codes == code) & (b.signals == signal)
        out += b.values[m].tolist()
    return out


def test_beliefs_chain_across_rounds_with_the_one_belief_model(geo: GeoLookup) -> None:
    blocks = KCELL_BLOCKS[:3]
    agg = ProbingAggregator(geo)
    rounds = [([1, 5, 0], [1, 0, 0]), ([1, 1, 3], [1, 0, 3]), ([2, 0, 1], [0, 0, 1])]
    expect = bm.initial_beliefs(3)
    for sent, rep in rounds:
        batches = agg.points(rnd(blocks, sent, rep))
        expect = bm.update_counts(expect, rep, sent, np.full(3, 0.7, np.float32))
        _, got = agg.beliefs("vp1")
        assert np.allclose(got, expect)
    # block 0 lost 2 of 2 from 0.99: belief.update_counts says down or uncertain, never up
    states = values(batches, "block", "2.72.0.0/24", "probing-state")
    assert states == [float(bm.classify(expect)[0])]
    # block 1 lost 5 in round 1 and is still believed down, but it was not probed in round 3:
    # its state that round is missing (NaN), not down
    assert bm.classify(expect)[1] == bm.BlockState.DOWN
    assert np.isnan(values(batches, "block", "2.72.1.0/24", "probing-state")[0])
    assert np.isnan(values(batches, "block", "2.72.1.0/24", "probing")[0])


def test_all_down_is_a_measured_zero_and_unprobed_is_missing(geo: GeoLookup) -> None:
    blocks = KCELL_BLOCKS[:25]
    agg = ProbingAggregator(geo, ProbingOptions(block_series=False))
    n = blocks.size
    up = agg.points(rnd(blocks, [1] * n, [1] * n))
    assert values(up, "country", "KZ", "probing") == [25.0]
    assert values(up, "country", "KZ", "probing-loss") == [0.0]
    down = agg.points(rnd(blocks, [8] * n, [0] * n, t=1_641_000_600.0))
    assert values(down, "country", "KZ", "probing") == [0.0]
    assert values(down, "country", "KZ", "probing-loss") == [100.0]
    silent = agg.points(rnd(blocks, [0] * n, [0] * n, t=1_641_001_200.0))
    assert np.isnan(values(silent, "country", "KZ", "probing")[0])
    assert np.isnan(values(silent, "country", "KZ", "probing-loss")[0])
    assert not values(up, "block", "2.72.0.0/24", "probing-state")  # block series off


def test_as_comes_from_bgp_origins_and_small_entities_are_not_stored(geo: GeoLookup) -> None:
    origins = RouteOrigins()
    origins.update(KCELL_BLOCKS[:25], np.full(25, 29355, np.uint32))
    origins.update(KCELL_BLOCKS[25:36], np.full(11, 64500, np.uint32))
    origins.update(KCELL_BLOCKS[36:], np.full(4, 64501, np.uint32))
    agg = ProbingAggregator(geo, ProbingOptions(block_series=False), origins)
    n = KCELL_BLOCKS.size
    out = agg.points(rnd(KCELL_BLOCKS, [1] * n, [1] * n))
    assert values(out, "asn", "29355", "probing") == [25.0]
    assert values(out, "asn", "64500", "probing") == [11.0]  # 11 >= 5 blocks: stored
    assert values(out, "asn", "64501", "probing") == []  # 4 < 5 blocks: rule min-blocks
    assert values(out, "country", "KZ", "probing") == [40.0]
    without = ProbingAggregator(geo, ProbingOptions(block_series=False))
    out = without.points(rnd(KCELL_BLOCKS, [1] * n, [1] * n))
    assert values(out, "asn", "29355", "probing") == []  # no route, no AS table: no AS


def test_overrides_replace_geo_and_are_always_stored(geo: GeoLookup) -> None:
    lab = np.array([0xC6120000, 0xC6120100], dtype=np.uint32)  # 198.18.0.0/24, 198.18.1.0/24
    ov = ((EntityRef(EntityType.COUNTRY, "KZ"), EntityRef(EntityType.ASN, "64512")),) * 2
    out = ProbingAggregator(geo).points(rnd(lab, [1, 3], [1, 0], overrides=ov))
    assert values(out, "asn", "64512", "probing") == [1.0]
    assert values(out, "country", "KZ", "probing") == [1.0]
    assert np.isnan(values(out, "block", "198.18.1.0/24", "probing")[0])  # uncertain


def test_latency_percentiles_per_entity(geo: GeoLookup) -> None:
    blocks = KCELL_BLOCKS[:2]
    rtt = np.array([0.010, 0.020, 0.030, 0.100])
    ov = ((KZ,), (KZ,))
    out = ProbingAggregator(geo).points(rnd(blocks, [2, 2], [2, 2], overrides=ov,
                                            rtt_block=np.array([0, 0, 1, 1], np.int32),
                                            rtt=rtt))
    assert values(out, "country", "KZ", "probing-latency") == pytest.approx(
        [np.percentile(rtt * 1000, 50)])
    assert values(out, "country", "KZ", "probing-latency-p90") == pytest.approx(
        [np.percentile(rtt * 1000, 90)])


def test_vantage_points_combine_up_if_anyone_saw_it_up(geo: GeoLookup) -> None:
    blocks = KCELL_BLOCKS[:2]
    ov = ((KZ,), (KZ,))
    agg = ProbingAggregator(geo)
    a = agg.points(rnd(blocks, [6, 6], [0, 0], vantage="a", overrides=ov))
    assert values(a, "country", "KZ", "probing") == [0.0]
    b = agg.points(rnd(blocks, [1, 6], [1, 0], vantage="b", overrides=ov, t=1_641_000_010.0))
    # same bin re-emitted with both reports: block 0 up (b saw it), block 1 down (both)
    assert values(b, "country", "KZ", "probing") == [1.0]
    assert values(b, "block", "2.72.1.0/24", "probing-state") == [0.0]


def test_pipeline_writes_the_combined_value_last(tmp_path: object, geo: GeoLookup) -> None:
    from pathlib import Path

    blocks = KCELL_BLOCKS[:2]
    ov = ((KZ,), (KZ,))
    with Store(Path(str(tmp_path)) / "s.duckdb") as store:
        p = Pipeline(store, geo)
        p.emit(rnd(blocks, [6, 6], [0, 0], vantage="a", overrides=ov))
        p.emit(rnd(blocks, [1, 6], [1, 0], vantage="b", overrides=ov, t=1_641_000_010.0))
        p.flush({"probing.vantage.b.last_round": "1641000010"})
        s = store.read_series(KZ, "probing")
        assert s.values.tolist() == [1.0]
        assert p.cursor("probing.vantage.b.last_round") == "1641000010"


def test_platform_share_excludes_failures_and_empty_bins_are_missing() -> None:
    z = np.zeros((3, 2, 1), np.uint16)
    ok = z.copy()
    ok[0, :, 0] = [8, 1]
    anomaly = z.copy()
    anomaly[0, :, 0] = [1, 1]
    confirmed = z.copy()
    confirmed[0, 0, 0] = 1
    failure = z.copy()
    failure[0, :, 0] = [5, 5]
    failure[1, :, 0] = [3, 0]  # only failures: nothing counted
    fact = PlatformTests(0, 3600, ("whatsapp",), ("KZ", "KZ"), np.array([9198, 29355]),
                         ok, anomaly, confirmed, failure)
    (batch,) = PlatformAggregator(None).points(fact)
    got = {(t, c, int(tm)): v for t, c, tm, v in zip(batch.entity_types, batch.entity_codes,
                                                      batch.times, batch.values, strict=True)}
    assert got[("country", "KZ", 0)] == pytest.approx(100 * 9 / 12)
    assert got[("asn", "9198", 0)] == pytest.approx(80.0)
    assert got[("asn", "29355", 0)] == pytest.approx(50.0)
    assert np.isnan(got[("country", "KZ", 3600)]) and np.isnan(got[("asn", "9198", 7200)])
    assert set(batch.signals.tolist()) == {"platform:whatsapp"}


def test_unchanged_bgp_snapshot_is_restamped_and_feeds_the_as_attribution(
        tmp_path: object, geo: GeoLookup) -> None:
    from pathlib import Path

    from netvigil.model.facts import BgpVisibility

    blocks = KCELL_BLOCKS[:25]
    origin = np.full(25, 29355, np.uint32)
    first = BgpVisibility(1_641_000_000, 300, 20, 0, blocks, origin)
    same = BgpVisibility(1_641_000_300, 300, 20, 0, blocks, origin)  # the very same arrays
    with Store(Path(str(tmp_path)) / "s.duckdb") as store:
        p = Pipeline(store, geo, probing=ProbingOptions(block_series=False))
        p.emit(first)
        p.emit(same)
        assert p.origins.lookup(blocks[:1]).tolist() == [29355]
        p.emit(rnd(blocks, [1] * 25, [1] * 25, t=1_641_000_300.0))
        p.flush()
        bgp = store.read_series(EntityRef(EntityType.ASN, "29355"), "bgp")
        probing = store.read_series(EntityRef(EntityType.ASN, "29355"), "probing")
    assert bgp.values.tolist() == [25.0, 25.0] and bgp.start == 1_641_000_000
    assert probing.values.tolist() == [25.0]  # the AS the routes announce


# ---------------------------------------------------------------- checkpointed beliefs
def _chained_rounds(n: int = 10) -> list[ProbeRound]:
    """Two vantage points over 40 KZ blocks, vp2 reporting each bin one round late; blocks
    0-14 go dark for rounds 3-6 (every probe lost), others lose probes at random."""
    rng = np.random.default_rng(7)
    blocks = KCELL_BLOCKS
    t0 = 1_641_000_000.0

    def one(i: int, vantage: str, offset: float) -> ProbeRound:
        sent = rng.integers(1, 5, blocks.size)
        replies = rng.binomial(sent, 0.8)
        if 3 <= i <= 6:
            replies[:15] = 0
        rtt_block = np.flatnonzero(replies > 0).astype(np.int32)
        return rnd(blocks, sent, replies, t=t0 + 600 * i + offset, vantage=vantage,
                   rtt_block=rtt_block, rtt=rng.uniform(0.01, 0.2, rtt_block.size))

    out: list[ProbeRound] = []
    for i in range(n):
        out.append(one(i, "vp1", 0.0))
        if i >= 1:
            out.append(one(i - 1, "vp2", 7.0))
    return out


def _stored(store: Store) -> list[tuple[object, ...]]:
    return store.connection.execute(
        "SELECT entity_type, entity_code, signal, time, value FROM points ORDER BY ALL"
    ).fetchall()


def _feed(store: Store, geo: GeoLookup, facts: list[ProbeRound]) -> Pipeline:
    p = Pipeline(store, geo)
    for k in range(0, len(facts), 2):  # a flush every two facts, as the observatory's bins
        for f in facts[k:k + 2]:
            p.emit(f)
        p.flush({"probing.vantage.vp1.last_round": str(facts[min(k + 1, len(facts) - 1)]
                                                       .round_start)})
    return p


def test_beliefs_survive_a_restart_exactly(tmp_path: object, geo: GeoLookup) -> None:
    """Rounds split across two pipelines, the store closed and reopened between them, give the
    very points of one uninterrupted run; without the checkpoint they do not."""
    from pathlib import Path

    from netvigil.pipeline import PROBING_STATE_KEY

    base = Path(str(tmp_path))
    facts = _chained_rounds()
    split = 9  # inside the outage, with vp2 one bin behind (an open bin at the split)
    with Store(base / "one.duckdb") as store:
        _feed(store, geo, facts)
        expect = _stored(store)
    with Store(base / "split.duckdb") as store:
        first = _feed(store, geo, facts[:split])
        assert first.restored is None
    with Store(base / "split.duckdb") as store:
        saved = store.get_state(PROBING_STATE_KEY)
        second = _feed(store, geo, facts[split:])
        got = _stored(store)
    assert second.restored is not None and "2 vantage point(s), 80 block belief(s)" in \
        second.restored
    assert got == expect
    # the control: the same split without the checkpoint starts from the initial belief
    assert saved is not None
    with Store(base / "cold.duckdb") as store:
        _feed(store, geo, facts[:split])
        store.connection.execute("DELETE FROM state WHERE key = ?", [PROBING_STATE_KEY])
    with Store(base / "cold.duckdb") as store:
        _feed(store, geo, facts[split:])
        cold = _stored(store)
    assert cold != expect


def test_a_replay_from_the_start_is_not_continued_from_the_checkpoint(
        tmp_path: object, geo: GeoLookup) -> None:
    """Rounds at or before a vantage point's checkpointed last round mean the source started
    over: its chain restarts, so replaying the same rounds writes the same points again."""
    from pathlib import Path

    facts = _chained_rounds(7)  # ends in the outage: restored beliefs would say down
    with Store(Path(str(tmp_path)) / "s.duckdb") as store:
        _feed(store, geo, facts)
        first = _stored(store)
        again = _feed(store, geo, facts)
        assert again.restored is not None
        assert _stored(store) == first


def test_a_checkpoint_of_another_belief_model_is_not_continued(
        tmp_path: object, geo: GeoLookup) -> None:
    from dataclasses import replace
    from pathlib import Path

    facts = _chained_rounds(4)
    with Store(Path(str(tmp_path)) / "s.duckdb") as store:
        _feed(store, geo, facts)
        other = ProbingOptions(model=replace(bm.DEFAULT_MODEL, initial=0.9))
        p = Pipeline(store, geo, probing=other)
        p.emit(_chained_rounds(6)[-1])
        assert p.restored is not None and "another belief model" in p.restored


def test_route_origins_survive_a_restart(tmp_path: object, geo: GeoLookup) -> None:
    """The AS a block's route announces is checkpointed with the points: after a restart,
    probed blocks keep their BGP-derived AS before any new BGP data arrives (the geo lookup
    here has no AS table, so without the checkpoint the AS series would be missing)."""
    from pathlib import Path

    from netvigil.model.facts import BgpVisibility
    from netvigil.pipeline import ORIGINS_STATE_KEY

    blocks = KCELL_BLOCKS[:25]
    bgp = BgpVisibility(1_641_000_000, 300, 20, 0, blocks, np.full(25, 29355, np.uint32))
    path = Path(str(tmp_path)) / "o.duckdb"
    with Store(path) as store:
        p = Pipeline(store, geo, probing=ProbingOptions(block_series=False))
        p.emit(bgp)
        p.flush()
        assert store.get_state(ORIGINS_STATE_KEY) is not None
    with Store(path) as store:
        p = Pipeline(store, geo, probing=ProbingOptions(block_series=False))
        p.emit(rnd(blocks, [1] * 25, [1] * 25, t=1_641_000_600.0))
        p.flush()
        probing = store.read_series(EntityRef(EntityType.ASN, "29355"), "probing")
        assert probing.values.tolist() == [25.0]
        store.set_state(ORIGINS_STATE_KEY, "bm90IGFuIG5weg==")  # "not an npz": not restored
    with Store(path) as store:
        p = Pipeline(store, geo, probing=ProbingOptions(block_series=False))
        p.emit(rnd(blocks, [1] * 25, [1] * 25, t=1_641_001_200.0))
        p.flush()
        assert p.restored is not None and "origins: not restored" in p.restored
        probing = store.read_series(EntityRef(EntityType.ASN, "29355"), "probing")
        assert probing.values.tolist() == [25.0]  # the 1_641_001_200 round found no AS
