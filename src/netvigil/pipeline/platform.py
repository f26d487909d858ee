"""Platform test facts → ``platform:<name>`` = % of tests that reached the service, per bin.

OONI's IM tests (whatsapp, telegram, signal; anchors §4.1) decide per measurement whether the
service was reachable. Per country (the tests' ``probe_cc``) and per AS, per bin:

    platform:<name> = 100 · ok / (ok + anomaly + confirmed)

``failure`` measurements (the test could not run: neither reachable nor blocked, OONI's
``accuracy < 0.5``) are excluded from numerator and denominator. A bin without any counted
test is **missing** (NaN), not 0 %: a shutdown silences probes and ooni/data lists "volume
collapse is silent" as a known gap (§4.4) — the data-plane signals, not this one, must see
the blackout.

Partition key: ``(bin window, column shard)``; counts add across shards before the ratio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from netvigil.model.entities import EntityType
from netvigil.model.facts import PlatformTests, PointBatch

if TYPE_CHECKING:
    from netvigil.geo.lookup import GeoLookup

PREFIX = "platform:"
SOURCE = "platform"


class PlatformAggregator:
    """Stateless: every :class:`PlatformTests` fact gives its bins' points."""

    def __init__(self, geo: GeoLookup | None = None, *, source: str = SOURCE) -> None:
        self.geo = geo  # not needed: tests carry their country and AS
        self.source = source

    def points(self, fact: PlatformTests) -> list[PointBatch]:
        n_bins = fact.n_bins
        if n_bins == 0 or not fact.platforms:
            return []
        ccs = sorted({c.upper() for c in fact.probe_cc})
        col_cc = np.asarray([ccs.index(c.upper()) for c in fact.probe_cc], dtype=np.int64)
        asns = np.asarray(fact.asns, dtype=np.int64)
        uniq_asn, col_asn = np.unique(asns, return_inverse=True)
        groups = [(EntityType.COUNTRY.value, ccs, col_cc, np.ones(len(ccs), bool)),
                  (EntityType.ASN.value, [str(int(a)) for a in uniq_asn],
                   col_asn.astype(np.int64), uniq_asn > 0)]
        times = fact.start + fact.step * np.arange(n_bins, dtype=np.int64)
        parts: list[tuple[str, list[str], str, np.ndarray]] = []
        for k, plat in enumerate(fact.platforms):
            ok = fact.ok[:, :, k].astype(np.float64)
            counted = ok + fact.anomaly[:, :, k] + fact.confirmed[:, :, k]
            for etype, codes, col, valid in groups:
                n = len(codes)
                num = np.zeros((n_bins, n))
                den = np.zeros((n_bins, n))
                np.add.at(num.T, col, ok.T)
                np.add.at(den.T, col, counted.T)
                with np.errstate(invalid="ignore", divide="ignore"):
                    val = np.where(den > 0, 100.0 * num / den, np.nan)
                keep = np.flatnonzero(valid)
                parts.append((etype, [codes[j] for j in keep], f"{PREFIX}{plat}",
                              val[:, keep]))
        # one batch per fact: its points never repeat a key, so the store writes it at once
        return [PointBatch(
            np.concatenate([np.full(v.size, et, dtype=object) for et, _c, _s, v in parts]),
            np.concatenate([np.tile(np.asarray(c, dtype=object), n_bins)
                            for _e, c, _s, v in parts]),
            np.concatenate([np.full(v.size, s, dtype=object) for _e, _c, s, v in parts]),
            np.concatenate([np.repeat(times, v.shape[1]) for *_x, v in parts]),
            np.concatenate([v.ravel() for *_x, v in parts]), self.source, fact.step)]
