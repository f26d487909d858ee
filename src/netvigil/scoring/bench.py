"""``netvigil bench detect``: every registered detector over the simulator's labelled scenarios.

The ONE path (project rule): a scenario's facts go through :class:`netvigil.pipeline.Pipeline`
into a temporary DuckDB store, :func:`netvigil.events.runner.run_detection` with the chosen
detector turns its series into alerts and events, and the events are read back from the store
— the path ``netvigil series import`` → ``netvigil detect`` → ``netvigil events`` takes. The
facts are built once per scenario; each detector runs on its own copy of that store file (a
store holds one set of events, so detectors must not share one).

Truth comes from the scenario alone (:func:`netvigil.scenarios.simulator.injection_truth`),
never from a detector's thresholds; the matching and metrics are in
:mod:`netvigil.scoring.matching`.
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from netvigil.detect.registry import detector_names, get_detector
from netvigil.model import EntityRef
from netvigil.model.errors import NetVigilError
from netvigil.pipeline import Pipeline
from netvigil.pipeline.probing import ProbingOptions
from netvigil.scenarios.simulator import Scenario, Simulation, load_catalogue, simulate
from netvigil.scoring.matching import Detected, RunResult, ScoreRow, Truth, score
from netvigil.store.duck import Store

#: entity series only, as a full-Internet deployment stores them (docs/probing.md)
BENCH_PROBING = ProbingOptions(block_series=False)


@dataclass
class BenchResult:
    """Rows per (detector, class) in catalogue order, the runs behind them and timings."""

    rows: list[ScoreRow]
    runs: dict[tuple[str, str], RunResult]  # (detector, scenario) -> run
    seconds: dict[str, float] = field(default_factory=dict)  # scenario -> wall seconds


def scenario_names(path: str | Path | None = None) -> list[str]:
    return list(load_catalogue(path))


def build_store(sim: Simulation, path: Path) -> None:
    """Replay the scenario's facts through the pipeline into a new store at ``path``."""
    from netvigil.geo.lookup import GeoLookup

    sc = sim.scenario
    store = Store(path)
    try:
        sim.replay(Pipeline(store, GeoLookup.default(), probing=BENCH_PROBING),
                   flush_seconds=sc.end - sc.start)
    finally:
        store.close()


def detect_run(sim: Simulation, path: Path, detector: str) -> RunResult:
    """Run one detector over the store at ``path``; read back its events and first alerts."""
    from netvigil.events.runner import run_detection

    sc = sim.scenario
    store = Store(path)
    try:
        run_detection(store, detector=get_detector(detector))
        series = store.list_series()
        step: dict[tuple[EntityRef, str], int] = {(s.entity, s.signal): s.step for s in series}
        alerts = [a for a in store.read_alerts() if int(a.level) > 0]
        events = store.read_events()
    finally:
        store.close()
    detected: list[Detected] = []
    for ev in events:
        end = sc.end if ev.end is None else ev.end
        arrivals = [a.time + step.get((a.entity, a.signal), 0) for a in alerts
                    if a.entity == ev.entity and ev.start <= a.time < max(end, ev.start + 1)]
        detected.append(Detected(ev.entity, ev.scope, ev.start, ev.end,
                                 min(arrivals) if arrivals else ev.start))
    truth = tuple(Truth(t.entity, t.scope, t.start, t.end, t.required) for t in sim.truth)
    judged = {s.entity for s in series}
    return RunResult(truth, tuple(detected), sc.end, len(judged), sc.end - sc.start)


def scenario_class(sc: Scenario) -> str:
    return str(sc.raw.get("class", "")) or "quiet"


def _run_scenario(job: tuple[str, Scenario, list[str], int | None]
                  ) -> tuple[str, dict[str, RunResult], float]:
    """One scenario: its facts into a store once, then every detector on a copy of it."""
    name, sc, dets, seed = job
    t0 = time.perf_counter()
    out: dict[str, RunResult] = {}
    with tempfile.TemporaryDirectory(prefix="netvigil-bench-") as tmp:
        sim = simulate(sc, seed)
        base = Path(tmp) / f"{name}.duckdb"
        build_store(sim, base)
        for d in dets:
            copy = Path(tmp) / f"{name}.{d}.duckdb"
            shutil.copyfile(base, copy)
            out[d] = detect_run(sim, copy, d)
            copy.unlink()
    return name, out, time.perf_counter() - t0


def run_bench(detectors: Sequence[str] | None = None, scenarios: Sequence[str] | None = None,
              *, seed: int | None = None, catalogue: str | Path | None = None,
              jobs: int = 2, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Score ``detectors`` (default: every registered one) on ``scenarios`` (default: all).

    ``seed`` replaces every scenario's seed (the facts change, the truth does not); ``jobs``
    scenarios run at once in separate processes (each is independent; results are the same
    for any ``jobs``: every source draws from its scenario's own seeded generators).
    """
    cat = load_catalogue(catalogue)
    names = list(scenarios) if scenarios else list(cat)
    dets = list(detectors) if detectors else detector_names()
    for n in names:
        if n not in cat:
            raise NetVigilError(f"unknown scenario {n!r} (known: {', '.join(cat)})")
    for d in dets:
        get_detector(d)  # an unknown name fails before any work
    runs: dict[tuple[str, str], RunResult] = {}
    seconds: dict[str, float] = {}
    work = [(n, cat[n], dets, seed) for n in names]
    workers = max(1, min(jobs, len(work)))
    done: Iterable[tuple[str, dict[str, RunResult], float]]
    if workers == 1:
        done = map(_run_scenario, work)
    else:  # scenarios are independent: one process each, `jobs` at a time
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        done = pool.map(_run_scenario, work)
    for n, per_det, wall in done:
        runs.update({(d, n): r for d, r in per_det.items()})
        seconds[n] = wall
        if progress is not None:
            progress(f"{n}: {wall:.1f} s")
    if workers > 1:
        pool.shutdown()
    classes: list[str] = []
    for n in names:
        if scenario_class(cat[n]) not in classes:
            classes.append(scenario_class(cat[n]))
    rows = [score(d, c, [runs[(d, n)] for n in names if scenario_class(cat[n]) == c])
            for d in dets for c in classes]
    return BenchResult(rows, runs, seconds)
