"""The store: one embedded DuckDB file holding series, alerts, events and source bookkeeping."""

from netvigil.store.duck import ImportRecord, SeriesInfo, Store, WriteResult

__all__ = ["ImportRecord", "SeriesInfo", "Store", "WriteResult"]
