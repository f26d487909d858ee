"""MRT reader vs golden ``bgpdump -m`` output: every line, byte for byte."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from netvigil.sources.bgp.mrt import MrtReader, to_psv

FIX = Path(__file__).parent / "fixtures" / "mrt"
UPSTREAM = sorted(p.name.removesuffix(".bgp.gz") for p in (FIX / "expect").glob("*.bgp.gz"))
DEBIAN = sorted(p.name.removesuffix(".bgpdump162.gz")
                for p in (FIX / "expect").glob("*.bgpdump162.gz"))


def _golden(name: str) -> list[str]:
    return gzip.decompress((FIX / "expect" / name).read_bytes()).decode().splitlines()


def _mine(name: str) -> list[str]:
    reader = MrtReader(FIX / name)
    lines = [to_psv(e) for e in reader]
    assert reader.stats.ok, reader.stats.problems
    return lines


@pytest.mark.parametrize("name", UPSTREAM)
def test_psv_matches_upstream_bgpdump_golden_output(name: str) -> None:
    assert _mine(name) == _golden(f"{name}.bgp.gz")


@pytest.mark.parametrize("name", DEBIAN)
def test_psv_matches_debian_bgpdump_1_6_2_output(name: str) -> None:
    assert _mine(name) == _golden(f"{name}.bgpdump162.gz")


def test_golden_set_covers_every_record_family() -> None:
    labels = {line.split("|")[0] for n in UPSTREAM + DEBIAN for line in _mine(n)}
    assert {"TABLE_DUMP", "TABLE_DUMP2", "TABLE_DUMP2_AP", "BGP4MP", "BGP4MP_ET",
            "BGP4MP_AP"} <= labels


def test_ipv6_text_compresses_a_single_zero_group_like_bgpdump() -> None:
    from netvigil.sources.bgp.mrt.attributes import format_ipv6

    assert format_ipv6(bytes.fromhex("200107f8003000000002000100008447")) == (
        "2001:7f8:30::2:1:0:8447")
    assert format_ipv6(bytes.fromhex("00000000000000000000ffffc1000038")) == "::ffff:193.0.0.56"
    assert format_ipv6(bytes(16)) == "::"


def test_legacy_type5_withdrawals_print_the_prefix_not_the_peer() -> None:
    """bgpdump 1.6.2 prints the peer address as the prefix of type-5 withdrawals (two
    inet_ntoa calls in one printf); we print the withdrawn prefix."""
    lines = _mine("rrc00_2000.01_updates.20000102.2014.gz")
    assert len(lines) == 6359
    w = [line for line in lines if line.split("|")[2] == "W"]
    assert w and all(line.split("|")[3] != line.split("|")[5].split("/")[0] for line in w)
