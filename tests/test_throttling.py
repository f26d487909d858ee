"""SNI throttling against a same-server baseline: the probe in a namespace lab, the importer,
detection and classification end to end (issue 9, deliverable 5, throttling half).

Lab (its own small topology; helpers from ``test_probe_agent``)::

    [probe ns] p0 198.19.0.1 ── r0 [censor ns] r1 ── s0 198.19.1.2 [servers ns]
                                 nft redirect :443 → shaper      lo: 198.18.0.14 HTTPS, .54 DNS

The servers namespace also runs NetVigil's collector (``create_app`` under uvicorn, .80)
and a location service (.81), so the probe's measurements go the real way: spool, upload,
collector, the OONI importer's FactBuilder, ``throttling:<platform>`` points.
It answers every name on one address (``/`` a small page, ``/blob`` a
4 MiB body). The censor's shaper reads the ClientHello's server name: names in ``throttled``
are relayed back **one 8 KiB chunk per 0.1 s** (≈ 80 KB/s: this kernel has no netem/tbf
qdisc, so the shaping is done by the relay, as a DPI box that drops packets does it in
effect); names in ``blocked`` get a TCP reset; anything else — the control SNI included —
is relayed at full speed. Throttling here is per SNI on the *same* address, so only a
same-server baseline can tell it from a slow path.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import secrets
import shutil
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import uvicorn
from click.testing import CliRunner

from netvigil.cli.common import open_store
from netvigil.cli.main import cli
from netvigil.serve.app import create_app
from netvigil.serve.collector import CONFIG_ENV, token_digest
from netvigil.sources.ooni.verdict import Outcome, verdict
from netvigil.store.duck import Store
from netvigil.testing.netns import can_build
from prereq import requires
from test_probe_agent import Geo, in_ns, listen, make_certs, run, serve_dns, sni_of, spooled

OK, WHY = can_build()
pytestmark = requires(OK, WHY)

SITE, DNS, COLLECTOR, GEO = "198.18.0.14", "198.18.0.54", "198.18.0.80", "198.18.0.81"
TOKEN = "lab-throttling-token-41c9"
NAMES = ("www.tiktok.com", "x.com", "www.youtube.com")
BLOB = 4 << 20
CHUNK, CHUNK_DELAY = 8192, 0.1  # the shaper: one chunk per delay for throttled names
MAX_DOWNLOAD_S = 1.0
TARGETS = [
    {"url": "https://www.tiktok.com/", "platform": "tiktok",
     "throttling": {"path": "/blob"}},
    {"url": "https://x.com/", "platform": "x", "throttling": {"path": "/blob"}},
    {"url": "https://www.youtube.com/", "platform": "youtube",
     "throttling": {"path": "/blob", "control_sni": "static.example.net"}},
]


class Blob(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"x" * BLOB if self.path == "/blob" else b"<html><body>ok</body></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def log_message(self, *_a: Any) -> None:
        pass


def shaper(lsock: socket.socket, throttled: set[str], blocked: set[str], ns: str) -> None:
    """The censor's SNI shaper (module docstring); the sets are read per connection."""

    def relay(a: socket.socket, b: socket.socket, slow: bool) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(CHUNK if slow else 65536):
                if slow:
                    time.sleep(CHUNK_DELAY)
                b.sendall(data)
        with contextlib.suppress(OSError):
            b.shutdown(socket.SHUT_WR)

    def handle(c: socket.socket) -> None:
        # a connection still proxied when the lab is torn down meets a deleted namespace
        # (FileNotFoundError) or a closed peer: the lab's end, not the probe's verdict
        with c, contextlib.suppress(OSError):
            raw = c.getsockopt(socket.SOL_IP, 80, 16)  # SO_ORIGINAL_DST
            dst = (socket.inet_ntoa(raw[4:8]), struct.unpack("!H", raw[2:4])[0])
            hello = c.recv(16384)
            name = sni_of(hello)
            if name in blocked:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            slow = name in throttled
            with in_ns(ns, lambda: socket.create_connection(dst, timeout=5)) as up:
                up.sendall(hello)
                back = threading.Thread(target=relay, args=(up, c, slow), daemon=True)
                back.start()
                relay(c, up, False)
                back.join(10)

    while True:
        try:
            c, _ = lsock.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(c,), daemon=True).start()


@dataclass
class ThrottleLab:
    tmp: Path
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: list[str] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)
    servers: list[http.server.ThreadingHTTPServer] = field(default_factory=list)
    throttled: set[str] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)
    ca: Path = Path()
    store: Path = Path()
    uvicorn: uvicorn.Server | None = None
    uvicorn_thread: threading.Thread | None = None

    @property
    def probe(self) -> str:
        return f"nvth{self.tag}p"

    def build(self) -> None:
        p, c, s = (f"nvth{self.tag}{x}" for x in "pcs")
        for ns in (p, c, s):
            run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", p, "link", "add", "p0", "type", "veth", "peer", "name", "r0",
            "netns", c)
        run("ip", "-n", c, "link", "add", "r1", "type", "veth", "peer", "name", "s0",
            "netns", s)
        for ns, dev, addr in ((p, "p0", "198.19.0.1/30"), (c, "r0", "198.19.0.2/30"),
                              (c, "r1", "198.19.1.1/30"), (s, "s0", "198.19.1.2/30")):
            run("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
        run("ip", "-n", p, "route", "add", "198.18.0.0/15", "via", "198.19.0.2")
        run("ip", "-n", c, "route", "add", "198.18.0.0/24", "via", "198.19.1.2")
        run("ip", "-n", s, "route", "add", "default", "via", "198.19.1.1")
        run("ip", "netns", "exec", c, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for a in (SITE, DNS, COLLECTOR, GEO):
            run("ip", "-n", s, "addr", "add", f"{a}/32", "dev", "lo")
        etc = Path("/etc/netns") / p
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(f"nameserver {DNS}\noptions timeout:1 attempts:1\n")
        self.ca, leaf, key = make_certs(self.tmp)
        dsock = listen(s, DNS, 53, socket.SOCK_DGRAM)
        self.sockets.append(dsock)
        threading.Thread(target=serve_dns, args=(dsock, dict.fromkeys(NAMES, SITE)),
                         daemon=True).start()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(leaf, key)
        srv = http.server.ThreadingHTTPServer((SITE, 443), Blob, bind_and_activate=False)
        srv.socket.close()
        srv.socket = ctx.wrap_socket(listen(s, SITE, 443), server_side=True)
        srv.daemon_threads = True
        self.servers.append(srv)
        threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
        geo = http.server.ThreadingHTTPServer((GEO, 80), Geo, bind_and_activate=False)
        geo.socket.close()
        geo.socket = listen(s, GEO, 80)
        self.servers.append(geo)
        threading.Thread(target=geo.serve_forever, args=(0.05,), daemon=True).start()
        self._collector(s)
        run("ip", "netns", "exec", c, "nft", "add table inet shape")
        run("ip", "netns", "exec", c, "nft",
            "add chain inet shape pre { type nat hook prerouting priority -100 ; }")
        run("ip", "netns", "exec", c, "nft",
            f"add rule inet shape pre ip daddr {SITE} tcp dport 443 redirect to :8443")
        lsock = listen(c, "0.0.0.0", 8443)
        self.sockets.append(lsock)
        threading.Thread(target=shaper, args=(lsock, self.throttled, self.blocked, c),
                         daemon=True).start()

    def _collector(self, ns: str) -> None:
        self.store = self.tmp / "collector.duckdb"
        Store(self.store).close()
        cfg = self.tmp / "collector.json"
        cfg.write_text(json.dumps({"senders": {"probe-kz": {
            "token_sha256": token_digest(TOKEN), "kinds": ["measurement"]}}}))
        os.environ[CONFIG_ENV] = str(cfg)
        app = create_app(self.store, open_store=open_store, lock_wait=10)
        sock = listen(ns, COLLECTOR, 8080)
        self.sockets.append(sock)
        server = self.uvicorn = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.uvicorn_thread = threading.Thread(target=lambda: server.run(sockets=[sock]),
                                               daemon=True)
        self.uvicorn_thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline, "collector did not start"
            time.sleep(0.02)

    def settle(self) -> None:
        """Wait until the collector derived every accepted measurement."""
        def pending() -> int:
            con = http.client.HTTPConnection(COLLECTOR, 8080, timeout=10)
            try:
                con.request("GET", "/api/v1/collector/status",
                            headers={"Authorization": f"Bearer {TOKEN}"})
                return int(json.loads(con.getresponse().read())["pending_cells"])
            finally:
                con.close()

        deadline = time.monotonic() + 30
        while in_ns(self.namespaces[2], pending):
            assert time.monotonic() < deadline, "the collector did not derive"
            time.sleep(0.05)

    def measure(self, name: str) -> dict[str, dict[str, Any]]:
        """One ``netvigil-probe run`` round (the real console script, inside the probe
        namespace); its measurements by (test name, input)."""
        spool, tok, tfile = (self.tmp / f"spool-{name}", self.tmp / "token",
                             self.tmp / "targets.json")
        tok.write_text(TOKEN)
        tfile.write_text(json.dumps(TARGETS))
        exe = str(Path(sys.executable).with_name("netvigil-probe"))
        proc = subprocess.run(
            ["ip", "netns", "exec", self.probe, exe, "run", "--spool", str(spool),
             "--collector", f"http://{COLLECTOR}:8080", "--token-file", str(tok),
             "--geo-url", f"http://{GEO}/", "--upload-wait", "20",
             "--targets", str(tfile), "--resolver", DNS, "--cafile", str(self.ca),
             "--timeout", "3", "--rounds", "1", "--max-download-s", str(MAX_DOWNLOAD_S)],
            capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.splitlines()[-1])["pending"] == 0  # all delivered
        return {f"{m['test_name']} {m['input']}": m for m in spooled(spool)}

    def destroy(self) -> None:
        if self.uvicorn is not None:
            self.uvicorn.should_exit = True
        if self.uvicorn_thread is not None:
            # uvicorn closes its listening socket on the way out: closing it here first
            # made that close fail in the thread ("Invalid file descriptor: -1"), which
            # pytest then reported against whichever test ran next
            self.uvicorn_thread.join(15)
        os.environ.pop(CONFIG_ENV, None)
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        shutil.rmtree(Path("/etc/netns") / self.probe, ignore_errors=True)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def rounds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two probe rounds: nothing done to the traffic, then tiktok throttled and youtube's
    SNI reset (x.com, on the same address, untouched in both)."""
    lab = ThrottleLab(tmp_path_factory.mktemp("throttle-lab"))
    try:
        lab.build()
        free = lab.measure("free")
        lab.throttled.add("www.tiktok.com")
        lab.blocked.add("www.youtube.com")
        censored = lab.measure("censored")
        lab.settle()
        yield {"free": free, "censored": censored, "tmp": lab.tmp, "collector": lab.store}
    finally:
        lab.destroy()


ST = "sni_throttling https://"


def test_probe_measures_throttling_of_one_sni_against_a_same_server_baseline(
        rounds: dict[str, Any]) -> None:
    free, censored = rounds["free"], rounds["censored"]
    assert {k for k in censored if k.startswith("sni_")} == {
        f"{ST}www.tiktok.com/", f"{ST}x.com/", f"{ST}www.youtube.com/"}
    m = censored[f"{ST}www.tiktok.com/"]
    tk = m["test_keys"]
    assert m["test_name"] == "sni_throttling" and m["data_format_version"] == "0.2.0"
    # both legs to the one address, only the server name differs; the default control is
    # the scrambled host (same length)
    assert tk["x_address"] == f"{SITE}:443"
    assert {h["address"] for h in tk["tls_handshakes"]} == {f"{SITE}:443"}
    names = {h["tags"][0]: h["server_name"] for h in tk["tls_handshakes"]}
    assert names["target"] == "www.tiktok.com"
    assert len(names["control"]) == len("www.tiktok.com") and names["control"].endswith(".com")
    assert names["control"] != names["target"]
    assert all(h["no_tls_verify"] and h["failure"] is None for h in tk["tls_handshakes"])
    th = tk["x_throttling"]
    target, control = th["target"], th["control"]
    # the control leg read the whole blob at full speed; the target leg was capped
    assert control["body_bytes"] == BLOB and not control["capped"]
    assert target["capped"] and 0 < target["body_bytes"] < BLOB
    # the shaper's rate bounds the target leg: at most one chunk per delay (+ one in flight)
    assert target["body_bytes"] <= CHUNK * (MAX_DOWNLOAD_S / CHUNK_DELAY + 2)
    assert target["handshake_ms"] >= 1000 * CHUNK_DELAY  # the server's flight was held
    assert th["throughput_ratio"] < 0.05 and th["handshake_ratio"] > 1
    for leg in ("target", "control"):  # OONI rows carry what the summary says
        evs = [e for e in tk["network_events"] if e["tags"] == [leg]]
        ops = [e["operation"] for e in evs]
        assert ops[0] == "tls_handshake_start" and ops[-1] == "http_transaction_done"
        assert max(e.get("num_bytes", 0) for e in evs) == th[leg]["body_bytes"]
    # NetVigil's importer recomputes the speeds from those rows and agrees with the probe
    v = verdict(m)
    assert v.platform == "tiktok" and v.outcome is Outcome.OK
    assert v.speed_ratio == pytest.approx(th["throughput_ratio"], rel=1e-3)
    # the same target before the throttle, and x.com on the same address, are not slowed
    for fast in (free[f"{ST}www.tiktok.com/"], censored[f"{ST}x.com/"]):
        fv = verdict(fast)
        assert fv.outcome is Outcome.OK and fv.speed_ratio is not None
        assert fv.speed_ratio > 0.2, fast["test_keys"]["x_throttling"]
    # an SNI reset on the same address is a block, not a slowdown
    yv = verdict(censored[f"{ST}www.youtube.com/"])
    assert (yv.outcome, yv.rule, yv.mechanisms) == (
        Outcome.ANOMALY, "throttling.target-failed", ("tls",))
    assert verdict(free[f"{ST}www.youtube.com/"]).outcome is Outcome.OK
    # and the probe's web_connectivity measurement of the throttled site still reaches it
    wc = verdict(censored["web_connectivity https://www.tiktok.com/"])
    assert wc.outcome is Outcome.OK and wc.tls_handshake_ms is not None
    assert wc.tls_handshake_ms >= 1000 * CHUNK_DELAY


def test_the_collector_derives_throttling_points_from_the_uploaded_measurements(
        rounds: dict[str, Any]) -> None:
    """Uploaded through the collector, the probe's measurements become the same series an
    import makes: per hour, the median of 100 x each measurement's speed ratio."""
    want: dict[int, list[float]] = {}
    for r in ("free", "censored"):
        m = rounds[r][f"{ST}www.tiktok.com/"]
        assert (m["probe_cc"], m["probe_asn"]) == ("KZ", "AS9198")
        t = int(datetime.strptime(m["measurement_start_time"], "%Y-%m-%d %H:%M:%S")
                .replace(tzinfo=UTC).timestamp())
        want.setdefault(t - t % 3600, []).append(100 * (verdict(m).speed_ratio or 0.0))
    con = duckdb.connect(str(rounds["collector"]), read_only=True)
    got = {(c, t): v for c, t, v in con.execute(
        "SELECT entity_code, time, value FROM points WHERE signal = 'throttling:tiktok'"
    ).fetchall()}
    con.close()
    assert got == {(code, h): pytest.approx(statistics.median(v))
                   for h, v in want.items() for code in ("KZ", "9198")}


# ----------------------------------------------------------------------------- end to end
T0 = 1_761_955_200  # 2025-11-01 00:00 UTC
DAYS = 10
THROTTLED = (T0 + 8 * 86400 + 9 * 3600, T0 + 8 * 86400 + 21 * 3600)  # tiktok slowed
BLOCKED = (T0 + 7 * 86400 + 12 * 3600, T0 + 7 * 86400 + 18 * 3600)  # youtube SNI reset


def _copy(m: dict[str, Any], t: int, i: int) -> dict[str, Any]:
    """The probe's measurement as if made at ``t`` in KZ / AS9198 (test keys untouched)."""
    d = {k: v for k, v in m.items() if k != "uid"}
    when = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")
    d.update(measurement_start_time=when, test_start_time=when, probe_cc="KZ",
             probe_asn="AS9198", report_id=f"{m['report_id']}-{i}")
    return d


def timeline(free: dict[str, Any], censored: dict[str, Any]) -> list[dict[str, Any]]:
    """Hourly measurements over ``DAYS`` days: every hour the probe's own measurements of the
    three platforms, from the censored round inside each platform's window and from the free
    round outside it (x.com: the censored round's, untouched by the censor, throughout)."""
    windows = {"www.tiktok.com": THROTTLED, "www.youtube.com": BLOCKED, "x.com": (0, 2**40)}
    out: list[dict[str, Any]] = []
    for h in range(DAYS * 24):
        t = T0 + h * 3600
        for key in sorted(free):
            host = key.split("//")[1].split("/")[0]
            lo, hi = windows[host]
            src = censored if lo <= t < hi else free
            out.append(_copy(src[key], t + 60 + len(out) % 600, len(out)))
    return out


def _signals(e: dict[str, Any]) -> set[str]:
    return {s["signal"] for s in e["signals"]}


def test_throttled_platform_is_a_throttling_event_never_a_platform_block(
        rounds: dict[str, Any]) -> None:
    tmp: Path = rounds["tmp"]
    src = tmp / "kz-measurements.jsonl"
    src.write_text("".join(json.dumps(m) + "\n" for m in timeline(rounds["free"],
                                                                   rounds["censored"])))
    store = str(tmp / "e2e.duckdb")
    runner = CliRunner()
    for args in (["ooni", "import", str(src)], ["detect"]):
        res = runner.invoke(cli, [*args, "--store", store])
        assert res.exit_code == 0, res.output
    # the series: per AS and hour, 100 x the probe measurement's own target/control speed
    con = duckdb.connect(store, read_only=True)
    pts = dict(con.execute("SELECT time, value FROM points WHERE entity_code = '9198' AND "
                           "signal = 'throttling:tiktok'").fetchall())
    con.close()
    speed = {k: 100 * verdict(rounds[k][f"{ST}www.tiktok.com/"]).speed_ratio  # type: ignore[operator]
             for k in ("free", "censored")}
    assert len(pts) == DAYS * 24
    for t, v in pts.items():
        inside = THROTTLED[0] <= t < THROTTLED[1]
        assert v == pytest.approx(speed["censored" if inside else "free"]), t
    res = runner.invoke(cli, ["events", "--store", store, "--format", "json"])
    assert res.exit_code == 0, res.output
    events = json.loads(res.output)
    iso = {t: datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
           for t in (*THROTTLED, *BLOCKED)}
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_kind.setdefault(e["assessment"]["class"]["kind"], []).append(e)
    # tiktok: one throttling event per entity (the country and its AS), exactly the window
    thr = by_kind.get("throttling", [])
    assert sorted((e["entity_type"], e["entity_code"]) for e in thr) == [
        ("asn", "9198"), ("country", "KZ")], events
    for e in thr:
        assert _signals(e) == {"throttling:tiktok"}
        assert (e["start"], e["end"]) == (iso[THROTTLED[0]], iso[THROTTLED[1]])
        assert "class.throttling" in e["rules"] and e["kind"] == "degradation"
    # youtube's SNI reset in the same data: platform-block, naming youtube only
    blk = by_kind.get("platform-block", [])
    assert len(blk) == 2 and all(e["kind"] == "platform-block" for e in blk), events
    for e in blk:
        assert _signals(e) == {"platform:youtube"}
        assert (e["start"], e["end"]) == (iso[BLOCKED[0]], iso[BLOCKED[1]])
    # and nothing else: no block of the throttled platform, nothing about x.com
    assert len(events) == 4, events
    assert not [e for e in events if e["kind"] == "platform-block"
                and any("tiktok" in s for s in _signals(e))]


def test_throttling_targets_are_validated_and_the_default_control_keeps_the_length() -> None:
    from netvigil_probe.targets import TargetError, parse_targets
    from netvigil_probe.throttling import scrambled

    (t,) = parse_targets([{"url": "https://x.com/a", "platform": "x",
                           "throttling": {"path": "/big", "control_sni": "cdn.example"}}], "f")
    assert (t.throttling, t.download_path, t.control_sni) == (True, "/big", "cdn.example")
    for bad, why in (({"url": "http://x.com/", "throttling": True}, "needs an https URL"),
                     ({"url": "https://x.com/", "throttling": {"path": "big"}}, "start with /"),
                     ({"url": "https://x.com/", "throttling": {"speed": 1}}, "must be true")):
        with pytest.raises(TargetError, match=why):
            parse_targets([{"platform": "x", **bad}], "targets.json")
    s = scrambled("abs.twimg.com")
    assert len(s) == len("abs.twimg.com") and s.endswith(".com") and s != "abs.twimg.com"
