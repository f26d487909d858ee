"""One target measured end to end: DNS twice, TCP/TLS to each address, one HTTP(S) GET.

The order and the rows follow OONI's web_connectivity (anchors §4.1–4.2), with one
difference that is the point of this agent: there is no test helper outside the country
to compare with (it may be unreachable during the very event being measured), so the
comparison points are on the probe — the chosen resolver beside the system one, and the
control targets beside the measured ones (:mod:`.verdict`).
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import Any

from netvigil_probe import dnsquery, netio, verdict
from netvigil_probe.targets import Target


@dataclass(frozen=True)
class MeasureConfig:
    resolver: str = "1.1.1.1"  # the chosen resolver (compared with the system one)
    resolver_port: int = 53
    timeout: float = 5.0  # seconds per connect / handshake / read
    cafile: str | None = None  # CA bundle for TLS (None = the system store)
    max_addrs: int = 3  # addresses tested per answer set

    def tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.cafile)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx


@dataclass
class Outcome:
    """What one target gave: OONI test_keys and the per-layer mechanism labels."""

    target: Target
    test_keys: dict[str, Any]
    mechanisms: dict[str, str | None]
    runtime: float

    @property
    def all_ok(self) -> bool:
        return all(m in (None, verdict.OK) for m in self.mechanisms.values())


def _connect(target: Target, ip: str, cfg: MeasureConfig, ctx: ssl.SSLContext, t0: float,
             tcp_rows: list[dict[str, Any]], tls_rows: list[dict[str, Any]]
             ) -> tuple[str | None, str | None, Any]:
    """TCP (and TLS for https) to ``ip``: (tcp failure, tls failure, open socket or None)."""
    st = netio.tcp_connect(ip, target.tcp_port, cfg.timeout, t0)
    tcp_rows.append(st.row)
    if st.sock is None or not target.https:
        return st.failure, None, st.sock
    ts = netio.tls_handshake(st.sock, ip, target.tcp_port, target.host, ctx, t0)
    tls_rows.append(ts.row)
    return None, ts.failure, ts.sock


def measure_target(target: Target, cfg: MeasureConfig) -> Outcome:
    t0 = time.monotonic()
    ctx = cfg.tls_context()
    system = dnsquery.query_system(target.host)
    chosen = dnsquery.query_udp(target.host, cfg.resolver, port=cfg.resolver_port,
                                timeout=cfg.timeout)
    for q in (system, chosen):
        q.t0, q.t = q.t0 - t0, q.t - t0
    trusted = chosen.addrs or system.addrs
    tcp_rows: list[dict[str, Any]] = []
    tls_rows: list[dict[str, Any]] = []
    tcp_fail: list[str | None] = []
    tls_fail: list[str | None] = []
    good: str | None = None
    for ip in trusted[:cfg.max_addrs]:
        tf, sf, sock = _connect(target, ip, cfg, ctx, t0, tcp_rows, tls_rows)
        tcp_fail.append(tf)
        if tf is None and target.https:
            tls_fail.append(sf)
        if sock is not None:
            sock.close()
            good = good or ip
    tls_valid_on_system = False
    for ip in [a for a in system.addrs if a not in trusted][:cfg.max_addrs]:
        tf, sf, sock = _connect(target, ip, cfg, ctx, t0, tcp_rows, tls_rows)
        if sock is not None:
            sock.close()
            tls_valid_on_system = target.https and sf is None
    requests: list[dict[str, Any]] = []
    http_label: str | None = None
    fp: str | None = None
    if good is not None:
        tf, sf, sock = _connect(target, good, cfg, ctx, t0, tcp_rows, tls_rows)
        if sock is None:
            http_label = verdict.layer_label("http", [tf or sf])
        else:
            step = netio.http_get(sock, target.url, target.host, target.path, t0)
            requests.append(step.row)
            http_label = verdict.layer_label("http", [step.failure])
            if step.failure is None:
                fp = verdict.blockpage(step.row["response"])
                http_label = "http.blockpage" if fp else verdict.OK
    mechanisms: dict[str, str | None] = {
        "dns": verdict.dns_label(_q(system), _q(chosen), tls_valid_on_system),
        "tcp": verdict.layer_label("tcp", tcp_fail),
        "tls": verdict.layer_label("tls", tls_fail) if target.https else None,
        "http": http_label,
    }
    consistent = mechanisms["dns"] == verdict.OK
    keys: dict[str, Any] = {
        "agent": "redirect", "client_resolver": None,
        "queries": [system.to_ooni(), chosen.to_ooni()],
        "tcp_connect": tcp_rows, "tls_handshakes": tls_rows, "requests": requests,
        "dns_experiment_failure": system.failure,
        "dns_consistency": None if mechanisms["dns"] == "dns.failure" else (
            "consistent" if consistent else "inconsistent"),
        "http_experiment_failure": requests[0]["failure"] if requests else None,
        "control": {}, "control_failure": None,
    }
    return Outcome(target, keys, mechanisms, time.monotonic() - t0)


def _q(r: dnsquery.DnsResult) -> dict[str, Any]:
    return {"addrs": r.addrs, "failure": r.failure}


def finish(outcome: Outcome, network_up: bool) -> dict[str, Any]:
    """The outcome's test_keys with the verdict keys, given what the controls said."""
    keys = dict(outcome.test_keys)
    keys.update(verdict.summarize(outcome.mechanisms, network_up))
    if not network_up:
        keys["control_failure"] = "netvigil_controls_unreachable"
    fp = None
    if outcome.mechanisms.get("http") == "http.blockpage" and keys["requests"]:
        fp = verdict.blockpage(keys["requests"][0]["response"])
    keys["x_netvigil"] = {
        "platform": outcome.target.platform, "control_target": outcome.target.control,
        "network_up": network_up, "mechanisms": outcome.mechanisms,
        "blocked": sorted(m for m in outcome.mechanisms.values()
                          if m and m != verdict.OK and m not in verdict.NO_VERDICT)
        if network_up else [],
        "blockpage_fingerprint": fp}
    return keys
