"""TCP connect, TLS handshake with SNI and HTTP(S) GET, each recorded as OONI's rows.

Every step returns the row OONI's data format gives it (``tcp_connect[]``,
``tls_handshakes[]``, ``requests[]``; anchors §4.2) with a df-007 failure string, so the
verdict code (:mod:`.verdict`) and any OONI tool read the same evidence.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

BODY_CAP = 1 << 20  # bytes of a response body kept (OONI truncates too)


def failure_of(exc: BaseException) -> str:
    """An exception as OONI's failure string (df-007)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ("ssl_invalid_hostname" if "hostname" in str(exc).lower()
                else "ssl_unknown_authority" if "issuer" in str(exc).lower()
                else "ssl_invalid_certificate")
    if isinstance(exc, TimeoutError | socket.timeout):
        return "generic_timeout_error"
    if isinstance(exc, ConnectionResetError):
        return "connection_reset"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | http.client.RemoteDisconnected
                  | http.client.IncompleteRead | EOFError):
        return "eof_error"
    if isinstance(exc, ssl.SSLError):
        return "ssl_failed_handshake"
    if isinstance(exc, OSError):
        return {errno.ENETUNREACH: "network_unreachable", errno.EHOSTUNREACH: "host_unreachable",
                errno.ECONNRESET: "connection_reset", errno.ECONNREFUSED: "connection_refused",
                errno.ETIMEDOUT: "generic_timeout_error"}.get(exc.errno or 0, "generic_os_error")
    if isinstance(exc, http.client.HTTPException):
        return "http_protocol_error"
    return "unknown_failure"


@dataclass
class Step:
    row: dict[str, Any]
    failure: str | None
    sock: socket.socket | None = None


def tcp_connect(ip: str, port: int, timeout: float, t_base: float) -> Step:
    t0 = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    failure: str | None = None
    try:
        s.connect((ip, port))
    except OSError as exc:
        failure = failure_of(exc)
        s.close()
    row = {"ip": ip, "port": port, "t0": round(t0 - t_base, 6),
           "t": round(time.monotonic() - t_base, 6),
           "status": {"success": failure is None, "failure": failure, "blocked": None}}
    return Step(row, failure, None if failure else s)


def tls_handshake(sock: socket.socket, ip: str, port: int, server_name: str,
                  ctx: ssl.SSLContext, t_base: float) -> Step:
    """Handshake on a connected socket with SNI ``server_name``; the certificate is verified
    against ``ctx`` (the system store, or ``--cafile``)."""
    t0 = time.monotonic()
    failure: str | None = None
    tls: ssl.SSLSocket | None = None
    try:
        tls = ctx.wrap_socket(sock, server_hostname=server_name)
    except (OSError, ssl.SSLError) as exc:
        failure = failure_of(exc)
        sock.close()
    row: dict[str, Any] = {
        "address": f"{ip}:{port}", "server_name": server_name, "failure": failure,
        "tls_version": tls.version() if tls else "", "cipher_suite": (tls.cipher() or ("",))[0]
        if tls else "", "negotiated_protocol": "", "no_tls_verify": False,
        "peer_certificates": [], "t0": round(t0 - t_base, 6),
        "t": round(time.monotonic() - t_base, 6)}
    return Step(row, failure, tls)


def http_get(sock: socket.socket, url: str, host: str, path: str, t_base: float) -> Step:
    """GET ``path`` with ``Host: host`` on an open (TLS or plain) connection; closes it."""
    t0 = time.monotonic()
    req_headers = {"Host": host, "User-Agent": "netvigil-probe", "Accept": "*/*",
                   "Connection": "close"}
    response: dict[str, Any] | None = None
    failure: str | None = None
    try:
        head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n"
                                                  for k, v in req_headers.items()) + "\r\n"
        sock.sendall(head.encode("latin-1"))
        resp = http.client.HTTPResponse(sock, method="GET")
        resp.begin()
        body = resp.read(BODY_CAP)
        response = {"code": resp.status,
                    "headers": {k: v for k, v in resp.getheaders()},
                    "body": body.decode("utf-8", "replace"),
                    "body_is_truncated": len(body) >= BODY_CAP}
    except (OSError, http.client.HTTPException) as exc:
        failure = failure_of(exc)
    finally:
        sock.close()
    row = {"request": {"method": "GET", "url": url, "headers": req_headers, "body": "",
                       "tor": {"is_tor": False}},
           "response": response or {"code": 0, "headers": {}, "body": None},
           "failure": failure, "t0": round(t0 - t_base, 6),
           "t": round(time.monotonic() - t_base, 6)}
    return Step(row, failure)
