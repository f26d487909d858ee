"""The compiled update reader against the full decoder, element by element.

Differential: every MRT fixture but the RIB dumps (real RIS and RouteViews update files of
2000-2016, bird and quagga dumps; tests/fixtures/mrt/README.md) and copies of five of them
with random bytes of their records' bodies changed (framing kept, so each damaged record
reaches a decoder), read both ways: the rows the routing state applies, their peers and
the read's counts and problems must be equal. Then the routing state: rows applied a bin
at a time equal the elements applied one at a time, and ``merge_order`` equals
``heapq.merge``.
"""

from __future__ import annotations

import gzip
import heapq
import random
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from netvigil.sources.bgp import fastrib, fastupdates
from netvigil.sources.bgp.fastrib import compiled
from netvigil.sources.bgp.fastupdates import UpdateColumns, columns_of, read_update_columns
from netvigil.sources.bgp.ingest import RECORD_SLACK, BgpIngester, discover, merge_order
from netvigil.sources.bgp.mrt.errors import ErrorPolicy
from netvigil.sources.bgp.mrt.io import open_mrt
from netvigil.sources.bgp.mrt.reader import MrtReader
from netvigil.sources.bgp.visibility import RoutingState, VisibilityConfig
from netvigil.testing.mrt_encode import bgp4mp_update, record, state_change

MRT = Path(__file__).parent / "fixtures" / "mrt"
#: every MRT fixture but the RIB dumps (the ingester reads those with fastrib)
FILES = sorted(p for p in MRT.iterdir() if p.is_file() and p.suffix not in (".py", ".md", ".json")
               and not p.name.startswith(("bview", "rib.", "openbgpd_rib", "bird6-mrtdump_rib")))



def test_the_compiled_loop_is_available() -> None:
    """numba is a dependency: without it every test here would compare the full reader
    with itself (read_update_columns returns None)."""
    assert compiled(fastupdates._scan_updates_py, None) is not None


def _full(path: Path, window: tuple[int, int] | None = None
          ) -> tuple[UpdateColumns, tuple[int, ...], list[tuple[int, str, str]]]:
    reader = MrtReader(path, ErrorPolicy.SKIP, time_window=window)
    cols = columns_of(reader)
    s = reader.stats
    return cols, (s.records, s.elements, s.skipped, s.truncated, s.unsupported), s.problems


def _rows(c: UpdateColumns) -> list[tuple[int, ...]]:
    peer = [c.peers[i] for i in c.peer.tolist()]
    return list(zip(c.time.tolist(), c.kind.tolist(), c.afi.tolist(), c.net.tolist(),
                    c.plen.tolist(), c.origin.tolist(), peer, strict=True))


def _same(path: Path, window: tuple[int, int] | None = None) -> int:
    """Both readers agree on ``path``; returns the records the compiled loop decoded
    (0 when the whole file went to the full reader)."""
    handed = []
    orig = MrtReader.read_record

    def spy(self: MrtReader, rec: object) -> object:
        handed.append(rec)
        return orig(self, rec)  # type: ignore[arg-type]

    MrtReader.read_record = spy  # type: ignore[assignment,method-assign]
    try:
        got = read_update_columns(path, ErrorPolicy.SKIP, window, work=1 << 40)
    finally:
        MrtReader.read_record = orig  # type: ignore[method-assign]
    if got is None:
        return 0  # the caller reads it with the full reader itself
    full, counts, problems = _full(path, window)
    cols, stats = got
    assert _rows(cols) == _rows(full), path.name
    assert (stats.records, stats.elements, stats.skipped, stats.truncated,
            stats.unsupported) == counts, path.name
    assert stats.problems == problems, path.name
    return stats.records - len(handed)


def test_every_fixture_reads_the_same_rows_both_ways() -> None:
    compiled_records = {p.name: _same(p) for p in FILES}
    # the loop did the work on the update files (not everything handed over)
    for name in ("updates.20020722.2238.gz", "updates.20100722.2015.gz",
                 "updates.20160811.1600.first1500.gz", "ris.rrc06.updates.1427846400.gz"):
        assert compiled_records[name] > 100, (name, compiled_records[name])


def test_a_time_window_hands_its_outliers_to_the_full_reader() -> None:
    path = MRT / "updates.20160811.1600.first1500.gz"
    times = [r.timestamp for r in MrtReader(path).records()]
    mid = sorted(times)[len(times) // 2]
    assert _same(path, (mid, mid + 3600)) > 0
    full, counts, _ = _full(path, (mid, mid + 3600))
    assert counts[2] > 0  # records before the window are skipped as corrupt, both ways


def _mutants(src: Path, tmp: Path, n: int, seed: int) -> list[Path]:
    """Copies of ``src`` with a few body bytes of random records changed (headers kept)."""
    with open_mrt(src) as s:
        chunks = []
        while c := s.read(1 << 20):
            chunks.append(c)
    data = bytearray(b"".join(chunks))
    spans = []
    pos = 0
    while pos + 12 <= len(data):
        length = struct.unpack_from("!I", data, pos + 8)[0]
        if pos + 12 + length > len(data):
            break
        if length > 0:
            spans.append((pos + 12, length))
        pos += 12 + length
    rng = random.Random(seed)
    out = []
    for k in range(n):
        d = bytearray(data)
        for _ in range(rng.choice((1, 3, 10))):
            start, length = rng.choice(spans)
            i = start + rng.randrange(length)
            d[i] = rng.randrange(256) if rng.random() < 0.7 else d[i] ^ (1 << rng.randrange(8))
        p = tmp / f"m{k}.mrt"
        p.write_bytes(bytes(d))
        out.append(p)
    return out


@pytest.mark.parametrize("name", ["updates.20160811.1600.first1500.gz",
                                  "updates.20100722.2015.gz", "bird-mrtdump_bgp",
                                  "rrc01_2000.11_updates.20001104.0124.gz", "quagga_bgp"])
def test_damaged_records_read_the_same_both_ways(tmp_path: Path, name: str) -> None:
    decoded = sum(_same(p) for p in _mutants(MRT / name, tmp_path, 40, seed=len(name)))
    assert decoded > 0


def test_synthetic_shapes_read_the_same_both_ways(tmp_path: Path) -> None:
    """What the fixtures hold little of: IPv6 MP_REACH/MP_UNREACH, AS_SET origins,
    sessions going down and up, non-UPDATE messages, an AS2 message with AS4_PATH."""
    t = 1_700_000_000
    recs = [
        bgp4mp_update(t, "10.0.0.1", 64500, announce=["1.2.3.0/24", "5.6.0.0/16"],
                      as_path=[64500, 174, 3356]),
        state_change(t + 1, "10.0.0.1", 64500, 6, 1),
        state_change(t + 2, "10.0.0.1", 64500, 1, 6),
        bgp4mp_update(t + 3, "10.0.0.2", 4_200_000_000, withdraw=["1.2.3.0/24"]),
        _v6_update(t + 4, announce=("2001:db8::", 32), withdraw=("2001:db8:1::", 48)),
        _as_set_update(t + 5),
        _keepalive(t + 6),
        _as2_with_as4_path(t + 7),
        _as_set_update(t + 8, seg_type=4),
    ]
    path = tmp_path / "updates.20231114.2213.gz"
    path.write_bytes(gzip.compress(b"".join(recs)))
    assert _same(path) == 8  # all but the AS4_PATH merge
    cols, _ = read_update_columns(path, ErrorPolicy.SKIP, None, work=1 << 40) or (None, None)
    assert cols is not None
    rows = _rows(cols)
    for ts in (t + 5, t + 8):  # max of {65010, 65001}, not the last listed
        assert (ts, 1, 1, 0x0B000000, 8, 65010, ("10.0.0.3", 64502)) in rows
    assert [r[1] for r in rows if r[0] in (t + 1, t + 2)] == [3, 2]  # down, then up


def _v6_update(ts: int, announce: tuple[str, int], withdraw: tuple[str, int]) -> bytes:
    import ipaddress

    def nlri(net: str, plen: int) -> bytes:
        raw = ipaddress.IPv6Address(net).packed[: (plen + 7) // 8]
        return bytes([plen]) + raw

    reach = struct.pack("!HBB", 2, 1, 16) + ipaddress.IPv6Address("2001:db8::1").packed \
        + b"\0" + nlri(*announce)
    unreach = struct.pack("!HB", 2, 1) + nlri(*withdraw)
    path = struct.pack("!BB", 2, 2) + struct.pack("!II", 64501, 13335)
    attrs = (struct.pack("!BBB", 0x40, 1, 1) + b"\0"
             + struct.pack("!BBB", 0x40, 2, len(path)) + path
             + struct.pack("!BBB", 0x80, 14, len(reach)) + reach
             + struct.pack("!BBB", 0x80, 15, len(unreach)) + unreach)
    upd = struct.pack("!H", 0) + struct.pack("!H", len(attrs)) + attrs
    msg = b"\xff" * 16 + struct.pack("!HB", 19 + len(upd), 2) + upd
    peer = ipaddress.IPv6Address("2001:db8::2").packed
    body = struct.pack("!IIHH", 64501, 12654, 0, 2) + peer + peer + msg
    return record(ts, 16, 4, body)


def _as_set_update(ts: int, seg_type: int = 1) -> bytes:
    """AS_SET (1) or AS_CONFED_SET (4) last: the origin is the set's largest member."""
    path = struct.pack("!BB", 2, 1) + struct.pack("!I", 64502) \
        + struct.pack("!BB", seg_type, 2) + struct.pack("!II", 65010, 65001)
    attrs = (struct.pack("!BBB", 0x40, 1, 1) + b"\0"
             + struct.pack("!BBB", 0x40, 2, len(path)) + path
             + struct.pack("!BBB", 0x40, 3, 4) + bytes([10, 0, 0, 3]))
    upd = struct.pack("!H", 0) + struct.pack("!H", len(attrs)) + attrs + bytes([8, 11])
    msg = b"\xff" * 16 + struct.pack("!HB", 19 + len(upd), 2) + upd
    body = struct.pack("!IIHH", 64502, 12654, 0, 1) + bytes([10, 0, 0, 3, 192, 0, 2, 1]) + msg
    return record(ts, 16, 4, body)


def _keepalive(ts: int) -> bytes:
    msg = b"\xff" * 16 + struct.pack("!HB", 19, 4)
    body = struct.pack("!IIHH", 64502, 12654, 0, 1) + bytes([10, 0, 0, 3, 192, 0, 2, 1]) + msg
    return record(ts, 16, 4, body)


def _as2_with_as4_path(ts: int) -> bytes:
    path = struct.pack("!BB", 2, 2) + struct.pack("!HH", 64503, 23456)
    as4 = struct.pack("!BB", 2, 1) + struct.pack("!I", 4_200_000_001)
    attrs = (struct.pack("!BBB", 0x40, 1, 1) + b"\0"
             + struct.pack("!BBB", 0x40, 2, len(path)) + path
             + struct.pack("!BBB", 0x40, 3, 4) + bytes([10, 0, 0, 4])
             + struct.pack("!BBB", 0xC0, 17, len(as4)) + as4)
    upd = struct.pack("!H", 0) + struct.pack("!H", len(attrs)) + attrs + bytes([16, 12, 1])
    msg = b"\xff" * 16 + struct.pack("!HB", 19 + len(upd), 2) + upd
    body = struct.pack("!HHHH", 64503, 12654, 0, 1) + bytes([10, 0, 0, 4, 192, 0, 2, 1]) + msg
    return record(ts, 16, 1, body)


def test_rows_applied_a_bin_at_a_time_equal_elements_one_at_a_time() -> None:
    cfg = VisibilityConfig()
    files = [MRT / "updates.20020722.2238.gz", MRT / "updates.20100722.2015.gz",
             MRT / "updates.20160811.1600.first1500.gz"]
    for path in files:
        one, batch = RoutingState(cfg), RoutingState(cfg)
        for e in MrtReader(path):
            one.apply("rrc00", e)
        cols, _ = read_update_columns(path, ErrorPolicy.SKIP, None, work=1 << 40) or (None, None)
        assert cols is not None
        gid = np.asarray([batch.peer_id("rrc00", *p) for p in cols.peers], np.int64)[cols.peer]
        half = len(cols) // 2
        for lo, hi in ((0, half), (half, len(cols))):
            batch.apply_columns(gid[lo:hi], cols.kind[lo:hi], cols.afi[lo:hi],
                                cols.net[lo:hi], cols.plen[lo:hi], cols.origin[lo:hi])
        assert one.peers == batch.peers
        assert _overlay(one) == _overlay(batch) and one._down == batch._down, path.name
        assert len(_overlay(one)[0]) > 100


def _overlay(state: RoutingState) -> tuple[list[int], list[int]]:
    state._fold()
    return state._ov_key.tolist(), state._ov_org.tolist()


def test_merge_order_is_heapq_merge() -> None:
    rng = random.Random(5)
    for trial in range(200):
        streams = [np.asarray(sorted(rng.choices(range(20), k=rng.randrange(8)))
                              if trial % 2 else rng.choices(range(20), k=rng.randrange(8)),
                              np.int64) for _ in range(rng.randrange(1, 5))]
        tagged = [[(int(t), (s, i)) for i, t in enumerate(st)] for s, st in enumerate(streams)]
        want = [tag for _, tag in heapq.merge(*tagged, key=lambda x: x[0])]
        flat = [(s, i) for s, st in enumerate(streams) for i in range(len(st))]
        assert [flat[k] for k in merge_order(streams).tolist()] == want


class _OneAtATime(BgpIngester):
    """The ingester as it was before columns: the files' elements merged by
    ``heapq.merge``, each rolled into its bin and applied on its own (the oracle)."""

    def _apply_group(self, group, bin_start, last, active, collectors, rep):  # type: ignore[no-untyped-def]
        def elems(f):  # type: ignore[no-untyped-def]
            window = (f.time - RECORD_SLACK, f.time + RECORD_SLACK)
            reader = MrtReader(f.path, self.policy, time_window=window)
            for e in reader:
                yield e.timestamp, f.collector, e

        for ts, coll, e in heapq.merge(*(elems(g) for g in group), key=lambda x: x[0]):
            if bin_start is None:
                bin_start = ts // self.config.step * self.config.step
            bin_start, last, active = self._roll(bin_start, ts, last, active, collectors, rep)
            self.state.apply(coll, e)
            active[coll] = 1
            last = None
            rep.elements += 1
        return bin_start, last, active


def _archive(root: Path) -> None:
    """Two collectors, RIBs, then updates: records out of time order within a file, a
    session down and up, IPv6, a 3-hour gap (more than the bins carried forward)."""
    from netvigil.testing.mrt_encode import synthetic_rib

    t0 = 1_641_340_800
    rng = random.Random(3)
    for coll, seed in (("rrc00", 1), ("rrc01", 2)):
        d = root / coll
        d.mkdir(parents=True)
        synthetic_rib(d / "bview.20220105.0000.gz", n_prefixes=3000, n_peers=4, ts=t0,
                      seed=seed)
        for f in (0, 1, 2, 40, 41):  # 00:00-00:15, then 03:20-03:30
            t = t0 + 300 * f
            recs = []
            for k in range(400):
                ts = t + rng.randrange(300) if k % 7 else t + 299 - k % 300
                p = rng.randrange(4)
                ip, asn = f"10.0.{p}.1", 64_500 + p
                pfx = f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.0/24"
                if k % 97 == 5:
                    recs.append(state_change(ts, ip, asn, 6, 1))
                elif k % 97 == 6:
                    recs.append(state_change(ts, ip, asn, 1, 6))
                elif k % 11 == 0:
                    recs.append(_v6_update(ts, announce=(f"2001:db8:{k:x}::", 40),
                                           withdraw=(f"2001:db8:{k + 1:x}::", 48)))
                elif rng.random() < 0.4:
                    recs.append(bgp4mp_update(ts, ip, asn, withdraw=[pfx]))
                else:
                    recs.append(bgp4mp_update(ts, ip, asn, announce=[pfx],
                                              as_path=[asn, 174, rng.randrange(1000, 60_000)]))
            stamp = time.strftime("%Y%m%d.%H%M", time.gmtime(t))
            (d / f"updates.{stamp}.gz").write_bytes(gzip.compress(b"".join(recs)))


def test_ingest_by_columns_equals_the_element_at_a_time_ingest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netvigil.geo import GeoLookup
    from netvigil.pipeline import Pipeline
    from netvigil.store.duck import Store

    _archive(tmp_path / "a")
    files = discover([], tmp_path / "a", None)
    monkeypatch.setattr(fastrib, "NUMBA_MIN_WORK", 0)  # the compiled loop even for small files
    out = {}
    geo = GeoLookup.default()
    for name, cls in (("columns", BgpIngester), ("oracle", _OneAtATime)):
        with Store(tmp_path / f"{name}.duckdb") as store:
            rep = cls(Pipeline(store, geo), VisibilityConfig(ff_v4=100)).run(files)
            out[name] = (store.connection.execute(
                "SELECT entity_type, entity_code, signal, time, value FROM points ORDER BY ALL"
            ).fetchall(), store.get_state("bgp:health:rrc01"), rep.elements, rep.bins,
                rep.problems)
    assert out["columns"] == out["oracle"]
    points = out["columns"][0]
    assert len({p[3] for p in points}) >= 3 and len(points) > 5000  # updates moved counts
