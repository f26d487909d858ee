"""Every IPv4 network of an mmdb with its ISO 3166-2 region, read once: the region interval table.

Why not the library's own enumeration: ``maxminddb`` (3.2) can iterate a database, but it
decodes every full City record (names in eight languages, location, postal code): 8.4 µs per
network, 25 s for the 2.99 M IPv4 networks of GeoLite2-City 2019-12-24. Asking it once per
distinct record (510k) still takes 10 µs each, 5 s. A region needs two strings of the record,
so this module reads the file layout directly, following the *MaxMind DB File Format
Specification* 2.0 (https://maxmind.github.io/MaxMind-DB/):

* **Search tree** (spec "Search Tree Section"): ``node_count`` nodes of two records of
  ``record_size`` bits; a record < ``node_count`` is a child node, == ``node_count`` means
  "no data", > ``node_count`` points into the data section at ``record − node_count − 16``.
  IPv4 lives under ``::/96`` in an IPv6 tree (96 left turns from the root). The walk is
  breadth first over whole levels with numpy (one gather per level, ≤ 32 levels), so no Python
  work is done per node.
* **Data section** (spec "Data Section Format"): each distinct record is scanned by a small
  numba-compiled decoder that follows ``country → iso_code`` and ``subdivisions[0] →
  iso_code`` and skips everything else (control byte, extended types, size fields, pointers,
  maps and arrays skipped with a counter instead of recursion). It returns the *offsets* of
  the two strings; the few thousand distinct strings are then decoded by ``maxminddb``'s own
  :class:`maxminddb.decoder.Decoder`.

Without numba (``NETVIGIL_NO_NUMBA`` or not installed) the distinct records are asked through
the library reader instead — the same answers, 5 s instead of ~1 s. Both paths are checked
against per-address ``Reader.get`` answers in ``tests/test_geo_mmdb_bulk.py``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]

_T_POINTER, _T_STRING, _T_MAP, _T_ARRAY, _T_BOOL = 1, 2, 7, 11, 14


def ipv4_networks(buf: npt.NDArray[np.uint8], node_count: int, record_size: int,
                  ip_version: int) -> tuple[I64, I64, I64]:
    """(start, end inclusive, data offset) of every IPv4 network that has data, start order."""
    nb = record_size * 2 // 8
    tree = buf[: node_count * nb].reshape(node_count, nb)
    node = 0
    if ip_version == 6:
        for _ in range(96):
            left, _right = _records(tree, np.array([node], np.int64), record_size)
            node = int(left[0])
            if node >= node_count:
                return _single(node, node_count, 0)
    if walk_ipv4 is not None:
        cap = node_count + 1  # a binary tree has at most node_count + 1 leaves
        s_, e_, v_ = (np.empty(cap, np.int64) for _ in range(3))
        k = walk_ipv4(buf[: node_count * nb], node_count, record_size, node, s_, e_, v_)
        return s_[:k].copy(), e_[:k].copy(), v_[:k].copy()
    front = np.array([node], np.int64)
    starts = np.zeros(1, np.int64)
    out_s: list[I64] = []
    out_d: list[I64] = []
    out_v: list[I64] = []
    for depth in range(32):
        if front.size == 0:
            break
        left, right = _records(tree, front, record_size)
        half = np.int64(1) << np.int64(31 - depth)
        nxt_n: list[I64] = []
        nxt_s: list[I64] = []
        for rec, st in ((left, starts), (right, starts + half)):
            leaf = rec >= node_count
            data = leaf & (rec > node_count)
            out_s.append(st[data])
            out_d.append(np.full(int(data.sum()), 31 - depth, np.int64))
            out_v.append(rec[data] - node_count - 16)
            nxt_n.append(rec[~leaf])
            nxt_s.append(st[~leaf])
        front = np.concatenate(nxt_n)
        starts = np.concatenate(nxt_s)
    s = np.concatenate(out_s)
    host_bits = np.concatenate(out_d)
    v = np.concatenate(out_v)
    order = np.argsort(s, kind="stable")
    s, host_bits, v = s[order], host_bits[order], v[order]
    return s, s + (np.int64(1) << host_bits) - 1, v


def _single(rec: int, node_count: int, start: int) -> tuple[I64, I64, I64]:
    if rec <= node_count:
        z = np.empty(0, np.int64)
        return z, z.copy(), z.copy()
    return (np.array([start], np.int64), np.array([2**32 - 1], np.int64),
            np.array([rec - node_count - 16], np.int64))


def _records(tree: npt.NDArray[np.uint8], nodes: I64, record_size: int) -> tuple[I64, I64]:
    """Left and right records of ``nodes`` (spec: 24-, 28- and 32-bit record layouts)."""
    b = tree[nodes].astype(np.int64)
    if record_size == 24:
        return ((b[:, 0] << 16) | (b[:, 1] << 8) | b[:, 2],
                (b[:, 3] << 16) | (b[:, 4] << 8) | b[:, 5])
    if record_size == 28:
        return (((b[:, 3] & 0xF0) << 20) | (b[:, 0] << 16) | (b[:, 1] << 8) | b[:, 2],
                ((b[:, 3] & 0x0F) << 24) | (b[:, 4] << 16) | (b[:, 5] << 8) | b[:, 6])
    if record_size == 32:
        return ((b[:, 0] << 24) | (b[:, 1] << 16) | (b[:, 2] << 8) | b[:, 3],
                (b[:, 4] << 24) | (b[:, 5] << 16) | (b[:, 6] << 8) | b[:, 7])
    raise ValueError(f"unsupported mmdb record size {record_size}")


# ---------------------------------------------------------------------- data-section decoder
def _ctrl_py(d: Any, off: Any) -> tuple[Any, Any, Any]:
    """(type, size or pointer target, offset of the payload) of the field at ``off``."""
    c = np.int64(d[off])
    off += 1
    t = c >> 5
    if t == _T_POINTER:
        ss = (c >> 3) & 3
        v = c & 7
        if ss == 0:
            p = (v << 8) | np.int64(d[off])
            off += 1
        elif ss == 1:
            p = ((v << 16) | (np.int64(d[off]) << 8) | np.int64(d[off + 1])) + 2048
            off += 2
        elif ss == 2:
            p = ((v << 24) | (np.int64(d[off]) << 16) | (np.int64(d[off + 1]) << 8)
                 | np.int64(d[off + 2])) + 526336
            off += 3
        else:
            p = ((np.int64(d[off]) << 24) | (np.int64(d[off + 1]) << 16)
                 | (np.int64(d[off + 2]) << 8) | np.int64(d[off + 3]))
            off += 4
        return _T_POINTER, p, off
    if t == 0:  # extended type
        t = 7 + np.int64(d[off])
        off += 1
    s = c & 31
    if s == 29:
        s = 29 + np.int64(d[off])
        off += 1
    elif s == 30:
        s = 285 + ((np.int64(d[off]) << 8) | np.int64(d[off + 1]))
        off += 2
    elif s == 31:
        s = 65821 + ((np.int64(d[off]) << 16) | (np.int64(d[off + 1]) << 8)
                     | np.int64(d[off + 2]))
        off += 3
    return t, s, off


def _skip_py(d: Any, off: Any) -> Any:
    """Offset after the field at ``off`` (maps and arrays by a pending-field counter)."""
    pending = 1
    while pending > 0:
        t, s, off = _ctrl(d, off)
        pending -= 1
        if t == _T_POINTER:
            continue
        if t == _T_MAP:
            pending += 2 * s
        elif t == _T_ARRAY:
            pending += s
        elif t != _T_BOOL:  # booleans keep their value in the size field
            off += s
    return off


def _deref_py(d: Any, off: Any) -> Any:
    t, s, o = _ctrl(d, off)
    if t == _T_POINTER:
        return _ctrl(d, s)
    return t, s, o


def _key_is_py(d: Any, off: int, pat: Any) -> bool:
    t, s, o = _deref(d, off)
    if t != _T_STRING or s != pat.size:
        return False
    for i in range(s):
        if d[o + i] != pat[i]:
            return False
    return True


def _value_of_py(d: Any, off: Any, pat: Any) -> Any:
    """Offset of the value under key ``pat`` in the map at ``off`` (−1 if absent)."""
    t, s, o = _deref(d, off)
    if t != _T_MAP:
        return -1
    for _ in range(s):
        hit = _key_is(d, o, pat)
        o = _skip(d, o)
        if hit:
            return o
        o = _skip(d, o)
    return -1


def _string_at_py(d: Any, off: Any) -> Any:
    """Offset of the string field at ``off`` with its pointer followed (−1 if none)."""
    if off < 0:
        return -1
    t, s, _o = _ctrl(d, off)
    return s if t == _T_POINTER else off


def _region_refs_py(d: Any, recs: Any, k_country: Any, k_subdiv: Any, k_iso: Any
                    ) -> tuple[Any, Any]:
    """Per record: offsets of ``country.iso_code`` and ``subdivisions[0].iso_code`` (or −1).

    One pass over each record's top-level map; the values of other keys are skipped.
    """
    n = recs.size
    cc = np.full(n, -1, np.int64)
    sd = np.full(n, -1, np.int64)
    for i in range(n):
        t, m, o = _deref(d, recs[i])
        if t != _T_MAP:
            continue
        found = 0
        for _ in range(m):
            is_c = _key_is(d, o, k_country)
            is_s = (not is_c) and _key_is(d, o, k_subdiv)
            o = _skip(d, o)
            if is_c:
                cc[i] = _string_at(d, _value_of(d, o, k_iso))
                found += 1
            elif is_s:
                ta, ma, oa = _deref(d, o)
                if ta == _T_ARRAY and ma > 0:
                    sd[i] = _string_at(d, _value_of(d, oa, k_iso))
                found += 1
            if found == 2:
                break
            o = _skip(d, o)
    return cc, sd


def _walk_py(tree: Any, node_count: int, record_size: int, root: int, out_s: Any, out_e: Any,
             out_v: Any) -> int:
    """Depth-first walk of the IPv4 subtree at ``root`` (compiled path of :func:`ipv4_networks`).

    Writes (start, end inclusive, data offset) of every network with data (not in address
    order); returns how many.
    """
    stack_n = np.empty(64, np.int64)
    stack_s = np.empty(64, np.int64)
    stack_d = np.empty(64, np.int64)
    top = 0
    stack_n[0] = root
    stack_s[0] = 0
    stack_d[0] = 0
    top = 1
    k = 0
    nb = record_size // 4
    while top > 0:
        top -= 1
        node = stack_n[top]
        start = stack_s[top]
        depth = stack_d[top]
        base = node * nb
        b0 = np.int64(tree[base])
        b1 = np.int64(tree[base + 1])
        b2 = np.int64(tree[base + 2])
        b3 = np.int64(tree[base + 3])
        b4 = np.int64(tree[base + 4])
        b5 = np.int64(tree[base + 5])
        if record_size == 24:
            left = (b0 << 16) | (b1 << 8) | b2
            right = (b3 << 16) | (b4 << 8) | b5
        elif record_size == 28:
            b6 = np.int64(tree[base + 6])
            left = ((b3 & 0xF0) << 20) | (b0 << 16) | (b1 << 8) | b2
            right = ((b3 & 0x0F) << 24) | (b4 << 16) | (b5 << 8) | b6
        else:
            b6 = np.int64(tree[base + 6])
            b7 = np.int64(tree[base + 7])
            left = (b0 << 24) | (b1 << 16) | (b2 << 8) | b3
            right = (b4 << 24) | (b5 << 16) | (b6 << 8) | b7
        half = np.int64(1) << (31 - depth)
        for rec, st in ((right, start + half), (left, start)):
            if rec < node_count:
                if depth + 1 < 32:
                    stack_n[top] = rec
                    stack_s[top] = st
                    stack_d[top] = depth + 1
                    top += 1
            elif rec > node_count:
                out_s[k] = st
                out_e[k] = st + half - 1
                out_v[k] = rec - node_count - 16
                k += 1
    return k


def _jit() -> Any:
    if os.environ.get("NETVIGIL_NO_NUMBA"):
        return None
    try:
        import numba  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    return numba.njit(nogil=True, cache=True)


_J = _jit()
_ctrl: Any = _J(_ctrl_py) if _J else _ctrl_py
_skip: Any = _J(_skip_py) if _J else _skip_py
_deref: Any = _J(_deref_py) if _J else _deref_py
_key_is: Any = _J(_key_is_py) if _J else _key_is_py
_value_of: Any = _J(_value_of_py) if _J else _value_of_py
_string_at: Any = _J(_string_at_py) if _J else _string_at_py
region_refs: Any = _J(_region_refs_py) if _J else None  # None: use the library reader
walk_ipv4: Any = _J(_walk_py) if _J else None  # None: the numpy level walk
COMPILED = _J is not None


def pattern(text: str) -> npt.NDArray[np.uint8]:
    return np.frombuffer(text.encode(), dtype=np.uint8)
