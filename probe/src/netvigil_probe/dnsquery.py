"""A minimal DNS A-record client over UDP (RFC 1035), and the system resolver.

Why hand-written instead of dnspython: the agent is standard-library only (see the package's
pyproject.toml), and what it needs is one question type (A), one transport (UDP) and the
answer section with name compression — about sixty lines. Anything richer (DoH, DoT, EDNS)
would be a reason to take dnspython.

Failures are OONI's df-007 failure strings (``dns_nxdomain_error``, ``generic_timeout_error``,
``dns_server_failure``, ``dns_refused_error``, ``dns_no_answer``), so measurements read like
any OONI probe's.
"""

from __future__ import annotations

import secrets
import socket
import struct
import time
from dataclasses import dataclass, field

QTYPE_A = 1
QCLASS_IN = 1
#: DNS response codes → OONI failure strings (RFC 1035 §4.1.1; df-007)
RCODE_FAILURES = {2: "dns_server_failure", 3: "dns_nxdomain_error", 5: "dns_refused_error"}


@dataclass
class DnsResult:
    """One lookup: answers (IPv4 strings) or a failure string, as OONI's ``queries[]`` row."""

    engine: str  # "system" or "udp"
    resolver_address: str
    hostname: str
    addrs: list[str] = field(default_factory=list)
    failure: str | None = None
    t0: float = 0.0
    t: float = 0.0

    def to_ooni(self) -> dict[str, object]:
        return {"engine": self.engine, "resolver_address": self.resolver_address,
                "hostname": self.hostname, "query_type": "A", "failure": self.failure,
                "answers": [{"answer_type": "A", "ipv4": a} for a in self.addrs],
                "t0": round(self.t0, 6), "t": round(self.t, 6)}


def build_query(hostname: str, qid: int) -> bytes:
    """A recursive A/IN question for ``hostname``."""
    labels = hostname.rstrip(".").split(".")
    qname = b"".join(bytes([len(x)]) + x.encode("idna") for x in labels) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(
        "!HH", QTYPE_A, QCLASS_IN)


def _skip_name(msg: bytes, off: int) -> int:
    while True:
        if off >= len(msg):
            raise ValueError("truncated name")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            return off + 2
        if n == 0:
            return off + 1
        off += n + 1


def parse_response(msg: bytes, qid: int) -> tuple[list[str], str | None]:
    """(IPv4 answers, failure) of a response to query ``qid``; ValueError if malformed."""
    if len(msg) < 12:
        raise ValueError("short DNS message")
    rid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid or not flags & 0x8000:
        raise ValueError("not a response to our query")
    rcode = flags & 0xF
    if rcode:
        return [], RCODE_FAILURES.get(rcode, f"dns_rcode_{rcode}")
    off = 12
    for _ in range(qd):
        off = _skip_name(msg, off) + 4
    addrs: list[str] = []
    for _ in range(an):
        off = _skip_name(msg, off)
        rtype, _rclass, _ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        if rtype == QTYPE_A and rdlen == 4:
            addrs.append(socket.inet_ntoa(msg[off:off + 4]))
        off += rdlen
    return addrs, None if addrs else "dns_no_answer"


def query_udp(hostname: str, server: str, *, port: int = 53, timeout: float = 2.0,
              tries: int = 2) -> DnsResult:
    """Ask ``server`` for ``hostname``'s A records over UDP (retried once on timeout)."""
    res = DnsResult("udp", f"{server}:{port}", hostname, t0=time.monotonic())
    for _ in range(tries):
        qid = secrets.randbelow(0x10000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            try:
                s.sendto(build_query(hostname, qid), (server, port))
                deadline = time.monotonic() + timeout
                while True:  # ignore stray datagrams that are not our answer
                    s.settimeout(max(0.01, deadline - time.monotonic()))
                    msg, _peer = s.recvfrom(4096)
                    try:
                        res.addrs, res.failure = parse_response(msg, qid)
                        break
                    except ValueError:
                        continue
                res.t = time.monotonic()
                return res
            except TimeoutError:
                res.failure = "generic_timeout_error"
            except OSError as exc:
                res.failure = _os_failure(exc)
                break
    res.t = time.monotonic()
    return res


def query_system(hostname: str) -> DnsResult:
    """The operating system's resolver (``getaddrinfo``), as a user's browser would see it."""
    res = DnsResult("system", "", hostname, t0=time.monotonic())
    try:
        infos = socket.getaddrinfo(hostname, None, socket.AF_INET, socket.SOCK_STREAM)
        res.addrs = sorted({str(i[4][0]) for i in infos})
    except socket.gaierror as exc:
        res.failure = {socket.EAI_NONAME: "dns_nxdomain_error",
                       socket.EAI_AGAIN: "generic_timeout_error"}.get(
            exc.errno or 0, "dns_lookup_error")
        if exc.errno == getattr(socket, "EAI_NODATA", None):
            res.failure = "dns_no_answer"
    res.t = time.monotonic()
    return res


def _os_failure(exc: OSError) -> str:
    import errno

    return {errno.ECONNREFUSED: "connection_refused", errno.ENETUNREACH: "network_unreachable",
            errno.EHOSTUNREACH: "host_unreachable"}.get(exc.errno or 0, "generic_os_error")
