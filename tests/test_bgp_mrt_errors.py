"""Error policy: truncated tails, corrupt records and damaged framing are counted or raised
with their byte offset — never silently wrong."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path

import pytest

from netvigil.sources.bgp.mrt import (
    CorruptRecord,
    ErrorPolicy,
    MrtError,
    MrtReader,
    TruncatedRecord,
    to_psv,
)
from netvigil.testing.mrt_encode import bgp4mp_update, state_change, write_rib

FIX = Path(__file__).parent / "fixtures" / "mrt"
CUT_RIB = FIX / "rib.20140523.0600_firstMB.bz2"


def test_truncated_rib_skip_policy_keeps_complete_records_and_counts_the_tail() -> None:
    reader = MrtReader(CUT_RIB, ErrorPolicy.SKIP)
    n = sum(1 for _ in reader)
    assert n == 270_005  # what bgpdump prints for the complete records
    assert reader.stats.truncated == 1 and reader.stats.skipped == 0
    offset, kind, reason = reader.stats.problems[0]
    assert (offset, kind) == (15_273_283, "truncated")
    assert "1985 bytes, only 1255 present" in reason


def test_truncated_rib_fail_policy_raises_with_the_byte_offset() -> None:
    with pytest.raises(TruncatedRecord) as exc:
        for _ in MrtReader(CUT_RIB, "fail"):
            pass
    assert exc.value.offset == 15_273_283
    assert "byte offset 15273283" in str(exc.value)


def test_rib_without_peer_index_table_is_reported_not_guessed() -> None:
    reader = MrtReader(FIX / "bview.20140112.1600_3samples.bz2")
    assert list(reader) == []
    assert reader.stats.skipped == 3
    with pytest.raises(CorruptRecord, match="PEER_INDEX_TABLE"):
        list(MrtReader(FIX / "bview.20140112.1600_3samples.bz2", "fail"))


def test_damaged_boundaries_are_resynchronised_and_counted() -> None:
    reader = MrtReader(FIX / "rrc00_2000.03_updates.20000325.0345.gz")
    n = sum(1 for _ in reader)
    assert n == 5146
    assert reader.stats.skipped == 2
    assert [p[0] for p in reader.stats.problems] == [188, 14756]
    with pytest.raises(MrtError) as exc:
        list(MrtReader(FIX / "rrc00_2000.03_updates.20000325.0345.gz", "fail"))
    assert exc.value.offset == 188


def test_unsupported_subtypes_are_counted_separately_from_errors() -> None:
    r = MrtReader(FIX / "openbgpd_rib_table-v2")
    assert len(list(r)) == 31 and r.stats.unsupported == 2 and r.stats.ok
    r = MrtReader(FIX / "openbgpd_rib_table-mp")  # BGP4MP_ENTRY
    assert list(r) == [] and r.stats.unsupported == 31


def test_plain_gzip_multimember_and_bzip2_inputs_read_identically(tmp_path: Path) -> None:
    raw = bgp4mp_update(1000, "10.0.0.1", 65001, ["1.2.3.0/24"], [], [65001, 9198])
    raw2 = state_change(1001, "10.0.0.1", 65001, 6, 1)
    (tmp_path / "u").write_bytes(raw + raw2)
    (tmp_path / "u.gz").write_bytes(gzip.compress(raw) + gzip.compress(raw2))  # two members
    (tmp_path / "u.bz2").write_bytes(bz2.compress(raw + raw2))
    outs = [[to_psv(e) for e in MrtReader(tmp_path / n)] for n in ("u", "u.gz", "u.bz2")]
    assert outs[0] == outs[1] == outs[2]
    assert outs[0] == [
        "BGP4MP|1000|A|10.0.0.1|65001|1.2.3.0/24|65001 9198|IGP|10.0.0.1|0|0||NAG||",
        "BGP4MP|1001|STATE|10.0.0.1|65001|6|1",
    ]


def test_cut_gzip_stream_yields_the_records_before_the_cut(tmp_path: Path) -> None:
    rib = write_rib(tmp_path / "r.gz", 5000, "192.0.2.255", [("10.0.0.1", 65001)],
                    {f"10.{i}.0.0/16": [(0, [65001, 9198])] for i in range(200)})
    data = rib.read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    reader = MrtReader(tmp_path / "cut.gz")
    n = sum(1 for _ in reader)
    assert 0 < n < 200
    assert reader.stats.truncated == 1


def test_corrupt_record_in_the_middle_is_skipped_without_losing_sync(tmp_path: Path) -> None:
    good = bgp4mp_update(1000, "10.0.0.1", 65001, ["1.2.3.0/24"], [], [65001, 9198])
    bad = bytearray(good)
    bad[12 + 12 + 8] ^= 0xFF  # break the BGP marker of the middle record
    (tmp_path / "u").write_bytes(good + bytes(bad) + good)
    reader = MrtReader(tmp_path / "u")
    assert len(list(reader)) == 2
    assert reader.stats.skipped == 1 and reader.stats.problems[0][0] == len(good)
