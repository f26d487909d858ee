"""Detectors. ``ioda.median`` is the reference baseline (IODA watchtower-sentry).

Every detector implements :class:`netvigil.detect.protocol.Detector`; the orchestration
(series -> alerts -> events over a store) is ``netvigil.events.runner.run_detection``.
"""

from netvigil.detect.ioda_median import (
    METHOD,
    IodaMedian,
    MedianRule,
    MedianTrace,
    detect_series,
    load_rules,
    moving_median,
    rule_for,
    transitions,
)
from netvigil.detect.protocol import Detector, DetectorUpdate, PointChunk

__all__ = [
    "METHOD",
    "Detector",
    "DetectorUpdate",
    "IodaMedian",
    "MedianRule",
    "MedianTrace",
    "PointChunk",
    "detect_series",
    "load_rules",
    "moving_median",
    "rule_for",
    "transitions",
]
