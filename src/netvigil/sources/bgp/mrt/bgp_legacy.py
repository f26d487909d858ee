"""The deprecated MRT type 5 "BGP" (RFC 6396 Appendix B.2.3), used by RIPE RIS in 1999–2001.

UPDATE records hold source AS/IP and destination AS/IP (2-octet ASNs, IPv4 only) followed by the
UPDATE body without the BGP header. STATE_CHANGE records hold the peer and two states. mrtparse
cannot read these files; bgpdump and this module can.
"""

from __future__ import annotations

import struct

from netvigil.sources.bgp.mrt.attributes import AttributeError_
from netvigil.sources.bgp.mrt.bgp4mp import update_elems
from netvigil.sources.bgp.mrt.elem import BgpElem
from netvigil.sources.bgp.mrt.records import RawRecord
from netvigil.sources.bgp.mrt.types import AFI_IP, LegacyBgp


def decode(rec: RawRecord) -> list[BgpElem]:
    buf, p, end = rec.buf, rec.start, rec.end
    if rec.subtype == LegacyBgp.UPDATE:
        if p + 12 > end:
            raise AttributeError_("type-5 UPDATE shorter than its peer fields")
        src_as = struct.unpack_from("!H", buf, p)[0]
        src_ip = bytes(buf[p + 2 : p + 6])
        return update_elems(buf, p + 12, end, 2, False, "BGP", rec.timestamp, None,
                            src_ip, src_as, AFI_IP)
    if rec.subtype == LegacyBgp.STATE_CHANGE:
        if p + 10 > end:
            raise AttributeError_("type-5 STATE_CHANGE shorter than 10 bytes")
        peer_as = struct.unpack_from("!H", buf, p)[0]
        peer_ip = bytes(buf[p + 2 : p + 6])
        old, new = struct.unpack_from("!HH", buf, p + 6)
        return [BgpElem("BGP", rec.timestamp, None, "STATE", peer_ip, peer_as,
                        old_state=old, new_state=new)]
    return []  # OPEN, NOTIFY, KEEPALIVE, SYNC: no routing elements
