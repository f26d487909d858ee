"""TABLE_DUMP_V2, MRT type 13 (RFC 6396 §4.3), with the ADD-PATH subtypes of RFC 8050.

A PEER_INDEX_TABLE (§4.3.1) names the peers once; every RIB record then lists one entry per
peer (§4.3.2) as (peer index, originated time, attributes). Attributes always use 4-octet ASNs
(§4.3.4) and carry the next hop for IPv6 in an abbreviated MP_REACH_NLRI.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from netvigil.sources.bgp.mrt.attributes import (
    AttributeError_,
    Nlri,
    Unsupported,
    decode_attributes,
    read_prefixes,
)
from netvigil.sources.bgp.mrt.elem import BgpElem
from netvigil.sources.bgp.mrt.records import RawRecord
from netvigil.sources.bgp.mrt.types import AFI_IP, AFI_IP6, TDV2_ADDPATH

_ENTRY = struct.Struct("!HIH")
_ENTRY_AP = struct.Struct("!HIIH")


@dataclass
class PeerIndex:
    """The PEER_INDEX_TABLE (RFC 6396 §4.3.1)."""

    collector_id: bytes = b"\0\0\0\0"
    view_name: str = ""
    peer_ips: list[bytes] = field(default_factory=list)
    peer_asns: list[int] = field(default_factory=list)
    peer_bgp_ids: list[bytes] = field(default_factory=list)


def decode_peer_index(rec: RawRecord) -> PeerIndex:
    buf, p, end = rec.buf, rec.start, rec.end
    if p + 6 > end:
        raise AttributeError_("PEER_INDEX_TABLE shorter than its header")
    t = PeerIndex(collector_id=bytes(buf[p : p + 4]))
    vlen = struct.unpack_from("!H", buf, p + 4)[0]
    p += 6
    t.view_name = bytes(buf[p : p + vlen]).decode("utf-8", "replace")
    p += vlen
    if p + 2 > end:
        raise AttributeError_("PEER_INDEX_TABLE ends before its peer count")
    count = struct.unpack_from("!H", buf, p)[0]
    p += 2
    for _ in range(count):
        if p + 1 > end:
            raise AttributeError_("PEER_INDEX_TABLE ends inside a peer entry")
        ptype = buf[p]
        width = 16 if ptype & 1 else 4
        asl = 4 if ptype & 2 else 2
        if p + 5 + width + asl > end:
            raise AttributeError_("PEER_INDEX_TABLE ends inside a peer entry")
        t.peer_bgp_ids.append(bytes(buf[p + 1 : p + 5]))
        t.peer_ips.append(bytes(buf[p + 5 : p + 5 + width]))
        p += 5 + width
        t.peer_asns.append(struct.unpack_from("!H" if asl == 2 else "!I", buf, p)[0])
        p += asl
    return t


def decode_rib(rec: RawRecord, peers: PeerIndex | None) -> list[BgpElem]:
    """RIB_IPV4/IPV6_UNICAST/MULTICAST (§4.3.2), RIB_GENERIC (§4.3.3) and ADD-PATH variants."""
    if peers is None:
        raise AttributeError_("RIB record before any PEER_INDEX_TABLE")
    buf, p, end = rec.buf, rec.start, rec.end
    sub = rec.subtype
    addpath = sub in TDV2_ADDPATH
    if p + 4 > end:
        raise AttributeError_("RIB record shorter than its sequence number")
    p += 4  # sequence number
    if sub in (6, 12):  # RIB_GENERIC: AFI, SAFI, one NLRI-encoded prefix
        if p + 3 > end:
            raise AttributeError_("RIB_GENERIC shorter than AFI/SAFI")
        afi = struct.unpack_from("!H", buf, p)[0]
        safi = buf[p + 2]
        p += 3
        if afi not in (AFI_IP, AFI_IP6) or safi not in (1, 2):
            raise Unsupported(f"RIB_GENERIC for AFI {afi} SAFI {safi}")
    else:
        afi = AFI_IP if sub in (2, 3, 8, 9) else AFI_IP6
    if p >= end:
        raise AttributeError_("RIB record ends before its prefix")
    plen = buf[p]
    nbytes = (plen + 7) >> 3
    pfx: list[Nlri] = []
    if read_prefixes(buf, p, min(p + 1 + nbytes, end), afi, False, pfx) or not pfx:
        raise AttributeError_("RIB record ends inside its prefix")
    nlri = pfx[0]
    p += 1 + nbytes
    if p + 2 > end:
        raise AttributeError_("RIB record ends before its entry count")
    count = struct.unpack_from("!H", buf, p)[0]
    p += 2
    label = "TABLE_DUMP2_AP" if addpath else "TABLE_DUMP2"
    out: list[BgpElem] = []
    ips, asns = peers.peer_ips, peers.peer_asns
    npeers = len(ips)
    for _ in range(count):
        if addpath:
            if p + 12 > end:
                raise AttributeError_("RIB entry header overruns the record")
            idx, _orig, path_id, alen = _ENTRY_AP.unpack_from(buf, p)
            p += 12
            n = Nlri(nlri.afi, nlri.addr, nlri.plen, path_id)
        else:
            if p + 8 > end:
                raise AttributeError_("RIB entry header overruns the record")
            idx, _orig, alen = _ENTRY.unpack_from(buf, p)
            p += 8
            n = nlri
        if idx >= npeers:
            raise AttributeError_(f"peer index {idx} beyond the {npeers}-peer index table")
        aend = p + alen
        if aend > end:
            raise AttributeError_("RIB entry attributes overrun the record")
        attrs = decode_attributes(buf, p, aend, 4, addpath)
        p = aend
        nh = attrs.next_hop
        for r in attrs.mp_reach:
            if r.afi == AFI_IP6 and r.safi == 1:
                nh = r.next_hop
        out.append(BgpElem(label, rec.timestamp, None, "B", ips[idx], asns[idx], n, attrs, nh,
                           addpath=addpath))
    return out
