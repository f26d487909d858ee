"""Pruning the probe round log (``netvigil.pipeline.roundlog.prune_log``).

What is checked: a store whose log was pruned (the rounds of the first day folded into the
log's base by ``netvigil store prune-round-log``) and the same store unpruned, given the
same late remote round over HTTP, store the same probing points, and both equal one
in-order run over every round; the pruned log is smaller and a second prune that day reads
nothing; a remote round older than the base is archived, answered as not folded, and
changes no point; a base of another belief model is an error, not a silent restart.

The history mixes a local prober's rounds and a remote vantage point's, and the remote
rounds after the cut are "light" (a down block resolved by one lost probe, judged down only
by a chain that remembers the rounds before): so the kept bins are right only if the base
carries the beliefs exactly.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from netvigil.cli.common import open_store
from netvigil.cli.main import cli
from netvigil.model.facts import ProbeRound
from netvigil.pipeline import Pipeline
from netvigil.pipeline.probing import ProbingOptions, StateMismatch
from netvigil.pipeline.roundlog import (
    BASE_KEY,
    prune_log,
    read_base,
    read_log,
)
from netvigil.serve.app import create_app
from netvigil.serve.collector import CONFIG_ENV, validate_round
from netvigil.sources.probing import belief as bm
from netvigil.sources.probing.signals import facts_from_lines
from netvigil.store.duck import Store
from test_collector import T0, VP_TOKEN, Collector, _config, serving, submit
from test_collector_local import (
    B1,
    B2,
    STEP,
    _targets,
    entity_points,
    in_order_reference,
    local_round,
    remote_body,
)

DAY = 86_400
MIDNIGHT = (T0 // DAY + 1) * DAY  # T0 is 10:00 UTC: round k = 84 opens the next day
K_CUT = (MIDNIGHT - T0) // STEP
K_FIRST = K_CUT - 24  # 4 h of rounds before midnight, 2 h after
N_ROUNDS = K_CUT + 12


def _history(targets: Any) -> list[tuple[str, Any]]:
    """Local and remote rounds K_FIRST..N_ROUNDS-1, in arrival order: block 2 goes down
    for the remote vantage point 4 rounds in, for the local one 8 rounds in."""
    events: list[tuple[str, Any]] = []
    for k in range(K_FIRST, N_ROUNDS):
        events.append(("local", [local_round(targets, k, {1} if k >= K_FIRST + 8 else set())]))
        events.append(("remote", remote_body(
            k, {B1: "up", B2: "down" if k >= K_FIRST + 4 else "up"}, light=k >= K_CUT)))
    return events


def _facts(targets: Any, events: list[tuple[str, Any]]) -> list[ProbeRound]:
    out: list[ProbeRound] = []
    for kind, item in events:
        out += item if kind == "local" else facts_from_lines(
            validate_round(item, "vp-a"), targets, STEP)
    return out


def _write(path: Path, facts: list[ProbeRound]) -> None:
    """The history as one long-lived pipeline writes it (every round logged)."""
    with Store(path) as store:
        pipe = Pipeline(store)
        for f in facts:
            pipe.emit(f)
        pipe.flush()


def _post_late(tmp: Path, store: Path, bodies: list[dict[str, Any]],
               monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.setenv(CONFIG_ENV, str(_config(tmp)))
    answers = []
    with serving(create_app(store, open_store=open_store, lock_wait=10,
                            memory_points=0)) as port:
        remote = Collector(port, store, store.with_name(store.name + ".collector"))
        for body in bodies:
            status, out = remote.post("/api/v1/collector/rounds", submit(body), VP_TOKEN)
            assert status == 200, out
            answers.append(out)
    return answers


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, Any]]]:
    """One store holding the whole history, copied by each test."""
    tmp = tmp_path_factory.mktemp("history")
    targets = _targets(tmp)
    events = _history(targets)
    path = tmp / "history.duckdb"
    _write(path, sorted(_facts(targets, events), key=lambda f: (f.round_start, f.vantage)))
    return path, events


def _copy(history: Path, tmp: Path, name: str) -> Path:
    (tmp / name).mkdir()
    shutil.copy(history, tmp / name / "s.duckdb")
    return tmp / name / "s.duckdb"


def test_a_pruned_log_replays_a_late_round_as_the_whole_log_does(
        history: tuple[Path, list[tuple[str, Any]]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    src, events = history
    full, pruned = _copy(src, tmp_path, "full"), _copy(src, tmp_path, "pruned")
    res = CliRunner().invoke(cli, ["store", "prune-round-log", "--keep-days", "0",
                                   "--store", str(pruned)])
    assert res.exit_code == 0, res.output
    assert f"folded 48 round(s) into the base before {MIDNIGHT}; kept 24" in res.output
    with Store(pruned) as store:
        logged = read_log(store.get_state)
        assert len(logged) == 24 and min(f.round_start for f in logged) >= MIDNIGHT
        base = read_base(store.get_state)
        assert base is not None and (base.before, base.rounds) == (MIDNIGHT, 48)
        again = prune_log(store, 0)  # the same day: nothing read, nothing changed
        assert (again.folded, again.kept, again.before) == (0, -1, MIDNIGHT)
    size = res.output.split("log ")[-1].split(" bytes")[0].split(" -> ")
    assert int(size[1]) * 2 < int(size[0])  # 24 of 72 rounds left

    # the remote round at midnight again, other content (behind its own chain): a
    # replay that rewrites every bin from that one on; its chain's first round after the
    # cut is light, so its block 2 reads down only if the base kept the rounds before
    late = remote_body(K_CUT, {B1: "up", B2: "down"}, light=True)
    late["lines"][0]["rtt_ms_median"] = 2.0  # other content than the first upload
    got_full = _post_late(tmp_path / "full", full, [late], monkeypatch)
    got_pruned = _post_late(tmp_path / "pruned", pruned, [late], monkeypatch)
    assert got_full[0]["facts"] == got_pruned[0]["facts"] == 1
    want = in_order_reference(tmp_path, _targets(tmp_path), events + [("remote", late)])
    assert entity_points(full) == want
    assert entity_points(pruned) == want
    # the light rounds after the cut read block 2 down only through the chain's memory:
    # from the initial belief they would read it up, and "up if anyone saw it up" gives 2
    up = {t: v for _e, c, sig, t, v in want if c == "KZ" and sig == "probing"}
    assert [up[T0 + STEP * k] for k in range(K_CUT, N_ROUNDS)] == [1] * 12


def test_a_round_older_than_the_base_is_archived_not_folded(
        history: tuple[Path, list[tuple[str, Any]]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    src, _events = history
    pruned = _copy(src, tmp_path, "pruned")
    with Store(pruned) as store:
        prune_log(store, 0)
    before = entity_points(pruned)
    old = remote_body(K_CUT - 3, {B1: "down", B2: "down"})  # the day before the base
    (answer,) = _post_late(tmp_path / "pruned", pruned, [old], monkeypatch)
    assert answer["facts"] == 0 and "older than the round log's base" in answer["not_folded"]
    archive = pruned.with_name("s.duckdb.collector") / "rounds" / "vp-a"
    assert len(list(archive.rglob("*.json"))) == 1
    assert entity_points(pruned) == before


def test_a_base_of_another_belief_model_is_an_error(
        history: tuple[Path, list[tuple[str, Any]]], tmp_path: Path) -> None:
    """A replay cannot start from the initial belief once rounds were pruned: that would
    drop them silently. (The collector's replay takes the default model; here the replay
    is asked for another.)"""
    pruned = _copy(history[0], tmp_path, "pruned")
    with Store(pruned) as store:
        prune_log(store, 0)
        assert store.get_state(BASE_KEY) is not None
        other = replace(bm.DEFAULT_MODEL, initial=0.9)
        pipe = Pipeline(store, probing=ProbingOptions(model=other, start_over=True,
                                                      log_rounds=False))
        with pytest.raises(StateMismatch):
            pipe.emit(read_log(store.get_state)[0])


def _hourly(vantage: str, h: int, second: str) -> ProbeRound:
    """An hourly round (3,600 s divides a day) of three /24s; the second is ``up`` (2 of 2
    replies), ``down`` (15 probes lost) or ``light`` (one probe, lost: judged by the chain)."""
    blocks = np.array([0xC6120100, 0xC6120200, 0xC6120300], np.uint32)
    sent = np.array([2, {"up": 2, "down": 15, "light": 1}[second], 2], np.uint8)
    rep = np.array([2, 2 if second == "up" else 0, 2], np.uint8)
    return ProbeRound(vantage, float(MIDNIGHT - DAY + 3600 * h), 3600, blocks,
                      np.array([0.8, 0.5, 0.9], np.float32), sent, rep,
                      np.zeros(3, np.uint8), sent - rep, np.array([0, 0], np.int32),
                      np.array([0.004, 0.005]), None)


def test_prunes_day_by_day_equal_one_prune(tmp_path: Path) -> None:
    """The base of two prunes a day apart (the second continuing the first's base) is the
    base of one prune over both days: a replay from either gives the same points. vp-b
    reports only on the first day (its second block down) and on the third (light rounds),
    so on the third day its block reads down only through beliefs carried across both
    cuts; the local prober sees the block down from hour 30 on."""
    rounds = [_hourly("local", h, "down" if h >= 30 else "up") for h in range(60)]
    rounds += [_hourly("vp-b", h, "down" if h >= 10 else "up") for h in range(24)]
    rounds += [_hourly("vp-b", h, "light") for h in range(48, 60)]
    rounds.sort(key=lambda f: (f.round_start, f.vantage))
    paths = [tmp_path / "steps.duckdb", tmp_path / "once.duckdb"]
    for p in paths:
        _write(p, rounds)
    third_day = MIDNIGHT + DAY  # hours 48-59; the newest bin is 11:00 of it
    with Store(paths[0]) as store:
        first = prune_log(store, DAY + 11 * 3600)  # cuts at the second day
        second = prune_log(store, 11 * 3600)  # cuts at the third, from the first's base
    with Store(paths[1]) as store:
        once = prune_log(store, 11 * 3600)
    assert (first.before, first.folded, first.kept) == (MIDNIGHT, 48, 48)
    assert (second.before, second.folded, second.kept) == (third_day, 24, 24)
    assert (once.before, once.folded, once.kept) == (third_day, 72, 24)
    replays = []
    for p in paths:
        with Store(p) as store:
            base = read_base(store.get_state)
            assert base is not None and base.rounds == 72
            pipe = Pipeline(store, probing=ProbingOptions(start_over=True, log_rounds=False))
            for f in read_log(store.get_state):
                pipe.emit(f)
            replays.append([(b.entity_codes.tolist(), b.signals.tolist(), b.times.tolist(),
                             np.round(b.values, 9).tolist()) for b in pipe._pending])
    assert replays[0] == replays[1]
    block2 = [v for codes, sigs, _t, vals in replays[0]
              for c, sig, v in zip(codes, sigs, vals, strict=True)
              if c == "198.18.2.0/24" and sig == "probing"]
    assert len(block2) == 24 and set(block2) == {0.0}  # down for both vantage points


def test_the_observatory_prunes_by_its_config(tmp_path: Path) -> None:
    """`netvigil run` with `round_log_keep_days = 1` folds the log's first day into the base
    after a bin (and logs it once: later bins of the same day read nothing)."""
    from test_observatory_support import log_records, start_run, stop, wait_for, write_config

    rounds = sorted((_hourly(v, h, "up") for h in range(60) for v in ("local", "vp-b")),
                    key=lambda f: (f.round_start, f.vantage))
    store = tmp_path / "obs.duckdb"
    _write(store, rounds)
    (tmp_path / "incoming").mkdir()
    cfg = write_config(tmp_path, f'store = "{store}"\nbin_seconds = 1\nround_log_keep_days = 1\n'
                                 '[watch]\ndirs = ["incoming"]\nsettle_seconds = 0.2\n')
    log = tmp_path / "run.jsonl"
    proc = start_run(cfg, log)
    wait_for(lambda: sum(r["event"] == "bin" for r in log_records(log)) >= 3, 90,
             "three bins", proc)
    stop(proc)
    pruned = [r for r in log_records(log) if r["event"] == "probing.round_log_pruned"]
    assert len(pruned) == 1
    assert (pruned[0]["before"], pruned[0]["folded"], pruned[0]["kept"]) == (MIDNIGHT, 48, 72)
    with Store(store, read_only=True) as s:
        base = read_base(s.get_state)
        assert base is not None and (base.before, base.rounds) == (MIDNIGHT, 48)
        assert len(read_log(s.get_state)) == 72
