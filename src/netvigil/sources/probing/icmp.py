"""ICMP echo on the wire: building requests, parsing what a raw socket receives.

Pure functions over bytes (no sockets) so they are unit-tested without privileges.

The checksum is RFC 1071: the one's-complement of the one's-complement sum of the message
as **big-endian** 16-bit words. The byte-order trap: summing native (little-endian) words,
e.g. with ``array('H')`` or ``struct.unpack('<H')``, and then packing the result with
``'!H'`` yields a checksum the kernel of the target rejects for 255 of 256 requests — and it
drops them silently. :func:`checksum` returns the value to pack with ``'!H'``; the tests
check it against a hand-computed vector and against the receive-side rule (a packet with its
checksum in place sums to 0).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from netvigil.model.errors import NetVigilError

ECHO_REPLY = 0
DEST_UNREACHABLE = 3
ECHO_REQUEST = 8
TIME_EXCEEDED = 11

SOL_RAW, ICMP_FILTER = 255, 1  # <linux/icmp.h>; the socket module lacks both

#: Fixed payload: 8 bytes naming the tool (anyone capturing sees who probes them).
PAYLOAD = b"netvigil"


class ProbePermissionError(NetVigilError):
    """A raw ICMP socket needs root or CAP_NET_RAW."""


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of ``data`` as an int to pack big-endian (``'!H'``)."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


_HEADER = struct.Struct("!BBHHH")
# One's-complement sum of the constant words (type/code and the fixed payload): the hot path
# only adds ident and seq (RFC 1071 §2(C): the sum is associative, so it can be incremental).
_CONST_SUM = (ECHO_REQUEST << 8) + sum(struct.unpack(f"!{len(PAYLOAD) // 2}H", PAYLOAD))


def echo_request(ident: int, seq: int, payload: bytes = PAYLOAD) -> bytes:
    """An ICMP echo request (type 8, code 0) with a correct checksum."""
    ident &= 0xFFFF
    seq &= 0xFFFF
    if payload is PAYLOAD:
        total = _CONST_SUM + ident + seq
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        csum = ~total & 0xFFFF
    else:
        csum = checksum(_HEADER.pack(ECHO_REQUEST, 0, 0, ident, seq) + payload)
    return _HEADER.pack(ECHO_REQUEST, 0, csum, ident, seq) + payload


@dataclass(frozen=True, slots=True)
class IcmpMessage:
    """What one received datagram means for a prober.

    ``kind`` is ``"reply"`` (echo reply from ``address``) or ``"unreachable"`` (an ICMP
    error about a request we sent to ``address``, reported by ``reporter``).
    """

    kind: str
    ident: int
    seq: int
    address: int  # the probed address (source of a reply, original destination of an error)
    reporter: int  # who sent this datagram
    icmp_type: int
    icmp_code: int


def _ip_header_len(packet: bytes) -> int:
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return -1
    return (packet[0] & 0x0F) * 4


def parse(packet: bytes) -> IcmpMessage | None:
    """Parse an IPv4 datagram from a raw ICMP socket; None for anything not ours to read.

    Echo replies give (ident, seq) directly. Destination-unreachable and time-exceeded carry
    the original IP header plus the first 8 bytes of our request (RFC 792), from which the
    ident, seq and original destination are recovered.
    """
    ihl = _ip_header_len(packet)
    if ihl < 20 or len(packet) < ihl + 8:
        return None
    src = int.from_bytes(packet[12:16], "big")
    icmp_type, code = packet[ihl], packet[ihl + 1]
    if icmp_type == ECHO_REPLY:
        ident, seq = struct.unpack_from("!HH", packet, ihl + 4)
        return IcmpMessage("reply", ident, seq, src, src, icmp_type, code)
    if icmp_type in (DEST_UNREACHABLE, TIME_EXCEEDED):
        inner = packet[ihl + 8:]
        iihl = _ip_header_len(inner)
        if iihl < 20 or len(inner) < iihl + 8 or inner[9] != socket.IPPROTO_ICMP:
            return None
        if inner[iihl] != ECHO_REQUEST:
            return None
        dst = int.from_bytes(inner[16:20], "big")
        ident, seq = struct.unpack_from("!HH", inner, iihl + 4)
        return IcmpMessage("unreachable", ident, seq, dst, src, icmp_type, code)
    return None


def _raw_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)


def open_raw_socket(rcvbuf: int = 8 << 20) -> socket.socket:
    """A non-blocking raw IPv4 ICMP socket, or :class:`ProbePermissionError` with the fix."""
    try:
        sock = _raw_socket()
    except PermissionError:
        raise ProbePermissionError(
            "active probing sends raw ICMP echo requests and needs root or CAP_NET_RAW; "
            "run as root, or grant the capability once with "
            "`sudo setcap cap_net_raw+ep $(readlink -f $(which python3))`"
        ) from None
    sock.setblocking(False)
    try:
        # ICMP_FILTER (SOL_RAW, 1): the kernel drops types whose bit is set before they reach
        # us; keep only echo reply, destination unreachable and time exceeded.
        keep = (1 << ECHO_REPLY) | (1 << DEST_UNREACHABLE) | (1 << TIME_EXCEEDED)
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~keep & 0xFFFFFFFF))
    except OSError:  # pragma: no cover - not Linux
        pass
    for opt, size in ((socket.SO_RCVBUF, rcvbuf), (socket.SO_SNDBUF, rcvbuf)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
        except OSError:  # pragma: no cover - capped by net.core.*mem_max, harmless
            pass
    return sock
