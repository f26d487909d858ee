"""Beyond one machine (issue 11): partitioned point datasets and Dask fan-out.

:mod:`.dataset` is the format workers write and the store reads; :mod:`.engine` opens a
Dask client (``local:N`` or a scheduler address); :mod:`.detect` fans detection out over
country shards; :mod:`.ooni` spreads an OONI import over workers; :mod:`.bgp` backfills
archives in RIB epochs; :mod:`.fleet` merges probing rounds of many vantage points.
docs/distributed.md.
"""
