"""Archives → visible-/24 series: a withdrawn country matches an independent count; resuming
never double counts; a silent collector is a health fact, not an outage."""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from netvigil.geo import GeoLookup
from netvigil.model import make_ref
from netvigil.pipeline import Pipeline
from netvigil.sources.bgp.ingest import BgpIngester, discover
from netvigil.sources.bgp.visibility import VisibilityConfig
from netvigil.store.duck import Store
from netvigil.testing.mrt_encode import bgp4mp_update, state_change, write_rib
from prereq import require

T0 = 1_641_340_800  # 2022-01-05 00:00 UTC
PEERS = [("10.0.0.1", 65001), ("10.0.0.2", 65002), ("10.0.0.3", 65003), ("10.0.0.4", 65004)]
ORIGIN = {"41.32.0.0/16": 8452, "41.32.5.0/24": 24863, "41.33.0.0/22": 8452,
          "2.57.96.0/22": 9198, "2.57.100.0/24": 9198, "14.1.32.0/20": 9790}
CFG = VisibilityConfig(ff_v4=2)


def _events() -> list[tuple[int, str, int, str, int]]:
    """(time, kind, peer, prefix, origin) — kind A, W or DOWN."""
    ev = [(T0 + 60, "W", p, "41.32.5.0/24", 0) for p in range(3)]  # covered by its /16
    ev += [(T0 + 400, "W", p, x, 0) for p in range(3) for x in ("41.32.0.0/16", "41.33.0.0/22")]
    ev += [(T0 + 700, "DOWN", 0, "", 0), (T0 + 710, "W", 1, "2.57.96.0/22", 0),
           (T0 + 750, "A", 2, "2.57.100.0/24", 48716)]  # implicit withdrawal: new origin
    return ev


def _write_archive(root: Path) -> list[Path]:
    (root / "rrc00").mkdir(parents=True)
    (root / "rrc01").mkdir(parents=True)
    routes = {pfx: [(p, [PEERS[p][1], 3356, o]) for p in range(3)] for pfx, o in ORIGIN.items()}
    routes["2.57.96.0/22"].append((3, [65004, 9198]))  # a partial (not full-feed) peer
    files = [write_rib(root / "rrc00" / "bview.20220105.0000.gz", T0, "192.0.2.255", PEERS,
                       routes)]
    for i, lo in enumerate((0, 300, 600)):
        raw = b""
        for t, kind, p, pfx, o in _events():
            if not lo <= t - T0 < lo + 300:
                continue
            ip, asn = PEERS[p]
            if kind == "DOWN":
                raw += state_change(t, ip, asn, 6, 1)
            elif kind == "W":
                raw += bgp4mp_update(t, ip, asn, withdraw=[pfx])
            else:
                raw += bgp4mp_update(t, ip, asn, announce=[pfx], as_path=[asn, 174, o])
        path = root / "rrc00" / f"updates.20220105.00{i * 5:02d}.gz"
        import gzip

        path.write_bytes(gzip.compress(raw))
        files.append(path)
    # a second collector: one small peer, data only in the first bin, then silent
    files.append(write_rib(root / "rrc01" / "bview.20220105.0000.gz", T0, "192.0.2.254",
                           [("10.1.0.1", 65101)], {"14.1.32.0/20": [(0, [65101, 9790])]}))
    import gzip

    (root / "rrc01" / "updates.20220105.0000.gz").write_bytes(gzip.compress(
        bgp4mp_update(T0 + 30, "10.1.0.1", 65101, announce=["14.1.48.0/24"],
                      as_path=[65101, 9790])))
    return files


def _independent_counts(geo: GeoLookup) -> list[tuple[Counter[str], Counter[int]]]:
    """Per bin: visible /24s per country and per origin AS, by plain Python sets."""
    routes = {p: {pfx: o for pfx, o in ORIGIN.items()} for p in range(3)}
    events = _events()
    out = []
    for b in range(3):
        for t, kind, p, pfx, o in events:
            if T0 + 300 * b <= t < T0 + 300 * (b + 1):
                if kind == "DOWN":
                    routes[p] = {}
                elif kind == "W":
                    routes[p].pop(pfx, None)
                else:
                    routes[p][pfx] = o
        cover: Counter[int] = Counter()
        full = [p for p in range(3) if len(routes[p]) > 2]  # the partial peer has 1 prefix
        for p in full:
            blocks: set[int] = set()
            for pfx in routes[p]:
                n = ipaddress.ip_network(pfx)
                first = int(n.network_address) >> 8
                blocks.update(range(first, first + (1 << (24 - n.prefixlen))))
            cover.update(blocks)
        visible = [blk for blk, c in cover.items() if c > 0.5 * len(full)]
        countries: Counter[str] = Counter()
        asns: Counter[int] = Counter()
        for blk in visible:
            cc = geo.country(str(ipaddress.ip_address(blk << 8)), T0 + 300 * b)
            if cc:
                countries[cc] += 1
            # most specific route, majority origin over peers
            best = max((ipaddress.ip_network(x) for p in full for x in routes[p]
                        if ipaddress.ip_address(blk << 8) in ipaddress.ip_network(x)),
                       key=lambda n: n.prefixlen)
            votes = Counter(routes[p][str(best)] for p in full if str(best) in routes[p])
            asns[min(votes, key=lambda a: (-votes[a], a))] += 1
        out.append((countries, asns))
    return out


@pytest.fixture(scope="module")
def geo() -> GeoLookup:
    return GeoLookup.default()


def _series(store: Store, kind: str, code: str) -> list[float]:
    s = store.read_series(make_ref(kind, code), "bgp", T0, T0 + 900)
    assert s.start == T0 and s.step == 300
    return [float(v) for v in s.values]


def test_withdrawn_country_matches_an_independent_count(tmp_path: Path, geo: GeoLookup) -> None:
    _write_archive(tmp_path / "archive")
    with Store(tmp_path / "s.duckdb") as store:
        rep = BgpIngester(Pipeline(store, geo), CFG).run(discover([], tmp_path / "archive", None))
        assert rep.bins == 3 and not rep.problems
        expected = _independent_counts(geo)
        for cc in ("EG", "KZ", "NZ"):
            assert _series(store, "country", cc) == [float(e[0][cc]) for e in expected], cc
        for asn in (8452, 24863, 9198, 48716, 9790):
            got = store.read_series(make_ref("asn", str(asn)), "bgp", T0, T0 + 900)
            want = [float(e[1][asn]) for e in expected]
            vals = got.values.tolist()
            assert vals == want[len(want) - len(vals):] and (vals or not any(want)), asn
        eg = _series(store, "country", "EG")
        assert eg[0] > 0 and eg[1] == 0.0 and eg[2] == 0.0  # a measured zero, not a gap
        # the more-specific withdrawn in bin 0 stayed visible under its /16
        assert eg[0] == expected[0][0]["EG"] >= 256


def test_silent_collector_is_a_health_fact_not_an_outage(tmp_path: Path, geo: GeoLookup) -> None:
    _write_archive(tmp_path / "archive")
    with Store(tmp_path / "s.duckdb") as store:
        BgpIngester(Pipeline(store, geo), CFG).run(discover([], tmp_path / "archive", None))
        assert json.loads(store.get_state("bgp:health:rrc01") or "[]") == [[T0 + 300, T0 + 900]]
        assert store.get_state("bgp:health:rrc00") is None
        nz = _series(store, "country", "NZ")
        assert nz[0] == nz[1] == nz[2] > 0


def test_resumed_ingest_does_not_double_count(tmp_path: Path, geo: GeoLookup) -> None:
    files = _write_archive(tmp_path / "archive")
    with Store(tmp_path / "full.duckdb") as full:
        BgpIngester(Pipeline(full, geo), CFG).run(discover(files, None, None))
        ref = {cc: _series(full, "country", cc) for cc in ("EG", "KZ", "NZ")}
    with Store(tmp_path / "s.duckdb") as store:
        # "crash" after the RIB and the first update file of rrc00
        BgpIngester(Pipeline(store, geo), CFG).run(discover(files[:2], None, None))
        rep = BgpIngester(Pipeline(store, geo), CFG).run(discover(files, None, None))
        assert rep.files == len(files)  # replayed from the RIB that precedes the pending files
        for cc, values in ref.items():
            assert _series(store, "country", cc) == values
        n = store.connection.execute(
            "SELECT count(*) FROM points WHERE entity_code = 'EG' AND signal = 'bgp'"
        ).fetchone()
        assert n is not None and n[0] == 3
        again = BgpIngester(Pipeline(store, geo), CFG).run(discover(files, None, None))
        assert again.files == 0 and again.bins == 0


def test_fast_path_and_generic_reader_give_the_same_routes(tmp_path: Path) -> None:
    from netvigil.sources.bgp.fastrib import RibColumns, read_rib_columns
    from netvigil.sources.bgp.ingest import rib_from_elems
    from netvigil.sources.bgp.mrt import ErrorPolicy

    files = _write_archive(tmp_path / "archive")
    a = read_rib_columns(files[0])
    b = rib_from_elems(files[0], ErrorPolicy.SKIP)

    def rows(c: RibColumns) -> list[tuple[str, int, int, int]]:
        return sorted((c.peer_ips[int(p)], int(n), int(pl), int(o)) for p, n, pl, o in zip(
            c.peer, c.net, c.plen, c.origin, strict=True))

    assert rows(a) == rows(b)
    assert np.all(a.origin > 0)


KZ_ORIGIN = {"2.132.0.0/16": 9198, "5.34.0.0/20": 48716, "37.150.0.0/16": 9198,
             "41.32.0.0/16": 8452}


def _write_kz_archive(root: Path) -> list[Path]:
    """One collector: a RIB of KZ prefixes (many regions) and an EG one, then every peer
    withdraws 37.150.0.0/16 in the second bin."""
    import gzip

    (root / "rrc00").mkdir(parents=True)
    routes = {pfx: [(p, [PEERS[p][1], 3356, o]) for p in range(3)] for pfx, o in KZ_ORIGIN.items()}
    rib = write_rib(root / "rrc00" / "bview.20220105.0000.gz", T0, "192.0.2.255", PEERS, routes)
    raw = b"".join(bgp4mp_update(T0 + 400, PEERS[p][0], PEERS[p][1], withdraw=["37.150.0.0/16"])
                   for p in range(3))
    upd = root / "rrc00" / "updates.20220105.0005.gz"
    upd.write_bytes(gzip.compress(raw))
    return [rib, upd]


def _kz_region_counts(geo: GeoLookup, prefixes: list[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for pfx in prefixes:
        for sub in ipaddress.ip_network(pfx).subnets(new_prefix=24):
            region = geo.region(str(sub.network_address))
            if region:
                out[region] += 1
    return out


def _region_rows(store: Store) -> dict[str, list[float]]:
    rows = store.connection.execute(
        "SELECT entity_code, time, value FROM points WHERE entity_type = 'region' "
        "AND signal = 'bgp' ORDER BY entity_code, time").fetchall()
    out: dict[str, list[float]] = {}
    for code, _t, v in rows:
        out.setdefault(str(code), []).append(float(v))
    return out


def test_region_series_sum_to_at_most_the_country_count(tmp_path: Path, geo: GeoLookup) -> None:
    require(geo.has_regions, "the optional `geoip` extra (region mmdb) is not installed")
    files = _write_kz_archive(tmp_path / "archive")
    with Store(tmp_path / "s.duckdb") as store:
        ing = BgpIngester(Pipeline(store, geo), CFG)
        rep = ing.run(discover(files, None, None))
        assert rep.bins == 2 and not rep.problems
        kz = [float(v) for v in store.read_series(
            make_ref("country", "KZ"), "bgp", T0, T0 + 600).values]
        assert kz == [256.0 + 16 + 256, 256.0 + 16]
        eg = [float(v) for v in store.read_series(
            make_ref("country", "EG"), "bgp", T0, T0 + 600).values]
        every = _region_rows(store)
        regions = {c: v for c, v in every.items() if c.startswith("KZ-")}
        eg_regions = {c: v for c, v in every.items() if c.startswith("EG-")}
        assert set(every) == set(regions) | set(eg_regions) and eg_regions
        assert "KZ-75" in regions  # GeoLite2's legacy KZ-ALA, mapped
        for b in range(2):
            assert 0 < sum(v[b] for v in regions.values()) <= kz[b]
            assert 0 < sum(v[b] for v in eg_regions.values()) <= eg[b] == 256
        before = _kz_region_counts(geo, ["2.132.0.0/16", "5.34.0.0/20", "37.150.0.0/16"])
        after = _kz_region_counts(geo, ["2.132.0.0/16", "5.34.0.0/20"])
        assert regions == {code: [float(before[code]), float(after[code])] for code in before}
        assert regions["KZ-79"] == [1.0, 0.0]  # only in the withdrawn /16: a measured zero
        # regions came from one interval table built from the mmdb, not per-/24 queries
        assert geo._region_reader is not None and geo._region_reader.lookups == 1


def test_no_region_series_without_a_region_mmdb(tmp_path: Path) -> None:
    from netvigil.geo.refdata import load_shipped_kz_asn, load_shipped_snapshots

    geo = GeoLookup(load_shipped_snapshots(), [load_shipped_kz_asn()], mmdb_path=None)
    files = _write_kz_archive(tmp_path / "archive")
    with Store(tmp_path / "s.duckdb") as store:
        ing = BgpIngester(Pipeline(store, geo), CFG)
        ing.run(discover(files, None, None))
        assert _region_rows(store) == {}
        assert geo._region_reader is None
        kz = store.read_series(make_ref("country", "KZ"), "bgp", T0, T0 + 600)
        assert [float(v) for v in kz.values] == [528.0, 272.0]


V6_ORIGIN = {"2a00:12f8::/40": 9198, "2001:4220::/44": 8452, "2001:678::/36": 25152}
V6_CFG = VisibilityConfig(ff_v4=2, ff_v6=1)


def _mp_unreach(ts: int, peer_ip: str, peer_as: int, prefix: str) -> bytes:
    """A BGP4MP_MESSAGE_AS4 UPDATE withdrawing one IPv6 prefix (MP_UNREACH_NLRI, RFC 4760)."""
    import struct

    from netvigil.testing.mrt_encode import _attr, _ip, _nlri, record

    attrs = _attr(15, struct.pack("!HB", 2, 1) + _nlri([prefix]), 0x80)
    upd = struct.pack("!H", 0) + struct.pack("!H", len(attrs)) + attrs
    msg = b"\xff" * 16 + struct.pack("!HB", 19 + len(upd), 2) + upd
    body = struct.pack("!IIHH", peer_as, 12654, 0, 1) + _ip(peer_ip) + _ip("192.0.2.1") + msg
    return record(ts, 16, 4, body)


def _v6_brute(prefixes: list[str], when: int) -> Counter[str]:
    """/48s per country: every /48 of the prefixes looked up one at a time (scalar API)."""
    geo = GeoLookup.default()
    keys: set[int] = set()
    for pfx in prefixes:
        n = ipaddress.ip_network(pfx)
        first = int(n.network_address) >> 80
        keys.update(range(first, first + (1 << (48 - n.prefixlen))))
    out: Counter[str] = Counter()
    for k in keys:
        cc = geo.country(str(ipaddress.IPv6Address(k << 80)), when)
        if cc:
            out[cc] += 1
    return out


def test_ipv6_country_series_match_a_brute_force_count(tmp_path: Path, geo: GeoLookup) -> None:
    import gzip

    root = tmp_path / "archive" / "rrc00"
    root.mkdir(parents=True)
    routes = {pfx: [(p, [PEERS[p][1], 3356, o]) for p in range(3)]
              for pfx, o in V6_ORIGIN.items()}
    rib = write_rib(root / "bview.20220105.0000.gz", T0, "192.0.2.255", PEERS, routes)
    upd = root / "updates.20220105.0005.gz"
    upd.write_bytes(gzip.compress(b"".join(
        _mp_unreach(T0 + 400, PEERS[p][0], PEERS[p][1], "2001:4220::/44") for p in range(3))))
    with Store(tmp_path / "s.duckdb") as store:
        rep = BgpIngester(Pipeline(store, geo), V6_CFG).run(discover([rib, upd], None, None))
        assert rep.bins == 2 and not rep.problems
        before = _v6_brute(list(V6_ORIGIN), T0)
        after = _v6_brute(["2a00:12f8::/40", "2001:678::/36"], T0 + 300)
        assert before["EG"] == 16 and before["KZ"] == 257 and "EG" not in after
        rows = store.connection.execute(
            "SELECT entity_code, time, value FROM points WHERE entity_type = 'country' "
            "AND signal = 'bgp-v6' ORDER BY entity_code, time").fetchall()
        got: dict[str, list[float]] = {}
        for code, _t, v in rows:
            got.setdefault(str(code), []).append(float(v))
        assert got == {cc: [float(before[cc]), float(after[cc])] for cc in before}
        assert got["EG"] == [16.0, 0.0]  # withdrawn: a measured zero, not a gap
        assert got["KZ"] == [257.0, 257.0]
