"""OONI measurements (anchors §4) and circumvention demand (Tor Metrics) as tier-0 facts.

* :mod:`.reader` bounded reading of JSON / JSONL / gzip files and OONI's bucket layout;
* :mod:`.meta` the base keys across data-format versions;
* :mod:`.verdict` ``verdict(measurement) -> Verdict``, the pure per-measurement judgement
  (OONI's published rules and blockpage fingerprints, :mod:`.fingerprints`), shared with
  the probe agent;
* :mod:`.facts` measurements -> ``PlatformTests`` and ``PointBatch`` facts into a FactSink;
* :mod:`.tor_userstats` Tor Metrics' per-country user estimates -> ``tor-users`` /
  ``tor-bridge-users`` point batches.

Like every source, this package never imports the store (docs/ooni.md).
"""

from netvigil.sources.ooni.verdict import MECHANISMS, Outcome, Verdict, verdict

__all__ = ["MECHANISMS", "Outcome", "Verdict", "verdict"]
