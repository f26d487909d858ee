"""TABLE_DUMP, MRT type 12 (RFC 6396 §4.2): one RIB entry per record, 2-octet ASNs.

Subtypes are AFIs (1 IPv4, 2 IPv6); 3 and 4 are the 4-octet-AS variants some Zebra builds
wrote, which bgpdump also reads. A prefix length beyond the family's width is a corrupt
record (issue 12, defect 8); host bits beyond it are cleared.
"""

from __future__ import annotations

import struct

from netvigil.sources.bgp.mrt.attributes import AttributeError_, Nlri, decode_attributes
from netvigil.sources.bgp.mrt.elem import BgpElem
from netvigil.sources.bgp.mrt.records import RawRecord
from netvigil.sources.bgp.mrt.types import AFI_IP, AFI_IP6


def decode(rec: RawRecord) -> list[BgpElem]:
    buf, p, end = rec.buf, rec.start, rec.end
    sub = rec.subtype
    if sub not in (1, 2, 3, 4):
        raise AttributeError_(f"TABLE_DUMP subtype {sub} is not an address family")
    v6 = sub in (2, 4)
    width = 16 if v6 else 4
    asn_len = 4 if sub in (3, 4) else 2
    need = 4 + width + 6 + width + asn_len + 2
    if p + need > end:
        raise AttributeError_("TABLE_DUMP entry shorter than its fixed fields")
    p += 4  # view number, sequence number
    addr = bytes(buf[p : p + width])
    p += width
    plen = buf[p]
    if plen > 8 * width:  # RFC 6396 §4.2: at most 32 (IPv4) / 128 (IPv6)
        raise AttributeError_(f"TABLE_DUMP prefix length {plen} > {8 * width}")
    p += 6  # prefix length, status, originated time
    peer_ip = bytes(buf[p : p + width])
    p += width
    peer_as = struct.unpack_from("!H" if asn_len == 2 else "!I", buf, p)[0]
    p += asn_len
    alen = struct.unpack_from("!H", buf, p)[0]
    p += 2
    attrs = decode_attributes(buf, p, min(p + alen, end), asn_len)
    nh = attrs.next_hop
    for r in attrs.mp_reach:
        if r.afi == AFI_IP6 and r.safi == 1:
            nh = r.next_hop
    afi = AFI_IP6 if v6 else AFI_IP
    return [BgpElem("TABLE_DUMP", rec.timestamp, None, "B", peer_ip, peer_as,
                    Nlri(afi, _mask(addr, plen), plen), attrs, nh)]


def _mask(addr: bytes, plen: int) -> bytes:
    """The network address with the host bits beyond ``plen`` cleared, as :class:`Nlri`
    promises and as the TABLE_DUMP_V2 and BGP4MP paths (and the RIB fast path) give it.
    TABLE_DUMP stores the full address, so a dump may carry host bits (``41.12.3.194/0``);
    no golden ``bgpdump -m`` fixture has such an entry."""
    width = 8 * len(addr)
    v = int.from_bytes(addr, "big") >> (width - plen) << (width - plen) if plen else 0
    return v.to_bytes(len(addr), "big")
