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

# The benchmark's reference (the numbers to beat) and the detector used wherever none is named
# (netvigil detect, the observatory, dask detect, the demo, events.runner.run_detection):
# netvigil.seasonal, because it beats the reference on every class of docs/detection-benchmark.md
# (no diurnal false alarms, shutdowns open until they end, count-aware on small series).
REFERENCE = IodaMedian.method
DEFAULT = Seasonal.method


def detector_names() -> list[str]:
    return list(DETECTORS)


def default_detector() -> Detector:
    """A fresh instance of the default detector (``DEFAULT``)."""
    return get_detector(DEFAULT)


def get_detector(name: str) -> Detector:
    """A fresh detector for ``name``; an unknown name is a usage error listing the known ones."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise NetVigilError(
            f"unknown detector {name!r} (known: {', '.join(DETECTORS)})") from None
    return factory()
