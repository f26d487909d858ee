"""Kazakhstan, January 2022: a seeded RECONSTRUCTION at the source level (not measured data).

One scenario of the simulator (:mod:`netvigil.scenarios.simulator`, one generator, not two):
the real KZ address universe (country-ip-blocks 2022-01-04, CC0) and the real AS split
(ip-location-db, CC BY 4.0, 2026 data as the best available split; the one copy in
``netvigil/data/geo``), a simulated Trinocular prober, ~20 collector peers whose routes go
through the BGP code's own routing state, and hourly OONI-style platform tests.

The timeline lives in ``data/kz2022/scenario.toml`` (every row cites anchors §8.1). Truth is
the scenario's phases (entity, start, end, level) — never a detector threshold. Same seed,
same facts.
"""

from __future__ import annotations

from pathlib import Path

from netvigil.scenarios import simulator
from netvigil.scenarios.simulator import (
    CLASSES,
    AsClass,
    LevelSchedule,
    Phase,
    Replay,
    Scenario,
    SimulatedCollector,
    SimulatedProber,
    Simulation,
    TruthEvent,
    Universe,
    as_display_name,
    derive_truth,
)

#: The reconstruction is a :class:`Simulation` of the KZ scenario file (the name stays for
#: the demo and the report code that read it).
Kz2022 = Simulation

__all__ = [
    "CLASSES", "AsClass", "Kz2022", "LevelSchedule", "Phase", "Replay", "Scenario",
    "SimulatedCollector", "SimulatedProber", "TruthEvent", "Universe", "as_display_name",
    "data_dir", "derive_truth", "generate", "load_scenario",
]


def data_dir() -> Path:
    """The packaged ``netvigil/data/kz2022`` folder."""
    return simulator.data_dir("kz2022")


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Parse the scenario file (default: the packaged one)."""
    return simulator.load_scenario(data_dir() / "scenario.toml" if path is None else path)


def generate(seed: int | None = None, scenario: Scenario | None = None) -> Simulation:
    """The reconstruction, deterministic in ``seed`` (default: the scenario's)."""
    return simulator.simulate(scenario or load_scenario(), seed)
