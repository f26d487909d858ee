"""``netvigil run`` with ``[bgp] ris_live`` pointed at a local RIS Live replay server.

The server (websockets on 127.0.0.1, no network) replays rrc06's updates of 2015-04-01,
stretched over four 5-minute bins (the stream of tests/test_bgp_rislive.py), drops the
connection half way and replays 40 messages again on the reconnect. The observatory must
store, bin for bin, exactly the points the archive backfill computes from the same file:
no message lost or counted twice across the drop, every point written through the Pipeline
by the run loop while the store is closed between bins.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import duckdb

from netvigil.pipeline import Pipeline
from netvigil.sources.bgp.ingest import BgpIngester, classify
from netvigil.sources.bgp.visibility import VisibilityConfig
from netvigil.store.duck import Store
from test_bgp_rislive import _ris_live_lines, _spread_file
from test_observatory_support import log_records, start_run, stop, wait_for, write_config

OVERLAP = 40


def _file_points(path: Path, store_path: Path) -> list[tuple[Any, ...]]:
    with Store(store_path) as st:
        pipe = Pipeline(st)
        BgpIngester(pipe, config=VisibilityConfig(ff_v4=0, ff_v6=0)).run([classify(path)])
        pipe.flush()
        return st.connection.execute(
            "SELECT entity_type, entity_code, signal, time, value FROM points ORDER BY ALL"
        ).fetchall()


def test_ris_live_replay_through_the_observatory_equals_the_archive(tmp_path: Path) -> None:
    from websockets.sync.server import ServerConnection, serve

    path, _victim = _spread_file(tmp_path / "arch")
    lines = _ris_live_lines(path)
    half = len(lines) // 2
    connections: list[list[str]] = []
    done = threading.Event()

    def handler(ws: ServerConnection) -> None:
        n = len(connections)
        connections.append([str(ws.recv(timeout=30)), str(ws.recv(timeout=30))])
        chunk = lines[:half] if n == 0 else lines[half - OVERLAP:]
        for line in chunk:
            ws.send(line)
        if n == 0:
            return  # handler returns: the server closes this connection mid-stream
        done.set()
        try:
            ws.recv(timeout=120)
        except Exception:  # noqa: BLE001 - the client leaving ends the handler
            pass

    with serve(handler, "127.0.0.1", 0) as server:
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        port = server.socket.getsockname()[1]
        cfg = write_config(tmp_path, f"""
store = "obs.duckdb"
bin_seconds = 1
[bgp]
ris_live = "ws://127.0.0.1:{port}/v1/ws/"
host = "rrc06"
full_feed_v4 = 0
full_feed_v6 = 0
""")
        log = tmp_path / "run.log"
        proc = start_run(cfg, log, "--duration", "300")
        try:
            wait_for(done.is_set, 120, "the replay after the reconnect", proc)

            def all_written() -> bool:
                recs = [r for r in log_records(log) if r["event"] == "bin"]
                return sum(int(str(r["facts"])) for r in recs) >= 3
            wait_for(all_written, 60, "three closed bins written", proc)
        finally:
            code, _o, err = stop(proc)
        server.shutdown()
        t.join(5)
    assert code == 0, err
    assert len(connections) == 2
    assert json.loads(connections[0][0])["data"]["host"] == "rrc06"
    con = duckdb.connect(str(tmp_path / "obs.duckdb"), read_only=True)
    live = con.execute("SELECT entity_type, entity_code, signal, time, value FROM points "
                       "ORDER BY ALL").fetchall()
    health = con.execute("SELECT value FROM state WHERE key = 'bgp:live:health'").fetchone()
    con.close()
    assert live == _file_points(path, tmp_path / "file.duckdb")
    assert len({p[3] for p in live}) == 4
    assert health is not None
    h = json.loads(health[0])
    assert h["messages"] == len(lines) and h["duplicates"] == OVERLAP
    assert len(h["reconnects"]) == 1
