"""Detectors. ``ioda.median`` is the reference baseline (IODA watchtower-sentry)."""

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

__all__ = [
    "METHOD",
    "IodaMedian",
    "MedianRule",
    "MedianTrace",
    "detect_series",
    "load_rules",
    "moving_median",
    "rule_for",
    "transitions",
]
