"""Impact of outages: people affected and economic cost (issue 10, deliverable 5).

A tier of its own between detection and events: it reads an event's entity, times and depth
and the shipped reference tables, and knows nothing of stores or surfaces.
"""

from netvigil.impact.estimate import CostEstimate, Impact, Published, estimate, for_event

__all__ = ["CostEstimate", "Impact", "Published", "estimate", "for_event"]
