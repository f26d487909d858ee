"""IP → country / region / AS, always as of a date, and the entity registry.

Public surface (everything else in this package is an implementation detail):

* :class:`GeoLookup` — the one mapping API (scalar ``locate``/``country``/``asn``/``region``,
  vectorised ``bulk_blocks``, ``bulk_regions``, ``country_blocks`` and ``country_ranges_v6``,
  dated BGP ``add_origin_table``);
* :class:`EntityRegistry` / :func:`default_registry` — countries, ISO 3166-2 regions, ASes;
* :class:`IntervalTable` — sorted disjoint intervals, the bulk lookup structure.
"""

from netvigil.geo.entities import EntityRegistry, default_registry
from netvigil.geo.intervals import MISSING, IntervalTable
from netvigil.geo.lookup import (
    BulkLocation,
    BulkRegions,
    CountryRangesV6,
    GeoLookup,
    Location,
    to_unix,
)

__all__ = [
    "MISSING",
    "BulkLocation",
    "BulkRegions",
    "CountryRangesV6",
    "EntityRegistry",
    "GeoLookup",
    "IntervalTable",
    "Location",
    "default_registry",
    "to_unix",
]
