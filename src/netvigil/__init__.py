"""NetVigil: an open internet-shutdown observatory."""

__version__ = "0.1.0"
