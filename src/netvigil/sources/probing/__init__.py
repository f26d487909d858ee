"""Active probing of /24 blocks, Trinocular-style (Quan, Heidemann, Pradkin, SIGCOMM 2013).

Pipeline: :mod:`.targets` (E(b), A(E(b)), selection) → :mod:`.engine` (one raw ICMP socket,
paced) → :mod:`.prober` (rounds, adaptive and recovery probes) with :mod:`.belief` (the
Bayesian model) → :mod:`.signals` (JSONL facts, ``probing`` series) → :mod:`.vantage`
(several probers, one collector). See ``docs/probing.md``.
"""

from netvigil.sources.probing.belief import BeliefModel, BlockState
from netvigil.sources.probing.engine import IcmpEngine, TargetRefused
from netvigil.sources.probing.icmp import ProbePermissionError
from netvigil.sources.probing.prober import Prober, ProberConfig, RoundResult
from netvigil.sources.probing.targets import SelectionRule, TargetList, load_targets_csv

__all__ = [
    "BeliefModel",
    "BlockState",
    "IcmpEngine",
    "ProbePermissionError",
    "Prober",
    "ProberConfig",
    "RoundResult",
    "SelectionRule",
    "TargetList",
    "TargetRefused",
    "load_targets_csv",
]
