"""BGP path attributes (RFC 4271 §4.3, §5) as they appear inside MRT records.

One decoder for every MRT type: BGP4MP UPDATEs, TABLE_DUMP v1 and TABLE_DUMP_V2 RIB entries and
the legacy type-5 UPDATEs. The differences are parameters:

* ``asn_len`` — 2 in AS2 sessions (BGP4MP_MESSAGE, TABLE_DUMP v1, type 5), 4 in AS4 sessions and
  always 4 in TABLE_DUMP_V2 (RFC 6396 §4.3.4);
* AS2 paths are merged with AS4_PATH/AS4_AGGREGATOR as RFC 6793 §4.2.3 describes, reproducing
  ``bgpdump``'s rules (including its early return when AGGREGATOR is not AS_TRANS) so that the
  printed paths match its output;
* ``MP_REACH_NLRI`` (RFC 4760) is accepted in full form and in the abbreviated form MRT RIB
  entries use (RFC 6396 §4.3.4: next-hop length and address only);
* NLRI carry RFC 7911 path identifiers when the record is an ADD-PATH subtype (RFC 8050).

Decoding is eager but cheap: the strings ``bgpdump -m`` prints are built once per attribute set
and shared by every prefix of the message.
"""

from __future__ import annotations

import functools
import socket
import struct
from dataclasses import dataclass, field

from netvigil.sources.bgp.mrt.types import AFI_IP, AFI_IP6

ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR = 1, 2, 3, 4, 5, 6, 7
COMMUNITIES, ORIGINATOR_ID, CLUSTER_LIST, MP_REACH, MP_UNREACH = 8, 9, 10, 14, 15
AS4_PATH, AS4_AGGREGATOR, LARGE_COMMUNITIES = 17, 18, 32

AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET = 1, 2, 3, 4
AS_TRANS = 23456  # RFC 6793 §9
ASPATH_ERROR = "! Error !"
_MAX_ASPATH_STR = 8000  # bgpdump truncates longer paths with "..."

_DELIM = {AS_SET: ("{", "}"), AS_CONFED_SET: ("[", "]"), AS_CONFED_SEQUENCE: ("(", ")")}
_WELL_KNOWN = {0xFFFFFF01: "no-export", 0xFFFFFF02: "no-advertise", 0xFFFFFF03: "local-AS"}
_ORIGIN_NAMES = ("IGP", "EGP")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
INADDR_NONE = b"\xff\xff\xff\xff"
_Z10 = bytes(10)
_Z12 = bytes(12)

Segment = tuple[int, tuple[int, ...]]


class AttributeError_(ValueError):
    """An attribute or NLRI field overruns its container (caller maps it to CorruptRecord)."""


class Unsupported(Exception):  # noqa: N818 - a outcome, not a failure
    """A well-formed record of a kind this reader does not decode (counted, not an error)."""


@dataclass(slots=True)
class Nlri:
    """One prefix: address family, network bytes (full width, host bits cleared), length."""

    afi: int
    addr: bytes
    plen: int
    path_id: int | None = None

    def __str__(self) -> str:
        return format_prefix(self.afi, self.addr, self.plen)


@dataclass(slots=True)
class MpReach:
    afi: int
    safi: int
    next_hop: bytes
    nlri: list[Nlri]


@dataclass(slots=True)
class MpUnreach:
    afi: int
    safi: int
    nlri: list[Nlri]


@dataclass(slots=True)
class PathAttributes:
    """Decoded attributes of one UPDATE or RIB entry; absent values are None."""

    present: int = 0  # bit (type-1) set for every attribute type <= 32 seen (bgpdump's flag)
    origin: int = -1
    as_path: list[Segment] | None = None
    as_path_error: bool = False
    next_hop: bytes | None = None
    med: int | None = None
    local_pref: int | None = None
    atomic_aggregate: bool = False
    aggregator_as: int | None = None
    aggregator_addr: bytes | None = None
    communities: list[int] | None = None
    large_communities: list[tuple[int, int, int]] | None = None
    as4_path: list[Segment] | None = None
    as4_aggregator: tuple[int, bytes] | None = None
    mp_reach: list[MpReach] = field(default_factory=list)
    mp_unreach: list[MpUnreach] = field(default_factory=list)
    _path_str: str | None = None

    def has(self, code: int) -> bool:
        return bool(self.present & (1 << (code - 1))) if 0 < code <= 32 else False

    # -------------------------------------------------------------- bgpdump -m strings
    @property
    def as_path_str(self) -> str:
        if self._path_str is None:
            if self.as_path_error:
                self._path_str = ASPATH_ERROR
            else:
                self._path_str = format_as_path(self.as_path) if self.as_path is not None else ""
        return self._path_str

    @property
    def origin_str(self) -> str:
        return _ORIGIN_NAMES[self.origin] if 0 <= self.origin < 2 else "INCOMPLETE"

    @property
    def communities_str(self) -> str:
        if self.communities is None:
            return ""
        return " ".join(_WELL_KNOWN.get(c) or f"{c >> 16}:{c & 0xFFFF}" for c in self.communities)

    @property
    def aggregator_str(self) -> str:
        if self.aggregator_addr is None or self.aggregator_addr == INADDR_NONE:
            return ""
        return f"{self.aggregator_as} {socket.inet_ntoa(self.aggregator_addr)}"

    def origin_asns(self) -> tuple[int, ...]:
        """Origin AS(es): the last AS of the path, or the members of a trailing AS_SET."""
        if not self.as_path:
            return ()
        seg_type, asns = self.as_path[-1]
        if not asns:
            return ()
        if seg_type in (AS_SET, AS_CONFED_SET):
            return tuple(sorted(set(asns)))
        return (asns[-1],)


def format_as_path(segments: list[Segment]) -> str:
    """The AS path as bgpdump prints it: sequences space-separated, ``{a,b}`` sets,
    ``(a b)`` confederation sequences and ``[a,b]`` confederation sets."""
    if len(segments) == 1 and segments[0][0] == AS_SEQUENCE:
        text = " ".join(map(str, segments[0][1]))
        return text if len(text) <= _MAX_ASPATH_STR - 100 else _truncated_path(segments)
    parts: list[str] = []
    for seg_type, asns in segments:
        if seg_type == AS_SEQUENCE:
            parts.append(" ".join(map(str, asns)))
        else:
            o, c = _DELIM[seg_type]
            sep = "," if seg_type in (AS_SET, AS_CONFED_SET) else " "
            parts.append(o + sep.join(map(str, asns)) + c)
    text = " ".join(parts)
    return text if len(text) <= _MAX_ASPATH_STR - 100 else _truncated_path(segments)


def _truncated_path(segments: list[Segment]) -> str:
    out = ""
    first = True
    for seg_type, asns in segments:
        if not first:
            out += " "
        first = False
        o, c = _DELIM.get(seg_type, ("", ""))
        out += o
        sep = "," if seg_type in (AS_SET, AS_CONFED_SET) else " "
        for i, asn in enumerate(asns):
            out += (sep if i else "") + str(asn)
            if len(out) > _MAX_ASPATH_STR - 100:
                return out + "..."
        out += c
    return out


def format_prefix(afi: int, addr: bytes, plen: int) -> str:
    if afi == AFI_IP:
        return f"{socket.inet_ntoa(addr)}/{plen}"
    return f"{format_ipv6(addr)}/{plen}"


def format_ip(addr: bytes) -> str:
    """IPv4 dotted quad; IPv6 as :func:`format_ipv6`."""
    if len(addr) == 4:
        return socket.inet_ntoa(addr)
    return format_ipv6(addr)


@functools.lru_cache(maxsize=65536)
def format_ipv6(addr: bytes) -> str:
    """IPv6 text exactly as bgpdump's ``fmt_ipv6`` writes it.

    Unlike RFC 5952 (and ``inet_ntop``), bgpdump compresses the longest run of zero groups
    even when it is a single group (``2001:7f8:30::2:1:0:8447``); IPv4-mapped and
    IPv4-compatible addresses print as ``::ffff:a.b.c.d`` and ``::a.b.c.d``.
    """
    if addr[:10] == _Z10 and addr[10:12] == b"\xff\xff":
        return "::ffff:" + socket.inet_ntoa(addr[12:16])
    if addr[:12] == _Z12 and int.from_bytes(addr[12:16], "big") > 1:
        return "::" + socket.inet_ntoa(addr[12:16])
    words = struct.unpack("!8H", addr)
    best, best_len, run = -1, 0, 0
    runs = [0] * 8
    for i in range(7, -1, -1):
        run = run + 1 if words[i] == 0 else 0
        runs[i] = run
    for i in range(8):
        if runs[i] > best_len:
            best, best_len = i, runs[i]
    if best < 0:
        return ":".join(f"{w:x}" for w in words)
    head = ":".join(f"{w:x}" for w in words[:best])
    tail = ":".join(f"{w:x}" for w in words[best + best_len :])
    return head + "::" + tail


def read_prefixes(
    buf: bytes, pos: int, end: int, afi: int, addpath: bool, out: list[Nlri]
) -> int:
    """Read an NLRI list (RFC 4271 §4.3; RFC 4760 §5; path ids per RFC 7911 §3).

    Host bits beyond the mask are cleared (upstream bgpdump prints ``11.8.0.0/13``). A prefix
    cut short by the end of its container stops the list, as in bgpdump; the number of bytes
    left over is returned so that callers can count it.
    """
    width = 4 if afi == AFI_IP else 16
    maxlen = width * 8
    while pos < end:
        path_id: int | None = None
        if addpath:
            if pos + 4 > end:
                return end - pos
            path_id = _U32.unpack_from(buf, pos)[0]
            pos += 4
            if pos >= end:
                return 4
        plen = buf[pos]
        pos += 1
        if plen > maxlen:
            raise AttributeError_(f"prefix length {plen} exceeds {maxlen} bits")
        nbytes = (plen + 7) >> 3
        if pos + nbytes > end:
            return end - pos + 1
        raw = bytes(buf[pos : pos + nbytes])
        pos += nbytes
        if plen & 7:
            raw = raw[:-1] + bytes((raw[-1] & (0xFF << (8 - (plen & 7))) & 0xFF,))
        out.append(Nlri(afi, raw + bytes(width - nbytes), plen, path_id))
    return 0


def _read_path(buf: bytes, pos: int, end: int, asn_len: int) -> list[Segment] | None:
    """AS_PATH segments (RFC 4271 §4.3 b; RFC 6793 for 4-octet ASNs); None on a bad segment."""
    segs: list[Segment] = []
    fmt = "!%dH" if asn_len == 2 else "!%dI"
    while pos < end:
        if pos + 2 > end:
            return None
        seg_type = buf[pos]
        n = buf[pos + 1]
        if seg_type not in (AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET):
            return None
        pos += 2
        if pos + n * asn_len > end:
            return None
        segs.append((seg_type, struct.unpack_from(fmt % n, buf, pos)))
        pos += n * asn_len
    return segs


def path_count(segs: list[Segment]) -> int:
    """Path length for RFC 4271 §9.1.2.2 a: a set counts as one."""
    return sum(1 if t in (AS_SET, AS_CONFED_SET) else len(a) for t, a in segs)


def _merge_as4(path: list[Segment], new: list[Segment]) -> list[Segment]:
    """RFC 6793 §4.2.3: keep the leading ASes of AS_PATH that AS4_PATH does not cover."""
    target = path_count(path) - path_count(new)
    merged: list[Segment] = []
    count = 0
    for seg_type, asns in path:
        if count >= target:
            break
        if seg_type in (AS_SET, AS_CONFED_SET):
            merged.append((seg_type, asns))
            count += 1
        else:
            take = min(len(asns), target - count)
            merged.append((seg_type, asns[:take]))
            count += len(asns)
    return merged + new


def decode_attributes(
    buf: bytes, pos: int, end: int, asn_len: int, addpath: bool = False
) -> PathAttributes:
    """Decode the attributes in ``buf[pos:end]`` (RFC 4271 §4.3 path attribute layout)."""
    a = PathAttributes()
    while pos < end:
        if pos + 3 > end:
            raise AttributeError_("attribute header overruns the attribute block")
        flags = buf[pos]
        code = buf[pos + 1]
        if flags & 0x10:  # Extended Length (RFC 4271 §4.3)
            if pos + 4 > end:
                raise AttributeError_("attribute header overruns the attribute block")
            alen = (buf[pos + 2] << 8) | buf[pos + 3]
            pos += 4
        else:
            alen = buf[pos + 2]
            pos += 3
        aend = pos + alen
        if aend > end:
            # bgpdump warns and drops a truncated attribute; so do we, and stop.
            break
        if 0 < code <= 32:
            a.present |= 1 << (code - 1)
        if code == ORIGIN:
            if alen >= 1:
                a.origin = buf[pos]
        elif code == AS_PATH:
            segs = _read_path(buf, pos, aend, asn_len)
            if segs is None:
                a.as_path_error = True
                a.as_path = []
            else:
                a.as_path = segs
        elif code == NEXT_HOP:
            a.next_hop = bytes(buf[pos : pos + 4]).ljust(4, b"\0")
        elif code == MED:
            if alen >= 4:
                a.med = _U32.unpack_from(buf, pos)[0]
        elif code == LOCAL_PREF:
            if alen >= 4:
                a.local_pref = _U32.unpack_from(buf, pos)[0]
        elif code == ATOMIC_AGGREGATE:
            a.atomic_aggregate = True
        elif code == AGGREGATOR:
            if alen >= asn_len + 4:
                a.aggregator_as = (
                    _U16.unpack_from(buf, pos)[0] if asn_len == 2 else _U32.unpack_from(buf, pos)[0]
                )
                a.aggregator_addr = bytes(buf[pos + asn_len : pos + asn_len + 4])
        elif code == COMMUNITIES:  # RFC 1997
            n = alen // 4
            a.communities = list(struct.unpack_from(f"!{n}I", buf, pos))
        elif code == LARGE_COMMUNITIES:  # RFC 8092
            n = alen // 12
            v = struct.unpack_from(f"!{3 * n}I", buf, pos)
            a.large_communities = [(v[3 * i], v[3 * i + 1], v[3 * i + 2]) for i in range(n)]
        elif code == MP_REACH:
            _mp_reach(a, buf, pos, aend, addpath)
        elif code == MP_UNREACH:
            if alen >= 3:
                afi = _U16.unpack_from(buf, pos)[0]
                safi = buf[pos + 2]
                if afi in (AFI_IP, AFI_IP6) and 0 < safi <= 3:
                    if not any(u.afi == afi and u.safi == safi for u in a.mp_unreach):
                        nl: list[Nlri] = []
                        read_prefixes(buf, pos + 3, aend, afi, addpath, nl)
                        a.mp_unreach.append(MpUnreach(afi, safi, nl))
        elif code == AS4_PATH:
            a.as4_path = _read_path(buf, pos, aend, 4)
        elif code == AS4_AGGREGATOR:
            if alen >= 8:
                a.as4_aggregator = (_U32.unpack_from(buf, pos)[0], bytes(buf[pos + 4 : pos + 8]))
        pos = aend
    if asn_len == 2:
        _as4_transition(a)
    return a


def _mp_reach(a: PathAttributes, buf: bytes, pos: int, end: int, addpath: bool) -> None:
    if pos >= end:
        return
    if buf[pos] != 0:
        # Abbreviated form in RIB entries (RFC 6396 §4.3.4): next-hop length + next hop only.
        nhlen = buf[pos]
        nh = bytes(buf[pos + 1 : pos + 1 + min(nhlen, 16)]).ljust(16, b"\0")
        if not any(r.afi == AFI_IP6 and r.safi == 1 for r in a.mp_reach):
            a.mp_reach.append(MpReach(AFI_IP6, 1, nh, []))
        return
    if pos + 4 > end:
        return
    afi = _U16.unpack_from(buf, pos)[0]
    safi = buf[pos + 2]
    nhlen = buf[pos + 3]
    if afi not in (AFI_IP, AFI_IP6) or not 0 < safi <= 3:
        return
    if any(r.afi == afi and r.safi == safi for r in a.mp_reach):
        return
    width = 4 if afi == AFI_IP else 16
    nh = bytes(buf[pos + 4 : pos + 4 + min(nhlen, width)]).ljust(width, b"\0")
    p = pos + 4 + nhlen
    if p < end:
        nsnpa = buf[p]  # SNPAs: defunct (RFC 4760 §3 "Reserved")
        p += 1
        for _ in range(nsnpa):
            if p >= end:
                break
            p += 1 + buf[p]
    nl: list[Nlri] = []
    if p < end:
        read_prefixes(buf, p, end, afi, addpath, nl)
    a.mp_reach.append(MpReach(afi, safi, nh, nl))


def _as4_transition(a: PathAttributes) -> None:
    """AS2 session: fold AS4_AGGREGATOR and AS4_PATH in (RFC 6793 §4.2.3), bgpdump-style."""
    if a.aggregator_as is not None and a.as4_aggregator is not None:
        if a.aggregator_as != AS_TRANS:
            return  # RFC 6793: ignore AS4_AGGREGATOR *and* AS4_PATH in this case
        a.aggregator_as, a.aggregator_addr = a.as4_aggregator
    if a.as4_path is None or a.as_path is None or a.as_path_error:
        if a.as4_path is not None and a.as_path is not None and a.as_path_error:
            # bgpdump: an erroneous AS_PATH has count 0; merge only if AS4_PATH is empty too
            if path_count(a.as4_path) == 0:
                a.as_path, a.as_path_error = a.as4_path, False
        return
    if path_count(a.as_path) < path_count(a.as4_path):
        return
    a.as_path = _merge_as4(a.as_path, a.as4_path)
