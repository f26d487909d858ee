"""SNI throttling against a same-server baseline: test ``sni_throttling``.

The method is the one used to show SNI-triggered throttling (anchors §6): Censored Planet
replayed the same download from the same server with the real SNI and with a scrambled one
(Russia–Twitter, March 2021: the real SNI ~130 kbps); OONI compared TLS handshake times of
the throttled names with a baseline name *on the same IP* (Kazakhstan 2022–23: median
handshake > 2 s against ``i.pinimg.com``; the same address rules out congestion: both
connections take the same path, only the server name in the ClientHello differs).

One measurement = two legs to **one address** (the chosen resolver's first answer): the
``control`` SNI first, then the ``target`` (the platform's host). Each leg: TCP connect, TLS
handshake without certificate verification (the control name has no valid certificate there;
``no_tls_verify: true`` as OONI writes it), then ``GET path`` with ``Host:`` the target host
on both legs (only the SNI differs), reading the body for at most ``max_download_s``
seconds and ``max_bytes`` bytes — a throttled leg is *slow*, not failed, so a capped read
is still a speed sample.

Rows are OONI's (``tcp_connect``, ``tls_handshakes``, ``network_events`` with
``tls_handshake_start``/``_done``, ``http_transaction_start``/``_done`` and
``bytes_received_cumulative``, ``requests``), each with ``tags: ["target"|"control"]`` as
OONI's measurexlite tags its rows, so the importer (``netvigil.sources.ooni.verdict``)
recomputes the speeds from the rows, not from this module's summary. Extension keys
(OONI has none for this): ``x_address``, ``x_target_server_name``,
``x_control_server_name``, ``x_throttling`` (per-leg handshake ms, body bytes, seconds,
kbit/s, and the ratios) and, in each response, ``x_body_length`` (the body itself is not
kept: it is only a fixed load).
"""

from __future__ import annotations

import http.client
import random
import ssl
import string
import time
from dataclasses import dataclass
from typing import Any

from netvigil_probe import dnsquery, netio
from netvigil_probe.measure import MeasureConfig
from netvigil_probe.targets import Target

TEST_NAME = "sni_throttling"
TEST_VERSION = "0.1.0"
CHUNK = 16384  # bytes per read
MAX_PROGRESS_EVENTS = 64  # bytes_received_cumulative events per leg (OONI keeps up to 64)


@dataclass(frozen=True)
class ThrottleConfig:
    max_download_s: float = 10.0  # a leg's body read stops here (a speed sample, not a failure)
    max_bytes: int = 4 << 20


def scrambled(host: str, rng: random.Random | None = None) -> str:
    """The host with every letter of every label but the last replaced at random: the same
    length, so the ClientHello has the same size (Censored Planet's scrambled SNI)."""
    r = rng or random.SystemRandom()
    *labels, tld = host.split(".")
    return ".".join(["".join(r.choice(string.ascii_lowercase) for _ in lab)
                     for lab in labels] + [tld])


def _no_verify_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _ev(op: str, tag: str, t_base: float, **extra: Any) -> dict[str, Any]:
    return {"operation": op, "t": round(time.monotonic() - t_base, 6), "failure": None,
            "tags": [tag], **extra}


@dataclass
class LegResult:
    tag: str
    server_name: str
    handshake_s: float | None = None
    body_bytes: int = 0
    transfer_s: float | None = None
    capped: bool = False
    failure: str | None = None

    def summary(self) -> dict[str, Any]:
        kbps = (8 * self.body_bytes / self.transfer_s / 1000
                if self.transfer_s and self.body_bytes else None)
        return {"server_name": self.server_name, "failure": self.failure,
                "handshake_ms": None if self.handshake_s is None
                else round(1000 * self.handshake_s, 3),
                "body_bytes": self.body_bytes, "transfer_s": self.transfer_s,
                "throughput_kbps": None if kbps is None else round(kbps, 3),
                "capped": self.capped}


def _download(sock: ssl.SSLSocket, target: Target, path: str, tag: str, t_base: float,
              tc: ThrottleConfig, events: list[dict[str, Any]], leg: LegResult
              ) -> dict[str, Any]:
    """GET on the open TLS socket; the body is counted and timed, never kept."""
    headers = {"Host": target.host, "User-Agent": "netvigil-probe", "Accept": "*/*",
               "Connection": "close"}
    t0 = time.monotonic()
    deadline = t0 + tc.max_download_s
    start = _ev("http_transaction_start", tag, t_base)
    events.append(start)
    response: dict[str, Any] = {"code": 0, "headers": {}, "body": None}
    every = tc.max_download_s / MAX_PROGRESS_EVENTS
    last_ev = 0.0
    try:
        sock.settimeout(tc.max_download_s)
        sock.sendall((f"GET {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode("latin-1"))
        resp = http.client.HTTPResponse(sock, method="GET")
        resp.begin()
        response = {"code": resp.status, "headers": dict(resp.getheaders()), "body": None}
        while True:
            if leg.body_bytes >= tc.max_bytes:
                leg.capped = resp.length != 0  # 0: the body ended right there
                break
            left = deadline - time.monotonic()
            if left <= 0:
                leg.capped = True
                break
            sock.settimeout(left)
            try:
                chunk = resp.read1(CHUNK)
            except TimeoutError:
                leg.capped = True
                break
            if not chunk:
                break
            leg.body_bytes += len(chunk)
            now = time.monotonic()
            if now - last_ev >= every:
                events.append(_ev("bytes_received_cumulative", tag, t_base,
                                  num_bytes=leg.body_bytes))
                last_ev = now
    except (OSError, http.client.HTTPException) as exc:
        leg.failure = netio.failure_of(exc)
    finally:
        sock.close()
    events.append(_ev("bytes_received_cumulative", tag, t_base, num_bytes=leg.body_bytes))
    done = _ev("http_transaction_done", tag, t_base, failure=leg.failure)
    events.append(done)
    leg.transfer_s = round(done["t"] - start["t"], 6)
    response.update(body_is_truncated=leg.capped, x_body_length=leg.body_bytes)
    return {"request": {"method": "GET", "url": f"https://{target.host}{path}",
                        "headers": headers, "body": "", "tor": {"is_tor": False},
                        "x_server_name": leg.server_name},
            "response": response, "failure": leg.failure, "t0": round(t0 - t_base, 6),
            "t": done["t"], "tags": [tag]}


def _leg(target: Target, ip: str, sni: str, tag: str, path: str, cfg: MeasureConfig,
         tc: ThrottleConfig, t_base: float, keys: dict[str, Any]) -> LegResult:
    leg = LegResult(tag, sni)
    st = netio.tcp_connect(ip, target.tcp_port, cfg.timeout, t_base)
    keys["tcp_connect"].append({**st.row, "tags": [tag]})
    if st.sock is None:
        leg.failure = st.failure
        return leg
    keys["network_events"].append(_ev("tls_handshake_start", tag, t_base))
    ts = netio.tls_handshake(st.sock, ip, target.tcp_port, sni, _no_verify_context(), t_base)
    keys["tls_handshakes"].append({**ts.row, "no_tls_verify": True, "tags": [tag]})
    keys["network_events"].append(_ev("tls_handshake_done", tag, t_base,
                                      failure=ts.failure))
    if ts.sock is None:
        leg.failure = ts.failure
        return leg
    leg.handshake_s = ts.row["t"] - ts.row["t0"]
    assert isinstance(ts.sock, ssl.SSLSocket)
    keys["requests"].append(_download(ts.sock, target, path, tag, t_base, tc,
                                      keys["network_events"], leg))
    return leg


def _ratios(target: LegResult, control: LegResult) -> dict[str, float | None]:
    def speed(leg: LegResult) -> float | None:
        return leg.body_bytes / leg.transfer_s if leg.transfer_s and leg.body_bytes else None

    ts, cs = speed(target), speed(control)
    hs = (target.handshake_s / control.handshake_s
          if target.handshake_s and control.handshake_s else None)
    return {"throughput_ratio": None if ts is None or cs is None else _sig(ts / cs),
            "handshake_ratio": None if hs is None else _sig(hs)}


def _sig(x: float) -> float:
    return float(f"{x:.6g}")  # six significant digits (ratios span 1e-4 .. 1e1)


def measure_throttling(target: Target, cfg: MeasureConfig,
                       tc: ThrottleConfig = ThrottleConfig()) -> tuple[dict[str, Any], float]:
    """(test_keys, runtime seconds) of one sni_throttling measurement of ``target``."""
    t0 = time.monotonic()
    chosen = dnsquery.query_udp(target.host, cfg.resolver, port=cfg.resolver_port,
                                timeout=cfg.timeout)
    system = dnsquery.query_system(target.host) if not chosen.addrs else None
    for q in (chosen, system):
        if q is not None:
            q.t0, q.t = q.t0 - t0, q.t - t0
    addrs = chosen.addrs or (system.addrs if system else [])
    control_sni = target.control_sni or scrambled(target.host)
    keys: dict[str, Any] = {
        "queries": [q.to_ooni() for q in (chosen, system) if q is not None],
        "tcp_connect": [], "tls_handshakes": [], "network_events": [], "requests": [],
        "x_address": None, "x_target_server_name": target.host,
        "x_control_server_name": control_sni, "x_throttling": None,
        "failure": None if addrs else (chosen.failure or "dns_lookup_error"),
        "x_netvigil": {"platform": target.platform, "control_target": target.control}}
    if addrs:
        ip = addrs[0]
        keys["x_address"] = f"{ip}:{target.tcp_port}"
        path = target.download_path or target.path
        control = _leg(target, ip, control_sni, "control", path, cfg, tc, t0, keys)
        tgt = _leg(target, ip, target.host, "target", path, cfg, tc, t0, keys)
        keys["x_throttling"] = {"target": tgt.summary(), "control": control.summary(),
                                **_ratios(tgt, control)}
    return keys, time.monotonic() - t0
