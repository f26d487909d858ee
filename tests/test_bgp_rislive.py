"""RIS Live client against a local websocket server (loopback only): subscribe, translate,
drop mid-stream, reconnect, resume without double counting, and feed the engine exactly as the
same updates read from an MRT file."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from netvigil.geo import GeoLookup
from netvigil.pipeline import Pipeline
from netvigil.sources.bgp.ingest import BgpIngester, classify
from netvigil.sources.bgp.mrt import ErrorPolicy, MrtReader
from netvigil.sources.bgp.mrt.attributes import AS_SET, format_ip
from netvigil.sources.bgp.mrt.bgp4mp import decode as decode_bgp4mp
from netvigil.sources.bgp.mrt.records import HEADER
from netvigil.sources.bgp.rislive import (
    HEALTH_KEY,
    Backoff,
    LiveIngester,
    LiveStats,
    RisLiveClient,
    RisLiveError,
    RisLiveParams,
    elem_key,
    elems_from_data,
    elems_from_raw,
)
from netvigil.sources.bgp.visibility import RoutingState, VisibilityConfig
from netvigil.store.duck import Store
from netvigil.testing.mrt_encode import state_change

FIX = Path(__file__).parent / "fixtures" / "mrt"
LIVE = FIX / "ris-live-stream.json"
RRC06 = FIX / "ris.rrc06.updates.1427846400.gz"
T0 = 1_427_846_400  # 2015-04-01 00:00 UTC, the rrc06 file's bin
CFG = VisibilityConfig(ff_v4=0, ff_v6=0)  # fixtures are tiny: every peer is "full feed"
FAST = Backoff(base=0.05, cap=0.2)


class ReplayServer:
    """A RIS Live stand-in: checks the subscriptions, replays ``lines``, drops the first
    connection (TCP abort, no close frame) after ``drop_after`` lines and, on the next one,
    replays from ``resume_from`` (an overlap with what was already sent)."""

    def __init__(self, lines: Sequence[str], drop_after: int, resume_from: int,
                 host: str | None) -> None:
        self.lines = list(lines)
        self.drop_after = drop_after
        self.resume_from = resume_from
        self.host = host
        self.subs: list[list[dict[str, Any]]] = []
        self.errors: list[str] = []

    async def handler(self, ws: ServerConnection) -> None:
        n = len(self.subs)
        subs = [json.loads(await asyncio.wait_for(ws.recv(), 2)) for _ in range(2)]
        self.subs.append(subs)
        kinds = sorted(s["data"]["type"] for s in subs)
        if (any(s["type"] != "ris_subscribe" for s in subs) or kinds != ["RIS_PEER_STATE", "UPDATE"]
                or any(s["data"].get("host") != self.host for s in subs)):
            self.errors.append(f"bad subscription {subs}")
            await ws.close(1008, "bad subscription")
            return
        await ws.send(json.dumps({"type": "ris_subscribe_ok", "data": subs[0]["data"]}))
        if n == 0:
            for line in self.lines[: self.drop_after]:
                await ws.send(line)
            while ws.transport.get_write_buffer_size():
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)
            ws.transport.abort()  # the drop: no close handshake
            return
        for line in self.lines[self.resume_from :] if n == 1 else ():
            await ws.send(line)
        await ws.wait_closed()


async def _run_live(lines: Sequence[str], drop_after: int, resume_from: int, expected: int,
                    on_element: Any, host: str | None = "rrc00", check_raw: bool = False,
                    stats: LiveStats | None = None) -> tuple[RisLiveClient, ReplayServer]:
    srv = ReplayServer(lines, drop_after, resume_from, host)
    async with serve(srv.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = RisLiveClient(f"ws://127.0.0.1:{port}", RisLiveParams(host=host),
                               on_element, backoff=FAST, max_attempts=5, check_raw=check_raw,
                               stats=stats, rng=random.Random(1))

        async def watch() -> None:
            while client.stats.messages + client.stats.malformed < expected:
                await asyncio.sleep(0.01)
            client.stop()

        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(client.run(duration=8), 9)
        await watcher
    assert not srv.errors
    return client, srv


# ------------------------------------------------------------------ translation
def test_fixture_json_matches_raw_bgp_message() -> None:
    line = LIVE.read_text().splitlines()[0]
    data = json.loads(line)["data"]
    js = elems_from_data(data)
    raw = elems_from_raw(data)
    assert [elem_key(e) for e in js] == [elem_key(e) for e in raw]
    (e,) = js
    assert str(e.nlri) == "45.161.192.0/23" and e.attrs is not None
    assert e.attrs.origin_asns() == (268481,) and e.attrs.origin_str == "IGP"
    assert (e.timestamp, e.microseconds, e.peer_asn) == (1553627987, 890000, 11708)


def test_peer_state_down_drops_the_session_and_as_sets() -> None:
    (down,) = elems_from_data({"timestamp": 1.5, "peer": "2001:db8::1", "peer_asn": "65001",
                               "host": "rrc00", "type": "RIS_PEER_STATE", "state": "down"})
    assert (down.kind, down.old_state, down.new_state, len(down.peer_ip)) == ("STATE", 6, 1, 16)
    es = elems_from_data({
        "timestamp": 2, "peer": "10.0.0.1", "peer_asn": 65001, "host": "rrc00",
        "type": "UPDATE", "path": [65001, 3356, [64512, 64513]], "origin": "INCOMPLETE",
        "community": [[65001, 7]], "withdrawals": ["10.9.0.0/16"],
        "announcements": [{"next_hop": "2001:db8::1,fe80::1", "prefixes": ["2001:db8::/32"]},
                          {"next_hop": "10.0.0.1", "prefixes": ["10.1.2.3/24"]}]})
    assert [(e.kind, str(e.nlri)) for e in es] == [
        ("W", "10.9.0.0/16"), ("A", "2001:db8::/32"), ("A", "10.1.2.0/24")]
    a = es[1].attrs
    assert a is not None and a.as_path is not None and a.as_path[-1][0] == AS_SET
    assert a.as_path_str == "65001 3356 {64512,64513}" and a.communities_str == "65001:7"
    assert es[1].next_hop is not None and len(es[1].next_hop) == 16


def test_error_policy_skip_counts_fail_raises() -> None:
    bad = '{"type": "ris_message", "data": {"timestamp": 1, "peer": "10.0.0.1", ' \
          '"peer_asn": "1", "host": "rrc00", "id": "x", "type": "UPDATE", ' \
          '"announcements": [{"next_hop": "10.0.0.1", "prefixes": ["300.0.0.0/8"]}]}}'
    skip = RisLiveClient()
    assert skip.handle(bad) == [] and skip.handle("{nope") == []
    assert skip.stats.malformed == 2 and len(skip.stats.problems) == 2
    assert skip.handle(bad) == [] and skip.stats.malformed == 2  # a replay is not recounted
    fail = RisLiveClient(policy=ErrorPolicy.FAIL)
    with pytest.raises(RisLiveError, match="message 1"):
        fail.handle(bad)


def test_backoff_is_exponential_jittered_and_bounded() -> None:
    b = Backoff(base=1, factor=2, cap=8, jitter=0.5)
    rng = random.Random(0)
    for n, top in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (30, 8)]:
        ds = [b.delay(n, rng) for _ in range(50)]
        assert all(top / 2 <= d <= top for d in ds) and len(set(ds)) > 1


def test_subscriptions() -> None:
    subs = RisLiveParams(host="rrc21", prefixes=("41.0.0.0/8",)).subscriptions()
    assert subs[0] == {"type": "ris_subscribe", "data": {
        "type": "UPDATE", "host": "rrc21", "prefix": "41.0.0.0/8", "moreSpecific": True,
        "lessSpecific": False, "socketOptions": {"includeRaw": False, "acknowledge": True}}}
    assert subs[1]["data"]["type"] == "RIS_PEER_STATE" and "prefix" not in subs[1]["data"]


# ------------------------------------------------------------------ the fixture, with a drop
def test_fixture_replay_drop_reconnect_resume() -> None:
    lines = LIVE.read_text().splitlines()
    offline = RisLiveClient()
    once = [le for line in lines for le in offline.handle(line)]
    got: list[tuple[str, Any]] = []
    # drop after 6 lines (…KEEPALIVE); the reconnect replays from line 3: OPEN, NOTIFICATION
    # and KEEPALIVE again (already processed), then the malformed last line
    client, srv = asyncio.run(_run_live(lines, 6, 3, expected=6,
                                        on_element=lambda c, e: got.append((c, e))))
    st = client.stats
    assert len(srv.subs) == 2 and st.connections == 2
    assert st.messages == 5 and st.duplicates == 3 and st.malformed == 1
    assert st.server_errors == ["this is a test error message"] and st.control == 2
    assert len(st.reconnects) == 1 and "ConnectionClosed" in st.reconnects[0]["reason"]
    assert len(st.gaps) == 1 and st.gaps[0]["overlap"] == 3
    assert [(c, elem_key(e)) for c, e in got] == [(le.collector, elem_key(le.elem))
                                                  for le in once]
    live, ref = RoutingState(CFG), RoutingState(CFG)
    for c, e in got:
        live.apply(c, e)
    for le in once:
        ref.apply(le.collector, le.elem)
    a, b = live.snapshot(T0), ref.snapshot(T0)
    assert (a.visible_v4, a.full_feed_v4) == (b.visible_v4, b.full_feed_v4) == (2, 1)


# ------------------------------------------------------------------ real updates: file == live
def _spread_file(dst: Path) -> tuple[Path, tuple[str, int]]:
    """rrc06's 5 minutes stretched over 20 (four bins), plus one session drop at T0+700."""
    recs = list(MrtReader(RRC06).records())
    peers = [(format_ip(e.peer_ip), e.peer_asn) for e in MrtReader(RRC06) if e.kind == "A"]
    victim = max(set(peers), key=peers.count)
    out = b""
    dropped = False
    for r in recs:
        ts = T0 + (r.timestamp - T0) * 4
        if not dropped and ts > T0 + 700:
            out += state_change(T0 + 700, victim[0], victim[1], 6, 1)
            dropped = True
        out += HEADER.pack(ts, r.type, r.subtype, r.end - r.start) + r.buf[r.start : r.end]
    path = dst / "rrc06" / "updates.20150401.0000.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(out))
    return path, victim


def _ris_live_lines(path: Path) -> list[str]:
    """The file as RIS Live would have sent it: one ris_message per BGP message, with raw."""
    lines = []
    for i, r in enumerate(MrtReader(path).records()):
        elems = decode_bgp4mp(r)
        peer_as, afi = int.from_bytes(r.buf[r.start : r.start + 4], "big"), 0
        afi = int.from_bytes(r.buf[r.start + 10 : r.start + 12], "big")
        width = 4 if afi == 1 else 16
        peer = format_ip(r.buf[r.start + 12 : r.start + 12 + width])
        d: dict[str, Any] = {"timestamp": float(r.timestamp), "peer": peer,
                             "peer_asn": str(peer_as), "id": f"{peer}-{r.timestamp}-{i}",
                             "host": "rrc06"}
        if r.subtype in (0, 5):
            (e,) = elems
            if e.old_state == 6 and e.new_state != 6:
                d.update(type="RIS_PEER_STATE", state="down")
            elif e.new_state == 6:
                d.update(type="RIS_PEER_STATE", state="up")
            else:
                continue  # RIS Live reports connected/up/down only
        else:
            msg = r.buf[r.start + 12 + 2 * width : r.end]
            d.update(type="UPDATE", raw=msg.hex().upper())
            d["withdrawals"] = [str(e.nlri) for e in elems if e.kind == "W"]
            anns: dict[str, list[str]] = {}
            for e in elems:
                if e.kind == "A":
                    assert e.attrs is not None and e.next_hop is not None
                    anns.setdefault(format_ip(e.next_hop), []).append(str(e.nlri))
                    a = e.attrs
            if anns:
                assert a.as_path is not None
                d["path"] = [list(x) if t == AS_SET else x for t, xs in a.as_path
                             for x in ([xs] if t == AS_SET else xs)]
                d["origin"] = a.origin_str.lower()
                if a.communities:
                    d["community"] = [[c >> 16, c & 0xFFFF] for c in a.communities]
                d["announcements"] = [{"next_hop": k, "prefixes": v} for k, v in anns.items()]
        lines.append(json.dumps({"type": "ris_message", "data": d}))
    return lines


def _points(store: Store) -> list[tuple[Any, ...]]:
    return store.connection.execute(
        "SELECT entity_type, entity_code, signal, time, value FROM points ORDER BY ALL"
    ).fetchall()


def test_live_stream_equals_file_per_bin(tmp_path: Path) -> None:
    path, victim = _spread_file(tmp_path / "arch")
    lines = _ris_live_lines(path)
    assert len(lines) > 700
    with Store(tmp_path / "file.duckdb") as fs:
        ing = BgpIngester(Pipeline(fs, GeoLookup.default()), config=CFG)
        rep = ing.run([classify(path)])
        assert rep.bins == 4
        file_points = _points(fs)
        file_snap = ing.state.snapshot(T0 + 1200)
    with Store(tmp_path / "live.duckdb") as ls:
        stats = LiveStats()
        live = LiveIngester(Pipeline(ls, GeoLookup.default()), config=CFG, stats=stats)
        got: list[Any] = []

        def feed(c: str, e: Any) -> None:
            got.append(e)
            live.feed(c, e)

        drop, resume = len(lines) // 2, len(lines) // 2 - 40
        client, _srv = asyncio.run(_run_live(lines, drop, resume, len(lines), feed,
                                             host=None, check_raw=True, stats=stats))
        live.close()
        live_points = _points(ls)
        health = json.loads(ls.get_state(HEALTH_KEY) or "{}")
        live_snap = live.state.snapshot(T0 + 1200)
    st = client.stats
    assert st.messages == len(lines) and st.duplicates == 40 and st.malformed == 0
    assert st.raw_mismatch == 0 and len(st.reconnects) == 1
    # every element exactly once, in file order (state changes other than drops aside)
    file_elems = [e for e in MrtReader(path)
                  if e.kind != "STATE" or (e.old_state == 6 and e.new_state != 6)]
    assert [elem_key(e) for e in got] == [elem_key(e) for e in file_elems]
    assert any(e.kind == "STATE" and format_ip(e.peer_ip) == victim[0] for e in got)
    assert live_points == file_points and len({p[3] for p in live_points}) == 4
    assert (live_snap.visible_v4, live_snap.visible_v6) == (file_snap.visible_v4,
                                                            file_snap.visible_v6)
    assert (live_snap.v4_blocks == file_snap.v4_blocks).all()
    assert health["reconnects"] and health["gaps"][0]["overlap"] == 40
    assert health["messages"] == len(lines)


# ------------------------------------------------------------------ the CLI
def test_cli_live_writes_points_and_health(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from websockets.sync.server import ServerConnection as SyncConn
    from websockets.sync.server import serve as sync_serve

    from netvigil.cli.bgp_cmd import bgp

    lines = LIVE.read_text().splitlines()[:2]
    subs: list[str] = []

    def handler(ws: SyncConn) -> None:
        subs.append(str(ws.recv(timeout=30)))
        subs.append(str(ws.recv(timeout=30)))
        for line in lines:
            ws.send(line)
        try:
            ws.recv(timeout=5)
        except Exception:  # noqa: BLE001 - the client leaving ends the handler
            pass

    with sync_serve(handler, "127.0.0.1", 0) as server:
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        port = server.socket.getsockname()[1]
        store = tmp_path / "s.duckdb"
        res = CliRunner().invoke(bgp, ["live", "--url", f"ws://127.0.0.1:{port}", "--host",
                                       "rrc00", "--duration", "1", "--ff-v4", "0",
                                       "--store", str(store)])
        server.shutdown()
        t.join(2)
    assert res.exit_code == 0, res.output
    assert json.loads(subs[0])["data"]["host"] == "rrc00"
    assert "messages 2" in res.output
    with Store(store) as s:
        assert json.loads(s.get_state(HEALTH_KEY) or "{}")["messages"] == 2
        assert _points(s)


def test_prefix_parts_reads_prefixes_as_ipaddress_does() -> None:
    """The IPv4 fast path of ``prefix_parts`` against ``ipaddress.ip_network(strict=False)``:
    equal results, and an error wherever ``ipaddress`` raises."""
    import ipaddress

    from netvigil.sources.bgp.rislive import prefix_parts

    rng = random.Random(9)
    edge = ["1.2.3.4/24", "0.0.0.0/0", "255.255.255.255/32", "1.2.3.0/08", "01.2.3.0/24",
            "1.2.3.0/33", "256.1.1.1/8", "1.2.3.0/24 ", " 1.2.3.0/24", "1.2.3.0/24\n",
            "10.0.0.0/255.0.0.0", "1.2.3/24", "1.2.3.0.0/24", "1.2.3.0/", "1.2.3.0",
            "\u0661.2.3.0/24", "1.2.3.0/\u0662\u0664", "2001:db8::/32", "1.2.3.00/24",
            "1.2.3.0/-1", "+1.2.3.0/24", "1.2.3.0/3 2"]
    digits = "0123456789"
    randoms = [".".join("".join(rng.choice(digits) for _ in range(rng.randrange(1, 4)))
                        for _ in range(4)) + "/" + str(rng.randrange(0, 40)).zfill(
                            rng.choice((1, 1, 2))) for _ in range(5000)]
    fast = 0
    for text in edge + randoms:
        try:
            n = ipaddress.ip_network(text, strict=False)
            want: object = (1 if n.version == 4 else 2, n.network_address.packed, n.prefixlen)
        except ValueError:
            want = "error"
        try:
            got: object = prefix_parts(text)
        except ValueError:
            got = "error"
        assert got == want, text
        fast += want != "error"
    assert fast > 500
