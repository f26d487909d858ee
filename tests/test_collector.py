"""The collector over a real socket: uvicorn on 127.0.0.1 serving ``create_app``.

What is checked: a sender without a valid token gets 401 and nothing is stored (archive
and store unchanged); malformed uploads get the 4xx that names the problem and store
nothing; a measurement is stored once however often it is sent, with ``x_received_at``
beside ``measurement_start_time``, and becomes ``platform:<name>`` points judged by the
OONI verdict; a late measurement corrects its hour and re-runs detection on the series it
touched; remote prober rounds become ``probing`` points through the pipeline, once; tokens
never reach a log line; ``netvigil serve`` binds 127.0.0.1 by default.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import uvicorn
from netvigil_probe import measurement as pm

from netvigil.cli.common import open_store
from netvigil.serve.app import create_app
from netvigil.serve.collector import CONFIG_ENV, token_digest
from netvigil.store.duck import Store

PROBE_TOKEN = "probe-secret-4f1c9a0e7d"
VP_TOKEN = "vantage-secret-93b2e611aa"
T0 = int(datetime(2026, 11, 30, 10, tzinfo=UTC).timestamp())


@dataclass
class Collector:
    port: int
    store: Path
    archive: Path

    def post(self, path: str, body: bytes | dict[str, Any], token: str | None = None,
             ctype: str = "application/json") -> tuple[int, dict[str, Any]]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": ctype}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            con.request("POST", path, raw, headers)
            resp = con.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            con.close()

    def get(self, path: str, token: str) -> tuple[int, dict[str, Any]]:
        con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            con.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            resp = con.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            con.close()

    def settle(self, token: str = PROBE_TOKEN) -> dict[str, Any]:
        """Wait until the collector derived every accepted measurement; its status."""
        deadline = time.monotonic() + 30
        while True:
            status, st = self.get("/api/v1/collector/status", token)
            assert status == 200, st
            if st["pending_cells"] == 0:
                return st
            assert time.monotonic() < deadline, st
            time.sleep(0.05)

    def files(self) -> list[Path]:
        if not self.archive.exists():
            return []
        return sorted(p for p in self.archive.rglob("*.json") if "pending" not in p.parts)

    def points(self, signal_like: str = "%") -> list[tuple[str, str, str, int, float]]:
        con = duckdb.connect(str(self.store), read_only=True)
        try:
            return [tuple(r) for r in con.execute(
                "SELECT entity_type, entity_code, signal, time, value FROM points "
                "WHERE signal LIKE ? ORDER BY ALL", [signal_like]).fetchall()]
        finally:
            con.close()


def _config(tmp: Path, max_body: int = 1 << 20) -> Path:
    targets = tmp / "targets.csv"
    hosts = {k: " ".join(f"198.18.{k}.{h}" for h in range(1, 21)) for k in (1, 2)}
    targets.write_text("block,addresses,availability,entity\n" + "".join(
        f"198.18.{k}.0/24,{a},0.8,country/KZ\n" for k, a in hosts.items()))
    cfg = tmp / "collector.json"
    cfg.write_text(json.dumps({
        "senders": {"probe-a": {"token_sha256": token_digest(PROBE_TOKEN),
                                "kinds": ["measurement"]},
                    "vp-a": {"token_sha256": token_digest(VP_TOKEN), "kinds": ["round"]}},
        "targets": "targets.csv", "round_seconds": 600, "max_body_bytes": max_body}))
    return cfg


@contextlib.contextmanager
def serving(app: Any) -> Iterator[int]:
    """uvicorn on a real 127.0.0.1 socket in a thread, debug logs and access log on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="debug", access_log=True))
    th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        th.join(10)
        sock.close()


@pytest.fixture
def collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    store = tmp_path / "s.duckdb"
    Store(store).close()
    monkeypatch.setenv(CONFIG_ENV, str(_config(tmp_path, 64 << 10)))
    with serving(create_app(store, open_store=open_store, lock_wait=10)) as port:
        yield Collector(port, store, tmp_path / "s.duckdb.collector")


def web_measurement(t: int, blocking: str | bool | None, *, cc: str = "KZ",
                    asn: str = "AS9198", url: str = "https://web.telegram.org/") -> dict[str, Any]:
    """A web_connectivity measurement as the agent writes it (its own envelope code)."""
    keys: dict[str, Any] = {"queries": [], "tcp_connect": [], "tls_handshakes": [], "requests": [],
            "blocking": blocking, "accessible": blocking is False,
            "http_experiment_failure": None, "control_failure": None}
    when = datetime.fromtimestamp(t, UTC)
    return pm.build(url, keys, measured_at=when, test_start=when, runtime=0.5,
                    net=pm.Network(cc, asn), resolver_ip="198.19.9.53",
                    rid=f"r{t}")


def submit(m: dict[str, Any]) -> dict[str, Any]:
    return {"format": "json", "content": m, "uploaded_at": "2026-12-01T00:00:00+00:00"}


def test_unauthenticated_uploads_get_401_and_store_nothing(collector: Collector) -> None:
    m = submit(web_measurement(T0, "tcp_ip"))
    for token in (None, "", "wrong-token", PROBE_TOKEN + "x"):
        status, body = collector.post("/api/v1/collector/measurements", m, token)
        assert status == 401, (token, body)
        assert body["error"]["status"] == 401
    status, _ = collector.post("/api/v1/collector/rounds", {"content": {}}, "nope")
    assert status == 401
    assert collector.files() == [] and collector.points() == []


def test_malformed_uploads_get_a_clear_4xx_and_store_nothing(collector: Collector) -> None:
    url = "/api/v1/collector/measurements"
    good = web_measurement(T0, False)
    no_cc = {k: v for k, v in good.items() if k not in ("probe_cc", "test_keys")}
    future = web_measurement(int(time.time()) + 3 * 3600, False)
    cases: list[tuple[bytes | dict[str, Any], str, int, str]] = [
        (b"{not json", "application/json", 400, "not JSON"),
        (submit(good), "text/plain", 415, "application/json"),
        ({"content": [1, 2]}, "application/json", 422, "content must be"),
        (submit(no_cc), "application/json", 422, "probe_cc, test_keys"),
        (submit({**good, "probe_asn": "ASX"}), "application/json", 422, "probe_asn"),
        (submit({**good, "measurement_start_time": "yesterday"}), "application/json", 422,
         "measurement_start_time"),
        (submit(future), "application/json", 422, "future"),
        (submit({**good, "test_keys": {"pad": "x" * (70 << 10)}}), "application/json", 413,
         "cap"),
    ]
    for body, ctype, status, says in cases:
        got, err = collector.post(url, body, PROBE_TOKEN, ctype)
        assert got == status, (says, err)
        assert says in err["error"]["message"], err
    # a probe token may not send rounds; a vantage point only its own
    assert collector.post("/api/v1/collector/rounds", submit({}), PROBE_TOKEN)[0] == 403
    other = {"vantage": "vp-b", "round_start": T0, "round_seconds": 600, "lines": [{}]}
    assert collector.post("/api/v1/collector/rounds", submit(other), VP_TOKEN)[0] == 403
    line = _round_lines("vp-a", T0, {"198.18.1.0/24": "up"})[0]
    for bad, says in (({"round_start": 1e300}, "round_start"),
                      ({"round_seconds": 0}, "round_seconds"),
                      ({"lines": [{**line, "round_start": T0 + 600}]}, "differs"),
                      ({"lines": [{**line, "state": "sideways"}]}, "lines[0]"),
                      ({"lines": [{**line, "probes_sent": "many"}]}, "lines[0]")):
        body = {"vantage": "vp-a", "round_start": T0, "round_seconds": 600, "lines": [line],
                **bad}
        got, err = collector.post("/api/v1/collector/rounds", submit(body), VP_TOKEN)
        assert got == 422 and says in err["error"]["message"], (bad, err)
    assert collector.files() == [] and collector.points() == []


def test_a_measurement_is_stored_once_and_becomes_platform_points(
        collector: Collector) -> None:
    url = "/api/v1/collector/measurements"
    blocked, ok = web_measurement(T0 + 60, "tcp_ip"), web_measurement(T0 + 120, False)
    first = [collector.post(url, submit(m), PROBE_TOKEN) for m in (blocked, ok)]
    again = [collector.post(url, submit(m), PROBE_TOKEN) for m in (blocked, ok, blocked)]
    assert [s for s, _ in first + again] == [200] * 5
    assert [b["duplicate"] for _, b in first] == [False, False]
    assert [b["duplicate"] for _, b in again] == [True, True, True]
    assert first[0][1]["measurement_uid"] == again[0][1]["measurement_uid"]
    collector.settle()
    files = collector.files()
    assert len(files) == 2
    assert all("/raw/20261130/10/KZ/webconnectivity/" in str(p) for p in files)
    doc = json.loads(files[0].read_text())
    assert doc["measurement_start_time"].startswith("2026-11-30 10:0")
    assert doc["x_received_at"].startswith(datetime.now(UTC).strftime("%Y-%m-%d"))
    assert doc["x_uploaded_at"] == "2026-12-01T00:00:00+00:00"
    assert doc["x_sender"] == "probe-a"
    # one blocked (anomaly) and one ok telegram test in the hour: 50 % reachable
    assert collector.points("platform:%") == [
        ("asn", "9198", "platform:telegram", T0, 50.0),
        ("country", "KZ", "platform:telegram", T0, 50.0)]
    # and the other series an OONI import makes of the same measurements (one path)
    kz = {sig: v for et, _c, sig, t, v in collector.points() if et == "country" and t == T0}
    assert kz["ooni-volume"] == 2.0 and kz["platform-blocked:telegram:tcp"] == 1.0, kz


def test_a_late_measurement_corrects_its_hour_and_reruns_detection(
        collector: Collector) -> None:
    url = "/api/v1/collector/measurements"
    for h in (0, 1, 3):  # each derived before the next arrives (in order, on time)
        assert collector.post(url, submit(web_measurement(T0 + h * 3600, False)),
                              PROBE_TOKEN)[0] == 200
        first = collector.settle()["last_derivation"]
    assert first["series_recomputed"] == 0, first  # series only ever grew at their end
    assert collector.post(url, submit(web_measurement(T0 + 2 * 3600 + 5, "dns")),
                          PROBE_TOKEN)[0] == 200
    # the hour behind the detector's cursor was inserted: both series judged again
    last = collector.settle()["last_derivation"]
    assert last["cells"] == 1 and last["series_recomputed"] >= 2, last
    kz = [(t, v) for et, _c, _s, t, v in collector.points("platform:%") if et == "country"]
    assert kz == [(T0, 100.0), (T0 + 3600, 100.0), (T0 + 7200, 0.0), (T0 + 10800, 100.0)]
    # a second, later measurement in the same hour corrects it (one cell, re-counted)
    collector.post(url, submit(web_measurement(T0 + 2 * 3600 + 900, False)), PROBE_TOKEN)
    collector.settle()
    hours = {t: v for et, _c, _s, t, v in collector.points("platform:%") if et == "country"}
    assert hours[T0 + 7200] == 50.0


def test_markers_left_by_a_crash_are_derived_when_the_collector_next_runs(
        collector: Collector) -> None:
    """What a collector killed after storing a measurement and its marker, before deriving,
    leaves on disk: the next request starts the deriver, which finds the marker."""
    from netvigil.serve.collector import (
        canonical,
        measurement_path,
        validate_measurement,
        write_once,
    )

    m = web_measurement(T0 + 30, "dns")
    meta = validate_measurement(m, time.time())
    uid = hashlib.sha256(canonical(m)).hexdigest()
    assert write_once(measurement_path(collector.archive, meta, uid), canonical(m))
    assert write_once(collector.archive / "pending" / f"KZ-{T0}-{uid}", b"")
    assert collector.points() == []
    assert collector.settle()["pending_cells"] == 0  # GET /status woke the deriver
    assert ("country", "KZ", "platform:telegram", T0, 0.0) in collector.points("platform:%")
    assert not list((collector.archive / "pending").iterdir())


def test_whoami_locates_the_caller_for_a_known_sender_only(collector: Collector) -> None:
    assert collector.get("/api/v1/collector/whoami", "nope")[0] == 401
    status, me = collector.get("/api/v1/collector/whoami", PROBE_TOKEN)
    assert status == 200
    # loopback is in no country and no AS: the agent writes ZZ / AS0 then, as OONI does
    assert me == {"probe_ip": "127.0.0.1", "probe_cc": "ZZ", "probe_asn": "AS0"}


def _round_lines(vantage: str, start: float, states: dict[str, str]) -> list[dict[str, Any]]:
    return [{"round_start": start, "round": 0, "vantage": vantage, "block": b, "state": st,
             "belief": 0.99 if st == "up" else 0.01, "probes_sent": 2 if st == "up" else 15,
             "replies": 2 if st == "up" else 0, "unreachable": 0,
             "lost": 0 if st == "up" else 15, "rtt_ms_median": 1.0 if st == "up" else None}
            for b, st in states.items()]


def test_remote_rounds_go_through_the_pipeline_once(collector: Collector, tmp_path: Path) -> None:
    """Rounds forwarded by the real agent (``netvigil-probe forward-rounds``)."""
    start = float(T0)
    lines = []
    for k in range(3):
        st = "down" if k == 2 else "up"
        lines += _round_lines("vp-a", start + 600 * k, {"198.18.1.0/24": "up",
                                                       "198.18.2.0/24": st})
    jsonl = tmp_path / "rounds.jsonl"
    jsonl.write_text("".join(json.dumps(x) + "\n" for x in lines))
    token = tmp_path / "vp.token"
    token.write_text(VP_TOKEN)
    argv = [str(Path(sys.executable).with_name("netvigil-probe")), "forward-rounds",
            str(jsonl), "--spool", str(tmp_path / "spool"), "--round-seconds", "600",
            "--collector", f"http://127.0.0.1:{collector.port}", "--token-file", str(token),
            "--wait", "10"]
    for _ in range(2):  # the second run finds everything uploaded
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.splitlines()[-1]) == {
            "total": 3, "uploaded": 3, "rejected": 0, "pending": 0}
    # the same rounds from a fresh spool: the collector acknowledges duplicates, feeds nothing
    argv[argv.index("--spool") + 1] = str(tmp_path / "spool2")
    assert subprocess.run(argv, capture_output=True, timeout=60).returncode == 0
    assert len(collector.files()) == 3
    kz = [v for et, c, s, _t, v in collector.points("probing") if c == "KZ"]
    assert kz == [2.0, 2.0, 1.0]


def test_tokens_never_reach_the_logs(collector: Collector, caplog: pytest.LogCaptureFixture,
                                     tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    url = "/api/v1/collector/measurements"
    collector.post(url, submit(web_measurement(T0, False)), PROBE_TOKEN)
    collector.post(url, submit(web_measurement(T0, False)), "leaked-guess-123")
    collector.post(url, b"{bad", PROBE_TOKEN)
    token = tmp_path / "t"
    token.write_text(PROBE_TOKEN)
    spool = tmp_path / "spool"
    from netvigil_probe.spool import Spool

    with Spool(spool) as sp:
        sp.put("measurement", web_measurement(T0 + 5, "dns"))
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("netvigil-probe")), "-v", "upload", "--spool",
         str(spool), "--collector", f"http://127.0.0.1:{collector.port}", "--token-file",
         str(token)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = caplog.text + proc.stdout + proc.stderr
    assert "measurement" in caplog.text and "probe-a" in caplog.text  # the log is there
    for secret in (PROBE_TOKEN, "leaked-guess-123"):
        assert secret not in text
    assert PROBE_TOKEN not in (spool / "spool.sqlite").read_bytes().decode("latin-1")


def test_netvigil_serve_binds_loopback_by_default(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``netvigil serve`` without ``--host`` hands uvicorn 127.0.0.1, and the app it builds
    carries the collector (an upload without a token is refused over a real socket)."""
    from click.testing import CliRunner

    from netvigil.cli.main import cli

    store = tmp_path / "s.duckdb"
    Store(store).close()
    monkeypatch.setenv(CONFIG_ENV, str(_config(tmp_path)))
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    result = CliRunner().invoke(cli, ["serve", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.1"
    with serving(seen["app"]) as port:
        c = Collector(port, store, tmp_path / "s.duckdb.collector")
        assert c.post("/api/v1/collector/measurements",
                      submit(web_measurement(T0, False)))[0] == 401
    assert c.files() == []


def test_probe_uploads_and_ooni_imports_of_one_hour_add_up(collector: Collector,
                                                           tmp_path: Path) -> None:
    """Both doors feed the store's one ledger of accepted measurements: a probe upload and
    an OONI import of the same (country, AS, platform, hour) are counted together in either
    order, and importing the collector's own archive counts nothing twice."""
    def ooni_import(*args: str | Path) -> str:  # another process, as a user runs it
        proc = subprocess.run([str(Path(sys.executable).with_name("netvigil")), "ooni",
                               "import", *map(str, args), "--store", str(collector.store)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    url = "/api/v1/collector/measurements"
    later = T0 + 3600
    f = tmp_path / "ooni.jsonl"
    f.write_text("".join(json.dumps(m) + "\n" for m in (
        web_measurement(T0 + 600, False),  # hour 1: uploaded first, imported second
        web_measurement(later + 600, False))))  # hour 2: imported first, uploaded second
    assert collector.post(url, submit(web_measurement(T0 + 60, "tcp_ip")),
                          PROBE_TOKEN)[0] == 200
    collector.settle()
    assert "2 new to the store" in ooni_import(f)
    assert collector.post(url, submit(web_measurement(later + 60, "tcp_ip")),
                          PROBE_TOKEN)[0] == 200
    collector.settle()
    want = {(T0, "platform:telegram"): 50.0, (later, "platform:telegram"): 50.0,
            (T0, "ooni-volume"): 2.0, (later, "ooni-volume"): 2.0,
            (T0, "platform-blocked:telegram:tcp"): 1.0,
            (later, "platform-blocked:telegram:tcp"): 1.0}

    def kz() -> dict[tuple[int, str], float]:
        return {(t, sig): v for et, _c, sig, t, v in collector.points()
                if et == "country" and (t, sig) in want}

    assert kz() == want
    # the archive's measurements are in the ledger under the key ooni import gives them,
    # so `ooni import --dir <archive>` would add nothing (test_ooni_ledger: known keys are
    # never counted again)
    from netvigil.sources.ooni.facts import key_text
    from netvigil.sources.ooni.importer import identity

    archived = {key_text(identity(json.loads(p.read_text()))) for p in collector.files()}
    con = duckdb.connect(str(collector.store), read_only=True)
    try:
        stored = dict(con.execute("SELECT key, source FROM ooni_measurements").fetchall())
    finally:
        con.close()
    assert len(archived) == 2 and len(stored) == 4
    assert {stored[k] for k in archived} == {"collector"}


def test_remote_rounds_merge_in_round_order_whatever_the_arrival(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two vantage points' rounds posted in round order to one collector and in reverse
    order (retries, spools emptied late) to another give the same points: a round behind
    its vantage point's chain replays the archive in (round time, vantage point) order.
    (Both apps without the in-memory snapshot: its background reads make a write in the
    same process fail with 503 under quick successive uploads, a separate defect.)"""
    cfg = json.loads(_config(tmp_path).read_text())
    cfg["senders"]["vp-b"] = {"token_sha256": token_digest(VP_TOKEN + "b"), "kinds": ["round"]}
    (tmp_path / "collector.json").write_text(json.dumps(cfg))
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "collector.json"))
    tokens = {"vp-a": VP_TOKEN, "vp-b": VP_TOKEN + "b"}
    # block 2 goes dark for vp-a from round 1, for vp-b only in round 2 (up if anyone saw up)
    rounds = [(k, v, _round_lines(v, float(T0 + 600 * k), {
        "198.18.1.0/24": "up",
        "198.18.2.0/24": "down" if k >= (1 if v == "vp-a" else 2) else "up"}))
        for k in range(3) for v in ("vp-a", "vp-b")]
    got = []
    for name, order in (("in-order", rounds), ("reverse", rounds[::-1])):
        store = tmp_path / name / "s.duckdb"
        store.parent.mkdir()
        Store(store).close()
        app = create_app(store, open_store=open_store, lock_wait=10)
        with serving(app) as port:
            target = Collector(port, store, store.with_name("s.duckdb.collector"))
            for k, v, lines in order:
                body = {"vantage": v, "round_start": T0 + 600 * k, "round_seconds": 600,
                        "lines": lines}
                status, out = target.post("/api/v1/collector/rounds", submit(body), tokens[v])
                assert status == 200 and not out["duplicate"], (k, v, out)
        got.append(target.points("probing%"))
    assert got[0] == got[1]
    assert [v for _e, c, s, _t, v in got[0] if c == "KZ" and s == "probing"] == [2, 2, 1]
