"""Scenarios by name: seeded RECONSTRUCTIONS that emit the facts real sources emit.

A scenario is not a measurement: every entry is labelled ``reconstruction`` and every output
built from it says so. ``netvigil demo`` and the benchmarks find them here.
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


SCENARIOS: dict[str, ScenarioSpec] = {
    "kz2022": ScenarioSpec(
        "kz2022",
        "Kazakhstan, January 2022 shutdown: probe rounds, BGP route observations and "
        "messaging-test facts (RECONSTRUCTION from the public timeline, anchors §8.1)",
        True,
        _kz2022,
    ),
}


def get(name: str) -> ScenarioSpec:
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(sorted(SCENARIOS))
        raise KeyError(f"unknown scenario {name!r}; known: {known}") from None
