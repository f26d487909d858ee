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

``--fit`` also fits the logistic's coefficients per detector (Platt scaling on the features
of :func:`netvigil.events.classification.features`, Newton steps with a small ridge) and
prints them as TOML for ``[probability.by_detector."<name>"]``. Fit on one seed and check on
another (``--seed``): a fit checked on its own events holds by construction.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from netvigil.detect.registry import REFERENCE, detector_names, get_detector
from netvigil.events.classification import FEATURES, features
from netvigil.events.runner import run_detection
from netvigil.scenarios.simulator import load_catalogue, simulate
from netvigil.scoring.bench import build_store
from netvigil.scoring.matching import Detected, Truth, overlaps
from netvigil.store.duck import Store

Row = tuple[float, float, bool, list[float]]


def collect(detectors: list[str], scenarios: list[str], seed: int | None) -> dict[str, list[Row]]:
    """detector -> [(probability, confidence, real, features)] over every event."""
    cat = load_catalogue()
    out: dict[str, list[Row]] = defaultdict(list)
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
                    members = len(ev.assessment.get("scope", {}).get("members", []))
                    duration = ev.assessment.get("severity", {}).get("duration_s")
                    out[d].append((p, ev.confidence, real,
                                   features(ev, members, duration)))
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


def fit(rows: list[Row], ridge: float = 1e-2, steps: int = 50) -> list[float]:
    """Logistic regression (intercept + FEATURES) by Newton-Raphson with an L2 ridge."""
    x = np.array([[1.0, *r[3]] for r in rows])
    y = np.array([1.0 if r[2] else 0.0 for r in rows])
    w = np.zeros(x.shape[1])
    reg = ridge * np.eye(x.shape[1])
    reg[0, 0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        grad = x.T @ (p - y) + reg @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + reg + 1e-9 * np.eye(x.shape[1])
        w -= np.linalg.solve(hess, grad)
    return [float(v) for v in w]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", action="append", default=None)
    ap.add_argument("--scenario", action="append", default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--ridge", type=float, default=1e-2,
                    help="L2 weight of the fit (raise it when few events are false)")
    args = ap.parse_args()
    dets = args.detector or detector_names()
    if REFERENCE not in dets:
        dets = [REFERENCE, *dets]
    names = args.scenario or list(load_catalogue())
    got = collect(dets, names, args.seed)
    for d in dets:
        rows = got[d]
        print(f"\n{d}: {len(rows)} events, {sum(1 for r in rows if r[2])} real")
        print("  assessment.probability (confidence.logistic):")
        print("\n".join(table([(p, r) for p, _, r, _ in rows])))
        print("  confidence (confidence.noisy-or, IODA-style):")
        print("\n".join(table([(c, r) for _, c, r, _ in rows])))
        if args.fit and rows:
            w = fit(rows, ridge=args.ridge)
            print(f'  fitted: [probability.by_detector."{d}"]')
            for name, v in zip(("intercept", *FEATURES), w, strict=True):
                print(f"  {name} = {v:.3f}")


if __name__ == "__main__":
    main()
