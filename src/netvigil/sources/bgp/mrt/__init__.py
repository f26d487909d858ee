"""MRT (RFC 6396) reading: framing, one decoder per record type, and the error policy."""

from netvigil.sources.bgp.mrt.attributes import Nlri, PathAttributes
from netvigil.sources.bgp.mrt.elem import BgpElem, to_dict, to_json, to_psv
from netvigil.sources.bgp.mrt.errors import (
    CorruptRecord,
    ErrorPolicy,
    MrtError,
    ReadStats,
    TruncatedRecord,
)
from netvigil.sources.bgp.mrt.io import open_mrt
from netvigil.sources.bgp.mrt.reader import MrtReader, read_elems
from netvigil.sources.bgp.mrt.table_dump_v2 import PeerIndex

__all__ = [
    "BgpElem",
    "CorruptRecord",
    "ErrorPolicy",
    "MrtError",
    "MrtReader",
    "Nlri",
    "PathAttributes",
    "PeerIndex",
    "ReadStats",
    "TruncatedRecord",
    "open_mrt",
    "read_elems",
    "to_dict",
    "to_json",
    "to_psv",
]
