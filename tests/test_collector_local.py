"""Remote rounds through the collector and a local prober writing the same store.

A local prober (``netvigil run`` with probing, ``netvigil probe run``) feeds its rounds
through one long-lived :class:`~netvigil.pipeline.Pipeline` (the observatory keeps it across
bins and opens the store per bin); remote vantage points upload rounds over HTTP to the
collector of the same store. Whatever the arrival order (a remote round behind its own
chain, a remote vantage point emptying its spool hours late), the stored ``probing*`` points
must equal **one in-order run over the union of local and remote rounds**: a fresh store
fed every round in (round time, vantage point) order through the same pipeline
(docs/probe.md, "Local and remote vantage points").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from netvigil.cli.common import open_store
from netvigil.model.facts import ProbeRound
from netvigil.pipeline import Pipeline
from netvigil.serve.app import create_app
from netvigil.serve.collector import CONFIG_ENV, validate_round
from netvigil.sources.probing.prober import RoundResult
from netvigil.sources.probing.runner import cursor_key
from netvigil.sources.probing.signals import facts_from_lines, round_fact
from netvigil.sources.probing.targets import TargetList, load_targets_csv
from netvigil.store.duck import Store
from test_collector import T0, VP_TOKEN, Collector, _config, _round_lines, serving, submit

STEP = 600
B1, B2 = "198.18.1.0/24", "198.18.2.0/24"
LOCAL = "obs-local"


def local_round(targets: TargetList, k: int, down: set[int]) -> ProbeRound:
    """Round ``k`` of the local prober as the observatory emits it (``round_fact`` of a
    :class:`RoundResult`): 2 of 2 replies from an up block, 15 timeouts from a down one,
    started 7 s into its bin (the prober's own clock, not the bin start)."""
    n = len(targets)
    is_down = np.array([i in down for i in range(n)])
    sent = np.where(is_down, 15, 2).astype(np.uint8)
    replies = np.where(is_down, 0, 2).astype(np.uint8)
    up_idx = np.flatnonzero(~is_down).astype(np.int32)
    res = RoundResult(LOCAL, k, float(T0 + STEP * k + 7), float(STEP),
                      np.zeros(n, np.int8), np.zeros(n, np.float32), sent, replies,
                      np.zeros(n, np.uint8), sent - replies, np.repeat(up_idx, 2),
                      np.full(2 * up_idx.size, 0.004), 0)
    return round_fact(res, targets)


def remote_body(k: int, states: dict[str, str], light: bool = False) -> dict[str, Any]:
    """Remote round ``k`` as ``netvigil probe run`` writes its lines; ``light``: a down
    block resolved one probe only (lost), which only the belief chain can judge."""
    lines = _round_lines("vp-a", float(T0 + STEP * k), states)
    if light:
        for line in lines:
            if line["state"] == "down":
                line.update(probes_sent=1, lost=1)
    return {"vantage": "vp-a", "round_start": T0 + STEP * k, "round_seconds": STEP,
            "lines": lines}


class LocalProber:
    """The observatory's way of writing: one pipeline for the whole run, the store opened
    per bin (``ObservatoryRun._pipeline_for``), the vantage cursor flushed with the points."""

    def __init__(self, store: Path) -> None:
        self.path = store
        self.pipe: Pipeline | None = None

    def write(self, *facts: ProbeRound) -> None:
        """One bin's write: every round queued since the last one (several when the store
        was busy), the vantage cursor of the last."""
        store = Store(self.path)
        try:
            if self.pipe is None:
                self.pipe = Pipeline(store)
            self.pipe.store = store
            for fact in facts:
                self.pipe.emit(fact)
            self.pipe.flush({cursor_key(LOCAL): f"{facts[-1].round_start:.3f}"})
        finally:
            store.close()


def entity_points(store: Path) -> list[tuple[Any, ...]]:
    """The entity-level probing points (block series are written only by pipelines that
    keep them, the local prober's; the collector keeps none)."""
    con = duckdb.connect(str(store), read_only=True)
    try:
        return [tuple(r) for r in con.execute(
            "SELECT entity_type, entity_code, signal, time, round(value, 9) FROM points "
            "WHERE signal LIKE 'probing%' AND entity_type <> 'block' ORDER BY ALL").fetchall()]
    finally:
        con.close()


def in_order_reference(tmp: Path, targets: TargetList,
                       events: list[tuple[str, Any]]) -> list[tuple[Any, ...]]:
    """One pipeline fed the union of local and remote rounds in (round time, vantage point)
    order, into a fresh store: what the collector and the local prober must add up to."""
    facts: list[ProbeRound] = []
    for kind, item in events:
        if kind == "local":
            facts += item
        else:
            facts += facts_from_lines(validate_round(item, "vp-a"), targets, STEP)
    facts.sort(key=lambda f: (f.round_start, f.vantage))
    path = tmp / "reference.duckdb"
    store = Store(path)
    try:
        pipe = Pipeline(store)
        for f in facts:
            pipe.emit(f)
        pipe.flush()
    finally:
        store.close()
    return entity_points(path)


def run_mixed(tmp: Path, monkeypatch: pytest.MonkeyPatch,
              events: list[tuple[str, Any]]) -> tuple[list[tuple[Any, ...]], list[Any]]:
    """Play ``events`` (local facts and remote round bodies) in the given arrival order
    against one store; the stored entity points and the collector's answers."""
    cfg = _config(tmp)
    monkeypatch.setenv(CONFIG_ENV, str(cfg))
    path = tmp / "s.duckdb"
    Store(path).close()
    local = LocalProber(path)
    answers = []
    # no in-memory snapshot: its background reads would hold the file the local prober opens
    with serving(create_app(path, open_store=open_store, lock_wait=10,
                            memory_points=0)) as port:
        remote = Collector(port, path, tmp / "s.duckdb.collector")
        for kind, item in events:
            if kind == "local":
                local.write(*item)
            else:
                status, out = remote.post("/api/v1/collector/rounds", submit(item), VP_TOKEN)
                assert status == 200, out
                answers.append(out)
    return entity_points(path), answers


def _targets(tmp: Path) -> TargetList:
    _config(tmp)
    return load_targets_csv(tmp / "targets.csv").targets


def test_a_late_remote_round_keeps_the_local_probers_bins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Block 2 is down for the remote vantage point from round 1, for the local one only
    from round 3 (up if anyone saw it up): rounds 1-2 count 2 up blocks only if the local
    reports survive the replay that remote round 1, arriving after round 2 (a retry),
    starts. Remote round 3 resolves one probe, lost: down only for a chain that remembers
    rounds 1-2 (from the initial belief one loss still reads up), so it also checks that
    the local prober, writing between two remote rounds, did not reset the remote chain.
    The same late round sent again is a duplicate: nothing folded twice."""
    targets = _targets(tmp_path)
    local = [[local_round(targets, k, {1} if k >= 3 else set())] for k in range(4)]
    remote = [remote_body(k, {B1: "up", B2: "down" if k >= 1 else "up"}, light=k == 3)
              for k in range(4)]
    events: list[tuple[str, Any]] = [
        ("local", local[0]), ("remote", remote[0]), ("local", local[1]), ("local", local[2]),
        ("remote", remote[2]), ("remote", remote[1]), ("local", local[3]), ("remote", remote[3])]
    got, answers = run_mixed(tmp_path, monkeypatch, events + [("remote", remote[1])])
    want = in_order_reference(tmp_path, targets, events)
    up = [v for _e, c, s, _t, v in want if c == "KZ" and s == "probing"]
    assert up == [2, 2, 2, 1]  # the reference itself combines both vantage points
    assert got == want
    assert [a["duplicate"] for a in answers] == [False] * 4 + [True]
    assert answers[-1]["facts"] == 0


def test_a_remote_spool_emptied_hours_late_keeps_the_local_probers_bins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The remote vantage point is cut off after round 0 and uploads rounds 1-2 in order
    once the local prober has passed round 7: each continues its own chain, but bin 1 is
    older than the checkpoint's 6 kept bins (2-7), so combining it with the local report
    needs the local round itself (the round log)."""
    targets = _targets(tmp_path)
    local = [local_round(targets, k, set()) for k in range(8)]
    remote = [remote_body(k, {B1: "up", B2: "down" if k >= 1 else "up"}) for k in range(3)]
    events: list[tuple[str, Any]] = [("local", local[:1]), ("remote", remote[0]),
                                     ("local", local[1:]), ("remote", remote[1]),
                                     ("remote", remote[2])]
    got, _answers = run_mixed(tmp_path, monkeypatch, events)
    want = in_order_reference(tmp_path, targets, events)
    assert [v for _e, c, s, _t, v in want if c == "KZ" and s == "probing"] == [2] * 8
    assert got == want
