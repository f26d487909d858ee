"""The probe round log (``netvigil.pipeline.roundlog``) in a real store, through the pipeline.

What is checked: every round a pipeline folds is logged in the transaction of its points and
read back equal (counts, RTT samples, entity overrides, target list); a round folded again
replaces itself (the log never holds it twice); a pipeline with ``log_rounds`` off logs
nothing; ``folds_in_order`` says when a round can continue the checkpoint and when the log
must be replayed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from netvigil.model.entities import EntityRef, EntityType
from netvigil.model.facts import ProbeRound
from netvigil.pipeline import Pipeline
from netvigil.pipeline.probing import ProbingOptions
from netvigil.pipeline.roundlog import folds_in_order, read_log
from netvigil.store.duck import Store

T0 = 1_796_032_800  # 2026-11-30 10:00 UTC, a bin start
KZ = (EntityRef(EntityType.COUNTRY, "KZ"),)


def probe_round(vantage: str, k: int, replies: int, offset: float = 0.0) -> ProbeRound:
    blocks = np.array([0xC6120100, 0xC6120200, 0xC6120300], np.uint32)
    sent = np.array([2, 15, 0], np.uint8)
    rep = np.array([2, replies, 0], np.uint8)
    return ProbeRound(vantage, T0 + 600 * k + offset, 600, blocks,
                      np.array([0.8, 0.5, 0.9], np.float32), sent, rep,
                      np.array([0, 1, 0], np.uint8), sent - rep - np.array([0, 1, 0], np.uint8),
                      np.array([0, 0, 1], np.int32), np.array([0.004, 0.005, 0.03]),
                      (KZ, KZ, None))


def same(a: ProbeRound, b: ProbeRound) -> bool:
    return (a.vantage == b.vantage and a.round_start == b.round_start
            and a.round_seconds == b.round_seconds
            and a.entity_overrides == b.entity_overrides
            and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in (
                "block_starts", "availability", "sent", "replies", "unreachable", "lost",
                "rtt_block", "rtt")))


def test_folded_rounds_are_logged_once_and_read_back_equal(tmp_path: Path) -> None:
    rounds = [probe_round("vp-a", 0, 3), probe_round("local", 0, 0, 7.25),
              probe_round("vp-a", 1, 0), probe_round("local", 1, 1, 7.25)]
    with Store(tmp_path / "s.duckdb") as store:
        pipe = Pipeline(store)
        for f in rounds[:3]:
            pipe.emit(f)
        pipe.flush()
        pipe.emit(rounds[3])
        pipe.flush()
        got = read_log(store.get_state)
        assert len(got) == 4
        assert all(same(g, w) for g, w in zip(got, sorted(
            rounds, key=lambda f: (f.round_start, f.vantage)), strict=True))
        # the same round folded again (a replay into the same store) replaces itself
        again = Pipeline(store)
        changed = probe_round("vp-a", 1, 5)
        again.emit(changed)
        again.flush()
        got = read_log(store.get_state)
        assert len(got) == 4 and same(got[2], changed)
        # a pipeline replaying the log itself logs nothing
        quiet = Pipeline(store, probing=ProbingOptions(log_rounds=False))
        quiet.emit(probe_round("vp-b", 2, 2))
        quiet.flush()
        assert len(read_log(store.get_state)) == 4


def test_folds_in_order_only_continuations_of_kept_bins(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        get = store.get_state
        assert folds_in_order(get, "vp-a", T0, 600, 6)  # an empty log: anything continues
        pipe = Pipeline(store)
        for k in range(8):
            pipe.emit(probe_round("local", k, 2, 7.0))
        pipe.emit(probe_round("vp-a", 0, 2))
        pipe.flush()
        # kept bins are 2..7: vp-a's round 3 continues its chain and joins a kept bin
        assert folds_in_order(get, "vp-a", T0 + 600 * 3, 600, 6)
        # round 1 continues vp-a's chain, but bin 1 is no longer kept: replay
        assert not folds_in_order(get, "vp-a", T0 + 600 * 1, 600, 6)
        # round 0 again (a retry) is behind vp-a's chain: replay
        assert not folds_in_order(get, "vp-a", T0, 600, 6)
        # a vantage point never seen, in a kept bin: continues
        assert folds_in_order(get, "vp-new", T0 + 600 * 2, 600, 6)
        assert not folds_in_order(get, "local", T0 + 600 * 7, 600, 6)
