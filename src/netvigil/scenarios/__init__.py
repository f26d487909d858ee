"""Reconstructions: seeded generators of the same facts real sources emit (RECONSTRUCTION).

They sit at the sources tier: they hand facts to a :class:`netvigil.model.facts.FactSink`
(the pipeline) and never write the store, aggregate or detect themselves.
"""
