"""Events: alerts grouped, scored, merged across signals and explained (ioda-api style)."""

from netvigil.events.build import build_events, event_id
from netvigil.events.codf import CODF_KEYS, to_codf, to_codf_per_signal
from netvigil.events.rules import KIND_RULES, classify, confidence

__all__ = [
    "CODF_KEYS",
    "KIND_RULES",
    "build_events",
    "classify",
    "confidence",
    "event_id",
    "to_codf",
    "to_codf_per_signal",
]
