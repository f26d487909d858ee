"""Target lists: E(b), A(E(b)), the |E(b)| >= 15 and A >= 0.1 rule, CSV and census input."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pytest

from netvigil.model import EntityRef, InputError
from netvigil.sources.probing.targets import (
    SelectionRule,
    build_from_census,
    from_blocks,
    load_targets_csv,
    synthetic,
    write_targets_csv,
)

FIX = Path(__file__).parent / "fixtures" / "probing"


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def test_rows_form_keeps_only_dense_available_blocks_by_default() -> None:
    sel = load_targets_csv(FIX / "targets_rows.csv")
    t = sel.targets
    assert [t.block_cidr(i) for i in range(len(t))] == ["192.0.2.0/24"]
    assert t.sizes.tolist() == [16]
    assert float(t.availability[0]) == pytest.approx(0.8)
    assert (sel.considered, sel.dropped_sparse, sel.kept_sparse) == (3, 2, 0)


def test_keep_sparse_probes_them_but_flags_them() -> None:
    sel = load_targets_csv(FIX / "targets_rows.csv", SelectionRule(keep_sparse=True))
    t = sel.targets
    assert len(t) == 3 and t.sparse.tolist() == [False, True, True]
    assert (sel.dropped_sparse, sel.kept_sparse) == (0, 2)


def test_rule_thresholds_are_configurable() -> None:
    sel = load_targets_csv(FIX / "targets_rows.csv", SelectionRule(min_addresses=3,
                                                                    min_availability=0.5))
    assert len(sel.targets) == 2


def test_blocks_form_with_entity_override_and_comment() -> None:
    t = load_targets_csv(FIX / "targets_blocks.csv").targets
    assert len(t) == 2
    assert t.entity_override(0) == (EntityRef.parse("country/KZ"), EntityRef.parse("asn/9198"))
    assert t.entity_override(1) == (EntityRef.parse("country/KZ"),)
    assert t.addresses(1)[0] == ip("198.51.100.10")


@pytest.mark.parametrize(("name", "line", "words"), [
    ("bad_outside_block.csv", 3, "not inside block"),
    ("bad_availability.csv", 2, "outside [0, 1]"),
    ("bad_block.csv", 4, "must be a /24"),
    ("bad_header.csv", 1, "header must be"),
])
def test_bad_targets_name_file_line_and_reason(name: str, line: int, words: str) -> None:
    with pytest.raises(InputError) as exc:
        load_targets_csv(FIX / name)
    assert exc.value.line == line
    assert words in exc.value.reason
    assert name in str(exc.value)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_targets_csv(tmp_path / "nope.csv")


def test_census_of_past_replies_gives_ever_responsive_set_and_availability() -> None:
    sel = build_from_census(FIX / "census_replies.csv")
    t = sel.targets
    assert [t.block_cidr(i) for i in range(len(t))] == ["192.0.2.0/24"]
    assert t.sizes.tolist() == [16]  # the 5 silent addresses are not in E(b)
    assert float(t.availability[0]) == pytest.approx(0.75)
    assert sel.dropped_sparse == 1  # the 5-address block


def test_census_counts_form() -> None:
    t = build_from_census(FIX / "census_counts.csv").targets
    expected = np.mean([(h % 10 + 1) / 10 for h in range(1, 21)])
    assert float(t.availability[0]) == pytest.approx(expected, rel=1e-6)


def test_allow_list_contains_only_listed_addresses() -> None:
    t = load_targets_csv(FIX / "targets_rows.csv").targets
    assert t.contains(ip("192.0.2.16"))
    assert not t.contains(ip("192.0.2.17"))
    assert not t.contains(ip("8.8.8.8"))
    assert t.block_index(ip("192.0.2.200")) == 0


def test_written_targets_read_back_identically(tmp_path: Path) -> None:
    t = load_targets_csv(FIX / "targets_blocks.csv").targets
    write_targets_csv(t, tmp_path / "out.csv")
    back = load_targets_csv(tmp_path / "out.csv").targets
    assert back.block_starts.tolist() == t.block_starts.tolist()
    assert back.hosts.tolist() == t.hosts.tolist()
    assert back.entities == t.entities
    assert np.allclose(back.availability, t.availability, atol=1e-4)


def test_from_blocks_and_synthetic_lists() -> None:
    sel = from_blocks([(ip("192.0.2.0"), [ip("192.0.2.1")], 0.5)])
    assert len(sel.targets) == 0 and sel.dropped_sparse == 1
    big = synthetic(10_000, hosts_per_block=20)
    assert len(big) == 10_000 and (np.diff(big.block_starts.astype(np.int64)) > 0).all()
    assert big.nbytes() < 10_000 * 40
