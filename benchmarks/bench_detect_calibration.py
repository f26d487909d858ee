"""Benchmark: is the event probability calibrated? (issue 8, deliverable 5)

Run: ``.venv/bin/python benchmarks/bench_detect_calibration.py [--detector NAME ...]
[--scenario NAME ...] [--seed N]``

The scenarios of ``netvigil bench detect`` (the simulator's catalogue), through the same one
path (:mod:`netvigil.scoring.bench`: facts -> pipeline -> store -> ``run_detection``). Every
stored event's ``assessment.probability`` (rule ``confidence.logistic``) is put in a bin of
width 0.1; an event is *real* when it overlaps a true event of the scenario on its entity
and scope (required or merely affected: :func:`netvigil.scoring.matching.overlaps`). A
calibrated probability has, per bin, a share of real events close to the bin's mean
probability. Printed beside it: the same table for IODA-style ``confidence`` (noisy-or).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from netvigil.detect.registry import REFERENCE, detector_names, get_detector
from netvigil.events.runner import run_detection
from netvigil.scenarios.simulator import load_catalogue, simulate
from netvigil.scoring.bench import build_store
from netvigil.scoring.matching import Detected, Truth, overlaps
from netvigil.store.duck import Store


def collect(detectors: list[str], scenarios: list[str],
            seed: int | None) -> dict[str, list[tuple[float, float, bool]]]:
    """detector -> [(probability, confidence, real)] over every event of every scenario."""
    cat = load_catalogue()
    out: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)
    for name in scenarios:
        sim = simulate(cat[name], seed)
        truth = [Truth(t.entity, t.scope, t.start, t.end, t.required) for t in sim.truth]
        with tempfile.TemporaryDirectory(prefix="netvigil-calib-") as tmp:
            base = Path(tmp) / "base.duckdb"
            build_store(sim, base)
            for d in detectors:
                path = Path(tmp) / f"{d}.duckdb"
                shutil.copyfile(base, path)
                with Store(path) as store:
                    run_detection(store, detector=get_detector(d))
                    events = store.read_events()
                for ev in events:
                    det = Detected(ev.entity, ev.scope, ev.start, ev.end, ev.start)
                    real = any(overlaps(t, det, sim.scenario.end) for t in truth)
                    p = float(ev.assessment.get("probability", float("nan")))
                    out[d].append((p, ev.confidence, real))
        print(f"  {name}: done", flush=True)
    return out


def table(rows: list[tuple[float, bool]]) -> list[str]:
    bins: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for p, real in rows:
        if p == p:
            bins[min(9, int(p * 10))].append((p, real))
    lines = []
    for b in sorted(bins):
        xs = bins[b]
        mean_p = sum(p for p, _ in xs) / len(xs)
        share = sum(1 for _, r in xs if r) / len(xs)
        lines.append(f"    [{b / 10:.1f}, {(b + 1) / 10:.1f})  events {len(xs):5d}  "
                     f"mean p {mean_p:.3f}  real {share:.3f}  gap {share - mean_p:+.3f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", action="append", default=None)
    ap.add_argument("--scenario", action="append", default=None)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    dets = args.detector or detector_names()
    if REFERENCE not in dets:
        dets = [REFERENCE, *dets]
    names = args.scenario or list(load_catalogue())
    got = collect(dets, names, args.seed)
    for d in dets:
        rows = got[d]
        print(f"\n{d}: {len(rows)} events, {sum(r for *_, r in rows)} real")
        print("  assessment.probability (confidence.logistic):")
        print("\n".join(table([(p, r) for p, _, r in rows])))
        print("  confidence (confidence.noisy-or, IODA-style):")
        print("\n".join(table([(c, r) for _, c, r in rows])))


if __name__ == "__main__":
    main()
