"""Aggregation: source-level facts → per-entity Series (the path real data takes).

Partition key: ``(time window, unit shard)``.

* **Time window**: a slice of bins. BGP and platform bins are independent; probing windows
  chain through the per-block Trinocular beliefs (``final_logit`` → ``prior_logit``).
* **Unit shard**: a subset of the units an entity is summed from — /24 blocks for probing,
  prefix atoms for BGP, AS columns for platform tests. Per-entity values are sums (or, for
  percentages, a summed numerator and denominator), so shards merge by addition
  (:meth:`netvigil.pipeline.entities.EntityMatrix.merge`), and "no unit observed" stays
  missing (NaN) rather than zero.

Modules: :mod:`.probing` (anchors §2.1), :mod:`.bgp` (§1.2), :mod:`.platform` (§4.1),
:mod:`.demo` (the Kazakhstan 2022 reconstruction end to end).
"""
