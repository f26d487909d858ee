"""Bounds every parser applies at the input boundary (issue 12, deliverable 3).

These are the numbers behind the rule table of :mod:`netvigil.series.rules` that are shared
with parsers in other tiers (MRT archives and RIS Live in :mod:`netvigil.sources.bgp`):
``sources`` and ``series`` may not import each other, so the numbers live here, once.

* **Times**: ``MIN_TIME <= t < MAX_TIME``, 1990-01-01 to 2100-01-01 UTC. Why 1990: the
  oldest data any source of NetVigil carries is later (RIPE RIS MRT archives start in 1999,
  RouteViews in 2001, IODA series in 2016, OONI in 2012), while ``0`` (1970-01-01) is the
  classic value of an unset or zeroed time field; accepting it would store a 20-year gap
  in front of every series that has one such row. Why 2100: far beyond any real data and
  inside every date type the store and Python handle (``year 10000`` broke ``series list``,
  issue 12 defect 1).
* **Decompression**: a gzip or bzip2 stream may expand to at most
  ``MAX_INFLATION`` times the compressed bytes read so far, once it is past
  ``INFLATION_FLOOR`` decompressed bytes. Real inputs inflate far less (measured: the MRT
  archives of ``tests/fixtures/mrt`` 0.8-14.6x, the most a 2014 RIB in bzip2; a constant
  series CSV of 1M rows 12x with ``gzip -9``, 21x with ``bzip2 -9``), a "zip bomb" far more
  (100 MiB of zeros: 1,029x in gzip, 927,943x in bzip2); the floor lets small files with repetitive
  content (a header-only file, a constant series) through whatever their ratio. Checked as
  the bytes are decoded, so a bomb is refused after reading at most ``INFLATION_FLOOR`` +
  ``MAX_INFLATION`` x its compressed size, never expanded whole.
* **Line length** (series CSV, IODA JSON and RIS Live frames): ``MAX_LINE_BYTES``. A CSV
  row of NetVigil's format is under 200 bytes; a RIS Live message is a few kB (a full
  ``announcements`` list of one UPDATE). IODA JSON puts a whole answer on one line, so its
  bound is per *token* (``MAX_JSON_TOKEN_BYTES``: one string or number), not per line.
* **Names**: ``MAX_NAME_LEN`` characters for an entity name (the longest ISO 3166 name is
  under 60 characters, AS names in the registries under 100).
"""

from __future__ import annotations

MIN_TIME = 631_152_000  # 1990-01-01T00:00:00Z
MAX_TIME = 4_102_444_800  # 2100-01-01T00:00:00Z (exclusive)
TIME_RANGE_TEXT = "1990-01-01..2100-01-01"

MAX_INFLATION = 100
INFLATION_FLOOR = 64 << 20  # 64 MiB

MAX_LINE_BYTES = 1 << 20  # 1 MiB
MAX_JSON_TOKEN_BYTES = 1 << 20
MAX_NAME_LEN = 200


def inflation_exceeded(compressed: int, decompressed: int) -> bool:
    """Has a stream that read ``compressed`` bytes and produced ``decompressed`` bytes gone
    past the decompression bound (module docstring)?"""
    return decompressed > INFLATION_FLOOR and decompressed > MAX_INFLATION * max(compressed, 1)


def inflation_text(compressed: int, decompressed: int) -> str:
    """The error detail of a refused stream (one line)."""
    return (f"decompressed data exceeds {MAX_INFLATION}x the compressed size past "
            f"{INFLATION_FLOOR >> 20} MiB ({decompressed} bytes from {compressed}): "
            "refused as a decompression bomb")
