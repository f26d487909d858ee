"""Sorted, non-overlapping integer intervals with one value each: the bulk IP→value path.

Why intervals and not a trie: IP reference data (RIR delegations, BGP prefixes, ip-location-db
ranges) is a set of address ranges. Once overlaps are resolved, the ranges are disjoint, so a
lookup is one ``np.searchsorted`` over the range starts followed by a bounds check — O(log n)
per address, fully vectorised, and millions of /24 blocks map in well under a second (see
``benchmarks/bench_geo_bulk.py``). This is the layout pyasn and ip-location-db use on disk
(``start,end,value``), kept as three numpy arrays.

Overlap rule: the **most specific (narrowest) range wins**, the longest-prefix-match rule
routers apply (RFC 1812 §5.2.4.3). A /24 inside a /16 with another value splits the /16 into
up to three pieces. Between ranges of equal width, the one given later wins.

Keys: IPv4 addresses are ``uint32``. IPv6 addresses are keyed by their top 48 bits (their /48),
held in ``int64``: finer IPv6 detail is not needed to answer "which country / AS", and 48-bit
keys keep every ``end + 1`` computation free of overflow.

Missing value: lookups return ``MISSING = -1`` for addresses no range covers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from netvigil.model.errors import GeoDataError

MISSING: Final = -1
V6_SHIFT: Final = 80  # an IPv6 address keys by its /48: addr >> (128 - 48)

KeyArray = npt.NDArray[Any]  # uint32 (IPv4) or int64 (IPv6 /48 keys)
ValueArray = npt.NDArray[np.int64]

# Above this many distinct widths, painting one width-layer at a time stops paying off.
_MAX_LAYERS = 64

# IPv4 bulk directory: one cell per /20 (2**20 cells, 4 MiB of uint32). A cell holds the value
# when one interval covers it whole, DIR_MISSING when none touches it, DIR_SEARCH otherwise.
DIRECTORY_BITS: Final = 20
DIRECTORY_MIN_KEYS: Final = 4096  # below this, building/using the directory does not pay
DIR_MISSING: Final = 0xFFFFFFFF
DIR_SEARCH: Final = 0xFFFFFFFE


class IntervalTable:
    """Disjoint inclusive intervals ``[start, end]`` sorted by start, each with an int value.

    Build with :meth:`from_cidrs` or :meth:`from_ranges`; both resolve overlaps by most
    specific wins. ``lookup`` returns ``MISSING`` (−1) where no interval covers a key, so
    values themselves should be ≥ 0 (country indices, AS numbers).
    """

    __slots__ = ("starts", "ends", "values", "family", "_filled", "_directory")

    def __init__(
        self, starts: KeyArray, ends: KeyArray, values: ValueArray, family: int = 4
    ) -> None:
        if not (starts.shape == ends.shape == values.shape):
            raise ValueError("starts, ends and values must have the same length")
        if starts.size and (np.any(starts[1:] <= ends[:-1]) or np.any(ends < starts)):
            raise ValueError("intervals must be sorted, disjoint and have start <= end")
        self.starts = starts
        self.ends = ends
        self.values = values
        self.family = family
        self._filled: tuple[KeyArray, ValueArray] | None = None
        self._directory: npt.NDArray[np.uint32] | None = None

    # ----------------------------------------------------------------- construction

    @classmethod
    def empty(cls, family: int = 4) -> IntervalTable:
        dtype = np.uint32 if family == 4 else np.int64
        z = np.empty(0, dtype=dtype)
        return cls(z, z.copy(), np.empty(0, dtype=np.int64), family)

    @classmethod
    def from_ranges(
        cls,
        starts: npt.ArrayLike,
        ends: npt.ArrayLike,
        values: npt.ArrayLike,
        family: int = 4,
    ) -> IntervalTable:
        """Build from possibly overlapping inclusive ranges; narrowest range wins, then later.

        ``family=4`` takes integer IPv4 addresses; ``family=6`` takes /48 keys (see
        :func:`v6_key`). Adjacent pieces with the same value are merged.
        """
        s = np.asarray(starts, dtype=np.int64).ravel()
        e = np.asarray(ends, dtype=np.int64).ravel()
        v = np.asarray(values, dtype=np.int64).ravel()
        if not (s.shape == e.shape == v.shape):
            raise ValueError("starts, ends and values must have the same length")
        limit = 2**32 if family == 4 else 2**48
        if s.size and (s.min() < 0 or e.max() >= limit or np.any(e < s)):
            raise ValueError(f"ranges must satisfy 0 <= start <= end < {limit}")
        rs, re_, rv = _resolve(s, e, v)
        key_dtype = np.uint32 if family == 4 else np.int64
        return cls(rs.astype(key_dtype), re_.astype(key_dtype), rv, family)

    @classmethod
    def from_cidrs(
        cls, cidrs: Sequence[str], values: npt.ArrayLike, family: int | None = None
    ) -> IntervalTable:
        """Build from CIDR strings (``"2.72.0.0/13"``); host bits are ignored, longest wins.

        ``family`` defaults to the family of the first CIDR; CIDRs of the other family raise.
        """
        vals = np.asarray(values, dtype=np.int64).ravel()
        if len(cidrs) != vals.size:
            raise ValueError("cidrs and values must have the same length")
        if family is None:
            family = 6 if cidrs and ":" in cidrs[0] else 4
        starts, ends = cidr_bounds(cidrs, family)
        return cls.from_ranges(starts, ends, vals, family)

    # ----------------------------------------------------------------- queries

    def __len__(self) -> int:
        return int(self.starts.size)

    def lookup(self, keys: npt.ArrayLike) -> ValueArray:
        """Value for every key (``uint32`` IPv4 addresses or /48 keys); ``MISSING`` where none.

        Search: one ``np.searchsorted`` (binary search, side='right') over the piece starts of a
        gap-filled copy of the table (gaps are pieces valued ``MISSING``; the first piece
        starts at 0), then one ``take`` — no per-key bounds check.

        IPv4 bulk (≥ ``DIRECTORY_MIN_KEYS`` keys): a /20 directory answers first with one
        gather; only keys in cells that several intervals (or an interval and a gap) share go
        to the search. On the 2022 country table 2.4 % of /20s are shared, so ~97 % of random
        keys never search; on a sparse table (KZ ASN ranges) nearly all answer MISSING at once.
        """
        k = np.asarray(keys)
        if self.family == 4 and k.dtype != np.uint32:
            k = k.astype(np.uint32)
        elif self.family == 6 and k.dtype != np.int64:
            k = k.astype(np.int64)
        if self.starts.size == 0 or k.size == 0:
            return np.full(k.shape, MISSING, dtype=np.int64)
        if self.family != 4 or k.size < DIRECTORY_MIN_KEYS:
            return self._search(k)
        codes = self.directory().take(k >> np.uint32(32 - DIRECTORY_BITS))
        out = codes.astype(np.int64)
        out[codes == DIR_MISSING] = MISSING
        slow = np.flatnonzero(codes == DIR_SEARCH)
        if slow.size:
            out[slow] = self._search(k[slow])
        return out

    def _search(self, k: KeyArray) -> ValueArray:
        bounds, vals = self._gap_filled()
        idx = np.searchsorted(bounds, k, side="right")
        idx -= 1
        return vals.take(idx)

    def directory(self) -> npt.NDArray[np.uint32]:
        """The IPv4 /20 directory (built on first bulk use, then cached; 4 MiB)."""
        if self._directory is None:
            shift = 32 - DIRECTORY_BITS
            cells = 1 << DIRECTORY_BITS
            s = self.starts.astype(np.int64)
            e = self.ends.astype(np.int64)
            first_full = (s + (1 << shift) - 1) >> shift
            last_full = ((e + 1) >> shift) - 1
            whole = first_full <= last_full
            ids = np.flatnonzero(whole)
            marks = np.zeros(cells + 1, dtype=np.int32)
            marks[first_full[whole]] += (ids + 1).astype(np.int32)  # full runs are disjoint
            marks[last_full[whole] + 1] -= (ids + 1).astype(np.int32)
            owner = np.cumsum(marks[:-1], dtype=np.int32)
            vals = self.values
            coded = np.where((vals >= 0) & (vals < DIR_SEARCH), vals, DIR_SEARCH)
            directory = np.full(cells, DIR_MISSING, dtype=np.uint32)
            has = owner > 0
            directory[has] = coded[owner[has] - 1]
            directory[(s >> shift)[(s & ((1 << shift) - 1)) != 0]] = DIR_SEARCH
            directory[(e >> shift)[((e + 1) & ((1 << shift) - 1)) != 0]] = DIR_SEARCH
            self._directory = directory
        return self._directory

    def _gap_filled(self) -> tuple[KeyArray, ValueArray]:
        if self._filled is None:
            s = self.starts.astype(np.int64)
            after = self.ends.astype(np.int64) + 1  # start of the gap after each interval
            gap_after = np.ones(s.size, dtype=bool)
            gap_after[:-1] = after[:-1] < s[1:]
            top = 2**32 if self.family == 4 else 2**48
            gap_after &= after < top
            bounds = np.concatenate([[0], s, after[gap_after]])
            vals = np.concatenate([[MISSING], self.values,
                                   np.full(int(gap_after.sum()), MISSING, dtype=np.int64)])
            order = np.argsort(bounds, kind="stable")
            bounds, vals = bounds[order], vals[order]
            # A table starting at 0 makes the leading gap piece empty: keep the later (real) one.
            keep = np.ones(bounds.size, dtype=bool)
            keep[:-1] = bounds[1:] != bounds[:-1]
            self._filled = (bounds[keep].astype(self.starts.dtype), vals[keep])
        return self._filled

    def get(self, key: int) -> int:
        """Scalar lookup of one integer key; ``MISSING`` when no interval covers it."""
        idx = int(np.searchsorted(self.starts, key, side="right")) - 1
        if idx >= 0 and key <= int(self.ends[idx]):
            return int(self.values[idx])
        return MISSING

    def get_ip(self, ip: str) -> int:
        """Scalar lookup of an address string of this table's family."""
        addr = ipaddress.ip_address(ip)
        if addr.version != self.family:
            return MISSING
        return self.get(int(addr) if self.family == 4 else int(addr) >> V6_SHIFT)

    def select(self, value: int) -> tuple[KeyArray, KeyArray]:
        """The ``(starts, ends)`` of the intervals carrying ``value``."""
        mask = self.values == value
        return self.starts[mask], self.ends[mask]

    def iter_rows(self) -> Iterable[tuple[int, int, int]]:
        for s, e, v in zip(self.starts.tolist(), self.ends.tolist(), self.values.tolist(),
                           strict=True):
            yield int(s), int(e), int(v)

    @property
    def nbytes(self) -> int:
        return int(self.starts.nbytes + self.ends.nbytes + self.values.nbytes)


# --------------------------------------------------------------------- helpers


def v6_key(ip: str | ipaddress.IPv6Address) -> int:
    """The /48 key of an IPv6 address (top 48 bits)."""
    return int(ipaddress.IPv6Address(ip)) >> V6_SHIFT


def cidr_bounds(
    cidrs: Sequence[str], family: int = 4
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Inclusive integer bounds of each CIDR (IPv4 addresses or IPv6 /48 keys).

    IPv6 prefixes longer than /48 widen to their /48 (the key space's resolution).
    Raises ValueError on text that is not a CIDR of ``family``.
    """
    starts = np.empty(len(cidrs), dtype=np.int64)
    ends = np.empty(len(cidrs), dtype=np.int64)
    for i, text in enumerate(cidrs):
        net = ipaddress.ip_network(text.strip(), strict=False)
        if net.version != family:
            raise ValueError(f"{text!r} is not an IPv{family} prefix")
        lo = int(net.network_address)
        hi = int(net.broadcast_address)
        if family == 6:
            lo >>= V6_SHIFT
            hi >>= V6_SHIFT
        starts[i] = lo
        ends[i] = hi
    return starts, ends


def ipv4_to_uint32(ips: Iterable[str]) -> npt.NDArray[np.uint32]:
    """Dotted-quad strings → uint32 array (host order)."""
    try:
        return np.fromiter((int(ipaddress.IPv4Address(s)) for s in ips), dtype=np.uint32)
    except ValueError as exc:
        raise GeoDataError(f"not an IPv4 address: {exc}") from exc


def _resolve(
    s: npt.NDArray[np.int64], e: npt.NDArray[np.int64], v: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Overlapping ranges → disjoint sorted ranges where the narrowest cover wins.

    Fast path: input already disjoint (ip-location-db files, merged country lists) is only
    sorted. Otherwise the boundaries cut the line into elementary segments, and ranges are
    painted onto them widest first, so narrower ranges overwrite wider ones. When there are
    few distinct widths (CIDRs: at most 33 for IPv4) and each width-layer is itself disjoint,
    a whole layer is painted at once with a difference array; else one range at a time.
    """
    if s.size == 0:
        return s, e, v
    order = np.lexsort((np.arange(s.size), s))  # by start, then input order
    s, e, v = s[order], e[order], v[order]
    if np.all(s[1:] > e[:-1]):
        return merge_adjacent(s, e, v)

    bounds = np.unique(np.concatenate([s, e + 1]))
    seg_of_start = np.searchsorted(bounds, s)
    seg_of_stop = np.searchsorted(bounds, e + 1)  # exclusive segment index
    painted = np.full(bounds.size - 1, MISSING, dtype=np.int64)
    width = e - s
    widths = np.unique(width)[::-1]  # widest first

    layered = widths.size <= _MAX_LAYERS
    if layered:
        layers = []
        for w in widths:
            members = np.flatnonzero(width == w)  # sorted by start, stable in input order
            a, b = seg_of_start[members], seg_of_stop[members]
            if np.any((a[1:] < b[:-1]) & (a[1:] != a[:-1])):
                layered = False  # same width but partly overlapping: paint one by one
                break
            layers.append((a, b, v[members]))
    if layered:
        for a, b, vals in layers:
            # Identical ranges of one width: keep the last (later input wins).
            keep = np.ones(a.size, dtype=bool)
            keep[:-1] = a[1:] != a[:-1]
            a, b, vals = a[keep], b[keep], vals[keep]
            marks = np.zeros(painted.size + 1, dtype=np.int64)
            ids = np.arange(1, a.size + 1)
            marks[a] += ids  # a and b are each unique once duplicates are dropped
            marks[b] -= ids
            owner = np.cumsum(marks[:-1])  # 1-based index of the covering range, 0 = none
            covered = owner > 0
            painted[covered] = vals[owner[covered] - 1]
    else:
        by_width = np.lexsort((order, -width))  # widest first, then input order
        for i in by_width.tolist():
            painted[seg_of_start[i] : seg_of_stop[i]] = v[i]

    has = painted != MISSING
    seg_s = bounds[:-1][has]
    seg_e = bounds[1:][has] - 1
    return merge_adjacent(seg_s, seg_e, painted[has])


def merge_adjacent(
    s: npt.NDArray[np.int64], e: npt.NDArray[np.int64], v: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Merge touching ranges (``end + 1 == next start``) that carry the same value."""
    if s.size <= 1:
        return s, e, v
    new_run = np.ones(s.size, dtype=bool)
    new_run[1:] = (s[1:] != e[:-1] + 1) | (v[1:] != v[:-1])
    first = np.flatnonzero(new_run)
    last = np.append(first[1:] - 1, s.size - 1)
    return s[first], e[last], v[first]
