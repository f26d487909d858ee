"""MRT framing (RFC 6396 §2): the common header, ET microseconds, and the error policy.

Records are located by their 12-byte header (timestamp, type, subtype, length); the length
frames the stream, so a body that fails to decode can be skipped without losing sync. A header
whose type is unknown *and* whose length is implausible is damaged framing: under
:attr:`ErrorPolicy.SKIP` the reader resynchronises by scanning for the next plausible header
(two consecutive headers that agree, as bgpkit-parser's recovering iterator does) and counts the
bytes it passed over.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from netvigil.sources.bgp.mrt.errors import ErrorPolicy, MrtError, ReadStats, TruncatedRecord
from netvigil.sources.bgp.mrt.io import MrtStream

HEADER = struct.Struct("!IHHI")
CHUNK = 8 << 20
#: Largest record we accept before calling the framing damaged (a 60-peer RIB entry with
#: long paths is well under 1 MiB; bgpdump's 64k-overflow fixture holds a 70 KB record).
MAX_RECORD = 16 << 20
#: type (2 bytes) + subtype (2 bytes) of a known record: where a resync may land
_CANDIDATE = re.compile(rb"\x00[\x05\x0c\x0d\x10\x11]\x00[\x00-\x0d]", re.S)
_KNOWN_TYPES = {5: 8, 12: 5, 13: 13, 16: 12, 17: 12}  # type -> number of subtypes known


@dataclass(slots=True)
class RawRecord:
    """One framed record: ``buf[start:end]`` is the body (after the ET microseconds)."""

    offset: int
    timestamp: int
    type: int
    subtype: int
    buf: bytes
    start: int
    end: int
    microseconds: int | None = None


def _plausible(data: bytes, pos: int, last_ts: int | None) -> bool:
    if pos + 12 > len(data):
        return False
    ts, typ, sub, length = HEADER.unpack_from(data, pos)
    if typ not in _KNOWN_TYPES or sub > _KNOWN_TYPES[typ] or length > MAX_RECORD:
        return False
    return last_ts is None or abs(ts - last_ts) < 7 * 86400


def iter_records(
    stream: MrtStream,
    policy: ErrorPolicy = ErrorPolicy.SKIP,
    stats: ReadStats | None = None,
    chunk: int = CHUNK,
) -> Iterator[RawRecord]:
    """Frame the stream into records. Truncated tails raise or are counted per ``policy``."""
    st = stats if stats is not None else ReadStats()
    data = b""
    pos = 0
    base = 0  # stream offset of data[0]
    eof = False
    last_ts: int | None = None
    while True:
        if len(data) - pos < 16 and not eof:
            more = stream.read(chunk)
            data = data[pos:] + more
            base += pos
            pos = 0
            if not more:
                eof = True
            continue
        if pos >= len(data):
            break
        if len(data) - pos < 12:
            _fail(st, policy, TruncatedRecord(base + pos, "input ends inside an MRT header",
                                              stream.name))
            break
        ts, typ, sub, length = HEADER.unpack_from(data, pos)
        if (typ not in _KNOWN_TYPES or length > MAX_RECORD) and (
            length > MAX_RECORD or not _plausible(data, pos + 12 + length, ts)
        ):
            err = MrtError(base + pos, f"damaged MRT header (type {typ}, length {length})",
                           stream.name)
            _fail(st, policy, err)
            # resynchronise: next offset where two consecutive plausible headers begin
            found = -1
            p = pos + 1
            while True:
                m = _CANDIDATE.search(data, p + 4)
                if m is None:
                    if eof:
                        break
                    keep = max(p, len(data) - 16)  # a header may straddle the read
                    base += keep
                    data = data[keep:]
                    p = pos = 0
                    more = stream.read(chunk)
                    eof = not more
                    data += more
                    continue
                p = m.start() - 4
                if _plausible(data, p, last_ts):
                    nxt = p + 12 + HEADER.unpack_from(data, p)[3]
                    if nxt + 12 > len(data) and not eof:
                        more = stream.read(max(chunk, nxt + 12 - len(data)))
                        eof = not more
                        data += more
                        p -= 1  # search again from the same candidate
                        continue
                    if nxt >= len(data) or _plausible(data, nxt, last_ts):
                        found = p
                        break
                p += 1
            if found < 0:
                break
            pos = found
            continue
        need = 12 + length
        if len(data) - pos < need and not eof:
            more = stream.read(max(chunk, need))
            data = data[pos:] + more
            base += pos
            pos = 0
            if not more:
                eof = True
            continue
        if len(data) - pos < need:
            _fail(st, policy, TruncatedRecord(
                base + pos, f"record of {length} bytes, only {len(data) - pos - 12} present",
                stream.name))
            break
        body = pos + 12
        micro = None
        if typ == 17:  # BGP4MP_ET: microseconds are counted in Length (RFC 6396 §3)
            if length < 4:
                _fail(st, policy, MrtError(base + pos, "BGP4MP_ET record shorter than 4 bytes",
                                           stream.name))
                pos += need
                continue
            micro = struct.unpack_from("!I", data, body)[0]
            body += 4
        st.records += 1
        last_ts = ts
        yield RawRecord(base + pos, ts, typ, sub, data, body, pos + need, micro)
        pos += need
    st.bytes_read = base + pos


def _fail(stats: ReadStats, policy: ErrorPolicy, err: MrtError) -> None:
    if policy is ErrorPolicy.FAIL:
        raise err
    stats.note(err)
