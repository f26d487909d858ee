"""Reference-data readers: real upstream formats in, GeoDataError with file:line for bad lines."""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from netvigil.geo.intervals import MISSING
from netvigil.geo.refdata import (
    load_packed_snapshot,
    load_shipped_asnames,
    load_shipped_kz_asn,
    load_shipped_snapshots,
    pack_country_snapshot,
    read_asn_csv,
    read_asnames,
    read_country_blocks,
    read_country_csv,
    read_ipasn_dat,
    split_asname,
    split_families,
)
from netvigil.model.errors import GeoDataError

FIXTURES = Path(__file__).parent / "fixtures" / "geo"
CIB = FIXTURES / "country-ip-blocks-2022-01-04"


def ip(text: str) -> int:
    return int(ipaddress.ip_address(text))


def test_country_blocks_tree_maps_kz_and_eg_prefixes() -> None:
    snap = read_country_blocks(CIB, "2022-01-04")
    assert snap.date == dt.date(2022, 1, 4)
    assert snap.countries == ("EG", "KZ")
    assert snap.country_of(snap.v4.get(ip("2.72.0.1"))) == "KZ"
    assert snap.country_of(snap.v4.get(ip("41.32.0.1"))) == "EG"
    assert snap.v4.get(ip("8.8.8.8")) == MISSING
    assert snap.country_of(snap.v6.get_ip("2a00:12f8::1")) == "KZ"


def test_every_kz_cidr_line_maps_to_kz(tmp_path: Path) -> None:
    snap = read_country_blocks(CIB, "2022-01-04")
    kz = snap.countries.index("KZ")
    lines = (CIB / "ipv4" / "kz.cidr").read_text().split()
    assert len(lines) == 424
    for cidr in lines:
        net = ipaddress.IPv4Network(cidr)
        assert snap.v4.get(int(net.network_address)) == kz
        assert snap.v4.get(int(net.broadcast_address)) == kz


def test_country_blocks_tarball_equals_tree(tmp_path: Path) -> None:
    tarball = tmp_path / "country-ip-blocks_2022-01-04_test.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(CIB / "ipv4", arcname="ipv4")
        tar.add(CIB / "ipv6", arcname="ipv6")
    a = read_country_blocks(tarball, dt.date(2022, 1, 4))
    b = read_country_blocks(CIB, dt.date(2022, 1, 4))
    assert np.array_equal(a.v4.starts, b.v4.starts)
    assert np.array_equal(a.v4.values, b.v4.values)
    assert np.array_equal(a.v6.ends, b.v6.ends)


def test_malformed_cidr_line_reports_file_and_line(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(CIB, tree)
    with (tree / "ipv4" / "kz.cidr").open("a") as fh:
        fh.write("2.72.0.0/33\n")
    with pytest.raises(GeoDataError, match=r"kz\.cidr:425: not a CIDR"):
        read_country_blocks(tree, "2022-01-04")


def test_ipv6_line_in_ipv4_list_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "ipv4").mkdir()
    (tmp_path / "ipv4" / "xx.cidr").write_text("10.0.0.0/8\n2001:db8::/32\n")
    with pytest.raises(GeoDataError, match=r"xx\.cidr:2: expected an IPv4 prefix"):
        read_country_blocks(tmp_path, "2022-01-04")


def test_corrupt_tarball_raises_geodataerror(tmp_path: Path) -> None:
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(GeoDataError):
        read_country_blocks(bad, "2022-01-04")


def test_packed_snapshot_round_trip(tmp_path: Path) -> None:
    snap = read_country_blocks(CIB, "2022-01-04")
    out = pack_country_snapshot(snap, tmp_path / "snap.npz")
    back = load_packed_snapshot(out)
    assert back.date == snap.date and back.countries == snap.countries
    for a, b in ((snap.v4, back.v4), (snap.v6, back.v6)):
        assert np.array_equal(a.starts, b.starts)
        assert np.array_equal(a.ends, b.ends)
        assert np.array_equal(a.values, b.values)
        assert a.starts.dtype == b.starts.dtype


def test_packed_snapshot_garbage_raises(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    with pytest.raises(GeoDataError):
        load_packed_snapshot(bad)


def test_asn_csv_maps_kcell_and_keeps_quoted_org_names() -> None:
    table = read_asn_csv(FIXTURES / "asn-ipv4-in-KZ-head60.csv")
    assert table.v4.get(ip("2.72.0.1")) == 29355
    assert table.v4.get(ip("2.132.0.1")) == 9198
    assert table.names[29355] == "Kcell JSC"
    assert table.names[208795] == '"Cloud Services Kazakhstan" LLP'
    assert table.names[61367] == 'TOO "B-TEL"'


def test_asn_csv_gz_is_read_like_plain(tmp_path: Path) -> None:
    gz = tmp_path / "asn.csv.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "asn-ipv4-in-KZ-head60.csv").read_bytes()))
    assert np.array_equal(read_asn_csv(gz).v4.starts,
                          read_asn_csv(FIXTURES / "asn-ipv4-in-KZ-head60.csv").v4.starts)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("2.72.0.0,2.79.255.255,AS-x,Kcell", "not an AS number"),
        ("2.72.0.0,2.79.255.999,29355,Kcell", "not an IP address"),
        ("2.79.0.0,2.72.0.0,29355,Kcell", "bad range"),
        ("2.72.0.0,2.79.255.255", "expected 3 columns"),
    ],
)
def test_malformed_asn_csv_line_reports_line_number(tmp_path: Path, line: str, reason: str) -> None:
    f = tmp_path / "asn.csv"
    f.write_text("1.0.0.0,1.0.0.255,13335,Cloudflare\n" + line + "\n")
    with pytest.raises(GeoDataError, match=rf"asn\.csv:2: {reason}"):
        read_asn_csv(f)


def test_country_csv_reads_kz_ranges_and_rejects_bad_code(tmp_path: Path) -> None:
    snap = read_country_csv(FIXTURES / "asn-country-ipv4-KZ-head40.csv", "2026-06-17")
    assert snap.countries == ("KZ",)
    assert snap.country_of(snap.v4.get(ip("2.72.0.1"))) == "KZ"
    bad = tmp_path / "cc.csv"
    bad.write_text("2.72.0.0,2.79.255.255,KZ\n2.80.0.0,2.80.0.255,K1\n")
    with pytest.raises(GeoDataError, match=r"cc\.csv:2: not a country code"):
        read_country_csv(bad, "2026-06-17")


def test_ipasn_dat_longest_prefix_match_equals_reference() -> None:
    prefixes, origins = read_ipasn_dat(FIXTURES / "ipasn_20140513-head300.dat")
    assert len(prefixes) == 295 and (prefixes[0], origins[0]) == ("1.0.0.0/24", 15169)
    v4, v6 = split_families(prefixes, origins)
    assert len(v6) == 0
    nets = [(ipaddress.IPv4Network(p), a) for p, a in zip(prefixes, origins, strict=True)]
    nested = 0
    for net, _ in nets:
        for probe in (net.network_address, net.broadcast_address):
            matches = [(n.prefixlen, a) for n, a in nets if probe in n]
            nested += len(matches) > 1
            assert v4.get(int(probe)) == max(matches)[1]
    assert nested > 0  # the fixture really has more-specifics inside covering prefixes


def test_ipasn_dat_gz_and_comment_lines(tmp_path: Path) -> None:
    gz = tmp_path / "ipasn.dat.gz"
    gz.write_bytes(gzip.compress(b"; header\n;\n1.0.0.0/24\t15169\n2001:db8::/32\t{64500,64501}\n"))
    prefixes, origins = read_ipasn_dat(gz)
    assert prefixes == ["1.0.0.0/24", "2001:db8::/32"]
    assert origins == [15169, 64500]


@pytest.mark.parametrize(
    ("line", "reason"),
    [("1.0.0.0/24", "expected 'prefix<TAB>asn'"), ("1.0.0.0/40\t1", "not a prefix"),
     ("1.0.0.0/24\tAS1", "not an AS number")],
)
def test_malformed_ipasn_line_reports_line_number(tmp_path: Path, line: str, reason: str) -> None:
    f = tmp_path / "ipasn.dat"
    f.write_text("; comment\n1.0.4.0/24\t56203\n" + line + "\n")
    with pytest.raises(GeoDataError, match=rf"ipasn\.dat:3: {reason}"):
        read_ipasn_dat(f)


def test_asname_split_handles_country_suffix_and_its_absence() -> None:
    assert split_asname("KAZTELECOM-AS JSC Kazakhtelecom, KZ") == (
        "KAZTELECOM-AS JSC Kazakhtelecom", "KZ")
    assert split_asname("TCI , IR") == ("TCI", "IR")
    assert split_asname("EXAMPLE-NET Example, Inc.") == ("EXAMPLE-NET Example, Inc.", None)
    assert split_asname("NO-COUNTRY") == ("NO-COUNTRY", None)


def test_asnames_reader_rejects_non_object(tmp_path: Path) -> None:
    f = tmp_path / "asnames.json"
    f.write_text("[1, 2]")
    with pytest.raises(GeoDataError):
        read_asnames(f)


def test_shipped_data_kz_facts() -> None:
    snaps = load_shipped_snapshots()
    assert [s.date.isoformat() for s in snaps] == [
        "2020-01-20", "2021-01-30", "2022-01-04", "2025-09-04"]
    names = load_shipped_asnames()
    assert names[9198] == ("KAZTELECOM-AS JSC Kazakhtelecom", "KZ")
    assert len(names) == 77586
    kz = load_shipped_kz_asn()
    assert kz.v4.get(ip("2.72.0.1")) == 29355
    assert len(kz.v4) == 1154


def test_shipped_2022_snapshot_matches_upstream_kz_list() -> None:
    snap = next(s for s in load_shipped_snapshots() if s.date == dt.date(2022, 1, 4))
    kz = snap.countries.index("KZ")
    lines = (CIB / "ipv4" / "kz.cidr").read_text().split()
    starts = np.array([int(ipaddress.IPv4Network(c).network_address) for c in lines],
                      dtype=np.uint32)
    assert np.all(snap.v4.lookup(starts) == kz)
    expected = sum(ipaddress.IPv4Network(c).num_addresses for c in lines)
    s, e = snap.v4.select(kz)
    assert int((e.astype(np.int64) - s.astype(np.int64) + 1).sum()) == expected
