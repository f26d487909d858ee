"""The store: one embedded DuckDB file holding series, alerts, events and source bookkeeping."""

from netvigil.store.duck import ImportRecord, SeriesInfo, Store, WriteResult
from netvigil.store.protocol import SeriesStore

__all__ = ["ImportRecord", "SeriesInfo", "SeriesStore", "Store", "WriteResult"]
