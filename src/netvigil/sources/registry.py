"""Source generators by name, so a CLI or a benchmark can list and run them.

Only reconstructions live here for now (``kz2022``); live ingesters register the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SourceSpec:
    name: str
    description: str
    reconstruction: bool  # True: generated from a public timeline, not measured data
    generate: Callable[..., Any]


def _kz2022(seed: int | None = None) -> Any:
    from netvigil.sources.kz2022 import generate

    return generate(seed)


SOURCES: dict[str, SourceSpec] = {
    "kz2022": SourceSpec(
        "kz2022",
        "Kazakhstan, January 2022 shutdown: probing, BGP and messaging-test facts "
        "(RECONSTRUCTION from the public timeline, anchors §8.1)",
        True,
        _kz2022,
    ),
}


def get(name: str) -> SourceSpec:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}") from None
