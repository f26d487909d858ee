"""BGP4MP update files straight into columns: the ingester's update path without an object
per element.

Why: the full decoder (:mod:`netvigil.sources.bgp.mrt`) builds a ``BgpElem`` with its
``PathAttributes`` per element, and the ingester rolled the routing state forward one
element at a time. Profiled on 240,000 update elements (``bgp ingest`` of a synthetic
hour, docs/bgp.md "Update path"): decoding 56 % and applying 14 % of the run, about 30,000
elements per CPU second, which made the update path the real-time ingester's limit
(docs/scaling.md, section 3). Here one compiled loop (numba, as :mod:`fastrib`) frames the
records and decodes the *regular* ones into the columns the routing state needs (time,
kind, peer, family, network, length, origin AS); the state then takes them a bin at a
time (:meth:`RoutingState.apply_columns`).

Exactness: the compiled loop accepts a record only when it is sure the full decoder would
read it without complaint, and reads it by the same rules (RFC 4271 §4.3 UPDATE layout,
RFC 4760 MP_REACH/MP_UNREACH, RFC 6396 §4.4 BGP4MP subtypes, the origin of
:meth:`PathAttributes.origin_asns`). Everything else is handed to the full decoder
record by record (``MrtReader.decode`` under the caller's policy, the time window
included), and its elements become rows by :func:`elem_row`, the one rule the state
applies: ADD-PATH messages, AS2 messages carrying AS4_PATH or AS4_AGGREGATOR (RFC 6793
merge), repeated AS_PATH or MP_* attributes, abbreviated MP_REACH, any overrun or bad
prefix length, deprecated subtypes, other record types, records outside the time window.
Damaged framing (a record longer than what is left, an unknown type) sends the whole file
to the full reader, which resynchronises. ``tests/test_bgp_fastupdates.py`` compares the
two paths element by element on every MRT fixture and on synthetic archives.

Without numba (or with ``NETVIGIL_NO_NUMBA`` set, or for small inputs in a process that has
not loaded it: :func:`netvigil.sources.bgp.fastrib.compiled`) :func:`read_update_columns`
returns None and the caller reads the file with the full decoder.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from netvigil.sources.bgp.fastrib import compiled
from netvigil.sources.bgp.mrt.attributes import format_ip
from netvigil.sources.bgp.mrt.elem import BgpElem
from netvigil.sources.bgp.mrt.errors import ErrorPolicy, ReadStats
from netvigil.sources.bgp.mrt.io import open_mrt
from netvigil.sources.bgp.mrt.reader import MrtReader
from netvigil.sources.bgp.mrt.records import MAX_RECORD, RawRecord
from netvigil.sources.bgp.mrt.types import AFI_IP, STATE_ESTABLISHED

I64 = npt.NDArray[np.int64]

#: element kinds of a row: a withdrawal, an announcement (or RIB entry), a session state
#: change that leaves its routes, one that drops them (Established left, RFC 4271 §8)
K_WITHDRAW, K_ANNOUNCE, K_STATE, K_DOWN = 0, 1, 2, 3
#: a record's fate in the compiled loop
_DONE, _FULL = 0, 1
#: the loop's return codes
_END, _ROOM, _DAMAGED = 0, 1, 2


@dataclass
class UpdateColumns:
    """The elements of one file in file order, as the routing state applies them.

    ``net``: IPv4 network in the low 32 bits, IPv6 the top 64 bits of the address, host
    bits cleared; ``origin``: the announcement's origin AS (0 if none, -1 for anything
    else); ``peer`` indexes ``peers`` ((address text, AS) in order of first use)."""

    time: I64
    kind: npt.NDArray[np.uint8]
    afi: npt.NDArray[np.uint8]
    net: npt.NDArray[np.uint64]
    plen: npt.NDArray[np.uint8]
    origin: I64
    peer: npt.NDArray[np.int32]
    peers: list[tuple[str, int]]

    def __len__(self) -> int:
        return int(self.time.size)


def elem_row(e: BgpElem) -> tuple[int, int, int, int, int]:
    """(kind, afi, net, plen, origin) of an element from the full decoder: the rule
    :meth:`RoutingState.apply_columns` applies, so both readers feed it the same rows."""
    if e.kind == "STATE":
        down = e.old_state == STATE_ESTABLISHED and e.new_state != STATE_ESTABLISHED
        return (K_DOWN if down else K_STATE), 0, 0, 0, -1
    n = e.nlri
    if n is None:
        return K_STATE, 0, 0, 0, -1  # nothing to apply; the peer is still registered
    if n.afi == AFI_IP:
        net = int.from_bytes(n.addr, "big")
    else:
        net = int.from_bytes(n.addr[:8], "big")
    if e.kind in ("A", "B"):
        o = e.attrs.origin_asns() if e.attrs is not None else ()
        return K_ANNOUNCE, n.afi, net, n.plen, (o[-1] if o else 0)
    return K_WITHDRAW, n.afi, net, n.plen, -1


def columns_of(elems: Iterable[BgpElem]) -> UpdateColumns:
    """Rows of full-decoder elements (:func:`elem_row`)."""
    rows: list[tuple[int, int, int, int, int]] = []
    times: list[int] = []
    peer_of: dict[tuple[str, int], int] = {}
    pidx: list[int] = []
    for e in elems:
        rows.append(elem_row(e))
        times.append(e.timestamp)
        pidx.append(peer_of.setdefault((format_ip(e.peer_ip), e.peer_asn), len(peer_of)))
    k, a, nt, pl, o = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [], [], [])
    return UpdateColumns(np.asarray(times, np.int64), np.asarray(k, np.uint8),
                         np.asarray(a, np.uint8), np.asarray(nt, np.uint64),
                         np.asarray(pl, np.uint8), np.asarray(o, np.int64),
                         np.asarray(pidx, np.int32), list(peer_of))


def concat(parts: list[UpdateColumns]) -> UpdateColumns:
    """One file's parts (compiled rows and full-decoder rows, already in file order), with
    one peer table."""
    peers: dict[tuple[str, int], int] = {}
    remapped = []
    for c in parts:
        m = np.asarray([peers.setdefault(p, len(peers)) for p in c.peers], np.int32)
        remapped.append(m[c.peer] if c.peer.size else c.peer)
    return UpdateColumns(
        np.concatenate([c.time for c in parts]), np.concatenate([c.kind for c in parts]),
        np.concatenate([c.afi for c in parts]), np.concatenate([c.net for c in parts]),
        np.concatenate([c.plen for c in parts]), np.concatenate([c.origin for c in parts]),
        np.concatenate(remapped).astype(np.int32), list(peers))


# --------------------------------------------------------------------------- compiled loop


def _scan_updates_py(  # noqa: C901, PLR0912, PLR0915 - one flat loop is the point of compiling it
    b: npt.NDArray[np.uint8], pos: int, end: int, nrec: int, nel: int,
    r_off: I64, r_ts: I64, r_fate: npt.NDArray[np.uint8], r_first: I64,
    r_pas: I64, r_phi: npt.NDArray[np.uint64], r_plo: npt.NDArray[np.uint64],
    r_pw: npt.NDArray[np.uint8],
    e_rec: I64, e_kind: npt.NDArray[np.uint8], e_afi: npt.NDArray[np.uint8],
    e_net: npt.NDArray[np.uint64], e_plen: npt.NDArray[np.uint8], e_origin: I64,
    lists: I64,
) -> tuple[int, int, int, int]:
    """Frame and decode records of ``b[pos:end]``; returns (code, pos, records, elements).

    Per record: header offset, time, fate (``_DONE``: its elements are written, maybe
    none; ``_FULL``: the full decoder reads it), its first element and its peer (AS,
    address as two 64-bit halves, width). ``_ROOM``: the outputs are too small for the
    next record (grow them and call again from ``pos``); ``_DAMAGED``: framing the full
    reader must resynchronise. ``lists``: scratch for four (start, end, afi, kind) NLRI
    lists of one UPDATE, in the full decoder's order (withdrawn, MP_UNREACH, NLRI,
    MP_REACH)."""
    while True:
        if pos >= end:
            return _END, pos, nrec, nel
        if end - pos < 12:
            return _DAMAGED, pos, nrec, nel
        ts = ((int(b[pos]) << 24) | (int(b[pos + 1]) << 16) | (int(b[pos + 2]) << 8)
              | int(b[pos + 3]))
        typ = (int(b[pos + 4]) << 8) | int(b[pos + 5])
        sub = (int(b[pos + 6]) << 8) | int(b[pos + 7])
        length = ((int(b[pos + 8]) << 24) | (int(b[pos + 9]) << 16)
                  | (int(b[pos + 10]) << 8) | int(b[pos + 11]))
        if not (typ == 5 or typ == 12 or typ == 13 or typ == 16 or typ == 17) or (
                length > MAX_RECORD):
            return _DAMAGED, pos, nrec, nel
        rec_end = pos + 12 + length
        if rec_end > end:
            return _DAMAGED, pos, nrec, nel
        if typ == 13:
            return _DAMAGED, pos, nrec, nel  # a RIB's peer table spans records: full reader
        if typ == 17 and length < 4:
            return _DAMAGED, pos, nrec, nel
        if nrec >= r_off.size or nel + length + 1 > e_rec.size:
            return _ROOM, pos, nrec, nel
        r_off[nrec] = pos
        r_ts[nrec] = ts
        r_first[nrec] = nel
        r_fate[nrec] = _FULL
        r_pas[nrec] = 0
        r_phi[nrec] = 0
        r_plo[nrec] = 0
        r_pw[nrec] = 0
        s = pos + 12 + (4 if typ == 17 else 0)
        e = rec_end
        nrec += 1
        pos = rec_end
        if typ == 5 or typ == 12 or not (sub <= 1 or (sub >= 4 and sub <= 7)):
            continue  # other types, deprecated and ADD-PATH subtypes: full decoder
        asn_len = 4 if (sub == 4 or sub == 5 or sub == 7) else 2
        state = sub == 0 or sub == 5  # STATE_CHANGE (RFC 6396 §4.4.1), else a MESSAGE
        # common header: peer AS, local AS, interface index, AFI, peer and local address
        p = s
        if p + 2 * asn_len > e:
            continue
        if asn_len == 2:
            pas = (int(b[p]) << 8) | int(b[p + 1])
        else:
            pas = ((int(b[p]) << 24) | (int(b[p + 1]) << 16) | (int(b[p + 2]) << 8)
                   | int(b[p + 3]))
        p += 2 * asn_len
        hi = np.uint64(0)
        lo = np.uint64(0)
        width = 4
        if not (state and asn_len == 2 and e - s == 8):  # Zebra's short state change has none
            if p + 4 > e:
                continue
            ifindex = (int(b[p]) << 8) | int(b[p + 1])
            afi = (int(b[p + 2]) << 8) | int(b[p + 3])
            p += 4
            if not state and afi == 0xFFFF and ifindex == 0xFFFF:
                r_fate[nrec - 1] = _DONE  # Zebra's corrupted OPEN: no elements
                continue
            width = 4 if afi == 1 else (16 if afi == 2 else 0)
            if width == 0 or p + 2 * width + (4 if state else 19) > e:
                continue
            for k in range(width):
                if k < 8:
                    hi = (hi << np.uint64(8)) | np.uint64(b[p + k])
                else:
                    lo = (lo << np.uint64(8)) | np.uint64(b[p + k])
            p += 2 * width
        if state:
            old = (int(b[p]) << 8) | int(b[p + 1])
            new = (int(b[p + 2]) << 8) | int(b[p + 3])
            r_pas[nrec - 1] = pas
            r_phi[nrec - 1] = hi
            r_plo[nrec - 1] = lo
            r_pw[nrec - 1] = width
            e_rec[nel] = nrec - 1
            e_kind[nel] = 3 if (old == 6 and new != 6) else 2
            e_afi[nel] = 0
            e_net[nel] = 0
            e_plen[nel] = 0
            e_origin[nel] = -1
            nel += 1
            r_fate[nrec - 1] = _DONE
            continue
        # BGP4MP_MESSAGE[_AS4][_LOCAL] (RFC 6396 §4.4.2-4.4.6): the BGP message
        marker = True
        for k in range(16):
            if b[p + k] != 0xFF:
                marker = False
        if not marker:
            continue
        msg_len = (int(b[p + 16]) << 8) | int(b[p + 17])
        msg_type = int(b[p + 18])
        m_end = min(p + msg_len, e) if msg_len >= 19 else e
        p += 19
        r_pas[nrec - 1] = pas
        r_phi[nrec - 1] = hi
        r_plo[nrec - 1] = lo
        r_pw[nrec - 1] = width
        if msg_type != 2:
            r_fate[nrec - 1] = _DONE  # OPEN, KEEPALIVE, NOTIFICATION: no elements
            continue
        # UPDATE (RFC 4271 §4.3)
        if p + 2 > m_end:
            continue
        wlen = (int(b[p]) << 8) | int(b[p + 1])
        p += 2
        nl = 0
        lists[0] = p
        lists[1] = min(p + wlen, m_end)
        lists[2] = 1
        lists[3] = 0
        nl = 1
        p += wlen
        origin = 0
        ok = True
        unreach0 = -1
        unreach1 = -1
        unreach_afi = 0
        reach0 = -1
        reach1 = -1
        reach_afi = 0
        alen = 0
        if p + 2 <= m_end:
            alen = (int(b[p]) << 8) | int(b[p + 1])
            p += 2
            q = p
            a1 = min(p + alen, m_end)
            seen_path = False
            seen_reach = False
            seen_unreach = False
            while q < a1:
                if q + 3 > a1:
                    ok = False
                    break
                flags = int(b[q])
                code = int(b[q + 1])
                if flags & 0x10:
                    if q + 4 > a1:
                        ok = False
                        break
                    ln = (int(b[q + 2]) << 8) | int(b[q + 3])
                    q += 4
                else:
                    ln = int(b[q + 2])
                    q += 3
                aend = q + ln
                if aend > a1:
                    ok = False
                    break
                if code == 2:  # AS_PATH: origin = origin_asns()[-1]
                    if seen_path:
                        ok = False
                        break
                    seen_path = True
                    r = q
                    last_t = 0
                    last_n = 0
                    last_p = -1
                    bad = False
                    while r < aend:
                        if r + 2 > aend:
                            bad = True
                            break
                        st = int(b[r])
                        cnt = int(b[r + 1])
                        if st < 1 or st > 4:
                            bad = True
                            break
                        r += 2
                        if r + cnt * asn_len > aend:
                            bad = True
                            break
                        last_t = st
                        last_n = cnt
                        last_p = r
                        r += cnt * asn_len
                    origin = 0
                    if not bad and last_p >= 0 and last_n > 0:
                        best = 0
                        for k in range(last_n):
                            t = last_p + k * asn_len
                            if asn_len == 2:
                                v = (int(b[t]) << 8) | int(b[t + 1])
                            else:
                                v = ((int(b[t]) << 24) | (int(b[t + 1]) << 16)
                                     | (int(b[t + 2]) << 8) | int(b[t + 3]))
                            if last_t == 1 or last_t == 4:  # a set: its largest member
                                if v > best:
                                    best = v
                            else:
                                best = v
                        origin = best
                elif code == 17 or code == 18:
                    if asn_len == 2:  # RFC 6793 merge: full decoder
                        ok = False
                        break
                elif code == 14:  # MP_REACH_NLRI (RFC 4760 §3)
                    if seen_reach or (q < aend and b[q] != 0):
                        ok = False  # repeated, or the abbreviated RIB form
                        break
                    seen_reach = True
                    if q + 4 <= aend:
                        mafi = (int(b[q]) << 8) | int(b[q + 1])
                        safi = int(b[q + 2])
                        nhl = int(b[q + 3])
                        if (mafi == 1 or mafi == 2) and safi >= 1 and safi <= 3:
                            r = q + 4 + nhl
                            if r < aend:
                                nsnpa = int(b[r])
                                r += 1
                                for _ in range(nsnpa):
                                    if r >= aend:
                                        break
                                    r += 1 + int(b[r])
                            reach0 = r
                            reach1 = aend
                            reach_afi = mafi
                elif code == 15:  # MP_UNREACH_NLRI (RFC 4760 §4)
                    if seen_unreach:
                        ok = False
                        break
                    seen_unreach = True
                    if ln >= 3:
                        mafi = (int(b[q]) << 8) | int(b[q + 1])
                        safi = int(b[q + 2])
                        if (mafi == 1 or mafi == 2) and safi >= 1 and safi <= 3:
                            unreach0 = q + 3
                            unreach1 = aend
                            unreach_afi = mafi
                q = aend
        if not ok:
            continue
        p += alen
        if unreach0 >= 0:
            lists[4 * nl] = unreach0
            lists[4 * nl + 1] = unreach1
            lists[4 * nl + 2] = unreach_afi
            lists[4 * nl + 3] = 0
            nl += 1
        lists[4 * nl] = p
        lists[4 * nl + 1] = m_end
        lists[4 * nl + 2] = 1
        lists[4 * nl + 3] = 1
        nl += 1
        if reach0 >= 0:
            lists[4 * nl] = reach0
            lists[4 * nl + 1] = reach1
            lists[4 * nl + 2] = reach_afi
            lists[4 * nl + 3] = 1
            nl += 1
        n0 = nel
        for li in range(nl):
            q = lists[4 * li]
            qe = lists[4 * li + 1]
            lafi = lists[4 * li + 2]
            kind = lists[4 * li + 3]
            maxlen = 32 if lafi == 1 else 128
            while q < qe:
                plen = int(b[q])
                q += 1
                nbytes = (plen + 7) >> 3
                if plen > maxlen or q + nbytes > qe:
                    ok = False  # a bad length raises, a cut prefix ends the list: full decoder
                    break
                net = np.uint64(0)
                top = 4 if lafi == 1 else 8
                for k in range(top):
                    net = net << np.uint64(8)
                    if k < nbytes:
                        net = net | np.uint64(b[q + k])
                bits = top * 8
                keep = plen if plen < bits else bits
                if keep == 0:
                    net = np.uint64(0)
                elif keep < bits:
                    net = net & ~((np.uint64(1) << np.uint64(bits - keep)) - np.uint64(1))
                q += nbytes
                e_rec[nel] = nrec - 1
                e_kind[nel] = kind
                e_afi[nel] = lafi
                e_net[nel] = net
                e_plen[nel] = plen
                e_origin[nel] = origin if kind == 1 else -1
                nel += 1
            if not ok:
                break
        if not ok:
            nel = n0
            continue
        r_fate[nrec - 1] = _DONE


def _grow(arrays: list[npt.NDArray[np.generic]], size: int) -> list[npt.NDArray[np.generic]]:
    out = []
    for a in arrays:
        g = np.zeros(size, dtype=a.dtype)
        g[: a.size] = a
        out.append(g)
    return out


@dataclass
class _Scan:
    """The compiled loop's output over a whole file (:func:`_scan`)."""

    r_off: I64
    r_ts: I64
    r_fate: npt.NDArray[np.uint8]
    r_first: I64
    r_pas: I64
    r_phi: npt.NDArray[np.uint64]
    r_plo: npt.NDArray[np.uint64]
    r_pw: npt.NDArray[np.uint8]
    e_rec: I64
    e_kind: npt.NDArray[np.uint8]
    e_afi: npt.NDArray[np.uint8]
    e_net: npt.NDArray[np.uint64]
    e_plen: npt.NDArray[np.uint8]
    e_origin: I64


def _scan(kernel: object, b: npt.NDArray[np.uint8]) -> _Scan | None:
    """Every record of ``b`` through the compiled loop, growing its outputs as it asks;
    None when the framing is damaged."""
    n = b.size
    recs: list[npt.NDArray[np.generic]] = [
        np.zeros(max(16, n // 48), dt) for dt in
        (np.int64, np.int64, np.uint8, np.int64, np.int64, np.uint64, np.uint64, np.uint8)]
    els: list[npt.NDArray[np.generic]] = [
        np.zeros(max(64, n // 12), dt) for dt in
        (np.int64, np.uint8, np.uint8, np.uint64, np.uint8, np.int64)]
    lists = np.zeros(16, np.int64)
    pos = nrec = nel = 0
    while True:
        code, pos, nrec, nel = kernel(b, pos, n, nrec, nel, *recs, *els, lists)  # type: ignore[operator]
        if code == _END:
            break
        if code == _DAMAGED:
            return None
        if nrec >= recs[0].size:
            recs = _grow(recs, 2 * recs[0].size)
        need = nel + (n - pos) + 1
        if need > els[0].size:
            els = _grow(els, max(need, 2 * els[0].size))
    return _Scan(*(a[:nrec] for a in recs), *(a[:nel] for a in els))  # type: ignore[arg-type]


def _peer_text(hi: int, lo: int, width: int) -> str:
    raw = hi.to_bytes(8, "big") + lo.to_bytes(8, "big") if width == 16 else \
        (hi & 0xFFFFFFFF).to_bytes(4, "big")
    return format_ip(raw)


def read_update_columns(path: Path, policy: ErrorPolicy,
                        time_window: tuple[int, int] | None, work: int | None = None
                        ) -> tuple[UpdateColumns, ReadStats] | None:
    """The elements of update file ``path`` as columns, with the counts
    :class:`MrtReader` would give (module docstring); None when the full reader must read
    the file (no compiled loop here, damaged framing, a cut compressed stream).

    ``work``: the bytes on disk of every file the caller is about to read (default: this
    file's), which decides whether loading numba pays (:func:`~netvigil.sources.bgp.
    fastrib.compiled`): a 5-minute update file alone does not, a group of them does."""
    kernel = compiled(_scan_updates_py, path.stat().st_size if work is None else work)
    if kernel is None:
        return None
    with open_mrt(path) as stream:
        chunks = []
        while chunk := stream.read(8 << 20):
            chunks.append(chunk)
        if stream.compressed_truncated or stream.inflated:
            return None  # the full reader reports the cut or the bound as it does
    data = b"".join(chunks)
    b = np.frombuffer(data, dtype=np.uint8)
    sc = _scan(kernel, b)
    if sc is None:
        return None
    stats = ReadStats(records=int(sc.r_off.size), bytes_read=len(data))
    fate = sc.r_fate.copy()
    if time_window is not None:
        out = (sc.r_ts < time_window[0]) | (sc.r_ts > time_window[1])
        fate[out] = _FULL  # the full reader's window error, under the policy
    full = np.flatnonzero(fate == _FULL)
    keep_el = fate[sc.e_rec] == _DONE
    fast = _compiled_rows(sc, keep_el)
    stats.elements = len(fast)
    if not full.size:
        return fast, stats
    # records for the full decoder, spliced in at their place in file order
    reader = MrtReader(path, policy, time_window=time_window)
    reader.stats = stats
    el_rec = sc.e_rec[keep_el]
    parts: list[UpdateColumns] = []
    lo = 0
    for r in full.tolist():
        hi = int(np.searchsorted(el_rec, r))
        if hi > lo:
            parts.append(_slice(fast, lo, hi))
        lo = hi
        elems = _decode_one(reader, data, sc, r)
        if elems:
            parts.append(columns_of(elems))
    if lo < len(fast):
        parts.append(_slice(fast, lo, len(fast)))
    cols = concat(parts) if parts else fast
    return cols, stats


def _compiled_rows(sc: _Scan, keep: npt.NDArray[np.bool_]) -> UpdateColumns:
    """The compiled loop's elements of the records it decoded, peers in order of first use."""
    rec = sc.e_rec[keep]
    if not rec.size:
        return columns_of([])
    key = np.stack([sc.r_pas, sc.r_phi.astype(np.int64), sc.r_plo.astype(np.int64),
                    sc.r_pw.astype(np.int64)], axis=1)[rec]
    uniq, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    hi, lo = uniq[:, 1].astype(np.uint64), uniq[:, 2].astype(np.uint64)
    peers = [(_peer_text(int(hi[i]), int(lo[i]), int(uniq[i, 3])), int(uniq[i, 0]))
             for i in order.tolist()]
    return UpdateColumns(sc.r_ts[rec], sc.e_kind[keep], sc.e_afi[keep], sc.e_net[keep],
                         sc.e_plen[keep], sc.e_origin[keep],
                         rank[inv.reshape(-1)].astype(np.int32), peers)


def _slice(c: UpdateColumns, lo: int, hi: int) -> UpdateColumns:
    return UpdateColumns(c.time[lo:hi], c.kind[lo:hi], c.afi[lo:hi], c.net[lo:hi],
                         c.plen[lo:hi], c.origin[lo:hi], c.peer[lo:hi], c.peers)


def _decode_one(reader: MrtReader, data: bytes, sc: _Scan, r: int) -> list[BgpElem]:
    """Record ``r`` through the full decoder, as :meth:`MrtReader.__iter__` reads it."""
    off = int(sc.r_off[r])
    ts, typ, sub, length = struct.unpack_from("!IHHI", data, off)
    body, micro = off + 12, None
    if typ == 17:
        micro = struct.unpack_from("!I", data, body)[0]
        body += 4
    return reader.read_record(RawRecord(off, ts, typ, sub, data, body, off + 12 + length, micro))
