"""Dated reference tables: read them from their upstream formats, pack them, load the shipped ones.

Why dated: an IP's country or AS changes over time, and a shutdown in January 2022 must be
scored against the address plan of January 2022, not today's. ooni/data documents the bug
this avoids ("reference data is joined as of *run* time"). Every table here therefore carries
the date its data describes, and :mod:`netvigil.geo.lookup` picks one by date.

Upstream formats read here (each bad line raises :class:`GeoDataError` naming ``file:line``):

* **country-ip-blocks** (github.com/herrbischoff/country-ip-blocks, CC0-1.0): a tree or a
  ``.tar.gz`` of it with ``ipv4/<cc>.cidr`` and ``ipv6/<cc>.cidr``, one CIDR per line.
* **ip-location-db** (npm ``@ip-location-db/asn`` and ``asn-country``): header-less CSV
  ``start,end,asn,org`` or ``start,end,cc`` with textual addresses, optionally gzipped.
* **pyasn IPASN** (github.com/hadiasghari/pyasn): ``prefix<TAB>asn`` lines, ``;`` comments.

Shipped data (``netvigil/data/geo/``, see its README for provenance and licences): the four
country-ip-blocks snapshots repacked by :func:`pack_country_snapshot` into one compressed
``.npz`` each, the KZ slice of ip-location-db's ASN table, and pyasn's ``asnames.json.gz``.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import ipaddress
import json
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np

from netvigil.geo.intervals import IntervalTable, cidr_bounds, v6_key
from netvigil.model.errors import GeoDataError

SNAPSHOT_PREFIX = "country-ip-blocks_"
KZ_ASN_FILE = "asn-ipv4-in-KZ.csv"
ASNAMES_FILE = "asnames.json.gz"


@dataclass(frozen=True, eq=False)
class CountrySnapshot:
    """IP→country as of ``date``: interval values index ``countries`` (ISO 3166-1 alpha-2)."""

    date: dt.date
    countries: tuple[str, ...]
    v4: IntervalTable
    v6: IntervalTable
    source: str = ""

    def country_of(self, index: int) -> str | None:
        return self.countries[index] if 0 <= index < len(self.countries) else None


@dataclass(frozen=True, eq=False)
class AsnTable:
    """IP→origin AS ranges, with the organisation names the file carries (may be empty)."""

    v4: IntervalTable
    v6: IntervalTable
    names: dict[int, str] = field(default_factory=dict)
    source: str = ""


# ------------------------------------------------------------------------- line readers


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open(encoding="utf-8")


def _error(where: str, lineno: int, reason: str) -> GeoDataError:
    return GeoDataError(f"{where}:{lineno}: {reason}")


def parse_cidr_lines(
    lines: Iterable[str], where: str, family: int
) -> list[str]:
    """Validate CIDR lines (blank lines and ``#`` comments skipped); return canonical CIDRs."""
    out: list[str] = []
    for lineno, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise _error(where, lineno, f"not a CIDR: {text!r} ({exc})") from None
        if net.version != family:
            raise _error(where, lineno, f"expected an IPv{family} prefix, got {text!r}")
        out.append(str(net))
    return out


def _country_from_member(name: str) -> tuple[int, str] | None:
    """``ipv4/kz.cidr`` → (4, "KZ"); other paths → None."""
    parts = Path(name).parts
    if len(parts) < 2 or parts[-2] not in ("ipv4", "ipv6") or not parts[-1].endswith(".cidr"):
        return None
    cc = parts[-1].removesuffix(".cidr").upper()
    if len(cc) != 2 or not cc.isalpha():
        return None
    return (4 if parts[-2] == "ipv4" else 6), cc


def read_country_blocks(path: str | Path, date: dt.date | str) -> CountrySnapshot:
    """Read a country-ip-blocks tree (directory) or tarball into a :class:`CountrySnapshot`.

    Files are ``ipv4/<cc>.cidr`` / ``ipv6/<cc>.cidr``; anything else in the tree is ignored.
    Overlaps between countries (rare RIR inconsistencies) resolve by most specific prefix.
    """
    p = Path(path)
    day = date if isinstance(date, dt.date) else dt.date.fromisoformat(date)
    per_family: dict[int, dict[str, list[str]]] = {4: {}, 6: {}}
    for member, lines in _iter_cidr_files(p):
        fam_cc = _country_from_member(member)
        if fam_cc is None:
            continue
        fam, cc = fam_cc
        per_family[fam].setdefault(cc, []).extend(parse_cidr_lines(lines, f"{p}/{member}", fam))
    return snapshot_from_cidrs(day, per_family[4], per_family[6], source=p.name)


def _iter_cidr_files(p: Path) -> Iterator[tuple[str, list[str]]]:
    if p.is_dir():
        for f in sorted(p.glob("ipv[46]/*.cidr")):
            yield str(f.relative_to(p)), f.read_text(encoding="utf-8").splitlines()
        return
    try:
        with tarfile.open(p, "r:*") as tar:
            for m in sorted(tar.getmembers(), key=lambda m: m.name):
                if not m.isfile() or not m.name.endswith(".cidr"):
                    continue
                fh = tar.extractfile(m)
                if fh is None:  # pragma: no cover - regular files always extract
                    continue
                yield m.name, fh.read().decode("utf-8").splitlines()
    except (tarfile.TarError, OSError) as exc:
        raise GeoDataError(f"{p}: cannot read country-ip-blocks archive: {exc}") from exc


def snapshot_from_cidrs(
    date: dt.date,
    v4: dict[str, list[str]],
    v6: dict[str, list[str]] | None = None,
    source: str = "",
) -> CountrySnapshot:
    """Build a snapshot from ``{cc: [cidr, ...]}`` per family."""
    v6 = v6 or {}
    countries = tuple(sorted({cc.upper() for cc in (*v4, *v6)}))
    index = {cc: i for i, cc in enumerate(countries)}
    tables: list[IntervalTable] = []
    for fam, mapping in ((4, v4), (6, v6)):
        cidrs: list[str] = []
        vals: list[int] = []
        for cc, nets in mapping.items():
            cidrs.extend(nets)
            vals.extend([index[cc.upper()]] * len(nets))
        starts, ends = cidr_bounds(cidrs, fam)
        tables.append(IntervalTable.from_ranges(starts, ends, vals, fam))
    return CountrySnapshot(date, countries, tables[0], tables[1], source)


def _parse_addr(text: str, where: str, lineno: int) -> tuple[int, int]:
    """Address text → (family, key): IPv4 as int, IPv6 as its /48 key."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        raise _error(where, lineno, f"not an IP address: {text!r}") from None
    return (4, int(addr)) if addr.version == 4 else (6, v6_key(addr))


def _read_range_csv(
    path: str | Path, ncols: int
) -> Iterator[tuple[int, int, int, list[str], str, int]]:
    """Rows of ``start,end,...`` as (family, start, end, rest, where, lineno)."""
    p = Path(path)
    where = str(p)
    try:
        with _open_text(p) as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) < ncols:
                    raise _error(where, lineno, f"expected {ncols} columns, got {len(row)}")
                fam, start = _parse_addr(row[0], where, lineno)
                fam_end, end = _parse_addr(row[1], where, lineno)
                if fam != fam_end or end < start:
                    raise _error(where, lineno, f"bad range {row[0]}-{row[1]}")
                yield fam, start, end, row[2:], where, lineno
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise GeoDataError(f"{where}: cannot read: {exc}") from exc


def read_asn_csv(path: str | Path) -> AsnTable:
    """Read an ip-location-db ``start,end,asn,org`` CSV (``.gz`` allowed) into an AsnTable.

    Rows with AS 0 (ip-location-db's "not routed") are kept out of the table.
    """
    cols: dict[int, tuple[list[int], list[int], list[int]]] = {4: ([], [], []), 6: ([], [], [])}
    names: dict[int, str] = {}
    for fam, start, end, rest, where, lineno in _read_range_csv(path, 3):
        text = rest[0].strip().upper().removeprefix("AS")
        if not text.isdigit() or not int(text) < 2**32:
            raise _error(where, lineno, f"not an AS number: {rest[0]!r}")
        asn = int(text)
        if asn == 0:
            continue
        s, e, v = cols[fam]
        s.append(start)
        e.append(end)
        v.append(asn)
        if len(rest) > 1 and rest[1].strip():
            names.setdefault(asn, rest[1].strip())
    v4 = IntervalTable.from_ranges(*cols[4], family=4)
    v6 = IntervalTable.from_ranges(*cols[6], family=6)
    return AsnTable(v4, v6, names, source=Path(path).name)


def read_country_csv(path: str | Path, date: dt.date | str) -> CountrySnapshot:
    """Read an ip-location-db ``start,end,cc`` CSV as a country snapshot dated ``date``."""
    day = date if isinstance(date, dt.date) else dt.date.fromisoformat(date)
    rows: dict[int, tuple[list[int], list[int], list[str]]] = {4: ([], [], []), 6: ([], [], [])}
    for fam, start, end, rest, where, lineno in _read_range_csv(path, 3):
        cc = rest[0].strip().upper()
        if len(cc) != 2 or not cc.isalpha():
            raise _error(where, lineno, f"not a country code: {rest[0]!r}")
        s, e, c = rows[fam]
        s.append(start)
        e.append(end)
        c.append(cc)
    countries = tuple(sorted(set(rows[4][2]) | set(rows[6][2])))
    index = {cc: i for i, cc in enumerate(countries)}
    tables = [
        IntervalTable.from_ranges(rows[f][0], rows[f][1], [index[c] for c in rows[f][2]], f)
        for f in (4, 6)
    ]
    return CountrySnapshot(day, countries, tables[0], tables[1], source=Path(path).name)


def read_ipasn_dat(path: str | Path) -> tuple[list[str], list[int]]:
    """Read a pyasn IPASN ``.dat`` (``.gz`` allowed): ``(prefixes, origin ASNs)``, both families.

    Comment lines start with ``;``. An origin written as an AS set (``{1,2}``) or ``1_2``
    keeps its first AS, as pyasn's own converter does for multi-origin prefixes.
    """
    p = Path(path)
    prefixes: list[str] = []
    origins: list[int] = []
    try:
        with _open_text(p) as fh:
            for lineno, raw in enumerate(fh, start=1):
                text = raw.strip()
                if not text or text.startswith(";"):
                    continue
                parts = text.split()
                if len(parts) != 2:
                    raise _error(str(p), lineno, f"expected 'prefix<TAB>asn', got {text!r}")
                try:
                    net = ipaddress.ip_network(parts[0], strict=False)
                except ValueError:
                    raise _error(str(p), lineno, f"not a prefix: {parts[0]!r}") from None
                first = parts[1].strip("{}").replace("_", ",").split(",")[0]
                if not first.isdigit():
                    raise _error(str(p), lineno, f"not an AS number: {parts[1]!r}")
                prefixes.append(str(net))
                origins.append(int(first))
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise GeoDataError(f"{p}: cannot read: {exc}") from exc
    return prefixes, origins


def split_families(
    prefixes: Iterable[str], origins: Iterable[int]
) -> tuple[IntervalTable, IntervalTable]:
    """Prefix→origin pairs → (IPv4 table, IPv6 table), longest prefix winning."""
    cols: dict[int, tuple[list[str], list[int]]] = {4: ([], []), 6: ([], [])}
    for pfx, asn in zip(prefixes, origins, strict=True):
        fam = 6 if ":" in pfx else 4
        cols[fam][0].append(pfx)
        cols[fam][1].append(int(asn))
    try:
        return (
            IntervalTable.from_cidrs(cols[4][0], cols[4][1], family=4),
            IntervalTable.from_cidrs(cols[6][0], cols[6][1], family=6),
        )
    except ValueError as exc:
        raise GeoDataError(f"bad prefix in origin table: {exc}") from exc


# ------------------------------------------------------------------------- packed snapshots


def pack_country_snapshot(snapshot: CountrySnapshot, dest: str | Path) -> Path:
    """Write a snapshot as a compressed ``.npz`` (≈4× smaller than the tarball, loads in ms).

    Starts are delta-encoded and ends stored as lengths, which zlib compresses far better
    than raw addresses.
    """
    out = Path(dest)
    arrays: dict[str, np.ndarray] = {
        "countries": np.array(snapshot.countries, dtype="U2"),
        "meta": np.array(json.dumps({"date": snapshot.date.isoformat(),
                                     "source": snapshot.source})),
    }
    for fam, table in (("v4", snapshot.v4), ("v6", snapshot.v6)):
        starts = table.starts.astype(np.int64)
        arrays[f"{fam}_dstart"] = np.diff(starts, prepend=0)
        arrays[f"{fam}_len"] = table.ends.astype(np.int64) - starts
        arrays[f"{fam}_cc"] = table.values.astype(np.uint16)
    with out.open("wb") as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
    return out


def load_packed_snapshot(source: str | Path | IO[bytes], name: str = "") -> CountrySnapshot:
    """Read a snapshot written by :func:`pack_country_snapshot`."""
    try:
        with np.load(source, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            tables = []
            for fam, famno in (("v4", 4), ("v6", 6)):
                starts = np.cumsum(z[f"{fam}_dstart"])
                ends = starts + z[f"{fam}_len"]
                dtype = np.uint32 if famno == 4 else np.int64
                tables.append(IntervalTable(starts.astype(dtype), ends.astype(dtype),
                                            z[f"{fam}_cc"].astype(np.int64), famno))
            countries = tuple(str(c) for c in z["countries"].tolist())
    except (OSError, KeyError, ValueError) as exc:
        raise GeoDataError(f"{name or source}: not a packed country snapshot: {exc}") from exc
    return CountrySnapshot(dt.date.fromisoformat(meta["date"]), countries, tables[0],
                           tables[1], meta.get("source", ""))


# ------------------------------------------------------------------------- shipped data


def _data_dir() -> resources.abc.Traversable:
    return resources.files("netvigil").joinpath("data", "geo")


def shipped_snapshot_files() -> list[str]:
    """Names of the packed snapshots shipped in ``netvigil/data/geo``, oldest first."""
    return sorted(
        f.name for f in _data_dir().iterdir()
        if f.name.startswith(SNAPSHOT_PREFIX) and f.name.endswith(".npz")
    )


@lru_cache(maxsize=1)
def load_shipped_snapshots() -> tuple[CountrySnapshot, ...]:
    """All shipped country snapshots, oldest first; parsed once per process."""
    out = []
    for name in shipped_snapshot_files():
        with _data_dir().joinpath(name).open("rb") as fh:
            out.append(load_packed_snapshot(io.BytesIO(fh.read()), name))
    return tuple(sorted(out, key=lambda s: s.date))


@lru_cache(maxsize=1)
def load_shipped_kz_asn() -> AsnTable:
    """The shipped KZ slice of ip-location-db's IPv4 ASN table (2026-06 data, CC BY 4.0)."""
    with resources.as_file(_data_dir().joinpath(KZ_ASN_FILE)) as path:
        return read_asn_csv(path)


@lru_cache(maxsize=4)
def load_asn_csv_cached(path: str) -> AsnTable:
    """A user-supplied ASN CSV (e.g. ``NETVIGIL_ASN_TABLE``), parsed once per process."""
    return read_asn_csv(path)


def read_asnames(source: str | Path | IO[bytes]) -> dict[int, tuple[str, str | None]]:
    """pyasn ``asnames.json(.gz)`` → ``{asn: (name, registered country or None)}``.

    Values look like ``"KAZTELECOM-AS JSC Kazakhtelecom, KZ"``: the trailing ``, CC`` is the
    registered country when it is two ASCII letters; otherwise the whole value is the name.
    """
    try:
        if isinstance(source, str | Path):
            with gzip.open(source, "rb") if str(source).endswith(".gz") else open(
                source, "rb"
            ) as fh:
                raw = json.load(fh)
        else:
            raw = json.load(gzip.open(source, "rb"))
    except (OSError, ValueError, EOFError) as exc:
        raise GeoDataError(f"{source}: cannot read AS names: {exc}") from exc
    if not isinstance(raw, dict):
        raise GeoDataError(f"{source}: AS names must be a JSON object")
    out: dict[int, tuple[str, str | None]] = {}
    for key, value in raw.items():
        if not str(key).isdigit() or not isinstance(value, str):
            continue
        out[int(key)] = split_asname(value)
    return out


def split_asname(value: str) -> tuple[str, str | None]:
    """``"TCI , IR"`` → ``("TCI", "IR")``; ``"FOO BAR"`` → ``("FOO BAR", None)``."""
    head, sep, tail = value.rpartition(",")
    cc = tail.strip()
    if sep and len(cc) == 2 and cc.isascii() and cc.isalpha():
        return head.strip() or value.strip(), cc.upper()
    return value.strip(), None


@lru_cache(maxsize=1)
def load_shipped_asnames() -> dict[int, tuple[str, str | None]]:
    """The shipped pyasn AS-name table (2021-08-30), parsed once per process."""
    with _data_dir().joinpath(ASNAMES_FILE).open("rb") as fh:
        return read_asnames(io.BytesIO(fh.read()))


def _main(argv: list[str] | None = None) -> int:
    """``python -m netvigil.geo.refdata TARBALL_OR_TREE DATE DEST.npz``: repack a snapshot."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print(_main.__doc__, file=sys.stderr)
        return 2
    snap = read_country_blocks(args[0], args[1])
    pack_country_snapshot(snap, args[2])
    print(f"{args[2]}: {len(snap.v4)} IPv4 + {len(snap.v6)} IPv6 ranges, "
          f"{len(snap.countries)} countries")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
