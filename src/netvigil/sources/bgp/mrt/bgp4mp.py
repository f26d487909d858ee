"""BGP4MP and BGP4MP_ET, MRT types 16/17 (RFC 6396 §4.4, §3), with RFC 8050 ADD-PATH subtypes.

MESSAGE records wrap a whole BGP message (RFC 4271 §4.1: 16-byte marker, length, type); only
UPDATEs produce elements. ``*_AS4`` subtypes carry 4-octet ASNs in the MRT header *and* in the
UPDATE's AS_PATH (RFC 6793 §4.1); AS2 subtypes merge AS4_PATH in. ``*_LOCAL`` subtypes are
messages the collector sent; bgpdump prints the remote side as the peer, and so do we.
STATE_CHANGE records (§4.4.1) become STATE elements, which the visibility engine uses to drop
a session's routes.
"""

from __future__ import annotations

import struct

from netvigil.sources.bgp.mrt.attributes import (
    AttributeError_,
    Nlri,
    PathAttributes,
    decode_attributes,
    read_prefixes,
)
from netvigil.sources.bgp.mrt.elem import BgpElem
from netvigil.sources.bgp.mrt.records import RawRecord
from netvigil.sources.bgp.mrt.types import (
    AFI_IP,
    AFI_IP6,
    BGP4MP_ADDPATH,
    BGP4MP_AS4,
    BGP4MP_LOCAL,
    BGP_UPDATE,
)

_MARKER = b"\xff" * 16


def record_label(rtype: int, sub: int) -> str:
    label = "BGP4MP_ET" if rtype == 17 else "BGP4MP"
    if sub in BGP4MP_LOCAL:
        label += "_LOCAL"
    if sub in BGP4MP_ADDPATH:
        label += "_AP"
    return label


def decode(rec: RawRecord) -> list[BgpElem]:
    sub = rec.subtype
    if sub in (0, 5):
        return [_state_change(rec, 4 if sub == 5 else 2)]
    if sub in (1, 4, 6, 7, 8, 9, 10, 11):
        return _message(rec)
    raise AttributeError_(f"BGP4MP subtype {sub} is not supported")


def _state_change(rec: RawRecord, asn_len: int) -> BgpElem:
    buf, p, end = rec.buf, rec.start, rec.end
    length = end - rec.start
    label = "BGP4MP_ET" if rec.type == 17 else "BGP4MP"
    fmt = "!HH" if asn_len == 2 else "!II"
    if p + 2 * asn_len > end:
        raise AttributeError_("STATE_CHANGE shorter than its AS numbers")
    peer_as, _local_as = struct.unpack_from(fmt, buf, p)
    p += 2 * asn_len
    if length == 8 and asn_len == 2:
        # Zebra wrote 8-byte state changes without interface/AFI/addresses (bgpdump works
        # around the same bug).
        old, new = struct.unpack_from("!HH", buf, p)
        return BgpElem(label, rec.timestamp, rec.microseconds, "STATE", b"\0\0\0\0", peer_as,
                       old_state=old, new_state=new)
    if p + 4 > end:
        raise AttributeError_("STATE_CHANGE shorter than its interface index and AFI")
    afi = struct.unpack_from("!H", buf, p + 2)[0]
    p += 4
    width = 4 if afi == AFI_IP else 16 if afi == AFI_IP6 else 0
    if not width:
        raise AttributeError_(f"STATE_CHANGE with unknown AFI {afi}")
    if p + 2 * width + 4 > end:
        raise AttributeError_("STATE_CHANGE shorter than its addresses and states")
    peer_ip = bytes(buf[p : p + width])
    p += 2 * width
    old, new = struct.unpack_from("!HH", buf, p)
    return BgpElem(label, rec.timestamp, rec.microseconds, "STATE", peer_ip, peer_as,
                   old_state=old, new_state=new)


def _message(rec: RawRecord) -> list[BgpElem]:
    buf, p, end = rec.buf, rec.start, rec.end
    sub = rec.subtype
    asn_len = 4 if sub in BGP4MP_AS4 else 2
    local = sub in BGP4MP_LOCAL
    addpath = sub in BGP4MP_ADDPATH
    fmt = "!HH" if asn_len == 2 else "!II"
    if p + 2 * asn_len + 4 > end:
        raise AttributeError_("BGP4MP_MESSAGE shorter than its header")
    peer_as, _local_as = struct.unpack_from(fmt, buf, p)
    p += 2 * asn_len
    ifindex, afi = struct.unpack_from("!HH", buf, p)
    p += 4
    if afi == 0xFFFF and ifindex == 0xFFFF:
        # Zebra's OPEN-message corruption (no ifindex/addresses): not an UPDATE, nothing to emit
        return []
    width = 4 if afi == AFI_IP else 16 if afi == AFI_IP6 else 0
    if not width:
        raise AttributeError_(f"BGP4MP_MESSAGE with unknown AFI {afi}")
    if p + 2 * width + 19 > end:
        raise AttributeError_("BGP4MP_MESSAGE shorter than its addresses and BGP header")
    peer_ip = bytes(buf[p : p + width])  # for *_LOCAL the first address is the remote peer
    p += 2 * width
    if buf[p : p + 16] != _MARKER:
        raise AttributeError_("BGP message marker is not all ones (RFC 4271 §4.1)")
    msg_len = struct.unpack_from("!H", buf, p + 16)[0]
    msg_type = buf[p + 18]
    msg_end = min(p + msg_len, end) if msg_len >= 19 else end
    p += 19
    if msg_type != BGP_UPDATE:
        return []
    return update_elems(
        buf, p, msg_end, asn_len, addpath,
        record_label(rec.type, sub), rec.timestamp, rec.microseconds, peer_ip, peer_as,
        afi, local,
    )


def update_elems(
    buf: bytes, p: int, end: int, asn_len: int, addpath: bool, label: str, ts: int,
    micro: int | None, peer_ip: bytes, peer_as: int, session_afi: int, local: bool = False,
) -> list[BgpElem]:
    """Elements of one UPDATE body (RFC 4271 §4.3), in bgpdump's order: withdrawals (classic,
    then MP_UNREACH per AFI/SAFI), then announcements (classic, then MP_REACH per AFI/SAFI)."""
    if p + 2 > end:
        raise AttributeError_("UPDATE shorter than its withdrawn-routes length")
    wlen = struct.unpack_from("!H", buf, p)[0]
    p += 2
    withdrawn: list[Nlri] = []
    read_prefixes(buf, p, min(p + wlen, end), AFI_IP, addpath, withdrawn)
    p += wlen
    if p + 2 > end:
        attrs = PathAttributes()
        alen = 0
    else:
        alen = struct.unpack_from("!H", buf, p)[0]
        p += 2
        attrs = decode_attributes(buf, p, min(p + alen, end), asn_len, addpath)
    p += alen
    announced: list[Nlri] = []
    if p < end:
        read_prefixes(buf, p, end, AFI_IP, addpath, announced)
    out: list[BgpElem] = []
    for n in withdrawn:
        out.append(BgpElem(label, ts, micro, "W", peer_ip, peer_as, n, addpath=addpath))
    for afi in (AFI_IP, AFI_IP6):
        for safi in (1, 2, 3):
            for u in attrs.mp_unreach:
                if u.afi == afi and u.safi == safi:
                    for n in u.nlri:
                        out.append(BgpElem(label, ts, micro, "W", peer_ip, peer_as, n,
                                           addpath=addpath))
    nh = attrs.next_hop
    for n in announced:
        out.append(BgpElem(label, ts, micro, "A", peer_ip, peer_as, n, attrs, nh,
                           addpath=addpath))
    for afi in (AFI_IP, AFI_IP6):
        for safi in (1, 2, 3):
            for r in attrs.mp_reach:
                if r.afi == afi and r.safi == safi:
                    for n in r.nlri:
                        out.append(BgpElem(label, ts, micro, "A", peer_ip, peer_as, n, attrs,
                                           r.next_hop, addpath=addpath))
    return out
