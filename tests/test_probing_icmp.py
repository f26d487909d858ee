"""ICMP bytes: the RFC 1071 checksum (and its byte-order trap), requests, reply parsing."""

from __future__ import annotations

import array
import socket
import struct
import sys

import pytest

from netvigil.sources.probing import icmp


def ip_header(src: str, dst: str, payload_len: int, proto: int = 1) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst))


def test_checksum_matches_rfc1071_worked_example() -> None:
    # RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to 2ddf0, folded ddf2, complement 220d.
    assert icmp.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_checksum_of_odd_length_pads_with_zero() -> None:
    assert icmp.checksum(b"\x01") == icmp.checksum(b"\x01\x00")


def test_request_with_its_checksum_sums_to_zero() -> None:
    for seq in range(0, 65536, 257):
        pkt = icmp.echo_request(0x1234, seq)
        assert icmp.checksum(pkt) == 0  # what the receiving kernel verifies
        assert pkt[0] == icmp.ECHO_REQUEST and pkt[1] == 0


@pytest.mark.skipif(sys.byteorder != "little", reason="the trap only bites little-endian hosts")
def test_native_byte_order_checksum_is_the_trap_we_avoid() -> None:
    """Summing native words and packing big-endian is wrong for almost every packet."""
    wrong = 0
    for seq in range(256):
        header = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq) + icmp.PAYLOAD
        words = array.array("H", header)  # native = little-endian here
        total = sum(words)
        total = (total & 0xFFFF) + (total >> 16)
        naive = ~total & 0xFFFF
        if naive != icmp.checksum(header):
            wrong += 1
    assert wrong >= 250  # "255 of 256 requests dropped silently"


def test_echo_reply_is_parsed_with_ident_seq_and_source() -> None:
    body = struct.pack("!BBHHH", 0, 0, 0, 0xBEEF, 7) + icmp.PAYLOAD
    msg = icmp.parse(ip_header("198.18.1.5", "198.19.0.1", len(body)) + body)
    assert msg is not None
    assert (msg.kind, msg.ident, msg.seq) == ("reply", 0xBEEF, 7)
    assert msg.address == int.from_bytes(socket.inet_aton("198.18.1.5"), "big")


def test_unreachable_quoting_our_request_names_the_probed_address() -> None:
    original = ip_header("198.19.0.1", "198.18.2.9", 16) + icmp.echo_request(0xBEEF, 99)[:8]
    body = struct.pack("!BBHI", 3, 13, 0, 0) + original
    msg = icmp.parse(ip_header("198.19.0.2", "198.19.0.1", len(body)) + body)
    assert msg is not None
    assert (msg.kind, msg.ident, msg.seq, msg.icmp_code) == ("unreachable", 0xBEEF, 99, 13)
    assert msg.address == int.from_bytes(socket.inet_aton("198.18.2.9"), "big")
    assert msg.reporter == int.from_bytes(socket.inet_aton("198.19.0.2"), "big")


@pytest.mark.parametrize("packet", [
    b"",
    b"\x45" + b"\x00" * 10,
    ip_header("1.2.3.4", "5.6.7.8", 8) + struct.pack("!BBHHH", 8, 0, 0, 1, 1),  # a request
    ip_header("1.2.3.4", "5.6.7.8", 8) + struct.pack("!BBHI", 3, 1, 0, 0),  # no quote
])
def test_other_datagrams_are_ignored(packet: bytes) -> None:
    assert icmp.parse(packet) is None


def test_raw_socket_without_privilege_says_what_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: object, **_k: object) -> socket.socket:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(icmp, "_raw_socket", refuse)
    with pytest.raises(icmp.ProbePermissionError, match="root or CAP_NET_RAW"):
        icmp.open_raw_socket()


def test_fast_checksum_path_equals_the_full_computation() -> None:
    for ident, seq in [(0, 0), (0xFFFF, 0xFFFF), (0x1234, 0xF00D), (1, 0xFFFE)]:
        fast = icmp.echo_request(ident, seq)
        slow = icmp.echo_request(ident, seq, payload=icmp.PAYLOAD[:4] + icmp.PAYLOAD[4:])
        assert fast == slow and icmp.checksum(fast) == 0
