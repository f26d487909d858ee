"""IntervalTable: most-specific-wins resolution, vectorised lookups, IPv6 /48 keys."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netvigil.geo.intervals import MISSING, IntervalTable, cidr_bounds, ipv4_to_uint32, v6_key
from netvigil.model.errors import GeoDataError

FIXTURE_SETTINGS = settings(database=None, deadline=None, max_examples=150)


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def test_most_specific_prefix_wins_over_covering_block() -> None:
    table = IntervalTable.from_cidrs(["10.0.0.0/16", "10.0.5.0/24"], [1, 2])
    assert table.get(ip("10.0.4.255")) == 1
    assert table.get(ip("10.0.5.0")) == 2
    assert table.get(ip("10.0.5.255")) == 2
    assert table.get(ip("10.0.6.0")) == 1
    # The /16 is split into three disjoint pieces around the /24.
    assert len(table) == 3


def test_most_specific_wins_regardless_of_input_order() -> None:
    a = IntervalTable.from_cidrs(["10.0.5.0/24", "10.0.0.0/16"], [2, 1])
    b = IntervalTable.from_cidrs(["10.0.0.0/16", "10.0.5.0/24"], [1, 2])
    assert np.array_equal(a.starts, b.starts) and np.array_equal(a.values, b.values)


def test_nested_three_levels_deep() -> None:
    table = IntervalTable.from_cidrs(["10.0.0.0/8", "10.1.0.0/16", "10.1.1.0/24"], [1, 2, 3])
    got = table.lookup(ipv4_to_uint32(["10.0.0.1", "10.1.0.1", "10.1.1.1", "10.2.0.0"]))
    assert got.tolist() == [1, 2, 3, 1]


def test_equal_ranges_later_input_wins() -> None:
    table = IntervalTable.from_cidrs(["10.0.0.0/24", "10.0.0.0/24"], [7, 9])
    assert table.get(ip("10.0.0.10")) == 9


def test_uncovered_address_is_missing_minus_one() -> None:
    table = IntervalTable.from_cidrs(["10.0.0.0/24"], [5])
    assert MISSING == -1
    assert table.get(ip("11.0.0.0")) == MISSING
    assert table.get(0) == MISSING
    assert table.lookup(np.array([0, 2**32 - 1], dtype=np.uint32)).tolist() == [-1, -1]


def test_adjacent_ranges_with_same_value_are_merged() -> None:
    table = IntervalTable.from_cidrs(["10.0.0.0/25", "10.0.0.128/25", "10.0.1.0/24"], [4, 4, 4])
    assert len(table) == 1
    assert (int(table.starts[0]), int(table.ends[0])) == (ip("10.0.0.0"), ip("10.0.1.255"))


def test_whole_ipv4_space_and_top_address() -> None:
    table = IntervalTable.from_cidrs(["0.0.0.0/0", "255.255.255.255/32"], [1, 2])
    assert table.get(2**32 - 1) == 2
    assert table.get(2**32 - 2) == 1


def test_partially_overlapping_ranges_narrowest_wins() -> None:
    # Not CIDRs: [0,99] value 1 (width 100), [50,79] value 2 (width 30), [70,129] 3 (width 60)
    table = IntervalTable.from_ranges([0, 50, 70], [99, 79, 129], [1, 2, 3])
    assert [table.get(k) for k in (0, 49, 50, 75, 80, 99, 100, 129, 130)] == [
        1, 1, 2, 2, 3, 3, 3, 3, MISSING
    ]


def test_same_width_overlapping_ranges_fall_back_to_one_by_one_painting() -> None:
    table = IntervalTable.from_ranges([0, 5], [9, 14], [1, 2])
    assert [table.get(k) for k in (0, 4, 5, 9, 14, 15)] == [1, 1, 2, 2, 2, MISSING]


def test_constructor_rejects_overlapping_intervals() -> None:
    with pytest.raises(ValueError):
        IntervalTable(np.array([0, 5], dtype=np.uint32), np.array([9, 14], dtype=np.uint32),
                      np.array([1, 2], dtype=np.int64))


def test_from_ranges_rejects_out_of_range_ipv4() -> None:
    with pytest.raises(ValueError):
        IntervalTable.from_ranges([0], [2**32], [1])


def test_ipv6_keys_are_slash48_and_longer_prefixes_widen() -> None:
    table = IntervalTable.from_cidrs(["2a00:12f8::/32", "2a00:12f8:1::/64"], [1, 2])
    assert table.family == 6
    assert table.get_ip("2a00:12f8:5::1") == 1
    assert table.get_ip("2a00:12f8:1:ffff::1") == 2  # whole /48 of the /64
    assert table.get(v6_key("2a00:12f9::")) == MISSING
    assert table.get_ip("10.0.0.1") == MISSING  # other family


def test_cidr_bounds_rejects_other_family() -> None:
    with pytest.raises(ValueError):
        cidr_bounds(["2001:db8::/32"], family=4)


def test_ipv4_to_uint32_rejects_garbage() -> None:
    with pytest.raises(GeoDataError):
        ipv4_to_uint32(["1.2.3.4", "nope"])


# ----------------------------------------------------------------------------- properties


def brute_force(ranges: list[tuple[int, int, int]], key: int) -> int:
    """Reference: narrowest covering range; among equal widths the later one."""
    best: tuple[int, int] | None = None  # (width, -order)
    value = MISSING
    for order, (s, e, v) in enumerate(ranges):
        if s <= key <= e:
            cand = (e - s, -order)
            if best is None or cand < best:
                best, value = cand, v
    return value


@st.composite
def ranges_strategy(draw: st.DrawFn) -> list[tuple[int, int, int]]:
    n = draw(st.integers(min_value=0, max_value=12))
    out = []
    for _ in range(n):
        s = draw(st.integers(min_value=0, max_value=300))
        w = draw(st.integers(min_value=0, max_value=120))
        out.append((s, s + w, draw(st.integers(min_value=0, max_value=5))))
    return out


@FIXTURE_SETTINGS
@given(ranges_strategy())
def test_interval_table_equals_brute_force_reference(ranges: list[tuple[int, int, int]]) -> None:
    table = IntervalTable.from_ranges(
        [r[0] for r in ranges], [r[1] for r in ranges], [r[2] for r in ranges]
    )
    keys = np.arange(0, 430, dtype=np.uint32)
    expected = [brute_force(ranges, k) for k in range(430)]
    assert table.lookup(keys).tolist() == expected


@st.composite
def cidr_strategy(draw: st.DrawFn) -> list[tuple[str, int]]:
    n = draw(st.integers(min_value=1, max_value=10))
    out = []
    for _ in range(n):
        plen = draw(st.integers(min_value=8, max_value=32))
        addr = draw(st.integers(min_value=0, max_value=2**32 - 1))
        net = ipaddress.IPv4Network((addr, plen), strict=False)
        out.append((str(net), draw(st.integers(min_value=0, max_value=2**32 - 1))))
    return out


@FIXTURE_SETTINGS
@given(cidr_strategy(), st.lists(st.integers(0, 2**32 - 1), max_size=50))
def test_bulk_lookup_equals_scalar_lookup(cidrs: list[tuple[str, int]], probes: list[int]) -> None:
    table = IntervalTable.from_cidrs([c for c, _ in cidrs], [v for _, v in cidrs])
    # Probe random addresses plus every range edge, where off-by-one bugs live.
    keys = probes + [int(s) for s in table.starts] + [int(e) for e in table.ends]
    keys += [min(int(e) + 1, 2**32 - 1) for e in table.ends]
    bulk = table.lookup(np.array(keys, dtype=np.uint32)).tolist()
    assert bulk == [table.get(k) for k in keys]


@FIXTURE_SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(16, 32), st.integers(1, 2**31))
def test_every_address_of_a_random_cidr_maps_to_its_value(addr: int, plen: int, value: int) -> None:
    net = ipaddress.IPv4Network((addr, plen), strict=False)
    table = IntervalTable.from_cidrs(["0.0.0.0/1", "128.0.0.0/1", str(net)], [0, 0, value])
    lo, hi = int(net.network_address), int(net.broadcast_address)
    inside = np.arange(lo, hi + 1, dtype=np.int64).astype(np.uint32)
    assert np.all(table.lookup(inside) == value)
    outside = [k for k in (lo - 1, hi + 1) if 0 <= k < 2**32]
    assert all(table.get(k) == 0 for k in outside)


@FIXTURE_SETTINGS
@given(cidr_strategy())
def test_cidr_table_equals_longest_prefix_match(cidrs: list[tuple[str, int]]) -> None:
    table = IntervalTable.from_cidrs([c for c, _ in cidrs], [v for _, v in cidrs])
    nets = [(ipaddress.IPv4Network(c), v) for c, v in cidrs]
    for net, _ in nets:
        for probe in (net.network_address, net.broadcast_address):
            matches = [(n.prefixlen, i, v) for i, (n, v) in enumerate(nets) if probe in n]
            assert table.get(int(probe)) == max(matches)[2]


@FIXTURE_SETTINGS
@given(ranges_strategy(), st.integers(0, 2**32 - 1))
def test_directory_bulk_path_equals_search(ranges: list[tuple[int, int, int]], base: int) -> None:
    # Scale the small random ranges up so they straddle /20 directory cells in every way.
    scale = 1 << 11
    starts = [min(s * scale + base % scale, 2**32 - 1) for s, _, _ in ranges]
    ends = [min(max(e * scale + base % 4099, s2), 2**32 - 1)
            for (_, e, _), s2 in zip(ranges, starts, strict=True)]
    table = IntervalTable.from_ranges(starts, ends, [r[2] for r in ranges])
    rng = np.random.default_rng(base)
    keys = rng.integers(0, 450 * scale, 5000).astype(np.uint32)
    keys = np.concatenate([keys, table.starts, table.ends, table.ends + np.uint32(1)])
    assert keys.size >= 4096
    assert table.lookup(keys).tolist() == [table.get(int(k)) for k in keys]


def test_directory_handles_values_it_cannot_code() -> None:
    table = IntervalTable.from_cidrs(["10.0.0.0/8", "11.0.0.0/8"], [2**32 - 1, 7])
    keys = np.full(5000, int(ipaddress.IPv4Address("10.1.2.3")), dtype=np.uint32)
    keys[0] = int(ipaddress.IPv4Address("11.0.0.1"))
    keys[1] = int(ipaddress.IPv4Address("12.0.0.1"))
    got = table.lookup(keys)
    assert got[0] == 7 and got[1] == MISSING and got[2] == 2**32 - 1
