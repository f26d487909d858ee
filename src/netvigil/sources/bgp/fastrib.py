"""Vectorised TABLE_DUMP_V2 RIB reading: raw bytes → columns, no Python object per route.

Issue 3 item 2 measured the per-element Python object as the bottleneck of every Python
reader. A RIB needs no objects for visibility: only (peer, prefix, origin AS) per entry. This
module frames records in Python (one loop step per *prefix*, ~20–60 routes each) and then walks
every RIB entry, attribute and AS_PATH segment of a whole chunk in lock-step with numpy fancy
indexing (RFC 6396 §4.3.2 entry layout; §4.3.4: 4-octet ASNs in TABLE_DUMP_V2 AS_PATHs).

Records other than PEER_INDEX_TABLE and RIB_IPV4/IPV6_UNICAST[_ADDPATH] are counted and left to
the general reader. Entries whose lengths overrun their record are dropped and counted under
the caller's :class:`ErrorPolicy`, like any corrupt record.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from netvigil.sources.bgp.mrt.attributes import AttributeError_, format_ip
from netvigil.sources.bgp.mrt.errors import CorruptRecord, ErrorPolicy, ReadStats, TruncatedRecord
from netvigil.sources.bgp.mrt.io import Prefetch, open_mrt
from netvigil.sources.bgp.mrt.records import RawRecord, iter_records
from netvigil.sources.bgp.mrt.table_dump_v2 import PeerIndex, decode_peer_index

I64 = npt.NDArray[np.int64]
# what decode_peer_index raises on a short or garbled table (the general reader's list)
_PEER_ERRORS = (AttributeError_, struct.error, IndexError, ValueError)
_RIB_SUBTYPES = {2: (4, False), 4: (6, False), 8: (4, True), 10: (6, True)}


@dataclass
class RibColumns:
    """One RIB as columns. ``net`` holds IPv4 in the low 32 bits, IPv6's top 64 bits."""

    timestamp: int
    peer_ips: list[str]
    peer_asns: list[int]
    collector_id: str
    peer: npt.NDArray[np.int32] = field(default_factory=lambda: np.empty(0, np.int32))
    afi: npt.NDArray[np.uint8] = field(default_factory=lambda: np.empty(0, np.uint8))
    net: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))
    plen: npt.NDArray[np.uint8] = field(default_factory=lambda: np.empty(0, np.uint8))
    origin: npt.NDArray[np.uint32] = field(default_factory=lambda: np.empty(0, np.uint32))
    stats: ReadStats = field(default_factory=ReadStats)

    def __len__(self) -> int:
        return int(self.peer.shape[0])


def _u16(b: npt.NDArray[np.uint8], p: I64) -> I64:
    return (b[p].astype(np.int64) << 8) | b[p + 1]


def _u32(b: npt.NDArray[np.uint8], p: I64) -> I64:
    return (
        (b[p].astype(np.int64) << 24) | (b[p + 1].astype(np.int64) << 16)
        | (b[p + 2].astype(np.int64) << 8) | b[p + 3]
    )


def read_rib_columns(
    source: str | Path | bytes | BinaryIO, policy: ErrorPolicy | str = ErrorPolicy.SKIP,
) -> RibColumns:
    """Decode every RIB_IPV4/IPV6_UNICAST (and ADD-PATH) entry of a TABLE_DUMP_V2 file.

    Well-formed input goes through the compiled scanner (:func:`_scan`, numba) with
    decompression on a second thread; anything irregular — a damaged header, an entry that
    overruns its record, a RIB before its peer table — makes the whole file go through the
    careful reader below, so both give the same columns, counts and problem offsets.
    """
    pol = ErrorPolicy(policy)
    if isinstance(source, str | Path | bytes) and _kernel(_work(source)) is not None:
        try:
            return _read_fast(source, pol)
        except _Irregular:
            pass
    return _read_careful(source, pol)


def _work(source: str | Path | bytes) -> int:
    """Rough element count for :func:`compiled`: ≥ 6 compressed bytes per RIB entry."""
    try:
        size = len(source) if isinstance(source, bytes) else os.path.getsize(source)
    except OSError:
        size = 0
    return size // 8


def _read_careful(source: str | Path | bytes | BinaryIO, pol: ErrorPolicy) -> RibColumns:
    """The numpy reader: Python framing, lock-step numpy decoding of each read chunk."""
    stats = ReadStats()
    peers: PeerIndex | None = None
    parts: list[tuple[npt.NDArray[Any], ...]] = []
    batch: list[RawRecord] = []
    ts = 0
    # peer tables may repeat or change mid-file: one global peer list, remapped per table
    gpeers: dict[tuple[bytes, int], int] = {}
    remap = np.empty(0, dtype=np.int64)
    collector = b"\0\0\0\0"

    def flush() -> None:
        peer, afi, net, plen, origin = _decode_batch(batch, peers, pol, stats)
        parts.append((remap[peer].astype(np.int32), afi, net, plen, origin))

    with open_mrt(source) as stream:
        for rec in iter_records(stream, pol, stats):
            if rec.type != 13:
                stats.unsupported += 1
                continue
            if rec.subtype == 1:
                if batch:
                    flush()
                    batch = []
                try:
                    peers = decode_peer_index(rec)
                except _PEER_ERRORS as exc:
                    # issue 12, defect 5: the entries that follow cannot be attributed to
                    # peers, so they are dropped (counted) until the next good peer table
                    peers = None
                    err = CorruptRecord(rec.offset, f"PEER_INDEX_TABLE: {exc}", stream.name)
                    if pol is ErrorPolicy.FAIL:
                        raise err from exc
                    stats.note(err)
                    continue
                collector = peers.collector_id
                ids = [gpeers.setdefault(k, len(gpeers))
                       for k in zip(peers.peer_ips, peers.peer_asns, strict=True)]
                remap = np.asarray(ids, dtype=np.int64)
                ts = rec.timestamp
                continue
            if rec.subtype not in _RIB_SUBTYPES:
                stats.unsupported += 1
                continue
            if peers is None:
                err = CorruptRecord(rec.offset, "RIB record before any PEER_INDEX_TABLE",
                                    stream.name)
                if pol is ErrorPolicy.FAIL:
                    raise err
                stats.note(err)
                continue
            if batch and batch[-1].buf is not rec.buf:
                flush()
                batch = []
            batch.append(rec)
        if batch:
            flush()
        if stream.compressed_truncated:
            cut = stream.cut_error(stats.bytes_read)
            if pol is ErrorPolicy.FAIL:
                raise cut
            if stream.inflated or not stats.truncated:
                stats.note(cut)
    cols = RibColumns(
        timestamp=ts,
        peer_ips=[format_ip(ip) for ip, _ in gpeers],
        peer_asns=[asn for _, asn in gpeers],
        collector_id=format_ip(collector),
        stats=stats,
    )
    if parts:
        cols.peer = np.concatenate([p[0] for p in parts])
        cols.afi = np.concatenate([p[1] for p in parts])
        cols.net = np.concatenate([p[2] for p in parts])
        cols.plen = np.concatenate([p[3] for p in parts])
        cols.origin = np.concatenate([p[4] for p in parts])
        parts.clear()
    stats.elements = len(cols)
    return cols


def _decode_batch(
    batch: list[RawRecord], peers: PeerIndex | None, policy: ErrorPolicy, stats: ReadStats
) -> tuple[npt.NDArray[Any], ...]:
    """Lock-step decode of every RIB record framed in one read chunk."""
    buf = batch[0].buf
    # 8 spare zero bytes so that guarded over-reads stay inside the array
    b = np.frombuffer(buf + bytes(8), dtype=np.uint8)
    s = np.fromiter((r.start for r in batch), np.int64, len(batch))
    e = np.fromiter((r.end for r in batch), np.int64, len(batch))
    sub = np.fromiter((r.subtype for r in batch), np.int64, len(batch))
    off = np.fromiter((r.offset for r in batch), np.int64, len(batch))
    is6 = (sub == 4) | (sub == 10)
    addp = (sub == 8) | (sub == 10)
    plen = b[s + 4].astype(np.int64)
    nbytes = (plen + 7) >> 3
    bad = (plen > np.where(is6, 128, 32)) | (s + 7 + nbytes > e)
    # network: IPv4 in 32 bits, IPv6 top 64 bits
    net = np.zeros(len(batch), dtype=np.uint64)
    width = np.where(is6, 8, 4)
    for k in range(8):
        take = (k < nbytes) & (k < width) & ~bad
        byte = np.where(take, b[np.minimum(s + 5 + k, len(b) - 1)], 0).astype(np.uint64)
        shift = np.where(is6, 56 - 8 * k, np.maximum(24 - 8 * k, 0)).astype(np.uint64)
        net |= np.where(k < width, byte << shift, np.uint64(0))
    mask_bits = np.where(is6, 64, 32) - np.minimum(plen, np.where(is6, 64, 32))
    keep = np.where(mask_bits >= 64, np.uint64(0),
                    ~((np.uint64(1) << mask_bits.astype(np.uint64)) - np.uint64(1)))
    net &= keep
    pc = np.where(bad, s, s + 5 + nbytes)
    count = np.where(bad, 0, _u16(b, pc))
    # --- entries, in lock-step over records
    p = pc + 2
    ent_rec: list[I64] = []
    ent_peer: list[I64] = []
    ent_a0: list[I64] = []
    ent_a1: list[I64] = []
    active = np.flatnonzero(count > 0)
    k = 0
    rec_bad = bad.copy()
    while active.size:
        pa = p[active]
        hdr = np.where(addp[active], 12, 8)
        ok = pa + hdr <= e[active]
        pidx = _u16(b, np.where(ok, pa, s[active]))
        alen = _u16(b, np.where(ok, pa + hdr - 2, s[active]))
        a0 = pa + hdr
        a1 = a0 + alen
        ok &= a1 <= e[active]
        rec_bad[active[~ok]] = True
        good = active[ok]
        ent_rec.append(good)
        ent_peer.append(pidx[ok])
        ent_a0.append(a0[ok])
        ent_a1.append(a1[ok])
        p[active] = np.where(ok, a1, e[active])
        k += 1
        active = active[ok & (count[active] > k)]
    rec_i = np.concatenate(ent_rec) if ent_rec else np.empty(0, np.int64)
    peer = np.concatenate(ent_peer) if ent_peer else np.empty(0, np.int64)
    a0 = np.concatenate(ent_a0) if ent_a0 else np.empty(0, np.int64)
    a1 = np.concatenate(ent_a1) if ent_a1 else np.empty(0, np.int64)
    npeers = len(peers.peer_ips) if peers else 0
    peer_ok = peer < npeers
    if not peer_ok.all():
        rec_bad[rec_i[~peer_ok]] = True
    # drop every entry of a record that had any problem (never a partly-read record)
    keep_e = ~rec_bad[rec_i]
    rec_i, peer, a0, a1 = rec_i[keep_e], peer[keep_e], a0[keep_e], a1[keep_e]
    for i in np.flatnonzero(rec_bad):
        err = CorruptRecord(int(off[i]), f"TABLE_DUMP_V2/{int(sub[i])} entry overruns record")
        if policy is ErrorPolicy.FAIL:
            raise err
        stats.note(err)
    origin = _origins(b, a0, a1)
    return (peer.astype(np.int32), np.where(is6[rec_i], 2, 1).astype(np.uint8), net[rec_i],
            plen[rec_i].astype(np.uint8), origin.astype(np.uint32))


def _origins(b: npt.NDArray[np.uint8], a0: I64, a1: I64) -> I64:
    """Origin AS per entry: the last AS of the last AS_PATH segment (0 if none)."""
    n = a0.size
    path0 = np.full(n, -1, dtype=np.int64)
    path1 = np.zeros(n, dtype=np.int64)
    pos = a0.copy()
    active = np.flatnonzero(pos + 3 <= a1)
    while active.size:
        pa = pos[active]
        flags = b[pa]
        code = b[pa + 1]
        ext = (flags & 0x10) != 0
        alen = np.where(ext, _u16(b, pa + 2), b[pa + 2].astype(np.int64))
        start = pa + np.where(ext, 4, 3)
        hit = code == 2
        path0[active[hit]] = start[hit]
        path1[active[hit]] = np.minimum(start[hit] + alen[hit], a1[active[hit]])
        pos[active] = start + alen
        nxt = ~hit & (pos[active] + 3 <= a1[active])
        active = active[nxt]
    origin = np.zeros(n, dtype=np.int64)
    seg = path0.copy()
    last = np.full(n, -1, dtype=np.int64)
    lastn = np.zeros(n, dtype=np.int64)
    active = np.flatnonzero((seg >= 0) & (seg + 2 <= path1))
    while active.size:
        sa = seg[active]
        cnt = b[sa + 1].astype(np.int64)
        fits = sa + 2 + 4 * cnt <= path1[active]
        last[active[fits]] = sa[fits]
        lastn[active[fits]] = cnt[fits]
        seg[active] = np.where(fits, sa + 2 + 4 * cnt, path1[active])
        active = active[fits & (seg[active] + 2 <= path1[active])]
    has = (last >= 0) & (lastn > 0)
    idx = np.flatnonzero(has)
    origin[idx] = _u32(b, last[idx] + 2 + 4 * (lastn[idx] - 1))
    return origin


# --------------------------------------------------------------------------- compiled scanner
# One pass over the decompressed bytes: frame each record from its header (RFC 6396 §2) and
# decode RIB entries in the same loop, ~20 ns per route instead of ~1 µs for the numpy walk
# above (whose cost is a dozen fancy-indexing passes per chunk plus Python framing per record).
# The scanner handles only the regular case and stops on anything else; see _read_fast.

_NEED, _PEERS, _IRREGULAR = 0, 1, 2
_MAX_RECORD = 16 << 20  # records.MAX_RECORD
_CHUNK = 16 << 20
_PAD = bytes(8)


class _Irregular(Exception):
    """The input needs the careful reader (damaged framing, a bad entry, no peer table)."""


def _scan_py(  # noqa: C901, PLR0912, PLR0915 - one flat loop is the point of compiling it
    b: npt.NDArray[np.uint8], pos: int, end: int, npeers: int,
    o_peer: npt.NDArray[np.int32], o_afi: npt.NDArray[np.uint8],
    o_net: npt.NDArray[np.uint64], o_plen: npt.NDArray[np.uint8],
    o_origin: npt.NDArray[np.uint32], counters: I64, n: int,
) -> tuple[int, int, int]:
    """Consume regular records from ``b[pos:end]``, writing entries from index ``n`` on;
    return (status, pos, entries written so far).

    ``counters`` accumulates [records, unsupported]. ``npeers`` < 0 means no peer table yet.
    Same decoding rules as :func:`_decode_batch` and :func:`_origins`, entry for entry.
    The outputs must have room for ``(end - pos) // 8`` more entries (an entry is ≥ 8 bytes).
    """
    while True:
        if end - pos < 12:
            return _NEED, pos, n
        typ = (int(b[pos + 4]) << 8) | int(b[pos + 5])
        sub = (int(b[pos + 6]) << 8) | int(b[pos + 7])
        length = ((int(b[pos + 8]) << 24) | (int(b[pos + 9]) << 16)
                  | (int(b[pos + 10]) << 8) | int(b[pos + 11]))
        if not (typ == 5 or typ == 12 or typ == 13 or typ == 16 or typ == 17) or (
                length > _MAX_RECORD):
            return _IRREGULAR, pos, n
        rec_end = pos + 12 + length
        if rec_end > end:
            return _NEED, pos, n
        if typ == 17 and length < 4:
            return _IRREGULAR, pos, n
        if typ == 13 and sub == 1:
            return _PEERS, pos, n
        if typ != 13 or not (sub == 2 or sub == 4 or sub == 8 or sub == 10):
            counters[0] += 1
            counters[1] += 1
            pos = rec_end
            continue
        if npeers < 0:
            return _IRREGULAR, pos, n
        s = pos + 12
        e = rec_end
        is6 = sub == 4 or sub == 10
        hdr = 12 if (sub == 8 or sub == 10) else 8
        if s + 7 > e:
            return _IRREGULAR, pos, n
        plen = int(b[s + 4])
        nbytes = (plen + 7) >> 3
        if plen > (128 if is6 else 32) or s + 7 + nbytes > e:
            return _IRREGULAR, pos, n
        width = 8 if is6 else 4
        net = np.uint64(0)
        for k in range(min(nbytes, width)):
            shift = (56 - 8 * k) if is6 else (24 - 8 * k)
            net |= np.uint64(b[s + 5 + k]) << np.uint64(shift)
        mask_bits = width * 8 - min(plen, width * 8)
        if mask_bits >= 64:
            net = np.uint64(0)
        else:
            net &= ~((np.uint64(1) << np.uint64(mask_bits)) - np.uint64(1))
        pc = s + 5 + nbytes
        count = (int(b[pc]) << 8) | int(b[pc + 1])
        p = pc + 2
        n0 = n
        for _ in range(count):
            if p + hdr > e:
                return _IRREGULAR, pos, n0
            pidx = (int(b[p]) << 8) | int(b[p + 1])
            alen = (int(b[p + hdr - 2]) << 8) | int(b[p + hdr - 1])
            a0 = p + hdr
            a1 = a0 + alen
            if a1 > e or pidx >= npeers:
                return _IRREGULAR, pos, n0
            # origin AS: last AS of the last whole segment of the first AS_PATH attribute
            q = a0
            path0 = -1
            path1 = 0
            while q + 3 <= a1:
                flags = b[q]
                code = b[q + 1]
                if flags & 0x10:
                    ln = (int(b[q + 2]) << 8) | int(b[q + 3])
                    st = q + 4
                else:
                    ln = int(b[q + 2])
                    st = q + 3
                if code == 2:
                    path0 = st
                    path1 = min(st + ln, a1)
                    break
                q = st + ln
            origin = 0
            if path0 >= 0:
                seg = path0
                last = -1
                lastn = 0
                while seg + 2 <= path1:
                    cnt = int(b[seg + 1])
                    if seg + 2 + 4 * cnt > path1:
                        break
                    last = seg
                    lastn = cnt
                    seg = seg + 2 + 4 * cnt
                if last >= 0 and lastn > 0:
                    t = last + 2 + 4 * (lastn - 1)
                    origin = ((int(b[t]) << 24) | (int(b[t + 1]) << 16)
                              | (int(b[t + 2]) << 8) | int(b[t + 3]))
            o_peer[n] = pidx
            o_afi[n] = 2 if is6 else 1
            o_net[n] = net
            o_plen[n] = plen
            o_origin[n] = origin
            n += 1
            p = a1
        counters[0] += 1
        pos = rec_end


_COMPILED: dict[Any, Any] = {}
#: Below this much work (routes; for a file, its size on disk / 8) the pure-numpy paths run,
#: unless the compiled function is already loaded in this process: importing numba and loading
#: its on-disk cache costs ~0.8 s once per process, more than numpy needs for a small RIB.
NUMBA_MIN_WORK = int(os.environ.get("NETVIGIL_NUMBA_MIN_WORK", "1000000"))


def compiled(fn: Any, work: int | None = None) -> Any:
    """``fn`` compiled by numba (nogil, cached on disk), or None — numba not installed,
    NETVIGIL_NO_NUMBA set, or less than :data:`NUMBA_MIN_WORK` of ``work`` in a process that has
    not loaded ``fn`` yet; callers then take their pure-numpy path, which gives equal results."""
    if fn not in _COMPILED:
        if work is not None and work < NUMBA_MIN_WORK:
            return None
        out: Any = None
        if not os.environ.get("NETVIGIL_NO_NUMBA"):
            try:
                import numba  # type: ignore[import-untyped,unused-ignore]
            except ImportError:
                pass
            else:
                out = numba.njit(nogil=True, cache=True)(fn)
        _COMPILED[fn] = out
    return _COMPILED[fn]


def _kernel(work: int | None = None) -> Any:
    return compiled(_scan_py, work)


def _read_fast(source: str | Path | bytes, pol: ErrorPolicy) -> RibColumns:
    """Compiled scan over prefetched decompressed chunks; raises _Irregular to hand over.

    The decompressed bytes go into one reused buffer and the entries straight into the output
    columns, which grow in place (``ndarray.resize``: realloc, no second copy), so the main
    thread does one copy per byte besides the scan, and the decoder thread runs meanwhile.
    """
    scan = _kernel()
    stats = ReadStats()
    counters = np.zeros(2, np.int64)
    gpeers: dict[tuple[bytes, int], int] = {}
    remap = np.empty(0, dtype=np.int32)
    npeers = -1
    ts = 0
    collector = b"\0\0\0\0"
    dtypes = (np.int32, np.uint8, np.uint64, np.uint8, np.uint32)
    outs: list[npt.NDArray[Any]] = [np.empty(1 << 20, dt) for dt in dtypes]
    nout = seg = 0  # entries written; first entry under the current peer table

    def remap_segment() -> None:
        if nout > seg and not np.array_equal(remap, np.arange(remap.size)):
            outs[0][seg:nout] = remap[outs[0][seg:nout]]

    buf = np.zeros(2 * _CHUNK + 8, np.uint8)
    with open_mrt(source) as stream, Prefetch(stream, _CHUNK) as chunks:
        end = pos = base = 0
        eof = False
        need = True
        while True:
            if need:
                if eof:
                    left = end - pos
                    if left:
                        if left < 12:
                            cut = TruncatedRecord(base + pos, "input ends inside an MRT header",
                                                  stream.name)
                        else:
                            ln = int.from_bytes(buf[pos + 8:pos + 12].tobytes(), "big")
                            cut = TruncatedRecord(
                                base + pos, f"record of {ln} bytes, only {left - 12} present",
                                stream.name)
                        if pol is ErrorPolicy.FAIL:
                            raise cut
                        stats.note(cut)
                    break
                more = next(chunks, b"")
                eof = not more
                left = end - pos
                if left + len(more) + 8 > buf.size:
                    grown = np.zeros(2 * (left + len(more)) + 8, np.uint8)
                    grown[:left] = buf[pos:end]
                    buf = grown
                elif left:
                    buf[:left] = buf[pos:end].copy()
                buf[left:left + len(more)] = np.frombuffer(more, np.uint8)
                base += pos
                pos = 0
                end = left + len(more)
                buf[end:end + 8] = 0  # guarded over-reads see zeros, as in _decode_batch
                del more
                need = False
            room = (end - pos) // 8 + 1
            if outs[0].size - nout < room:
                cap = max(room + nout, outs[0].size * 3 // 2)
                for o in outs:
                    o.resize(cap, refcheck=False)
            status, pos, nout = scan(buf, pos, end, npeers, *outs, counters, nout)
            if status == _NEED:
                need = True
            elif status == _PEERS:
                length = int.from_bytes(buf[pos + 8:pos + 12].tobytes(), "big")
                raw = buf[pos:pos + 12 + length].tobytes()
                rec = RawRecord(base + pos, int.from_bytes(raw[:4], "big"), 13, 1, raw, 12,
                                12 + length)
                try:
                    peers = decode_peer_index(rec)
                except _PEER_ERRORS:
                    raise _Irregular from None  # the careful reader applies the policy
                remap_segment()
                seg = nout
                collector = peers.collector_id
                ids = [gpeers.setdefault(k, len(gpeers))
                       for k in zip(peers.peer_ips, peers.peer_asns, strict=True)]
                remap = np.asarray(ids, dtype=np.int32)
                npeers = len(ids)
                ts = rec.timestamp
                counters[0] += 1
                pos += 12 + length
            else:
                raise _Irregular
        remap_segment()
        stats.bytes_read = base + pos
        if stream.compressed_truncated:
            stop = stream.cut_error(stats.bytes_read)
            if pol is ErrorPolicy.FAIL:
                raise stop
            if stream.inflated or not stats.truncated:
                stats.note(stop)
    stats.records = int(counters[0])
    stats.unsupported = int(counters[1])
    for o in outs:
        o.resize(nout, refcheck=False)  # shrink in place
    cols = RibColumns(
        timestamp=ts,
        peer_ips=[format_ip(ip) for ip, _ in gpeers],
        peer_asns=[asn for _, asn in gpeers],
        collector_id=format_ip(collector),
        peer=outs[0], afi=outs[1], net=outs[2], plen=outs[3], origin=outs[4],
        stats=stats,
    )
    stats.elements = len(cols)
    return cols
