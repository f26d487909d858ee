"""Read MRT files into :class:`BgpElem` rows under a caller-chosen error policy.

>>> reader = MrtReader("updates.20160811.1600.gz", policy=ErrorPolicy.SKIP)
>>> for elem in reader: ...
>>> reader.stats.skipped, reader.stats.problems[:3]

Dispatch follows RFC 6396's type codes, one module per record type (``table_dump``,
``table_dump_v2``, ``bgp4mp``, ``bgp_legacy``), as bgpkit-parser lays its parser out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from netvigil.sources.bgp.mrt import bgp4mp, bgp_legacy, table_dump, table_dump_v2
from netvigil.sources.bgp.mrt.attributes import AttributeError_, Unsupported
from netvigil.sources.bgp.mrt.elem import BgpElem
from netvigil.sources.bgp.mrt.errors import (
    CorruptRecord,
    ErrorPolicy,
    ReadStats,
)
from netvigil.sources.bgp.mrt.io import open_mrt
from netvigil.sources.bgp.mrt.records import RawRecord, iter_records
from netvigil.sources.bgp.mrt.table_dump_v2 import PeerIndex
from netvigil.sources.bgp.mrt.types import MrtType

Source = str | Path | bytes | BinaryIO


class MrtReader:
    """Iterate the elements of one MRT file. Reusable stats in :attr:`stats` after iteration."""

    def __init__(self, source: Source, policy: ErrorPolicy | str = ErrorPolicy.SKIP,
                 time_window: tuple[int, int] | None = None) -> None:
        """``time_window`` (first, last second, inclusive): a record stamped outside it is a
        corrupt record under the policy — e.g. ``0xFFFFFFF0`` in a 2016 update file, which the
        backfill would otherwise take as "2106" (issue 12, defect 4)."""
        self.source = source
        self.time_window = time_window
        self.policy = ErrorPolicy(policy)
        self.stats = ReadStats()
        self.peer_index: PeerIndex | None = None

    def records(self) -> Iterator[RawRecord]:
        with open_mrt(self.source) as stream:
            yield from iter_records(stream, self.policy, self.stats)
            if stream.compressed_truncated:
                err = stream.cut_error(self.stats.bytes_read)
                if self.policy is ErrorPolicy.FAIL:
                    raise err
                if stream.inflated or not self.stats.truncated:
                    self.stats.note(err)

    def __iter__(self) -> Iterator[BgpElem]:
        for rec in self.records():
            yield from self.read_record(rec)

    def read_record(self, rec: RawRecord) -> list[BgpElem]:
        """One framed record's elements under the policy: the time window, the decoders, the
        counts (what ``__iter__`` yields per record; the compiled update reader hands the
        records it does not decode here, :mod:`netvigil.sources.bgp.fastupdates`)."""
        stats = self.stats
        window = self.time_window
        try:
            if window is not None and not window[0] <= rec.timestamp <= window[1]:
                raise AttributeError_(f"timestamp {rec.timestamp} outside the file's time "
                                      f"window {window[0]}..{window[1]}")
            elems = self.decode(rec)
        except Unsupported:
            stats.unsupported += 1
            return []
        except (AttributeError_, struct.error, IndexError, ValueError) as exc:
            err = CorruptRecord(rec.offset, f"type {rec.type}/{rec.subtype}: {exc}",
                                _name(self.source))
            if self.policy is ErrorPolicy.FAIL:
                raise err from exc
            stats.note(err)
            return []
        stats.elements += len(elems)
        return elems

    def decode(self, rec: RawRecord) -> list[BgpElem]:
        t = rec.type
        if t == MrtType.TABLE_DUMP_V2:
            if rec.subtype == 1:
                self.peer_index = table_dump_v2.decode_peer_index(rec)
                return []
            if rec.subtype in (2, 3, 4, 5, 6, 8, 9, 10, 11, 12):
                return table_dump_v2.decode_rib(rec, self.peer_index)
        elif t in (MrtType.BGP4MP, MrtType.BGP4MP_ET):
            if rec.subtype in (2, 3):  # BGP4MP_ENTRY / SNAPSHOT: deprecated, unsupported
                self.stats.unsupported += 1
                return []
            return bgp4mp.decode(rec)
        elif t == MrtType.TABLE_DUMP:
            return table_dump.decode(rec)
        elif t == MrtType.BGP:
            return bgp_legacy.decode(rec)
        self.stats.unsupported += 1
        return []


def _name(source: Source) -> str | None:
    if isinstance(source, str | Path):
        return str(source)
    return None


def read_elems(source: Source, policy: ErrorPolicy | str = ErrorPolicy.SKIP) -> Iterator[BgpElem]:
    """Convenience: the elements of one file (stats discarded)."""
    return iter(MrtReader(source, policy))
