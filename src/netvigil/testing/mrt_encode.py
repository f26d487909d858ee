"""Encode MRT records (RFC 6396) — for tests and the full-size synthetic RIB benchmark.

The encoder is the decoder's mirror (as bgpkit-parser keeps ``encoder/`` beside ``parser/``):
every decoder test can build its input from values instead of opaque bytes. Only what tests
and benchmarks need is covered: PEER_INDEX_TABLE, RIB_IPV4/IPV6_UNICAST, BGP4MP_MESSAGE_AS4
UPDATEs and STATE_CHANGE_AS4.
"""

from __future__ import annotations

import gzip
import ipaddress
import random
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from netvigil.sources.bgp.mrt.attributes import AS_SEQUENCE


def record(ts: int, rtype: int, subtype: int, body: bytes) -> bytes:
    return struct.pack("!IHHI", ts, rtype, subtype, len(body)) + body


def _ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def peer_index_table(collector: str, peers: Sequence[tuple[str, int]], view: str = "") -> bytes:
    """TABLE_DUMP_V2 PEER_INDEX_TABLE body (RFC 6396 §4.3.1); every peer AS4."""
    out = [_ip(collector), struct.pack("!H", len(view)), view.encode(),
           struct.pack("!H", len(peers))]
    for ip, asn in peers:
        raw = _ip(ip)
        ptype = 2 | (1 if len(raw) == 16 else 0)
        out.append(struct.pack("!B", ptype) + _ip(collector) + raw + struct.pack("!I", asn))
    return b"".join(out)


def _attr(code: int, value: bytes, flags: int = 0x40) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def path_attributes(
    as_path: Sequence[int], origin: int = 0, next_hop: str | None = None,
    communities: Iterable[tuple[int, int]] = (), asn_len: int = 4, mp_next_hop: str | None = None,
) -> bytes:
    """ORIGIN, AS_PATH (one AS_SEQUENCE), NEXT_HOP, COMMUNITIES, abbreviated MP_REACH (RIBs)."""
    fmt = "!%d%s" % (len(as_path), "I" if asn_len == 4 else "H")  # noqa: UP031
    seg = struct.pack("!BB", AS_SEQUENCE, len(as_path)) + struct.pack(fmt, *as_path)
    out = _attr(1, bytes((origin,))) + _attr(2, seg if as_path else b"")
    if next_hop is not None:
        out += _attr(3, _ip(next_hop))
    comms = list(communities)
    if comms:
        out += _attr(8, b"".join(struct.pack("!HH", a, b) for a, b in comms), 0xC0)
    if mp_next_hop is not None:
        nh = _ip(mp_next_hop)
        out += _attr(14, bytes((len(nh),)) + nh, 0x80)
    return out


def _prefix(net: str) -> tuple[bytes, int, int]:
    n = ipaddress.ip_network(net)
    nbytes = (n.prefixlen + 7) // 8
    return n.network_address.packed[:nbytes], n.prefixlen, n.version


def rib_record(
    seq: int, prefix: str, entries: Sequence[tuple[int, int, bytes]]
) -> tuple[int, bytes]:
    """(subtype, body) of RIB_IPV4/IPV6_UNICAST; entries are (peer index, time, attributes)."""
    raw, plen, version = _prefix(prefix)
    body = [struct.pack("!IB", seq, plen), raw, struct.pack("!H", len(entries))]
    for idx, t, attrs in entries:
        body.append(struct.pack("!HIH", idx, t, len(attrs)) + attrs)
    return (2 if version == 4 else 4), b"".join(body)


def _nlri(prefixes: Iterable[str]) -> bytes:
    out = []
    for p in prefixes:
        raw, plen, _v = _prefix(p)
        out.append(bytes((plen,)) + raw)
    return b"".join(out)


def bgp4mp_update(
    ts: int, peer_ip: str, peer_as: int, announce: Sequence[str] = (),
    withdraw: Sequence[str] = (), as_path: Sequence[int] = (), local_ip: str = "192.0.2.1",
    local_as: int = 12654,
) -> bytes:
    """A BGP4MP_MESSAGE_AS4 record with one UPDATE (IPv4 NLRI; RFC 6396 §4.4.3)."""
    attrs = path_attributes(as_path, next_hop=peer_ip) if announce else b""
    w = _nlri(withdraw)
    upd = struct.pack("!H", len(w)) + w + struct.pack("!H", len(attrs)) + attrs + _nlri(announce)
    msg = b"\xff" * 16 + struct.pack("!HB", 19 + len(upd), 2) + upd
    body = (struct.pack("!IIHH", peer_as, local_as, 0, 1) + _ip(peer_ip) + _ip(local_ip) + msg)
    return record(ts, 16, 4, body)


def state_change(ts: int, peer_ip: str, peer_as: int, old: int, new: int,
                 local_ip: str = "192.0.2.1", local_as: int = 12654) -> bytes:
    """BGP4MP_STATE_CHANGE_AS4 (RFC 6396 §4.4.4)."""
    body = (struct.pack("!IIHH", peer_as, local_as, 0, 1) + _ip(peer_ip) + _ip(local_ip)
            + struct.pack("!HH", old, new))
    return record(ts, 16, 5, body)


def write_rib(
    path: Path, ts: int, collector: str, peers: Sequence[tuple[str, int]],
    routes: Mapping[str, Sequence[tuple[int, Sequence[int]]]],
) -> Path:
    """A gzip TABLE_DUMP_V2 RIB: ``routes`` maps prefix → [(peer index, AS path), ...]."""
    out = [record(ts, 13, 1, peer_index_table(collector, peers))]
    for seq, (prefix, ents) in enumerate(routes.items()):
        v6 = ":" in prefix
        entries = [(i, max(ts - 3600, 0), path_attributes(
            p, next_hop=None if v6 else peers[i][0], mp_next_hop=peers[i][0] if v6 else None))
            for i, p in ents]
        sub, body = rib_record(seq, prefix, entries)
        out.append(record(ts, 13, sub, body))
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(b"".join(out))
    return path


def synthetic_rib(path: Path, n_prefixes: int = 900_000, n_peers: int = 20,
                  ts: int = 1_700_000_000, seed: int = 7, compresslevel: int = 1) -> Path:
    """A full-size IPv4 RIB in real MRT: ``n_prefixes`` distinct prefixes (/8–/24, mostly /24 as
    in today's table) seen by every one of ``n_peers`` peers, with realistic AS paths (length
    3–9, peer AS first, ~2,000 distinct origins, paths shared across prefixes)."""
    rng = random.Random(seed)
    peers = [(f"10.{i // 250}.{i % 250}.1", 64500 + i) for i in range(n_peers)]
    lens = [24] * 60 + [23] * 8 + [22] * 12 + [21] * 5 + [20] * 5 + [19] * 4 + [16] * 4 + [18] * 2
    origins = [rng.randrange(1000, 400_000) for _ in range(2000)]
    transit = [rng.randrange(100, 70_000) for _ in range(300)]
    # per (peer, origin bucket) attribute blobs, shared like real RIB attribute sets
    blobs: list[list[bytes]] = []
    for pi, (ip, asn) in enumerate(peers):
        row = []
        for o in origins:
            hops = [asn] + rng.sample(transit, rng.randrange(1, 7)) + [o]
            row.append(path_attributes(hops, next_hop=ip, communities=[(asn & 0xFFFF, pi)]))
        blobs.append(row)
    seen: set[tuple[int, int]] = set()
    with gzip.open(path, "wb", compresslevel=compresslevel) as f:
        f.write(record(ts, 13, 1, peer_index_table("192.0.2.255", peers)))
        seq = 0
        chunk: list[bytes] = []
        hdr = struct.Struct("!IHHI")
        ent = struct.Struct("!HIH")
        while seq < n_prefixes:
            plen = rng.choice(lens)
            net = rng.randrange(1 << 8, 224 << 24) >> (32 - plen) << (32 - plen)
            if (net, plen) in seen:
                continue
            seen.add((net, plen))
            nbytes = (plen + 7) // 8
            oi = rng.randrange(len(origins))
            parts = [struct.pack("!IB", seq, plen), net.to_bytes(4, "big")[:nbytes],
                     struct.pack("!H", n_peers)]
            for pi in range(n_peers):
                a = blobs[pi][oi]
                parts.append(ent.pack(pi, ts - 86400, len(a)))
                parts.append(a)
            body = b"".join(parts)
            chunk.append(hdr.pack(ts, 13, 2, len(body)))
            chunk.append(body)
            seq += 1
            if len(chunk) >= 20_000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))
    return path
