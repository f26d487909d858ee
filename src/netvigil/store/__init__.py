"""The store: one embedded DuckDB file holding series, alerts, events and source bookkeeping."""

from netvigil.store.duck import SeriesInfo, Store, WriteResult

__all__ = ["SeriesInfo", "Store", "WriteResult"]
