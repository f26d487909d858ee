"""Human-facing output: NetBlocks-style sentences, the event timeline table, PNG charts and
the report folder (``netvigil demo``)."""
