"""The probe agent against censorship reproduced in network namespaces the test builds.

Topology (addresses in 198.18.0.0/15, the benchmarking range; nothing leaves the lab)::

    [probe ns] p0 198.19.0.1 ── r0 198.19.0.2 [censor ns] r1 198.19.1.1 ── s0 198.19.1.2 [servers]
    resolv.conf → 198.18.0.53           nftables, DPI proxy          lo: 198.18.0.x services

Servers (threads of this process on sockets opened inside the servers namespace): an ISP
resolver (.53, the probe's *system* resolver through ``/etc/netns/<ns>/resolv.conf``) that
injects answers, an honest resolver (.54, the agent's ``--resolver``), HTTPS/HTTP sites with
a certificate from a CA generated here with openssl, a blockpage server (.66), a location
service (.81) and the NetVigil collector itself (.80, uvicorn serving ``create_app``).

Censorship, one mechanism per platform, at the censor namespace:
telegram — TCP reset answering the SYN (nft ``reject with tcp reset``: to the client a
refused connection, ``tcp.refused``); signal — silent drop (timeout);
youtube — TLS reset on SNI by a DPI proxy that reads the ClientHello's server name (x.com on
the *same address* passes); tiktok (same address) — throttled by the same proxy holding its
ClientHello; whatsapp — DNS answer injected by the ISP resolver; instagram —
NXDOMAIN from the ISP resolver; rferl (plain HTTP) — a transparent proxy (nft DNAT) serving
a blockpage. The agent runs as its real console script inside the probe namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import http.server
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pytest
import uvicorn
from netvigil_probe import measurement as pm

from netvigil.cli.common import open_store
from netvigil.serve.app import create_app
from netvigil.serve.collector import CONFIG_ENV, token_digest
from netvigil.sources.ooni.verdict import Outcome, verdict
from netvigil.store.duck import Store
from netvigil.testing.netns import can_build
from prereq import require, requires

OK, WHY = can_build()
pytestmark = requires(OK, WHY)

CLONE_NEWNET = 0x40000000
TOKEN = "lab-probe-token-7c1d2e"
ISP_DNS, CLEAN_DNS, BLOCKPAGE, COLLECTOR, GEO = (
    "198.18.0.53", "198.18.0.54", "198.18.0.66", "198.18.0.80", "198.18.0.81")
SITES = {  # name -> address in the servers namespace
    "www.example.com": "198.18.0.20", "web.telegram.org": "198.18.0.10",
    "signal.org": "198.18.0.11", "web.whatsapp.com": "198.18.0.12",
    "www.rferl.org": "198.18.0.13", "www.youtube.com": "198.18.0.14", "x.com": "198.18.0.14",
    "www.tiktok.com": "198.18.0.14",
    "www.instagram.com": "198.18.0.16",
}
ISP_OVERRIDES = {"web.whatsapp.com": BLOCKPAGE, "www.instagram.com": None}  # None: NXDOMAIN
TARGETS = [
    {"url": "https://www.example.com/", "platform": "control", "control": True},
    {"url": "https://web.telegram.org/", "platform": "telegram"},
    {"url": "https://signal.org/", "platform": "signal"},
    {"url": "https://web.whatsapp.com/", "platform": "whatsapp"},
    {"url": "https://www.instagram.com/", "platform": "instagram"},
    {"url": "https://www.youtube.com/", "platform": "youtube"},
    {"url": "https://x.com/", "platform": "x"},
    {"url": "https://www.tiktok.com/", "platform": "tiktok"},
    {"url": "http://www.rferl.org/", "platform": "news"},
]
#: what the lab does to each target -> the label the agent must give each layer
EXPECTED = {
    "https://www.example.com/": {"dns": "ok", "tcp": "ok", "tls": "ok", "http": "ok"},
    "https://web.telegram.org/": {"dns": "ok", "tcp": "tcp.refused", "tls": None, "http": None},
    "https://signal.org/": {"dns": "ok", "tcp": "tcp.timeout", "tls": None, "http": None},
    "https://web.whatsapp.com/": {"dns": "dns.injection.other", "tcp": "ok", "tls": "ok",
                                  "http": "ok"},
    "https://www.instagram.com/": {"dns": "dns.nxdomain", "tcp": "ok", "tls": "ok",
                                   "http": "ok"},
    "https://www.youtube.com/": {"dns": "ok", "tcp": "ok", "tls": "tls.reset.sni",
                                 "http": None},
    "https://x.com/": {"dns": "ok", "tcp": "ok", "tls": "ok", "http": "ok"},
    "https://www.tiktok.com/": {"dns": "ok", "tcp": "ok", "tls": "ok", "http": "ok"},
    "http://www.rferl.org/": {"dns": "ok", "tcp": "ok", "tls": None, "http": "http.blockpage"},
}
#: and the OONI verdict (netvigil.sources.ooni) of each measurement
OONI_MECHANISM = {"https://web.telegram.org/": "tcp", "https://signal.org/": "tcp",
                  "https://web.whatsapp.com/": "dns", "https://www.instagram.com/": "dns",
                  "https://www.youtube.com/": "tls", "http://www.rferl.org/": "http-blockpage"}

_T = TypeVar("_T")


# ---------------------------------------------------------------------------- plumbing
def run(*cmd: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")


def in_ns(ns: str, fn: Callable[[], _T]) -> _T:
    """Run ``fn`` in a thread that entered ``ns`` (sockets it opens stay in ``ns``)."""
    box: list[Any] = []

    def work() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            box.append(fn())
        except BaseException as exc:
            box.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]  # type: ignore[no-any-return]


def listen(ns: str, addr: str, port: int, kind: int = socket.SOCK_STREAM) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        if kind == socket.SOCK_STREAM:
            s.listen(64)
        return s

    return in_ns(ns, make)


def make_certs(d: Path) -> tuple[Path, Path, Path]:
    """A CA and one leaf certificate for every lab name (openssl, EC P-256)."""
    require(shutil.which("openssl") is not None, "openssl is needed to make the lab's CA")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out",
        str(d / "ca.pem"), "-days", "2", "-subj", "/CN=netvigil lab CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", *ec, "-keyout", str(d / "leaf.key"), "-out", str(d / "leaf.csr"),
        "-subj", "/CN=netvigil lab")
    (d / "ext.cnf").write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in SITES)
                               + "\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", str(d / "leaf.csr"), "-CA", str(d / "ca.pem"),
        "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "leaf.pem"),
        "-days", "2", "-extfile", str(d / "ext.cnf"))
    return d / "ca.pem", d / "leaf.pem", d / "leaf.key"


# ---------------------------------------------------------------------------- servers
def dns_answer(query: bytes, table: dict[str, str | None]) -> bytes:
    """A response to one A query from ``table`` (name -> address, None = NXDOMAIN).
    Written for the lab, independently of the agent's client."""
    qid = query[:2]
    off, labels = 12, []
    while query[off]:
        n = query[off]
        labels.append(query[off + 1:off + 1 + n].decode())
        off += n + 1
    question = query[12:off + 5]
    name = ".".join(labels).lower()
    addr = table.get(name, None) if name in table else None
    if addr is None:
        return qid + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + question
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(addr)
    return qid + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + answer


def serve_dns(sock: socket.socket, table: dict[str, str | None]) -> None:
    while True:
        try:
            q, peer = sock.recvfrom(512)
            if not q:
                return  # shut down
            sock.sendto(dns_answer(q, table), peer)
        except (OSError, IndexError):
            return


class Site(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        host = self.headers.get("Host", "")
        body = f"<html><head><title>{host}</title></head><body>{host}</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_a: Any) -> None:
        pass


class Blockpage(Site):
    """What a national filter's transparent proxy answers (WireFilter's Server header)."""

    def version_string(self) -> str:
        return "Protected by WireFilter 8000"

    def do_GET(self) -> None:  # noqa: N802
        body = b"<html><body>Access to this resource is restricted.</body></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Geo(Site):
    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"probe_cc": "KZ", "probe_asn": "AS9198"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def sni_of(hello: bytes) -> str | None:
    """The server name of a TLS ClientHello record (RFC 8446 §4.1.2, RFC 6066 §3)."""
    try:
        off = 5 + 4 + 2 + 32
        off += 1 + hello[off]
        off += 2 + struct.unpack("!H", hello[off:off + 2])[0]
        off += 1 + hello[off]
        end = off + 2 + struct.unpack("!H", hello[off:off + 2])[0]
        off += 2
        while off + 4 <= end:
            etype, elen = struct.unpack("!HH", hello[off:off + 4])
            if etype == 0:
                n = struct.unpack("!H", hello[off + 7:off + 9])[0]
                return hello[off + 9:off + 9 + n].decode()
            off += 4 + elen
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return None


THROTTLE_S = 0.6  # the DPI box holds a throttled name's ClientHello this long


def dpi_proxy(lsock: socket.socket, blocked: set[str], throttled: set[str], ns: str) -> None:
    """The censor's SNI filter: reads the ClientHello, resets blocked names, holds throttled
    ones (the SNI throttling OONI measured in Russia and Kazakhstan shows as slow
    handshakes; this kernel has no netem/tbf qdisc to do it with ``tc``), relays the rest to
    the original destination (SO_ORIGINAL_DST of the nft redirect)."""

    def relay(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
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
                return  # closed with linger 0: a RST
            if name in throttled:
                time.sleep(THROTTLE_S)
            with in_ns(ns, lambda: socket.create_connection(dst, timeout=5)) as up:
                up.sendall(hello)
                back = threading.Thread(target=relay, args=(up, c), daemon=True)
                back.start()
                relay(c, up)
                back.join(5)

    while True:
        try:
            c, _ = lsock.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(c,), daemon=True).start()


# ---------------------------------------------------------------------------- the lab
@dataclass
class Lab:
    tmp: Path
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: list[str] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)
    servers: list[Any] = field(default_factory=list)
    uvicorn: uvicorn.Server | None = None
    uvicorn_thread: threading.Thread | None = None
    store: Path = Path()
    archive: Path = Path()
    ca: Path = Path()

    @property
    def probe(self) -> str:
        return f"nvpa{self.tag}p"

    @property
    def censor(self) -> str:
        return f"nvpa{self.tag}c"

    @property
    def srv(self) -> str:
        return f"nvpa{self.tag}s"

    def build(self) -> None:
        p, c, s = self.probe, self.censor, self.srv
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
        for a in {*SITES.values(), ISP_DNS, CLEAN_DNS, BLOCKPAGE, COLLECTOR, GEO}:
            run("ip", "-n", s, "addr", "add", f"{a}/32", "dev", "lo")
        etc = Path("/etc/netns") / p
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(f"nameserver {ISP_DNS}\noptions timeout:1 attempts:1\n")
        self.ca, leaf, key = make_certs(self.tmp)
        self._servers(leaf, key)
        self._censor()

    def _thread(self, target: Callable[..., None], *args: Any) -> threading.Thread:
        th = threading.Thread(target=target, args=args, daemon=True)
        th.start()
        return th

    def _http(self, addr: str, port: int, handler: type, ctx: ssl.SSLContext | None) -> None:
        srv = http.server.ThreadingHTTPServer((addr, port), handler, bind_and_activate=False)
        srv.socket.close()
        sock = listen(self.srv, addr, port)
        srv.socket = ctx.wrap_socket(sock, server_side=True) if ctx else sock
        srv.daemon_threads = True
        self.servers.append(srv)
        self._thread(srv.serve_forever, 0.05)

    def _servers(self, leaf: Path, key: Path) -> None:
        honest: dict[str, str | None] = dict(SITES)
        for addr, table in ((CLEAN_DNS, honest), (ISP_DNS, {**honest, **ISP_OVERRIDES})):
            sock = listen(self.srv, addr, 53, socket.SOCK_DGRAM)
            self.sockets.append(sock)
            self._thread(serve_dns, sock, table)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(leaf, key)
        for addr in sorted(set(SITES.values())):
            self._http(addr, 443, Site, ctx)
            self._http(addr, 80, Site, None)
        self._http(BLOCKPAGE, 80, Blockpage, None)
        self._http(GEO, 80, Geo, None)
        self.store = self.tmp / "collector.duckdb"
        Store(self.store).close()
        self.archive = self.tmp / "collector.duckdb.collector"
        cfg = self.tmp / "collector.json"
        cfg.write_text(json.dumps({"senders": {"probe-kz": {
            "token_sha256": token_digest(TOKEN), "kinds": ["measurement"]}}}))
        os.environ[CONFIG_ENV] = str(cfg)
        app = create_app(self.store, open_store=open_store, lock_wait=10)
        sock = listen(self.srv, COLLECTOR, 8080)
        self.uvicorn = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.uvicorn_thread = self._thread(
            lambda: self.uvicorn.run(sockets=[sock]))  # type: ignore[union-attr]
        self.sockets.append(sock)

    def nft(self, *rules: str) -> None:
        for r in rules:
            run("ip", "netns", "exec", self.censor, "nft", r)

    def _censor(self) -> None:
        self.nft("add table inet censor",
                 "add chain inet censor cfwd { type filter hook forward priority 0 ; }",
                 "add chain inet censor cpre { type nat hook prerouting priority -100 ; }",
                 f"add rule inet censor cfwd ip daddr {SITES['web.telegram.org']} tcp dport 443"
                 " reject with tcp reset",
                 f"add rule inet censor cfwd ip daddr {SITES['signal.org']} drop",
                 f"add rule inet censor cpre ip daddr {SITES['www.youtube.com']} tcp dport 443"
                 " redirect to :8443",
                 f"add rule inet censor cpre ip daddr {SITES['www.rferl.org']} tcp dport 80"
                 f" dnat ip to {BLOCKPAGE}:80")
        lsock = listen(self.censor, "0.0.0.0", 8443)
        self.sockets.append(lsock)
        self._thread(dpi_proxy, lsock, {"www.youtube.com"}, {"www.tiktok.com"}, self.censor)
        deadline = time.monotonic() + 15
        while self.uvicorn is not None and not self.uvicorn.started:
            assert time.monotonic() < deadline, "collector did not start"
            time.sleep(0.02)

    def offline(self, on: bool) -> None:
        """Cut (or restore) the collector and the location service from the probe."""
        if on:
            self.nft("add chain inet censor ccut { type filter hook forward priority -10 ; }",
                     f"add rule inet censor ccut ip daddr {{ {COLLECTOR}, {GEO} }} drop")
        else:
            self.nft("flush chain inet censor ccut", "delete chain inet censor ccut")

    def drop_collector_answers(self, on: bool) -> None:
        """Let requests reach the collector but drop everything it sends back after the
        SYN-ACK: the upload is stored and its answer never arrives."""
        if on:
            self.nft("add chain inet censor cmute { type filter hook forward priority -10 ; }",
                     f"add rule inet censor cmute ip saddr {COLLECTOR} tcp sport 8080 "
                     "tcp flags != syn|ack drop")
        else:
            self.nft("flush chain inet censor cmute", "delete chain inet censor cmute")

    def agent(self, *args: str, spool: Path) -> list[str]:
        exe = str(Path(sys.executable).with_name("netvigil-probe"))
        tok = self.tmp / "token"
        tok.write_text(TOKEN)
        return ["ip", "netns", "exec", self.probe, exe, args[0], "--spool", str(spool),
                "--collector", f"http://{COLLECTOR}:8080", "--token-file", str(tok),
                *args[1:]]

    def run_args(self, spool: Path) -> list[str]:
        t = self.tmp / "targets.json"
        t.write_text(json.dumps(TARGETS))
        return self.agent("run", "--targets", str(t), "--resolver", CLEAN_DNS, "--cafile",
                          str(self.ca), "--geo-url", f"http://{GEO}/", "--timeout", "1.2",
                          "--rounds", "1", "--backoff", "0.2", "--backoff-cap", "1",
                          spool=spool)

    def archived(self) -> list[dict[str, Any]]:
        if not self.archive.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.archive.rglob("*.json"))
                if "pending" not in p.parts]

    def settle(self) -> dict[str, Any]:
        """Wait for the collector to derive every accepted measurement (GET /status, asked
        from inside the servers namespace)."""
        def ask() -> dict[str, Any]:
            con = http.client.HTTPConnection(COLLECTOR, 8080, timeout=10)
            try:
                con.request("GET", "/api/v1/collector/status",
                            headers={"Authorization": f"Bearer {TOKEN}"})
                return json.loads(con.getresponse().read())  # type: ignore[no-any-return]
            finally:
                con.close()

        deadline = time.monotonic() + 30
        while (st := in_ns(self.srv, ask))["pending_cells"]:
            assert time.monotonic() < deadline, st
            time.sleep(0.05)
        return st

    def destroy(self) -> None:
        if self.uvicorn is not None:
            self.uvicorn.should_exit = True
        if self.uvicorn_thread is not None:  # it closes its socket on the way out (as in
            self.uvicorn_thread.join(15)     # tests/test_throttling.py)
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        os.environ.pop(CONFIG_ENV, None)
        shutil.rmtree(Path("/etc/netns") / self.probe, ignore_errors=True)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    built = Lab(tmp_path_factory.mktemp("probe-lab"))
    try:
        built.build()
        yield built
    finally:
        built.destroy()


def spooled(spool: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(spool / "spool.sqlite")
    try:
        return [{"uid": u, "uploaded": up is not None, **json.loads(b)} for u, b, up in
                con.execute("SELECT uid, body, uploaded_at FROM outbox ORDER BY uid")]
    finally:
        con.close()


# ---------------------------------------------------------------------------- tests
def test_the_agent_names_each_mechanism_and_delivers_what_it_measured_offline(
        lab: Lab) -> None:
    spool = lab.tmp / "spool-run"
    # 1. online: measured, judged, uploaded
    proc = subprocess.run(lab.run_args(spool) + ["--upload-wait", "20"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["pending"] == 0
    got = {m["input"]: m for m in spooled(spool)}
    assert set(got) == set(EXPECTED)
    for url, layers in EXPECTED.items():
        m = got[url]
        assert m["test_keys"]["x_netvigil"]["mechanisms"] == layers, url
        assert m["data_format_version"] == "0.2.0" and m["test_name"] == "web_connectivity"
        assert (m["probe_cc"], m["probe_asn"]) == ("KZ", "AS9198")
        v = verdict(m)  # the OONI verdict logic reads the agent's measurements
        if url in OONI_MECHANISM:
            assert v.outcome is Outcome.ANOMALY and v.mechanisms == (OONI_MECHANISM[url],), \
                (url, v)
        else:
            assert v.outcome is Outcome.OK, (url, v)
    assert len(lab.archived()) == len(EXPECTED)
    # throttling is no block: tiktok reachable, but its handshakes are slow beside x.com's
    # on the same address (the evidence tls-handshake:<platform> carries)
    slow, fast = (verdict(got[u]).tls_handshake_ms for u in ("https://www.tiktok.com/",
                                                             "https://x.com/"))
    assert slow is not None and fast is not None
    assert slow >= THROTTLE_S * 1000 > fast, (slow, fast)  # the hello was held that long

    # 2. the collector and the location service are cut: measured and kept, not sent
    lab.offline(True)
    try:
        proc = subprocess.run(lab.run_args(spool), capture_output=True, text=True,
                              timeout=120)
    finally:
        lab.offline(False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["pending"] == len(EXPECTED)
    late = [m for m in spooled(spool) if not m["uploaded"]]
    # the location is the one cached from the last successful lookup
    assert {(m["probe_cc"], m["probe_asn"]) for m in late} == {("KZ", "AS9198")}
    assert len(lab.archived()) == len(EXPECTED)

    # 3. connectivity returns: everything delivered, with both times kept
    proc = subprocess.run(lab.agent("upload", "--wait", "20", spool=spool),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    docs = {d["measurement_uid"]: d for d in lab.archived()}
    assert set(docs) == {m["uid"] for m in spooled(spool)}
    for m in late:
        d = docs[m["uid"]]
        assert d["measurement_start_time"] == m["measurement_start_time"]
        assert d["x_received_at"] > d["measurement_start_time"].replace(" ", "T")
    lab.settle()
    con = duckdb.connect(str(lab.store), read_only=True)
    rows = dict(con.execute("SELECT signal, avg(value) FROM points WHERE entity_code = 'KZ' "
                            "GROUP BY signal").fetchall())
    con.close()
    assert rows["platform:telegram"] == 0.0 and rows["platform:x"] == 100.0
    assert rows["platform:tiktok"] == 100.0
    assert rows["tls-handshake:tiktok"] >= THROTTLE_S * 1000 > rows["tls-handshake:x"]

    # the archive is OONI's bucket layout: NetVigil's own OONI importer reads it as such
    from click.testing import CliRunner

    from netvigil.cli.main import cli

    res = CliRunner().invoke(cli, ["ooni", "import", "--dir", str(lab.archive), "--store",
                                   str(lab.tmp / "ooni.duckdb")])
    assert res.exit_code == 0, res.output
    assert f"{2 * len(EXPECTED)} measurements" in res.output, res.output


def test_kill_9_mid_upload_then_restart_delivers_each_measurement_exactly_once(
        lab: Lab) -> None:
    from netvigil_probe.spool import Spool

    spool = lab.tmp / "spool-crash"
    rng = random.Random(9)
    base = int(time.time()) - 3 * 86400
    with Spool(spool) as sp:
        for i in range(10):
            t = base + 3600 * (i // 2)
            keys = {"blocking": "tcp_ip" if i % 2 else False, "accessible": not i % 2,
                    "queries": [], "tcp_connect": [], "requests": []}
            when = datetime.fromtimestamp(t + i, UTC)
            sp.put("measurement", pm.build("https://signal.org/", keys, measured_at=when,
                                           test_start=when, runtime=0.1,
                                           net=pm.Network("KZ", "AS9198"),
                                           resolver_ip=CLEAN_DNS, rid=f"crash-{i}"))
    before = len(lab.archived())
    # killed while the collector has stored the first upload and its answer is in flight
    lab.drop_collector_answers(True)
    try:
        proc = subprocess.Popen(lab.agent("upload", "--timeout", "30", "--wait", "60",
                                          spool=spool))
        deadline = time.monotonic() + 30
        while len(lab.archived()) == before:
            assert time.monotonic() < deadline, "the first upload never reached the collector"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        lab.drop_collector_answers(False)
    assert [m["uploaded"] for m in spooled(spool)] == [False] * 10
    # killed at random moments of the ordinary upload loop
    for _ in range(3):
        proc = subprocess.Popen(lab.agent("upload", "--wait", "30", spool=spool))
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # and killed while measuring a round (the spool must stay readable and complete)
    proc = subprocess.Popen(lab.run_args(spool))
    time.sleep(rng.uniform(0.3, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc2 = subprocess.run(lab.agent("upload", "--wait", "30", spool=spool),
                           capture_output=True, text=True, timeout=60)
    assert proc2.returncode == 0, proc2.stderr
    assert len(spooled(spool)) >= 10
    mine = {m["uid"] for m in spooled(spool)}
    held = [d["measurement_uid"] for d in lab.archived() if d["measurement_uid"] in mine]
    assert sorted(held) == sorted(mine)  # each once
    assert not list(lab.archive.rglob(".tmp-*"))
    assert all(m["uploaded"] for m in spooled(spool))
    lab.settle()
    con = duckdb.connect(str(lab.store), read_only=True)
    vals = [v for (v,) in con.execute(
        "SELECT value FROM points WHERE entity_code = 'KZ' AND signal = 'platform:signal' "
        "AND time >= ? AND time < ? ORDER BY time",
        [base - base % 3600, base - base % 3600 + 5 * 3600]).fetchall()]
    con.close()
    assert vals == [50.0] * 5  # one ok and one blocked per hour, none counted twice
