"""Probe targets: per /24 block the ever-responsive addresses E(b) and their availability A.

Trinocular (Quan et al., SIGCOMM 2013, §3.1) probes only addresses that have ever answered a
census, E(b), and weighs each reply by A(E(b)), the mean reply rate of those addresses.
IODA's ``gen-probelist`` keeps a block only if **|E(b)| ≥ 15 and A ≥ 0.1** (anchors §2.1):
below that one lost reply says too little and the block flaps between states.

Sparse blocks (failing the rule) are **dropped by default** and counted in
:class:`Selection`; ``keep_sparse=True`` keeps them with ``sparse`` set, so they are probed
but their states can be filtered out downstream (Trinocular's own answer for them is FBS /
LABR, Baltra & Heidemann PAM 2020, not implemented here).

Storage is columnar for millions of blocks: block network addresses (uint32), availability
(float32) and E(b) as host octets (uint8) in one array indexed by offsets (CSR layout), so a
block with 30 responsive addresses costs about 4 + 4 + 8 + 30 bytes.

Files:

* targets CSV, one address per row ``block,address,availability`` or one block per row
  ``block,addresses,availability`` (addresses separated by spaces, ``;`` or ``|``); an
  optional ``entity`` column (``country/KZ;asn/9198``) overrides the geo lookup for that
  block — needed for test blocks in reserved ranges that no geo table maps;
* census CSV of past replies ``address,reply`` (reply 1/0, or ``address,probes,replies``
  aggregated), from which :func:`build_from_census` derives E(b) and A(E(b)).
"""

from __future__ import annotations

import csv
import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from netvigil.model.entities import EntityRef
from netvigil.model.errors import InputError, InvalidEntity

U32 = npt.NDArray[np.uint32]
U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SelectionRule:
    """Which blocks are worth probing (defaults: trinarkular ``gen-probelist``)."""

    min_addresses: int = 15
    min_availability: float = 0.1
    keep_sparse: bool = False

    def accepts(self, n_addresses: I64, availability: F32) -> npt.NDArray[np.bool_]:
        return np.asarray((n_addresses >= self.min_addresses)
                          & (availability >= np.float32(self.min_availability)))


@dataclass(frozen=True, eq=False)
class TargetList:
    """Blocks sorted by network address, with E(b) host octets in CSR layout."""

    block_starts: U32  # network address of each /24, sorted, unique
    availability: F32  # A(E(b)) in [0, 1]
    offsets: I64  # E(b) of block i is hosts[offsets[i]:offsets[i+1]]
    hosts: U8  # last octet of each ever-responsive address
    sparse: npt.NDArray[np.bool_]  # kept although the selection rule rejects it
    entities: tuple[tuple[EntityRef, ...] | None, ...] = field(default=())  # overrides

    def __post_init__(self) -> None:
        n = self.block_starts.shape[0]
        if self.availability.shape[0] != n or self.offsets.shape[0] != n + 1:
            raise ValueError("TargetList arrays disagree in length")
        if self.entities and len(self.entities) != n:
            raise ValueError("entities must have one entry per block (or be empty)")

    def __len__(self) -> int:
        return int(self.block_starts.shape[0])

    @property
    def sizes(self) -> I64:
        return np.diff(self.offsets)

    def addresses(self, i: int) -> U32:
        """Full addresses of E(b) for block ``i``."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return np.asarray(self.block_starts[i] + self.hosts[lo:hi].astype(np.uint32),
                          dtype=np.uint32)

    def block_index(self, address: int) -> int:
        """Index of the block holding ``address``, or −1."""
        start = np.uint32(address & 0xFFFFFF00)
        i = int(np.searchsorted(self.block_starts, start))
        if i < len(self) and self.block_starts[i] == start:
            return i
        return -1

    def contains(self, address: int) -> bool:
        """True only for an address in some block's E(b): the prober's allow-list."""
        i = self.block_index(address)
        if i < 0:
            return False
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return bool(np.any(self.hosts[lo:hi] == (address & 0xFF)))

    def entity_override(self, i: int) -> tuple[EntityRef, ...] | None:
        return self.entities[i] if self.entities else None

    def block_cidr(self, i: int) -> str:
        return f"{ipaddress.IPv4Address(int(self.block_starts[i]))}/24"

    def nbytes(self) -> int:
        return int(self.block_starts.nbytes + self.availability.nbytes + self.offsets.nbytes
                   + self.hosts.nbytes + self.sparse.nbytes)


@dataclass(frozen=True)
class Selection:
    """Outcome of applying a :class:`SelectionRule`: the list and what was left out."""

    targets: TargetList
    considered: int
    dropped_sparse: int  # rejected by the rule and not kept
    kept_sparse: int  # rejected by the rule but kept (keep_sparse=True)


@dataclass
class _Block:
    hosts: set[int] = field(default_factory=set)
    avail_sum: float = 0.0
    avail_n: int = 0
    entities: tuple[EntityRef, ...] | None = None


def _parse_block(text: str, path: str, line: int) -> int:
    try:
        net = ipaddress.IPv4Network(text.strip(), strict=False)
    except ValueError as exc:
        raise InputError(path, line, f"block {text!r} is not an IPv4 network: {exc}") from None
    if net.prefixlen != 24:
        raise InputError(path, line, f"block {text!r} must be a /24")
    return int(net.network_address)


def _parse_address(text: str, path: str, line: int) -> int:
    try:
        return int(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        raise InputError(path, line, f"{text!r} is not an IPv4 address") from None


def _parse_fraction(text: str, what: str, path: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(path, line, f"{what} {text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise InputError(path, line, f"{what} {value} is outside [0, 1]")
    return value


def _parse_entities(text: str, path: str, line: int) -> tuple[EntityRef, ...] | None:
    parts = [p for p in text.replace("|", ";").split(";") if p.strip()]
    if not parts:
        return None
    try:
        return tuple(EntityRef.parse(p.strip()) for p in parts)
    except InvalidEntity as exc:
        raise InputError(path, line, f"entity column: {exc}") from None


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise InputError(str(path), None, f"cannot read: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        header: list[str] | None = None
        for fields in reader:
            if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [f.strip().lower() for f in fields]
                continue
            line = reader.line_num
            if len(fields) > len(header):
                raise InputError(str(path), line, f"{len(fields)} fields, header has {len(header)}")
            values = [f.strip() for f in fields] + [""] * (len(header) - len(fields))
            yield line, dict(zip(header, values, strict=True))
        if header is None:
            raise InputError(str(path), None, "empty file (expected a header row)")


def load_targets_csv(path: str | Path, rule: SelectionRule | None = None) -> Selection:
    """Read a targets CSV (see module docstring) and apply ``rule`` (default Trinocular's).

    In the one-address-per-row form the block's A(E(b)) is the mean of the rows' values, so
    rows may carry either the block's availability or each address's own reply rate.
    Line numbers in errors count the header as line 1 (blank and ``#`` lines are skipped).
    """
    p = Path(path)
    blocks: dict[int, _Block] = {}
    columns: set[str] | None = None
    for line, row in _rows(p):
        if columns is None:
            columns = set(row)
            if "block" not in columns or "availability" not in columns or not (
                    {"address", "addresses"} & columns):
                raise InputError(str(p), 1, "header must be block,address,availability or "
                                            "block,addresses,availability (+ optional entity)")
        start = _parse_block(row["block"], str(p), line)
        avail = _parse_fraction(row["availability"], "availability", str(p), line)
        raw = row.get("address") or row.get("addresses") or ""
        items = [x for x in raw.replace(";", " ").replace("|", " ").split() if x]
        if not items:
            raise InputError(str(p), line, "no address given")
        blk = blocks.setdefault(start, _Block())
        for item in items:
            addr = _parse_address(item, str(p), line)
            if addr & 0xFFFFFF00 != start:
                raise InputError(str(p), line,
                                 f"address {item} is not inside block {row['block']}")
            blk.hosts.add(addr & 0xFF)
        blk.avail_sum += avail
        blk.avail_n += 1
        if row.get("entity"):
            blk.entities = _parse_entities(row["entity"], str(p), line)
    if not blocks:
        raise InputError(str(p), None, "no target rows")
    return _select(blocks, rule or SelectionRule())


def _select(blocks: dict[int, _Block], rule: SelectionRule) -> Selection:
    starts = np.array(sorted(blocks), dtype=np.uint32)
    recs = [blocks[int(s)] for s in starts]
    sizes = np.array([len(b.hosts) for b in recs], dtype=np.int64)
    avail = np.array([b.avail_sum / b.avail_n for b in recs], dtype=np.float32)
    ok = rule.accepts(sizes, avail)
    keep = ok | rule.keep_sparse
    idx = np.flatnonzero(keep)
    offsets = np.zeros(idx.size + 1, dtype=np.int64)
    np.cumsum(sizes[idx], out=offsets[1:])
    hosts = np.fromiter((h for i in idx for h in sorted(recs[i].hosts)), dtype=np.uint8,
                        count=int(offsets[-1]))
    ents = tuple(recs[i].entities for i in idx)
    targets = TargetList(
        starts[idx], avail[idx], offsets, hosts, ~ok[idx],
        ents if any(e is not None for e in ents) else (),
    )
    rejected = int(np.count_nonzero(~ok))
    return Selection(targets, len(blocks), 0 if rule.keep_sparse else rejected,
                     rejected if rule.keep_sparse else 0)


def from_blocks(blocks: Sequence[tuple[int, Sequence[int], float]],
                rule: SelectionRule | None = None,
                entities: Sequence[tuple[EntityRef, ...] | None] | None = None) -> Selection:
    """Build from ``(block_start, addresses, availability)`` tuples (tests, generators)."""
    recs: dict[int, _Block] = {}
    for k, (start, addrs, avail) in enumerate(blocks):
        blk = recs.setdefault(int(start) & 0xFFFFFF00, _Block())
        blk.hosts.update(int(a) & 0xFF for a in addrs)
        blk.avail_sum += float(avail)
        blk.avail_n += 1
        if entities is not None:
            blk.entities = entities[k]
    return _select(recs, rule or SelectionRule())


def synthetic(n_blocks: int, hosts_per_block: int = 30, seed: int = 0) -> TargetList:
    """A random target list of ``n_blocks`` (benchmarks); nothing here is ever probed."""
    rng = np.random.default_rng(seed)
    starts = np.unique(rng.integers(1 << 16, 1 << 24, size=n_blocks * 2, dtype=np.uint32))
    starts = (rng.permutation(starts)[:n_blocks] << np.uint32(8)).astype(np.uint32)
    starts.sort()
    n = starts.size
    offsets = np.arange(n + 1, dtype=np.int64) * hosts_per_block
    hosts = rng.integers(1, 255, size=n * hosts_per_block, dtype=np.uint8)
    avail = rng.uniform(0.1, 1.0, size=n).astype(np.float32)
    return TargetList(starts, avail, offsets, hosts, np.zeros(n, dtype=np.bool_))


def build_from_census(path: str | Path, rule: SelectionRule | None = None) -> Selection:
    """Derive E(b) and A(E(b)) from a census of past probes.

    Rows are ``address,reply`` (one past probe, reply 1/0/true/false) or
    ``address,probes,replies`` (counts). E(b) = addresses that replied at least once;
    A(E(b)) = mean over E(b) of each address's reply rate. Other columns (e.g. ``time``)
    are ignored.
    """
    p = Path(path)
    per_addr: dict[int, list[int]] = {}
    mode: str | None = None
    for line, row in _rows(p):
        if mode is None:
            if "address" not in row:
                raise InputError(str(p), 1, "census header needs an address column")
            if {"probes", "replies"} <= set(row):
                mode = "counts"
            elif "reply" in row:
                mode = "single"
            else:
                raise InputError(str(p), 1, "census header needs reply or probes,replies")
        addr = _parse_address(row["address"], str(p), line)
        if mode == "single":
            flag = row["reply"].lower()
            if flag not in {"0", "1", "true", "false", "yes", "no"}:
                raise InputError(str(p), line, f"reply {row['reply']!r} is not 0/1")
            probes, replies = 1, int(flag in {"1", "true", "yes"})
        else:
            try:
                probes, replies = int(row["probes"]), int(row["replies"])
            except ValueError:
                raise InputError(str(p), line, "probes and replies must be integers") from None
            if probes < 0 or not 0 <= replies <= probes:
                raise InputError(str(p), line, "need 0 <= replies <= probes")
        acc = per_addr.setdefault(addr, [0, 0])
        acc[0] += probes
        acc[1] += replies
    if not per_addr:
        raise InputError(str(p), None, "no census rows")
    return _select(_census_blocks(per_addr.items()), rule or SelectionRule())


def _census_blocks(items: Iterable[tuple[int, list[int]]]) -> dict[int, _Block]:
    blocks: dict[int, _Block] = {}
    for addr, (probes, replies) in items:
        if replies == 0 or probes == 0:
            continue  # never answered: not in E(b)
        blk = blocks.setdefault(addr & 0xFFFFFF00, _Block())
        blk.hosts.add(addr & 0xFF)
        blk.avail_sum += replies / probes
        blk.avail_n += 1
    return blocks


def write_targets_csv(targets: TargetList, path: str | Path) -> None:
    """Write the one-block-per-row form (``block,addresses,availability[,entity]``)."""
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        with_ent = bool(targets.entities)
        w.writerow(["block", "addresses", "availability", *(["entity"] if with_ent else [])])
        for i in range(len(targets)):
            addrs = " ".join(str(ipaddress.IPv4Address(int(a))) for a in targets.addresses(i))
            row = [targets.block_cidr(i), addrs, f"{float(targets.availability[i]):.4f}"]
            if with_ent:
                ents = targets.entity_override(i)
                row.append(";".join(e.fqid for e in ents) if ents else "")
            w.writerow(row)
