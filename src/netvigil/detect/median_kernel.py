"""``ioda.median`` over many series at once, resumable: MovingStat + AlertKafka as one kernel.

The readable reference is :func:`netvigil.detect.ioda_median.moving_median` followed by
:func:`~netvigil.detect.ioda_median.transitions` (one series, from scratch). This module runs
the same state machine over a batch of series laid out as CSR arrays (``offsets`` into one
``times``/``values`` column), starting from a saved per-series state and ending with the
state to save, so that feeding a series in chunks gives exactly the alerts of one pass over
the whole series (property-tested in ``tests/test_detect_incremental.py``).

Why a hand-written kernel: the window is a sorted array updated by one shifted
delete+insert per point (the old and the new value are usually close in rank, so the shift
is short), which numba compiles to a tight loop (~10x the Python ``bisect`` loop). Numba is
loaded lazily as in ``sources/bgp/fastrib.py`` (the RIB scanner); without numba, or with
``NETVIGIL_NO_NUMBA`` set, the very same functions run as plain Python, equal but slower.

State per series (see :class:`MedianStates`): the moving window in time order (values as
entered, i.e. inpainted, and times) and sorted, whether the window is warm, the raw values
buffered while inpainting, the reported AlertKafka level and the pending excursion
(level, time, value, prediction of its first point). :func:`encode_states` packs it into one
compact ``bytes`` per series (integer-valued windows as zigzag-varint deltas, regular time
grids as run-length deltas), :func:`decode_states` unpacks a batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

STATE_VERSION = 1
HEADER = 48  # bytes, see _encode_py
NO_TIME = -(2**62)  # last time consumed of a series without state
NO_PENDING = -1
_MAXINT = float(2**50)  # integer-valued floats up to this magnitude are varint-coded


# -- the update kernel ------------------------------------------------------------------
def _lower(a: Any, lo: int, hi: int, x: float) -> int:
    """bisect_left on a[lo:hi] (absolute index)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _upper(a: Any, lo: int, hi: int, x: float) -> int:
    """bisect_right on a[lo:hi] (absolute index)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _update_py(
    p_off: Any, p_t: Any, p_v: Any,
    hist: Any, warmup: Any, maxdur: Any, mindur: Any,
    minpred: Any, lo_in: Any, hi_in: Any, warn: Any, crit: Any,
    s_warm: Any, s_rep: Any, s_pc: Any, s_pt: Any, s_pv: Any, s_pp: Any, s_last: Any,
    w_off: Any, w_t: Any, w_v: Any, w_s: Any, r_off: Any, r_t: Any, r_v: Any,
    c_off: Any, cr_off: Any,
    o_wt: Any, o_wv: Any, o_ws: Any, o_wlen: Any, o_rt: Any, o_rv: Any, o_rlen: Any,
    o_warm: Any, o_rep: Any, o_pc: Any, o_pt: Any, o_pv: Any, o_pp: Any, o_last: Any,
    a_idx: Any, a_t: Any, a_lvl: Any, a_v: Any, a_p: Any,
) -> int:
    """Advance every series by its new points; returns the number of alerts written.

    Inputs per series ``k``: new points ``p_*[p_off[k]:p_off[k+1]]`` (time order, NaN =
    gap), rule parameters, saved state (``s_*`` scalars, window ``w_*[w_off[k]:...]`` with
    its sorted copy ``w_s``, raw buffer ``r_*``). Outputs: the new window in
    ``o_w*[c_off[k]:c_off[k] + o_wlen[k]]`` (capacity offsets ``c_off``), raw buffer in
    ``o_r*[cr_off[k]:...]``, scalars ``o_*``, alerts ``a_*`` (series index, time, level,
    value and prediction of the point where the level began). Returns ``-(k + 1)`` if
    series ``k`` has a time not after the previous one (or the state's last time).
    """
    na = 0
    n = len(p_off) - 1
    for k in range(n):
        history = hist[k]
        wup = warmup[k]
        maxd = maxdur[k]
        mind = mindur[k]
        mp = minpred[k]
        ilo = lo_in[k]
        ihi = hi_in[k]
        wth = warn[k]
        cth = crit[k]
        # window (vtq) and sorted window share one region [base, base + cap)
        base = c_off[k]
        h = base
        e = base
        for j in range(w_off[k], w_off[k + 1]):
            o_wt[e] = w_t[j]
            o_wv[e] = w_v[j]
            o_ws[e] = w_s[j]
            e += 1
        warm = s_warm[k] != 0
        rbase = cr_off[k]
        rh = rbase
        re_ = rbase
        has_raw = r_off[k + 1] > r_off[k]
        for j in range(r_off[k], r_off[k + 1]):
            o_rt[re_] = r_t[j]
            o_rv[re_] = r_v[j]
            re_ += 1
        reported = s_rep[k]
        pc = s_pc[k]
        pt = s_pt[k]
        pv = s_pv[k]
        pp = s_pp[k]
        # the sorted window lives in o_ws[sh:se] (sh == base); while warm it holds the
        # multiset of o_wv[h:e] (before an append: one fewer), never more than the capacity
        sh = base
        se = base + (e - h) if warm else base

        last = s_last[k]
        for i in range(p_off[k], p_off[k + 1]):
            t = p_t[i]
            if t <= last:
                return -(k + 1)  # not after the state's cursor, or not in time order
            last = t
            value = p_v[i]
            if value != value:
                continue  # NaN: a gap
            if not warm and (e == h or o_wt[h] > t - wup):
                o_wt[e] = t
                o_wv[e] = value
                e += 1
                continue
            window_start = t - history
            if not warm:
                # become warm: the sorted window starts as the sorted vtq
                m = e - h
                tmp = np.sort(o_wv[h:e])
                # move vtq to the region start so sorted and vtq stay aligned in capacity
                for q in range(m):
                    o_wt[base + q] = o_wt[h + q]
                    o_wv[base + q] = o_wv[h + q]
                h = base
                e = base + m
                for q in range(m):
                    o_ws[base + q] = tmp[q]
                sh = base
                se = base + m
                warm = True
            while e > h and o_wt[h] < window_start:
                old = o_wv[h]
                h += 1
                pos = _lower(o_ws, sh, se, old)
                for q in range(pos, se - 1):
                    o_ws[q] = o_ws[q + 1]
                se -= 1
            if e == h:  # history aged out during a gap: warm up again
                warm = False
                has_raw = False
                h = base
                e = base
                sh = base
                se = base
                rh = rbase
                re_ = rbase
                o_wt[e] = t
                o_wv[e] = value
                e += 1
                continue
            m = se - sh
            pred = o_ws[sh + (m + 1) // 2 - 1]
            has_ratio = pred != 0.0 and pred >= mp
            ratio = value / pred if has_ratio else 0.0
            newval = value
            if has_ratio and (ratio < ilo or ratio > ihi):
                if not has_raw:
                    has_raw = True
                    rh = rbase
                    re_ = rbase
                    o_rt[re_] = t
                    o_rv[re_] = value
                    re_ += 1
                    newval = pred
                elif o_rt[rh] > t - maxd:
                    o_rt[re_] = t
                    o_rv[re_] = value
                    re_ += 1
                    newval = pred
                else:  # the extreme is the new normal: history from the raw values
                    has_raw = False
                    m = re_ - rh
                    for q in range(m):
                        o_wt[base + q] = o_rt[rh + q]
                        o_wv[base + q] = o_rv[rh + q]
                    h = base
                    e = base + m
                    rh = rbase
                    re_ = rbase
                    if o_wt[h] > t - wup:
                        warm = False
                        sh = base
                        se = base
                        o_wt[e] = t
                        o_wv[e] = value
                        e += 1
                        continue
                    tmp = np.sort(o_wv[h:e])
                    for q in range(m):
                        o_ws[base + q] = tmp[q]
                    sh = base
                    se = base + m
                    pred = o_ws[sh + (m + 1) // 2 - 1]
                    has_ratio = pred != 0.0 and pred >= mp
                    ratio = value / pred if has_ratio else 0.0
            elif has_raw:
                has_raw = False
                rh = rbase
                re_ = rbase

            # append newval at time t; slide out the oldest if it left the window
            if e == base + (c_off[k + 1] - c_off[k]):
                # region full at the right end: compact vtq and sorted to the region start
                m = e - h
                for q in range(m):
                    o_wt[base + q] = o_wt[h + q]
                    o_wv[base + q] = o_wv[h + q]
                h = base
                e = base + m
            o_wt[e] = t
            o_wv[e] = newval
            e += 1
            if o_wt[h] > window_start:
                pos = _upper(o_ws, sh, se, newval)
                for q in range(se, pos, -1):
                    o_ws[q] = o_ws[q - 1]
                o_ws[pos] = newval
                se += 1
            else:
                old = o_wv[h]
                h += 1
                i_old = _lower(o_ws, sh, se, old)
                if newval >= old:
                    j = _upper(o_ws, sh, se, newval)
                    for q in range(i_old, j - 1):
                        o_ws[q] = o_ws[q + 1]
                    o_ws[j - 1] = newval
                else:
                    j = _upper(o_ws, sh, se, newval)
                    for q in range(i_old, j, -1):
                        o_ws[q] = o_ws[q - 1]
                    o_ws[j] = newval

            if not has_ratio:
                continue
            # AlertKafka on this output point
            code = 0
            if ratio < wth:
                code = 1
            if ratio < cth:
                code = 2
            if code == reported:
                pc = NO_PENDING
                continue
            if code == 0:
                pc = NO_PENDING
                reported = 0
                a_idx[na] = k
                a_t[na] = t
                a_lvl[na] = 0
                a_v[na] = value
                a_p[na] = pred
                na += 1
                continue
            if pc == NO_PENDING:
                pc = code
                pt = t
                pv = value
                pp = pred
                if mind > 0:
                    continue
            elif pc != code:
                pc = code
            if t - pt >= mind:
                reported = code
                a_idx[na] = k
                a_t[na] = pt
                a_lvl[na] = code
                a_v[na] = pv
                a_p[na] = pp
                na += 1
                pc = NO_PENDING

        # compact the outputs to the region starts
        m = e - h
        for q in range(m):
            o_wt[base + q] = o_wt[h + q]
            o_wv[base + q] = o_wv[h + q]
        if warm:
            for q in range(m):
                o_ws[base + q] = o_ws[sh + q]
        o_wlen[k] = m
        mr = re_ - rh if has_raw else 0
        for q in range(mr):
            o_rt[rbase + q] = o_rt[rh + q]
            o_rv[rbase + q] = o_rv[rh + q]
        o_rlen[k] = mr
        o_warm[k] = 1 if warm else 0
        o_rep[k] = reported
        o_pc[k] = pc
        o_pt[k] = pt
        o_pv[k] = pv
        o_pp[k] = pp
        o_last[k] = last
    return na


# -- state codec --------------------------------------------------------------------------
def _put_varint(buf: Any, pos: Any, x: Any, write: bool) -> Any:
    """Unsigned LEB128 of a non-negative int64; returns the position after it."""
    while True:
        byte = x & 0x7F
        x >>= 7
        if x:
            if write:
                buf[pos] = byte | 0x80
            pos += 1
        else:
            if write:
                buf[pos] = byte
            return pos + 1


def _zz(x: Any) -> Any:
    return (x << 1) ^ (x >> 63)


def _unzz(u: Any) -> Any:
    return (u >> 1) ^ -(u & 1)


def _put_i64(buf: Any, pos: Any, x: Any, write: bool) -> Any:
    if write:
        for b in range(8):
            buf[pos + b] = (x >> (8 * b)) & 0xFF
    return pos + 8


def _get_varint(buf: Any, pos: Any) -> tuple[Any, Any]:
    x: Any = 0
    shift = 0
    while True:
        byte = np.int64(buf[pos])
        pos += 1
        x |= (byte & 0x7F) << shift
        if byte < 0x80:
            return x, pos
        shift += 7


def _get_i64(buf: Any, pos: Any) -> Any:
    x: Any = np.int64(0)
    for b in range(8):
        x |= np.int64(buf[pos + b]) << (8 * b)
    return x


def _put_times(buf: Any, pos: Any, t: Any, lo: Any, n: Any, write: bool) -> Any:
    """Strictly increasing times as first + run-length (delta, count) pairs."""
    if n == 0:
        return pos
    pos = _put_varint(buf, pos, _zz(t[lo]), write)
    j = 1
    while j < n:
        d = t[lo + j] - t[lo + j - 1]
        c = 1
        while j + c < n and t[lo + j + c] - t[lo + j + c - 1] == d:
            c += 1
        pos = _put_varint(buf, pos, d, write)
        pos = _put_varint(buf, pos, c, write)
        j += c
    return pos


def _get_times(buf: Any, pos: Any, out: Any, lo: Any, n: Any) -> Any:
    if n == 0:
        return pos
    u, pos = _get_varint(buf, pos)
    out[lo] = _unzz(u)
    j = 1
    while j < n:
        d, pos = _get_varint(buf, pos)
        c, pos = _get_varint(buf, pos)
        for q in range(c):
            out[lo + j + q] = out[lo + j + q - 1] + d
        j += c
    return pos


def _put_values(buf: Any, pos: Any, v: Any, vbits: Any, lo: Any, n: Any, as_int: bool,
                write: bool) -> Any:
    """Integer-valued: zigzag varint of the deltas; otherwise the 8 raw bytes each."""
    prev: Any = 0
    for j in range(n):
        if as_int:
            x = np.int64(v[lo + j])
            pos = _put_varint(buf, pos, _zz(x - prev), write)
            prev = x
        else:
            pos = _put_i64(buf, pos, vbits[lo + j], write)
    return pos


def _get_values(buf: Any, pos: Any, out: Any, obits: Any, lo: Any, n: Any,
                as_int: bool) -> Any:
    prev: Any = 0
    for j in range(n):
        if as_int:
            u, pos = _get_varint(buf, pos)
            prev = prev + _unzz(u)
            out[lo + j] = np.float64(prev)
        else:
            obits[lo + j] = _get_i64(buf, pos)
            pos += 8
    return pos


def _is_int(v: Any, lo: int, n: int) -> bool:
    for j in range(n):
        x = v[lo + j]
        if not (abs(x) <= _MAXINT and x == np.floor(x)) or (x == 0.0 and np.signbit(x)):
            return False
    return True


# State layout (little-endian): byte 0 version, 1 flags (1 warm, 2 integer values),
# 2 reported level, 3 pending level + 1 (0 = none), 4-8 window length, 8-12 raw length,
# 12-16 zero, 16-24 pending time, 24-32 pending value (float64 bits), 32-40 pending
# prediction, 40-48 last time consumed; then window times (run-length deltas), window
# values in time order, sorted window values (if warm), raw times, raw values.
def _encode_py(c_off: Any, cr_off: Any, wt: Any, wv: Any, wvb: Any, ws: Any, wsb: Any,
               wlen: Any, rt: Any, rv: Any, rvb: Any, rlen: Any, warm: Any, rep: Any,
               pc: Any, pt: Any, pvb: Any, ppb: Any, last_t: Any,
               out: Any, out_off: Any, write: bool) -> int:
    """Pack each series' state; with ``write`` False only ``out_off`` (sizes) is filled."""
    pos = 0
    for k in range(len(wlen)):
        start = out_off[k] if write else pos
        pos = start
        nw = wlen[k]
        nr = rlen[k]
        b = c_off[k]
        rb = cr_off[k]
        as_int = _is_int(wv, b, nw) and _is_int(rv, rb, nr)
        flags = (1 if warm[k] else 0) | (2 if as_int else 0)
        if write:
            out[pos] = STATE_VERSION
            out[pos + 1] = flags
            out[pos + 2] = rep[k]
            out[pos + 3] = pc[k] + 1
            for q in range(4):
                out[pos + 4 + q] = (nw >> (8 * q)) & 0xFF
                out[pos + 8 + q] = (nr >> (8 * q)) & 0xFF
                out[pos + 12 + q] = 0
        _put_i64(out, pos + 16, pt[k], write)
        _put_i64(out, pos + 24, pvb[k], write)
        _put_i64(out, pos + 32, ppb[k], write)
        _put_i64(out, pos + 40, last_t[k], write)
        pos += HEADER
        pos = _put_times(out, pos, wt, b, nw, write)
        pos = _put_values(out, pos, wv, wvb, b, nw, as_int, write)
        if warm[k]:
            if as_int:  # sorted: first value, then non-negative steps
                prev: Any = 0
                for j in range(nw):
                    x = np.int64(ws[b + j])
                    d = x - prev
                    pos = _put_varint(out, pos, _zz(d) if j == 0 else d, write)
                    prev = x
            else:
                pos = _put_values(out, pos, ws, wsb, b, nw, False, write)
        pos = _put_times(out, pos, rt, rb, nr, write)
        pos = _put_values(out, pos, rv, rvb, rb, nr, as_int, write)
        if not write:
            out_off[k + 1] = pos
    return pos


def _header_counts(buf: Any, b_off: Any, nw: Any, nr: Any) -> None:
    for k in range(len(b_off) - 1):
        p = b_off[k]
        if b_off[k + 1] == p:
            nw[k] = 0
            nr[k] = 0
            continue
        w: Any = 0
        r: Any = 0
        for q in range(4):
            w |= np.int64(buf[p + 4 + q]) << (8 * q)
            r |= np.int64(buf[p + 8 + q]) << (8 * q)
        nw[k] = w
        nr[k] = r


def _decode_py(buf: Any, b_off: Any, w_off: Any, r_off: Any,
               wt: Any, wv: Any, wvb: Any, ws: Any, wsb: Any, rt: Any, rv: Any, rvb: Any,
               warm: Any, rep: Any, pc: Any, pt: Any, pvb: Any, ppb: Any, last_t: Any) -> None:
    for k in range(len(b_off) - 1):
        pos = b_off[k]
        if b_off[k + 1] == pos:  # no state yet
            warm[k] = 0
            rep[k] = 0
            pc[k] = NO_PENDING
            pt[k] = 0
            pvb[k] = 0
            ppb[k] = 0
            last_t[k] = NO_TIME
            continue
        flags = buf[pos + 1]
        as_int = (flags & 2) != 0
        warm[k] = flags & 1
        rep[k] = buf[pos + 2]
        pc[k] = np.int64(buf[pos + 3]) - 1
        pt[k] = _get_i64(buf, pos + 16)
        pvb[k] = _get_i64(buf, pos + 24)
        ppb[k] = _get_i64(buf, pos + 32)
        last_t[k] = _get_i64(buf, pos + 40)
        pos += HEADER
        b = w_off[k]
        nw = w_off[k + 1] - b
        pos = _get_times(buf, pos, wt, b, nw)
        pos = _get_values(buf, pos, wv, wvb, b, nw, as_int)
        if warm[k]:
            if as_int:
                prev2: Any = 0
                for j in range(nw):
                    u, pos = _get_varint(buf, pos)
                    prev2 = prev2 + (_unzz(u) if j == 0 else u)
                    ws[b + j] = np.float64(prev2)
            else:
                pos = _get_values(buf, pos, ws, wsb, b, nw, False)
        rb = r_off[k]
        pos = _get_times(buf, pos, rt, rb, r_off[k + 1] - rb)
        pos = _get_values(buf, pos, rv, rvb, rb, r_off[k + 1] - rb, as_int)


# -- lazy compilation (the pattern of sources/bgp/fastrib.py) ---------------------------
_COMPILED: dict[str, Any] = {}
_PY = {"update": _update_py, "encode": _encode_py, "decode": _decode_py,
       "counts": _header_counts}
_HELPERS = (_lower, _upper, _put_varint, _zz, _unzz, _put_i64, _get_varint, _get_i64,
            _put_times, _get_times, _put_values, _get_values, _is_int)


def numba_enabled() -> bool:
    """True when the kernels run compiled (numba importable and NETVIGIL_NO_NUMBA unset)."""
    if os.environ.get("NETVIGIL_NO_NUMBA"):
        return False
    try:
        import numba  # type: ignore[import-untyped,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def _fn(name: str) -> Any:
    """The compiled kernel ``name`` (numba, cached on disk), or its Python original."""
    if name not in _COMPILED:
        if numba_enabled():
            import numba

            g = globals()
            for helper in _HELPERS:  # helpers must be jitted for the callers to compile
                if not hasattr(g[helper.__name__], "py_func"):
                    g[helper.__name__] = numba.njit(cache=True, nogil=True)(helper)
            _COMPILED[name] = numba.njit(cache=True, nogil=True)(_PY[name])
        else:
            _COMPILED[name] = _PY[name]
    return _COMPILED[name]


# -- batch driver -------------------------------------------------------------------------
@dataclass(frozen=True)
class RuleParams:
    """Per-series rule parameters as columns (one row per series of a batch)."""

    history: I64
    warmup: I64
    maxduration: I64
    minduration: I64
    minprediction: F64
    inpaint_min: F64
    inpaint_max: F64
    warning: F64
    critical: F64


@dataclass(frozen=True)
class BatchAlerts:
    """Alerts of a batch as columns: series index, time, level code, value, prediction."""

    index: I64
    time: I64
    level: npt.NDArray[np.int8]
    value: F64
    predicted: F64


@dataclass(frozen=True)
class BatchResult:
    alerts: BatchAlerts
    states: list[bytes]
    #: AlertKafka level reported before the update (an open event grows with new points).
    reported_before: npt.NDArray[np.int64]
    reported_after: npt.NDArray[np.int64]


def _state_arrays(blobs: Sequence[bytes | None]) -> dict[str, Any]:
    n = len(blobs)
    lens = np.fromiter((0 if b is None else len(b) for b in blobs), np.int64, n)
    b_off = np.zeros(n + 1, np.int64)
    np.cumsum(lens, out=b_off[1:])
    buf = np.frombuffer(b"".join(b for b in blobs if b), dtype=np.uint8)
    if buf.size == 0:
        buf = np.zeros(1, np.uint8)
    nw = np.zeros(n, np.int64)
    nr = np.zeros(n, np.int64)
    _fn("counts")(buf, b_off, nw, nr)
    w_off = np.zeros(n + 1, np.int64)
    np.cumsum(nw, out=w_off[1:])
    r_off = np.zeros(n + 1, np.int64)
    np.cumsum(nr, out=r_off[1:])
    wn, rn = int(w_off[-1]), int(r_off[-1])
    st: dict[str, Any] = {
        "w_off": w_off, "r_off": r_off, "nw": nw, "nr": nr,
        "wt": np.zeros(wn, np.int64), "wv": np.zeros(wn), "ws": np.zeros(wn),
        "rt": np.zeros(rn, np.int64), "rv": np.zeros(rn),
        "warm": np.zeros(n, np.int64), "rep": np.zeros(n, np.int64),
        "pc": np.zeros(n, np.int64), "pt": np.zeros(n, np.int64),
        "pv": np.zeros(n), "pp": np.zeros(n), "last_t": np.zeros(n, np.int64),  # last time
    }
    _fn("decode")(buf, b_off, w_off, r_off, st["wt"], st["wv"], st["wv"].view(np.int64),
                  st["ws"], st["ws"].view(np.int64), st["rt"], st["rv"],
                  st["rv"].view(np.int64), st["warm"], st["rep"], st["pc"], st["pt"],
                  st["pv"].view(np.int64), st["pp"].view(np.int64), st["last_t"])
    return st


def advance(offsets: I64, times: I64, values: F64, rules: RuleParams,
            states: Sequence[bytes | None]) -> BatchResult:
    """Run ``ioda.median`` over new points of many series from their saved states.

    ``offsets``/``times``/``values``: CSR new points per series (time order, NaN = gap,
    times after the state's cursor). ``states``: the saved state of each series or None
    (start from scratch). Returns the alerts and the new states.
    """
    n = len(states)
    offsets = np.ascontiguousarray(offsets, np.int64)
    times = np.ascontiguousarray(times, np.int64)
    values = np.ascontiguousarray(values, np.float64)
    if len(offsets) != n + 1:
        raise ValueError("advance: offsets must have one entry per state, plus one")
    st = _state_arrays(states)
    npts = np.diff(offsets)
    cap = np.maximum(st["nw"], st["nr"]) + npts + 1
    c_off = np.zeros(n + 1, np.int64)
    np.cumsum(cap, out=c_off[1:])
    capr = st["nr"] + npts + 1
    cr_off = np.zeros(n + 1, np.int64)
    np.cumsum(capr, out=cr_off[1:])
    tot, totr = int(c_off[-1]), int(cr_off[-1])
    o_wt = np.zeros(tot, np.int64)
    o_wv = np.zeros(tot)
    o_ws = np.zeros(tot)
    o_rt = np.zeros(totr, np.int64)
    o_rv = np.zeros(totr)
    o_wlen = np.zeros(n, np.int64)
    o_rlen = np.zeros(n, np.int64)
    o_warm = np.zeros(n, np.int64)
    o_rep = np.zeros(n, np.int64)
    o_pc = np.zeros(n, np.int64)
    o_pt = np.zeros(n, np.int64)
    o_pv = np.zeros(n)
    o_pp = np.zeros(n)
    o_last = np.zeros(n, np.int64)
    m = len(times)
    a_idx = np.zeros(m, np.int64)
    a_t = np.zeros(m, np.int64)
    a_lvl = np.zeros(m, np.int8)
    a_v = np.zeros(m)
    a_p = np.zeros(m)
    na = _fn("update")(
        offsets, times, values,
        rules.history, rules.warmup, rules.maxduration, rules.minduration,
        rules.minprediction, rules.inpaint_min, rules.inpaint_max, rules.warning,
        rules.critical,
        st["warm"], st["rep"], st["pc"], st["pt"], st["pv"], st["pp"], st["last_t"],
        st["w_off"], st["wt"], st["wv"], st["ws"], st["r_off"], st["rt"], st["rv"],
        c_off, cr_off,
        o_wt, o_wv, o_ws, o_wlen, o_rt, o_rv, o_rlen,
        o_warm, o_rep, o_pc, o_pt, o_pv, o_pp, o_last,
        a_idx, a_t, a_lvl, a_v, a_p,
    )
    if na < 0:
        raise ValueError(f"advance: series {-na - 1} has a point not after its state's last "
                         "time (points must be new and in time order)")
    out_off = np.zeros(n + 1, np.int64)
    args = (c_off, cr_off, o_wt, o_wv, o_wv.view(np.int64), o_ws, o_ws.view(np.int64),
            o_wlen, o_rt, o_rv, o_rv.view(np.int64), o_rlen, o_warm, o_rep, o_pc, o_pt,
            o_pv.view(np.int64), o_pp.view(np.int64), o_last)
    enc = _fn("encode")
    size = enc(*args, np.zeros(1, np.uint8), out_off, False)
    out = np.zeros(max(int(size), 1), np.uint8)
    enc(*args, out, out_off, True)
    raw = out.tobytes()
    bounds = out_off.tolist()
    blobs = [raw[bounds[k]:bounds[k + 1]] for k in range(n)]
    alerts = BatchAlerts(a_idx[:na].copy(), a_t[:na].copy(), a_lvl[:na].copy(),
                         a_v[:na].copy(), a_p[:na].copy())
    return BatchResult(alerts, blobs, st["rep"].copy(), o_rep)
