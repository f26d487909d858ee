"""Event classification and confidence rules, as data with stable ids.

Kind rules are tried in order; the first whose test holds decides the kind, and its id goes
into ``Event.rules``. They look only at the per-signal evidence of a merged event:

===================== ================ ===================================================
id                    kind             holds when
===================== ================ ===================================================
kind.routing          routing          a BGP-family signal reached critical (routes gone)
kind.platform-block   platform-block   every alerting signal is a ``platform:*`` signal
kind.degradation      degradation      every alerting signal is a non-count signal
                                       (higher is worse: loss, latency) and none reached
                                       critical; or every alerting signal is a
                                       ``throttling:*`` one (a service slowed, not cut)
kind.outage           outage           otherwise (a data-plane count fell)
===================== ================ ===================================================

Confidence (rule ``confidence.noisy-or``): each independent source family that alerts is a
piece of evidence of weight 0.6 if one of its signals reached critical, else 0.3; the
confidence is the noisy-or ``1 - prod(1 - w)``. One critical family gives 0.6, two 0.84,
three 0.936; a single warning-only family 0.3. Signals of one family (``bgp`` and
``bgp-v6``, several ``platform:*``) are not independent and count once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from netvigil.model import EventKind, SignalEvidence, SourceFamily, signal_kind

CONFIDENCE_RULE = "confidence.noisy-or"
WEIGHT_CRITICAL = 0.6
WEIGHT_WARNING = 0.3
MERGE_RULE = "merge.overlap-product"  # overlapping per-signal events merged, score = product
SEPARATE_PLATFORM_RULE = "merge.separate-platform"  # platform tests never merge with connectivity


def _family(ev: SignalEvidence) -> SourceFamily:
    return signal_kind(ev.signal).family


def _critical(ev: SignalEvidence) -> bool:
    return ev.worst_level == "critical"


def _is_count(ev: SignalEvidence) -> bool:
    return signal_kind(ev.signal).higher_is_better


@dataclass(frozen=True)
class KindRule:
    id: str
    kind: EventKind
    description: str
    test: Callable[[Sequence[SignalEvidence]], bool]


KIND_RULES: tuple[KindRule, ...] = (
    KindRule("kind.routing", EventKind.ROUTING, "a BGP signal reached critical",
             lambda evs: any(_family(e) is SourceFamily.BGP and _critical(e) for e in evs)),
    KindRule("kind.platform-block", EventKind.PLATFORM_BLOCK,
             "only platform:* signals alert (connectivity intact)",
             lambda evs: bool(evs) and all(_family(e) is SourceFamily.PLATFORM for e in evs)),
    KindRule("kind.degradation", EventKind.DEGRADATION,
             "only non-count (loss/latency) signals alert, none critical; or only throttling",
             lambda evs: bool(evs) and (
                 all(not _is_count(e) and not _critical(e) for e in evs)
                 or all(_family(e) is SourceFamily.THROTTLING for e in evs))),
    KindRule("kind.outage", EventKind.OUTAGE, "otherwise: a connectivity count fell",
             lambda evs: True),
)


def classify(evidence: Sequence[SignalEvidence]) -> KindRule:
    """The first kind rule that holds for the evidence."""
    for rule in KIND_RULES:
        if rule.test(evidence):
            return rule
    raise AssertionError("kind.outage always holds")  # pragma: no cover


def confidence(evidence: Sequence[SignalEvidence]) -> float:
    """Noisy-or over independent source families (see module docstring)."""
    weight: dict[SourceFamily, float] = {}
    for ev in evidence:
        w = WEIGHT_CRITICAL if _critical(ev) else WEIGHT_WARNING
        fam = _family(ev)
        weight[fam] = max(weight.get(fam, 0.0), w)
    miss = 1.0
    for w in weight.values():
        miss *= 1.0 - w
    return round(1.0 - miss, 6)
