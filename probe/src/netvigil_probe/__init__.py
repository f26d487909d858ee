"""netvigil-probe: the in-country measurement agent of NetVigil (docs/probe.md).

Measures DNS (system resolver and a chosen one), TCP connect, TLS with SNI and HTTP(S) GET
against a target list, writes OONI-format measurements (data format 0.2.0 base keys), keeps
each one durable on disk before anything else (:mod:`.spool`) and uploads to a NetVigil
collector whenever it answers (:mod:`.upload`), exactly once by content hash.
"""

__version__ = "0.1.0"
SOFTWARE_NAME = "netvigil-probe"
