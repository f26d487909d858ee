"""Platform test facts → ``platform:<name>`` = % of tests that reached the service, hourly.

OONI's IM tests (whatsapp, telegram, signal; anchors §4.1) decide per measurement whether the
service was reachable. Per country (the tests' ``probe_cc``) and per AS, the signal is
100 · ok / (ok + blocked). An hour without any test is **missing** (NaN), not 0%: a shutdown
silences probes, and ooni/data lists "volume collapse is silent" as a known gap (§4.4) — the
data-plane signals, not this one, must see the blackout.

Partition key: ``(hour window, AS shard)``; counts add across shards (numerator in ``value``,
denominator in ``observed``).
"""

from __future__ import annotations

import numpy as np

from netvigil.model import EntityRef, EntityType
from netvigil.pipeline.entities import EntityMatrix, Grouping
from netvigil.sources.kz2022 import PlatformFacts

PREFIX = "platform:"


def platform_groupings(facts: PlatformFacts) -> list[Grouping]:
    """Country (by probe_cc) and AS groupings over the AS columns of the facts."""
    ccs = sorted(set(facts.probe_cc))
    country = Grouping(tuple(EntityRef(EntityType.COUNTRY, c) for c in ccs),
                       np.asarray([ccs.index(c) for c in facts.probe_cc], dtype=np.int64))
    asn = Grouping(tuple(EntityRef(EntityType.ASN, str(int(a))) for a in facts.asns),
                   np.arange(facts.asns.size, dtype=np.int64))
    return [country, asn]


def aggregate_platform(facts: PlatformFacts, groupings: list[Grouping] | None = None, *,
                       bins: slice | None = None) -> list[EntityMatrix]:
    """One matrix per (platform, grouping); values are reachable-test percentages."""
    bs = bins or slice(0, facts.n_bins)
    first = bs.start or 0
    groups = groupings or platform_groupings(facts)
    out: list[EntityMatrix] = []
    for k, plat in enumerate(facts.platforms):
        ok = facts.ok[bs, :, k].astype(np.float64)
        total = ok + facts.blocked[bs, :, k].astype(np.float64)
        for g in groups:
            n_ent = len(g.refs)
            num = np.zeros((ok.shape[0], n_ent))
            den = np.zeros((ok.shape[0], n_ent))
            m = g.index >= 0
            np.add.at(num.T, g.index[m], ok[:, m].T)
            np.add.at(den.T, g.index[m], total[:, m].T)
            out.append(EntityMatrix(f"{PREFIX}{plat}", facts.start + first * facts.step,
                                    facts.step, g.refs, num, den, ratio=True))
    return out
