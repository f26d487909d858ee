"""GeoLookup: as-of snapshot choice, iptocc after the newest snapshot, BGP origins, bulk path."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netvigil.geo.entities import default_registry
from netvigil.geo.lookup import GeoLookup, expand_to_blocks, to_unix
from netvigil.geo.mmdb import LEGACY_SUBDIVISIONS, RegionReader, configured_mmdb
from netvigil.geo.refdata import read_asn_csv, read_country_blocks, snapshot_from_cidrs
from netvigil.model import EntityType, make_ref
from netvigil.model.errors import GeoDataError, InvalidEntity

FIXTURES = Path(__file__).parent / "fixtures" / "geo"
CIB = FIXTURES / "country-ip-blocks-2022-01-04"
KZ_2022 = (CIB / "ipv4" / "kz.cidr").read_text().split()


@pytest.fixture(scope="module")
def default() -> GeoLookup:
    return GeoLookup.default()


def u32(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


# ----------------------------------------------------------------------------- real facts


def test_kz_2022_cidr_address_maps_to_kz_on_2022_01_05(default: GeoLookup) -> None:
    for cidr in KZ_2022[::40]:
        first = str(ipaddress.IPv4Network(cidr).network_address + 1)
        assert default.country(first, dt.date(2022, 1, 5)) == "KZ"


def test_kcell_address_maps_to_as29355(default: GeoLookup) -> None:
    assert default.asn("2.72.0.1") == 29355
    assert default.asn("2.132.0.1", dt.date(2022, 1, 5)) == 9198
    assert default.asn_name(29355) == "Kcell JSC"


def test_locate_reports_the_snapshot_that_answered(default: GeoLookup) -> None:
    loc = default.locate("2.72.0.1", dt.datetime(2022, 1, 5, 10, 40))
    assert loc.country == "KZ" and loc.asn == 29355
    assert loc.country_source == "country-ip-blocks 2022-01-04"
    assert loc.snapshot_date == dt.date(2022, 1, 4)
    assert not loc.before_snapshots
    # Regions come from the GeoLite2 2019 mmdb of the optional `geoip` extra when installed.
    assert loc.region == ("KZ-75" if configured_mmdb() else None)


def test_time_before_all_snapshots_uses_oldest_and_flags_it(default: GeoLookup) -> None:
    loc = default.locate("2.72.0.1", dt.date(2019, 11, 16))
    assert loc.country == "KZ"
    assert loc.snapshot_date == dt.date(2020, 1, 20)
    assert loc.before_snapshots


def test_after_newest_snapshot_iptocc_answers(default: GeoLookup) -> None:
    loc = default.locate("2.132.0.1", dt.date(2026, 1, 1))
    assert (loc.country, loc.country_source, loc.snapshot_date) == ("KZ", "iptocc", None)
    assert default.locate("2.132.0.1").country_source == "iptocc"  # when=None means now
    # The newest snapshot still answers on its own day.
    assert default.locate("2.132.0.1", dt.date(2025, 9, 4)).snapshot_date == dt.date(2025, 9, 4)


def test_prefix_maps_by_its_network_address(default: GeoLookup) -> None:
    assert default.country("2.72.0.0/13", dt.date(2022, 1, 5)) == "KZ"
    assert default.asn("2.72.0.0/13") == 29355
    assert default.locate("2.72.0.9/13").asn == default.locate("2.72.0.0").asn


def test_ipv6_address_maps_through_the_snapshot(default: GeoLookup) -> None:
    assert default.country("2a00:12f8::1", dt.date(2022, 1, 5)) == "KZ"
    assert default.asn("2a00:12f8::1") is None  # shipped ASN ranges are IPv4 only


def test_unknown_address_has_no_country_or_as(default: GeoLookup) -> None:
    loc = default.locate("10.1.2.3", dt.date(2022, 1, 5))
    assert (loc.country, loc.asn, loc.asn_source) == (None, None, None)


def test_not_an_address_raises_invalid_entity(default: GeoLookup) -> None:
    with pytest.raises(InvalidEntity):
        default.country("2.72.0.300")


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (dt.date(2022, 1, 5), 1641340800),
        (dt.datetime(2022, 1, 5, 10, 30), 1641378600),
        (dt.datetime(2022, 1, 5, 16, 30, tzinfo=dt.timezone(dt.timedelta(hours=6))), 1641378600),
        (1641378600, 1641378600),
    ],
)
def test_to_unix_treats_dates_and_naive_datetimes_as_utc(when: object, expected: int) -> None:
    assert to_unix(when) == expected  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- custom setups


def three_snapshot_lookup(**kw: object) -> GeoLookup:
    """10.0.0.0/8 moves KZ → EG → IR across three dates; 2.72.0.0/13 is always KZ."""
    snaps = [
        snapshot_from_cidrs(dt.date(2020, 1, 1), {"KZ": ["10.0.0.0/8", "2.72.0.0/13"]}),
        snapshot_from_cidrs(dt.date(2021, 1, 1), {"EG": ["10.0.0.0/8"], "KZ": ["2.72.0.0/13"]}),
        snapshot_from_cidrs(dt.date(2022, 1, 1), {"IR": ["10.0.0.0/8"], "KZ": ["2.72.0.0/13"]}),
    ]
    return GeoLookup(snaps, use_iptocc=False, **kw)  # type: ignore[arg-type]


SNAP_DATES = [dt.date(2020, 1, 1), dt.date(2021, 1, 1), dt.date(2022, 1, 1)]
SNAP_CC = ["KZ", "EG", "IR"]


@settings(database=None, deadline=None, max_examples=100)
@given(st.integers(min_value=to_unix(dt.date(2018, 1, 1)), max_value=to_unix(dt.date(2024, 1, 1))))
def test_as_of_chooses_newest_snapshot_dated_at_or_before_t(t: int) -> None:
    geo = three_snapshot_lookup()
    eligible = [i for i, d in enumerate(SNAP_DATES) if to_unix(d) <= t]
    want = SNAP_CC[eligible[-1]] if eligible else SNAP_CC[0]
    loc = geo.locate("10.9.9.9", t)
    assert loc.country == want
    assert loc.before_snapshots == (not eligible)
    assert geo.bulk_blocks(np.array([u32("10.9.9.0")]), t).country_codes() == [want]


def test_snapshot_boundary_is_midnight_utc() -> None:
    geo = three_snapshot_lookup()
    midnight = to_unix(dt.date(2021, 1, 1))
    assert geo.country("10.0.0.1", midnight - 1) == "KZ"
    assert geo.country("10.0.0.1", midnight) == "EG"


def test_iptocc_only_lookup_without_snapshots() -> None:
    geo = GeoLookup()
    assert geo.country("2.132.0.1", dt.date(2010, 1, 1)) == "KZ"
    bulk = geo.bulk_blocks(np.array([u32("2.132.0.0"), u32("41.32.0.0")]), dt.date(2010, 1, 1))
    assert bulk.country_codes() == ["KZ", "EG"] and bulk.country_source == "iptocc"


def test_no_data_at_all_answers_none() -> None:
    geo = GeoLookup(use_iptocc=False)
    assert geo.locate("2.132.0.1", 0).country is None
    assert geo.bulk_blocks(np.array([1, 2], dtype=np.uint32), 0).country_idx.tolist() == [-1, -1]
    assert geo.country_blocks("KZ", 0).size == 0


def test_bgp_origin_table_wins_over_asn_ranges_from_its_valid_from() -> None:
    asn = read_asn_csv(FIXTURES / "asn-ipv4-in-KZ-head60.csv")
    geo = GeoLookup(asn_tables=[asn], use_iptocc=False)
    t0 = to_unix(dt.date(2022, 1, 1))
    geo.add_origin_table(t0, ["2.72.0.0/13", "2.72.5.0/24"], [64500, 64501])
    assert geo.asn("2.72.0.1", t0 - 1) == 29355  # before the table: ranges
    assert geo.asn("2.72.0.1", t0) == 64500
    assert geo.asn("2.72.5.1", t0) == 64501  # longest prefix
    assert geo.asn("2.132.0.1", t0) == 9198  # not in BGP table: falls back
    assert geo.locate("2.72.0.1", t0).asn_source == f"bgp@{t0}"
    geo.add_origin_table(t0 + 100, ["2.72.0.0/13"], [64999])
    assert geo.asn("2.72.5.1", t0 + 100) == 64999  # newest table valid at T wins
    assert geo.asn("2.72.5.1", t0 + 99) == 64501
    bulk = geo.bulk_blocks(np.array([u32("2.72.5.0"), u32("2.132.0.0"), u32("9.9.9.0")]), t0)
    assert bulk.asn.tolist() == [64501, 9198, 0]


def test_bad_origin_prefix_raises_geodataerror() -> None:
    with pytest.raises(GeoDataError):
        GeoLookup(use_iptocc=False).add_origin_table(0, ["2.72.0.0/40"], [1])


# ----------------------------------------------------------------------------- bulk


def test_country_blocks_lists_every_kz_slash24_of_the_2022_list(default: GeoLookup) -> None:
    blocks = default.country_blocks("kz", dt.date(2022, 1, 5))
    expected = sum(max(1, ipaddress.IPv4Network(c).num_addresses // 256) for c in KZ_2022)
    assert blocks.dtype == np.uint32 and blocks.size == expected
    assert np.all(np.diff(blocks.astype(np.int64)) > 0)
    assert np.all(blocks % 256 == 0)
    bulk = default.bulk_blocks(blocks, dt.date(2022, 1, 5))
    assert set(bulk.country_codes()) == {"KZ"}
    assert bulk.country_idx.dtype == np.int16 and bulk.asn.dtype == np.int64
    assert (bulk.asn > 0).mean() > 0.9


def test_country_blocks_uses_newest_snapshot_in_iptocc_period(default: GeoLookup) -> None:
    now = default.country_blocks("KZ")
    assert np.array_equal(now, default.country_blocks("KZ", dt.date(2025, 9, 4)))


def test_bulk_blocks_equals_locate_per_block_in_snapshot_and_iptocc_periods(
    default: GeoLookup,
) -> None:
    rng = np.random.default_rng(2022)
    blocks = (rng.integers(0, 2**24, 300, dtype=np.uint32) << 8).astype(np.uint32)
    blocks = np.concatenate([blocks, default.country_blocks("KZ", dt.date(2022, 1, 5))[:200]])
    for when in (dt.date(2022, 1, 5), dt.date(2019, 1, 1), dt.date(2026, 3, 1)):
        bulk = default.bulk_blocks(blocks, when)
        codes = bulk.country_codes()
        for i, b in enumerate(blocks.tolist()):
            loc = default.locate(str(ipaddress.IPv4Address(b)), when, with_region=False)
            assert codes[i] == loc.country
            assert int(bulk.asn[i]) == (loc.asn or 0)


def test_bulk_country_index_is_shared_across_snapshots(default: GeoLookup) -> None:
    block = np.array([u32("2.72.0.0")])
    a = default.bulk_blocks(block, dt.date(2020, 6, 1))
    b = default.bulk_blocks(block, dt.date(2025, 9, 5))
    assert a.countries[a.country_idx[0]] == b.countries[b.country_idx[0]] == "KZ"
    assert a.country_idx[0] == b.country_idx[0]


def test_expand_to_blocks_covers_partial_and_shared_slash24s() -> None:
    starts = [u32("10.0.0.0"), u32("10.0.0.128"), u32("10.0.2.0")]
    ends = [u32("10.0.0.127"), u32("10.0.1.255"), u32("10.0.2.0")]
    got = [str(ipaddress.IPv4Address(b)) for b in expand_to_blocks(starts, ends).tolist()]
    assert got == ["10.0.0.0", "10.0.1.0", "10.0.2.0"]


def test_custom_snapshot_from_fixture_tree_and_env_asn_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NETVIGIL_ASN_TABLE", str(FIXTURES / "asn-ipv4-in-KZ-head60.csv"))
    monkeypatch.delenv("NETVIGIL_MMDB", raising=False)
    geo = GeoLookup.default()
    assert geo.locate("2.72.0.1", dt.date(2022, 1, 5)).asn_source == "asn-ipv4-in-KZ-head60.csv"
    custom = GeoLookup([read_country_blocks(CIB, "2022-01-04")], use_iptocc=False)
    assert custom.snapshot_dates == [dt.date(2022, 1, 4)]
    assert custom.country("41.32.0.1", dt.date(2030, 1, 1)) == "EG"


# ----------------------------------------------------------------------------- regions


def test_region_is_none_without_mmdb(default: GeoLookup) -> None:
    assert GeoLookup(use_iptocc=False).region("2.132.0.1") is None


def test_configured_mmdb_without_maxminddb_or_file_raises(tmp_path: Path) -> None:
    geo = GeoLookup(use_iptocc=False, mmdb_path=tmp_path / "missing.mmdb")
    with pytest.raises(GeoDataError):
        geo.region("2.132.0.1")
    with pytest.raises(GeoDataError):
        RegionReader(tmp_path / "missing.mmdb")


def test_legacy_kz_subdivision_codes_map_to_current_pycountry_codes() -> None:
    kz = make_ref("country", "KZ")
    current = {e.code for e in default_registry().children(kz, EntityType.REGION)}
    assert set(LEGACY_SUBDIVISIONS.values()) <= current
    assert LEGACY_SUBDIVISIONS["KZ-ALA"] == "KZ-75"
