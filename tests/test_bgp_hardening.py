"""Issue 12 regressions for the BGP sources: hostile RIS Live messages, far-off times in live
and archive ingest, a corrupt PEER_INDEX_TABLE on the RIB fast path, and TABLE_DUMP v1 prefix
lengths. Each test is named for the defect it pins (defects 2, 3, 4, 5, 8)."""

from __future__ import annotations

import gzip
import json
import struct
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from netvigil.geo import GeoLookup
from netvigil.pipeline import Pipeline
from netvigil.sources.bgp import fastrib
from netvigil.sources.bgp.ingest import MAX_FILL_BINS, BgpIngester, discover
from netvigil.sources.bgp.mrt import ErrorPolicy, MrtError, MrtReader
from netvigil.sources.bgp.rislive import (
    LiveIngester,
    LiveStats,
    RisLiveClient,
    RisLiveError,
    elems_from_data,
)
from netvigil.sources.bgp.visibility import VisibilityConfig
from netvigil.store.duck import Store
from netvigil.testing.mrt_encode import (
    bgp4mp_update,
    path_attributes,
    peer_index_table,
    record,
    rib_record,
    write_rib,
)

T0 = 1_641_340_800  # 2022-01-05 00:00 UTC
PEERS = [("10.0.0.1", 65001), ("10.0.0.2", 65002)]
CFG = VisibilityConfig(ff_v4=0)


def _msg(data: dict[str, Any]) -> str:
    base: dict[str, Any] = {"timestamp": T0 + 1.0, "peer": "10.0.0.1", "peer_asn": "65001",
                            "host": "rrc00", "type": "UPDATE", "path": [65001, 3356],
                            "origin": "igp"}
    base.update(data)
    return json.dumps({"type": "ris_message", "data": base})


GOOD = _msg({"id": "good", "announcements": [{"next_hop": "10.0.0.1",
                                              "prefixes": ["41.32.0.0/16"]}]})
HOSTILE = [
    _msg({"id": "a1", "announcements": "x"}),
    _msg({"id": "a2", "announcements": [5]}),
    _msg({"id": "a3", "announcements": [{"next_hop": "10.0.0.1", "prefixes": 5}]}),
    _msg({"id": "a4", "withdrawals": "41.32.0.0/16"}),
    _msg({"id": "a5", "med": 1e400, "announcements": [{"next_hop": "10.0.0.1",
                                                        "prefixes": ["41.32.0.0/16"]}]}),
    _msg({"id": "t1", "timestamp": "inf"}),
    _msg({"id": "t2", "timestamp": "nan"}),
    _msg({"id": "t3"}).replace(f"{T0 + 1.0}", "1e400"),  # JSON number → float('inf')
    _msg({"id": "t4", "timestamp": "9" * 400}),
    _msg({"id": "t5"}).replace(f"{T0 + 1.0}", "9" * 400),  # a JSON int too big for a float
    '{"type": "ris_message", "data": ' + "[" * 200_000 + "]" * 200_000 + "}",
    "[" * 200_000,
]


# ------------------------------------------------------------------ defect 2
def test_defect2_rislive_bad_announcements_are_skipped() -> None:
    client = RisLiveClient(policy=ErrorPolicy.SKIP)
    for text in HOSTILE:
        assert client.handle(text) == []
    assert client.stats.malformed == len(HOSTILE)
    assert client.stats.duplicates == 0 and client.stats.messages == 0
    assert len(client.handle(GOOD)) == 1  # still working after all of them
    assert client.stats.messages == 1


@pytest.mark.parametrize("text", HOSTILE)
def test_defect2_rislive_fail_policy_raises_its_own_error(text: str) -> None:
    client = RisLiveClient(policy=ErrorPolicy.FAIL)
    with pytest.raises(RisLiveError, match="RIS Live message 1"):
        client.handle(text)


def test_defect2_malformed_older_message_is_malformed_not_a_duplicate() -> None:
    client = RisLiveClient()
    assert len(client.handle(GOOD)) == 1
    older = _msg({"id": "old", "timestamp": T0 - 100.0, "announcements": [5]})
    assert client.handle(older) == []
    assert (client.stats.malformed, client.stats.duplicates) == (1, 0)
    assert client.handle(older) == []  # the very same message replayed: not recounted
    assert (client.stats.malformed, client.stats.duplicates) == (1, 1)


def _serve(lines: list[str], args: list[str], tmp_path: Path) -> Any:
    from websockets.sync.server import ServerConnection, serve

    from netvigil.cli.bgp_cmd import bgp

    def handler(ws: ServerConnection) -> None:
        ws.recv(timeout=30)
        ws.recv(timeout=30)
        for line in lines:
            ws.send(line)
        try:
            ws.recv(timeout=5)
        except Exception:  # noqa: BLE001 - the client leaving ends the handler
            pass

    with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        port = server.socket.getsockname()[1]
        res = CliRunner().invoke(bgp, ["live", "--url", f"ws://127.0.0.1:{port}", "--host",
                                       "rrc00", "--ff-v4", "0", "--store",
                                       str(tmp_path / "s.duckdb"), *args])
        server.shutdown()
        t.join(2)
    return res


def test_defect2_cli_live_survives_hostile_messages_under_skip(tmp_path: Path) -> None:
    res = _serve([*HOSTILE, GOOD], ["--duration", "2", "--on-error", "skip"], tmp_path)
    assert res.exit_code == 0, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert f"malformed {len(HOSTILE)}" in res.output and "messages 1" in res.output


def test_defect2_cli_live_fail_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    res = _serve([GOOD, HOSTILE[0]], ["--duration", "5", "--on-error", "fail"], tmp_path)
    assert res.exit_code not in (0, None)
    assert isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    assert "error:" in res.output and "RIS Live message 2" in res.output


# ------------------------------------------------------------------ defect 3
@pytest.mark.parametrize("ts", [32_503_680_000.0, 1e17])  # year 3000; 1e17 s
def test_defect3_far_future_timestamp_is_malformed(ts: float) -> None:
    client = RisLiveClient()
    assert client.handle(_msg({"id": "f", "timestamp": ts, "announcements": [
        {"next_hop": "10.0.0.1", "prefixes": ["41.32.0.0/16"]}]})) == []
    assert client.stats.malformed == 1 and client.cursor.last_us is None
    assert len(client.handle(GOOD)) == 1  # the cursor was not pushed into the future
    with pytest.raises(RisLiveError, match="ahead of the wall clock"):
        RisLiveClient(policy=ErrorPolicy.FAIL).handle(_msg({"timestamp": ts}))


def _elem(ts: float, prefix: str = "41.32.0.0/16") -> Any:
    (e,) = elems_from_data({"timestamp": ts, "peer": "10.0.0.1", "peer_asn": "65001",
                            "type": "UPDATE", "path": [65001, 3356], "origin": "igp",
                            "announcements": [{"next_hop": "10.0.0.1", "prefixes": [prefix]}]})
    return e


def test_defect3_live_ingester_jumps_a_long_gap_as_one_missing_span(tmp_path: Path) -> None:
    later = T0 + 30 * 86400 + 7  # a month of silence, e.g. a stream resumed after an outage
    with Store(tmp_path / "s.duckdb") as store:
        live = LiveIngester(Pipeline(store, GeoLookup.default()), config=CFG,
                            stats=LiveStats())
        live.feed("rrc00", _elem(T0 + 10))
        live.feed("rrc00", _elem(T0 + 400, "41.33.0.0/16"))  # next bin: filled normally
        live.feed("rrc00", _elem(later, "41.34.0.0/16"))
        assert live.report.bins == 2  # T0 and T0+300, not 8,640 bins of unchanged state
        assert live.bin_start == later // 300 * 300
        live.close()
        assert live.report.bins == 3
        health = json.loads(store.get_state("bgp:health:rrc00") or "[]")
    assert health == [[T0 + 600, later // 300 * 300]]


def test_defect3_short_gap_still_carries_the_state_forward(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        live = LiveIngester(Pipeline(store, GeoLookup.default()), config=CFG)
        live.feed("rrc00", _elem(T0 + 10))
        live.feed("rrc00", _elem(T0 + MAX_FILL_BINS * 300 + 10))
        assert live.report.bins == MAX_FILL_BINS  # every bin up to the hour, bin by bin


# ------------------------------------------------------------------ defect 4
ROUTES = {"41.32.0.0/16": [(0, [65001, 3356, 8452]), (1, [65002, 3356, 8452])],
          "41.33.0.0/16": [(0, [65001, 3356, 8452]), (1, [65002, 3356, 8452])]}


def _archive(root: Path, update_name: str, records: bytes) -> list[Path]:
    (root / "rrc00").mkdir(parents=True)
    rib = write_rib(root / "rrc00" / "bview.20220105.0000.gz", T0, "192.0.2.255", PEERS, ROUTES)
    upd = root / "rrc00" / update_name
    upd.write_bytes(gzip.compress(records))
    return [rib, upd]


def _ingest(files: list[Path], store_path: Path, policy: ErrorPolicy) -> Any:
    with Store(store_path) as store:
        ing = BgpIngester(Pipeline(store, GeoLookup.default()), config=CFG, policy=policy)
        return ing.run(discover(files, None, None)), store_path


def test_defect4_record_far_from_its_file_time_is_a_corrupt_record(tmp_path: Path) -> None:
    good = bgp4mp_update(T0 + 30, *PEERS[0], withdraw=["41.33.0.0/16"])
    bad = bgp4mp_update(0xFFFFFFF0, *PEERS[1], withdraw=["41.32.0.0/16"])
    files = _archive(tmp_path / "a", "updates.20220105.0000.gz", good + bad + good)
    rep, store_path = _ingest(files, tmp_path / "s.duckdb", ErrorPolicy.SKIP)
    assert rep.bins == 1 and not rep.silent  # not 11 million bins up to 2106
    assert len(rep.problems) == 1 and f"byte {len(good)}" in rep.problems[0]
    assert "outside the file's time window" in rep.problems[0]
    with pytest.raises(MrtError, match=f"byte offset {len(good)}"):
        _ingest(_archive(tmp_path / "b", "updates.20220105.0000.gz", good + bad),
                tmp_path / "t.duckdb", ErrorPolicy.FAIL)


def test_defect4_files_years_apart_jump_as_one_missing_span(tmp_path: Path) -> None:
    later = T0 + 2 * 365 * 86400  # 2024-01-05 00:00
    files = _archive(tmp_path, "updates.20240105.0000.gz",
                     bgp4mp_update(later + 30, *PEERS[0], withdraw=["41.33.0.0/16"]))
    rep, store_path = _ingest(files, tmp_path / "s.duckdb", ErrorPolicy.SKIP)
    assert rep.bins == 2 and not rep.problems  # the RIB's bin and the update's bin
    assert rep.silent == {"rrc00": [[T0 + 300, later]]}
    with Store(store_path) as store:
        assert json.loads(store.get_state("bgp:health:rrc00") or "[]") == [[T0 + 300, later]]


# ------------------------------------------------------------------ defect 5
def _short_peer_table_rib(path: Path) -> Path:
    """A RIB whose PEER_INDEX_TABLE announces two peers but holds one and a half."""
    table = peer_index_table("192.0.2.255", PEERS)
    short = table[:-5]
    attrs = path_attributes([65001, 8452], next_hop="10.0.0.1")
    sub, body = rib_record(0, "41.32.0.0/16", [(0, T0, attrs)])
    path.write_bytes(gzip.compress(record(T0, 13, 1, short) + record(T0, 13, sub, body)))
    return path


@pytest.mark.parametrize("min_work", [0, 1 << 62])  # compiled scan (when numba is there), numpy
def test_defect5_short_peer_index_table_follows_the_policy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, min_work: int) -> None:
    monkeypatch.setattr(fastrib, "NUMBA_MIN_WORK", min_work)
    rib = _short_peer_table_rib(tmp_path / "bview.20220105.0000.gz")
    cols = fastrib.read_rib_columns(rib, ErrorPolicy.SKIP)
    assert len(cols) == 0 and cols.stats.skipped == 2  # the table, then its orphan RIB entry
    assert cols.stats.problems[0][0] == 0 and "PEER_INDEX_TABLE" in cols.stats.problems[0][2]
    with pytest.raises(MrtError, match=r"bview\.20220105\.0000\.gz: byte offset 0"):
        fastrib.read_rib_columns(rib, ErrorPolicy.FAIL)


@pytest.mark.parametrize("command", ["visibility", "ingest"])
def test_defect5_cli_short_peer_index_table_is_one_line(tmp_path: Path, command: str) -> None:
    from netvigil.cli.bgp_cmd import bgp

    rib = _short_peer_table_rib(tmp_path / "bview.20220105.0000.gz")
    extra = ["--store", str(tmp_path / "s.duckdb")] if command == "ingest" else []
    fail = CliRunner().invoke(bgp, [command, str(rib), "--on-error", "fail", *extra])
    assert isinstance(fail.exception, SystemExit) and fail.exit_code != 0, fail.exception
    assert "Traceback" not in fail.output
    assert "bview.20220105.0000.gz: byte offset 0" in fail.output
    assert "s.duckdb" not in fail.output  # the archive is named, not the store
    skip = CliRunner().invoke(bgp, [command, str(rib), "--on-error", "skip", *extra])
    assert skip.exception is None or isinstance(skip.exception, SystemExit), skip.exception
    assert "skipped 2" in skip.output or "2 skipped" in skip.output


# ------------------------------------------------------------------ defect 8
def _table_dump_v1(addr: str, plen: int, ts: int = T0) -> bytes:
    import ipaddress

    raw = ipaddress.ip_address(addr).packed
    v6 = len(raw) == 16
    attrs = path_attributes([65001, 8452], next_hop=None if v6 else "10.0.0.1", asn_len=2)
    body = (struct.pack("!HH", 0, 1) + raw + struct.pack("!BBI", plen, 1, ts)
            + ipaddress.ip_address("10.0.0.1" if not v6 else "2001:db8::1").packed
            + struct.pack("!HH", 65001, len(attrs)) + attrs)
    return record(ts, 12, 2 if v6 else 1, body)


def test_defect8_table_dump_prefix_length_beyond_the_family_is_corrupt() -> None:
    raw = (_table_dump_v1("10.1.2.3", 255) + _table_dump_v1("10.1.2.0", 24)
           + _table_dump_v1("2001:db8::", 129) + _table_dump_v1("2001:db8::", 32))
    reader = MrtReader(raw, ErrorPolicy.SKIP)
    got = [str(e.nlri) for e in reader]
    assert got == ["10.1.2.0/24", "2001:db8::/32"]
    assert reader.stats.skipped == 2
    assert [p[0] for p in reader.stats.problems] == [0, 2 * len(_table_dump_v1("10.1.2.0", 24))]
    with pytest.raises(MrtError, match="byte offset 0: .*prefix length 255"):
        list(MrtReader(raw, ErrorPolicy.FAIL))


def test_defect8_table_dump_host_bits_are_cleared() -> None:
    raw = (_table_dump_v1("41.12.3.194", 0) + _table_dump_v1("41.12.3.194", 22)
           + _table_dump_v1("2001:db8::ffff", 120) + _table_dump_v1("10.1.2.3", 32))
    got = [str(e.nlri) for e in MrtReader(raw, ErrorPolicy.FAIL)]
    assert got == ["0.0.0.0/0", "41.12.0.0/22", "2001:db8::ff00/120", "10.1.2.3/32"]

