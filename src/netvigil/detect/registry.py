"""Detectors by name: the one table `netvigil detect --detector` and `netvigil bench detect`
choose from. A name is the detector's ``method`` (the id stored with its alerts), so the name a
user types is the name the evidence carries.
"""

from __future__ import annotations

from collections.abc import Callable

from netvigil.detect.ioda_median import IodaMedian
from netvigil.detect.protocol import Detector
from netvigil.detect.seasonal import Seasonal
from netvigil.model.errors import NetVigilError

# name -> factory. Add a detector by adding its line; the reference (IODA's median) stays first.
DETECTORS: dict[str, Callable[[], Detector]] = {
    IodaMedian.method: IodaMedian,
    Seasonal.method: Seasonal,
}

REFERENCE = IodaMedian.method


def detector_names() -> list[str]:
    return list(DETECTORS)


def get_detector(name: str) -> Detector:
    """A fresh detector for ``name``; an unknown name is a usage error listing the known ones."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise NetVigilError(
            f"unknown detector {name!r} (known: {', '.join(DETECTORS)})") from None
    return factory()
