"""Scenarios by name: seeded RECONSTRUCTIONS that emit the facts real sources emit.

A scenario is not a measurement: the Kazakhstan entry is a ``reconstruction`` of a real event,
the benchmark catalogue's entries are simulations, and every output built from them says so.
``netvigil demo`` and ``netvigil bench detect`` find them here; all come from one generator
(:mod:`netvigil.scenarios.simulator`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    description: str
    reconstruction: bool  # True: generated from a public timeline, not measured data
    generate: Callable[..., Any]


def _kz2022(seed: int | None = None) -> Any:
    from netvigil.scenarios.kz2022 import generate

    return generate(seed)


def _simulation(name: str) -> Callable[..., Any]:
    def generate(seed: int | None = None) -> Any:
        from netvigil.scenarios.simulator import load_catalogue, simulate

        return simulate(load_catalogue()[name], seed)

    return generate


def _catalogue() -> dict[str, ScenarioSpec]:
    """The detection benchmark's scenarios (SIMULATIONS of the same generator, not
    reconstructions of a real event: ``reconstruction`` is False)."""
    from netvigil.scenarios.simulator import load_catalogue

    return {name: ScenarioSpec(name, f"{sc.title} (SIMULATION, class {sc.raw['class']})", False,
                               _simulation(name))
            for name, sc in load_catalogue().items()}


SCENARIOS: dict[str, ScenarioSpec] = {
    "kz2022": ScenarioSpec(
        "kz2022",
        "Kazakhstan, January 2022 shutdown: probe rounds, BGP route observations and "
        "messaging-test facts (RECONSTRUCTION from the public timeline, anchors §8.1)",
        True,
        _kz2022,
    ),
    **_catalogue(),
}


def get(name: str) -> ScenarioSpec:
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)  # the reconstruction first, then the catalogue's order
        raise KeyError(f"unknown scenario {name!r}; known: {known}") from None
