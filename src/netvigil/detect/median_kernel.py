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
(level, time, value, prediction of its first point). ``_encode_one`` packs it into one
compact ``bytes`` per series (integer-valued windows as zigzag-varint deltas, regular time
grids as run-length deltas), ``_decode_one`` unpacks it. ``_step_py`` decodes, advances and
encodes one series after another through one reused scratch window, so a run touches the
state bytes, not a window-sized array per series (at 70,000 series x 288 values the
decode-all/copy/encode-all layout it replaced spent more in page faults than in the update).
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


def _step_py(
    k0: Any, na: Any, opos: Any,
    p_off: Any, p_t: Any, p_v: Any,
    hist: Any, warmup: Any, maxdur: Any, mindur: Any,
    minpred: Any, lo_in: Any, hi_in: Any, warn: Any, crit: Any,
    buf: Any, b_off: Any, nw_in: Any, nr_in: Any,
    o_wt: Any, o_wv: Any, o_wvb: Any, o_ws: Any, o_wsb: Any,
    o_rt: Any, o_rv: Any, o_rvb: Any, fb: Any, fbb: Any,
    out: Any, out_off: Any, rep_before: Any, rep_after: Any,
    a_idx: Any, a_t: Any, a_lvl: Any, a_v: Any, a_p: Any,
) -> tuple[Any, Any, Any, Any]:
    """Advance series ``k0..`` by their new points: decode, update, encode, one at a time.

    Inputs per series ``k``: new points ``p_*[p_off[k]:p_off[k+1]]`` (time order, NaN =
    gap), rule parameters, the saved state ``buf[b_off[k]:b_off[k+1]]`` (empty: none) whose
    window and raw lengths are ``nw_in[k]``/``nr_in[k]``. The state is unpacked into the
    scratch arrays ``o_*`` (one series' capacity, reused by every series, so the memory
    touched is the state bytes plus one window, not a window per series), advanced, and
    packed at ``out[opos:]``; ``out_off[k + 1]`` is where it ends. ``fb``/``fbb`` are a
    2-float scratch and its int64 view (float bits). Alerts go to ``a_*`` (series index,
    time, level, value and prediction of the point where the level began) from ``na`` on.

    Returns ``(k, na, opos, status)``: status 0 when every series is done, 1 when ``out``
    may be too small for series ``k`` (nothing of it written: grow and call again from
    ``k``), 2 when series ``k`` has a time not after the previous one (or the state's
    last time).
    """
    n = len(p_off) - 1
    for k in range(k0, n):
        npts = p_off[k + 1] - p_off[k]
        capw = max(nw_in[k], nr_in[k]) + npts + 1
        capr = nr_in[k] + npts + 1
        if opos + HEADER + 40 * capw + 30 * capr > len(out):
            return k, na, opos, 1
        history = hist[k]
        wup = warmup[k]
        maxd = maxdur[k]
        mind = mindur[k]
        mp = minpred[k]
        ilo = lo_in[k]
        ihi = hi_in[k]
        wth = warn[k]
        cth = crit[k]
        # window (vtq) and sorted window share the scratch region [0, capw)
        base = 0
        rbase = 0
        h = 0
        rh = 0
        pos = b_off[k]
        if b_off[k + 1] == pos:  # no state yet
            warm = False
            reported = 0
            pc = NO_PENDING
            pt = 0
            pv = 0.0
            pp = 0.0
            last = NO_TIME
            e = 0
            re_ = 0
        else:
            e, re_, warm, reported, pc, pt, last = _decode_one(
                buf, pos, nw_in[k], nr_in[k], o_wt, o_wv, o_wvb, o_ws, o_wsb,
                o_rt, o_rv, o_rvb, fbb)
            pv = fb[0]
            pp = fb[1]
        has_raw = re_ > 0
        rep_before[k] = reported
        # the sorted window lives in o_ws[sh:se] (sh == base); while warm it holds the
        # multiset of o_wv[h:e] (before an append: one fewer), never more than the capacity
        sh = base
        se = base + (e - h) if warm else base

        for i in range(p_off[k], p_off[k + 1]):
            t = p_t[i]
            if t <= last:
                return k, na, opos, 2  # not after the state's cursor, or not in time order
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
            if e == base + capw:
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

        # pack the state after the last one written
        fb[0] = pv
        fb[1] = pp
        mr = re_ - rh if has_raw else 0
        opos = _encode_one(out, opos, o_wt, o_wv, o_wvb, o_ws, o_wsb, h, sh, e - h,
                           o_rt, o_rv, o_rvb, rh, mr, warm, reported, pc, pt, fbb[0],
                           fbb[1], last)
        out_off[k + 1] = opos
        rep_after[k] = reported
    return n, na, opos, 0


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
def _encode_one(out: Any, pos: Any, wt: Any, wv: Any, wvb: Any, ws: Any, wsb: Any,
                b: Any, sb: Any, nw: Any, rt: Any, rv: Any, rvb: Any, rb: Any, nr: Any,
                warm: Any, rep: Any, pc: Any, pt: Any, pvb: Any, ppb: Any,
                last_t: Any) -> Any:
    """Pack one series' state at ``out[pos:]`` (window ``wt/wv[b:b+nw]``, sorted window
    ``ws[sb:sb+nw]``, raw buffer ``rt/rv[rb:rb+nr]``); returns the position after it.

    The caller guarantees the room: at most ``HEADER + 40 nw + 30 nr`` bytes (a varint is
    at most 10 bytes; a time run costs two)."""
    as_int = _is_int(wv, b, nw) and _is_int(rv, rb, nr)
    flags = (1 if warm else 0) | (2 if as_int else 0)
    out[pos] = STATE_VERSION
    out[pos + 1] = flags
    out[pos + 2] = rep
    out[pos + 3] = pc + 1
    for q in range(4):
        out[pos + 4 + q] = (nw >> (8 * q)) & 0xFF
        out[pos + 8 + q] = (nr >> (8 * q)) & 0xFF
        out[pos + 12 + q] = 0
    _put_i64(out, pos + 16, pt, True)
    _put_i64(out, pos + 24, pvb, True)
    _put_i64(out, pos + 32, ppb, True)
    _put_i64(out, pos + 40, last_t, True)
    pos += HEADER
    pos = _put_times(out, pos, wt, b, nw, True)
    pos = _put_values(out, pos, wv, wvb, b, nw, as_int, True)
    if warm:
        if as_int:  # sorted: first value, then non-negative steps
            prev: Any = 0
            for j in range(nw):
                x = np.int64(ws[sb + j])
                d = x - prev
                pos = _put_varint(out, pos, _zz(d) if j == 0 else d, True)
                prev = x
        else:
            pos = _put_values(out, pos, ws, wsb, sb, nw, False, True)
    pos = _put_times(out, pos, rt, rb, nr, True)
    pos = _put_values(out, pos, rv, rvb, rb, nr, as_int, True)
    return pos


def _decode_one(buf: Any, pos: Any, nw: Any, nr: Any, wt: Any, wv: Any, wvb: Any,
                ws: Any, wsb: Any, rt: Any, rv: Any, rvb: Any,
                fbb: Any) -> tuple[Any, Any, bool, Any, Any, Any, Any]:
    """Unpack the state at ``buf[pos:]`` into ``wt/wv/ws[0:nw]`` and ``rt/rv[0:nr]``;
    ``fbb[0]``/``fbb[1]`` get the pending value and prediction bits. Returns
    ``(nw, nr, warm, reported, pending level, pending time, last time)``."""
    flags = buf[pos + 1]
    as_int = (flags & 2) != 0
    warm = (flags & 1) != 0
    rep = np.int64(buf[pos + 2])
    pc = np.int64(buf[pos + 3]) - 1
    pt = _get_i64(buf, pos + 16)
    fbb[0] = _get_i64(buf, pos + 24)
    fbb[1] = _get_i64(buf, pos + 32)
    last_t = _get_i64(buf, pos + 40)
    pos += HEADER
    pos = _get_times(buf, pos, wt, 0, nw)
    pos = _get_values(buf, pos, wv, wvb, 0, nw, as_int)
    if warm:
        if as_int:
            prev: Any = 0
            for j in range(nw):
                u, pos = _get_varint(buf, pos)
                prev = prev + (_unzz(u) if j == 0 else u)
                ws[j] = np.float64(prev)
        else:
            pos = _get_values(buf, pos, ws, wsb, 0, nw, False)
    pos = _get_times(buf, pos, rt, 0, nr)
    pos = _get_values(buf, pos, rv, rvb, 0, nr, as_int)
    return nw, nr, warm, rep, pc, pt, last_t


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



# -- lazy compilation (the pattern of sources/bgp/fastrib.py) ---------------------------
_COMPILED: dict[str, Any] = {}
_PY = {"step": _step_py, "counts": _header_counts}
_HELPERS = (_lower, _upper, _put_varint, _zz, _unzz, _put_i64, _get_varint, _get_i64,
            _put_times, _get_times, _put_values, _get_values, _is_int, _encode_one,
            _decode_one)


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


def _concat_states(blobs: Sequence[bytes | None]) -> tuple[U8, I64]:
    """All saved states in one byte column with offsets (an empty range: no state)."""
    n = len(blobs)
    lens = np.fromiter((0 if b is None else len(b) for b in blobs), np.int64, n)
    b_off = np.zeros(n + 1, np.int64)
    np.cumsum(lens, out=b_off[1:])
    buf = np.frombuffer(b"".join(b for b in blobs if b), dtype=np.uint8)
    if buf.size == 0:
        buf = np.zeros(1, np.uint8)
    return buf, b_off


def _out_room(state_bytes: int, n: int, n_points: int, mw: int, mr: int) -> int:
    """First size of the output column: the old states, a header each, 16 bytes per new
    point and the bound of the largest series (so the first series always fits)."""
    return state_bytes + n * 2 * HEADER + 16 * n_points + 40 * mw + 30 * mr


def advance(offsets: I64, times: I64, values: F64, rules: RuleParams,
            states: Sequence[bytes | None]) -> BatchResult:
    """Run ``ioda.median`` over new points of many series from their saved states.

    ``offsets``/``times``/``values``: CSR new points per series (time order, NaN = gap,
    times after the state's cursor). ``states``: the saved state of each series or None
    (start from scratch). Returns the alerts and the new states.

    One pass per series (decode into a scratch window, update, encode after the previous
    state): an earlier version decoded every window into one array, copied each into a
    fresh capacity region, then encoded in two passes (size, write), which touched ~5
    window-sized arrays per series; at 70,000 series x 288 values that cost more in page
    faults than the update itself. The output column is allocated with ``np.empty`` from
    a generous estimate (untouched pages cost nothing) and grown if a series may not fit.
    """
    n = len(states)
    offsets = np.ascontiguousarray(offsets, np.int64)
    times = np.ascontiguousarray(times, np.int64)
    values = np.ascontiguousarray(values, np.float64)
    if len(offsets) != n + 1:
        raise ValueError("advance: offsets must have one entry per state, plus one")
    buf, b_off = _concat_states(states)
    nw = np.zeros(n, np.int64)
    nr = np.zeros(n, np.int64)
    _fn("counts")(buf, b_off, nw, nr)
    npts = np.diff(offsets)
    capw = np.maximum(nw, nr) + npts + 1
    capr = nr + npts + 1
    mw = int(capw.max()) if n else 1
    mr = int(capr.max()) if n else 1
    o_wt = np.zeros(mw, np.int64)
    o_wv = np.zeros(mw)
    o_ws = np.zeros(mw)
    o_rt = np.zeros(mr, np.int64)
    o_rv = np.zeros(mr)
    fb = np.zeros(2)
    out = np.empty(_out_room(int(b_off[-1]), n, len(times), mw, mr), np.uint8)
    out_off = np.zeros(n + 1, np.int64)
    rep_before = np.zeros(n, np.int64)
    rep_after = np.zeros(n, np.int64)
    m = len(times)
    a_idx = np.empty(m, np.int64)
    a_t = np.empty(m, np.int64)
    a_lvl = np.empty(m, np.int8)
    a_v = np.empty(m)
    a_p = np.empty(m)
    step = _fn("step")
    k, na, opos = 0, 0, 0
    while True:
        k, na, opos, status = step(
            k, na, opos, offsets, times, values,
            rules.history, rules.warmup, rules.maxduration, rules.minduration,
            rules.minprediction, rules.inpaint_min, rules.inpaint_max, rules.warning,
            rules.critical,
            buf, b_off, nw, nr,
            o_wt, o_wv, o_wv.view(np.int64), o_ws, o_ws.view(np.int64),
            o_rt, o_rv, o_rv.view(np.int64), fb, fb.view(np.int64),
            out, out_off, rep_before, rep_after,
            a_idx, a_t, a_lvl, a_v, a_p,
        )
        if status == 0:
            break
        if status == 2:
            raise ValueError(f"advance: series {k} has a point not after its state's last "
                             "time (points must be new and in time order)")
        need = int(opos) + HEADER + 40 * int(capw[k]) + 30 * int(capr[k])
        grown = np.empty(max(2 * len(out), need), np.uint8)
        grown[:opos] = out[:opos]
        out = grown
    raw = out[:int(opos)].tobytes()
    bounds = out_off.tolist()
    blobs = [raw[bounds[j]:bounds[j + 1]] for j in range(n)]
    na = int(na)
    alerts = BatchAlerts(a_idx[:na].copy(), a_t[:na].copy(), a_lvl[:na].copy(),
                         a_v[:na].copy(), a_p[:na].copy())
    return BatchResult(alerts, blobs, rep_before, rep_after)
