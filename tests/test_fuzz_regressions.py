"""Inputs the fuzzer (``make fuzz``, docs/fuzzing.md) found to crash a parser, kept as tests.

Two layers: a named test per defect, asserting the project's error (so it fails if the fix
is undone), and every file under ``fuzz/regressions/<target>/`` replayed through its target
with only the parser's documented error allowed, as the fuzzer would.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from netvigil.model.errors import InputError
from netvigil.series.scan import scan_file
from netvigil.sources.bgp.rislive import RisLiveClient, RisLiveError
from netvigil.sources.ooni.reader import iter_records
from netvigil.sources.ooni.tor_userstats import parse_userstats
from netvigil.sources.ooni.verdict import verdict

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz.targets import TARGETS, checked  # noqa: E402

REGRESSIONS = ROOT / "fuzz" / "regressions"
CASES = sorted(p for p in REGRESSIONS.glob("*/*") if p.is_file())


def _case(target: str, name: str) -> bytes:
    return (REGRESSIONS / target / name).read_bytes()


def test_csv_corrupt_deflate_block_is_an_input_error(tmp_path: Path) -> None:
    """A gzip member whose deflate data is damaged: ISA-L raises ``IsalError``, which is
    neither ``zlib.error`` nor ``OSError``; ``series import`` printed a traceback."""
    f = tmp_path / "bad.csv.gz"
    f.write_bytes(_case("series-csv", "corrupt-deflate-block.csv.gz"))
    with pytest.raises(InputError, match="truncated or corrupt gzip file"):
        scan_file(f)


def test_ooni_corrupt_deflate_data_is_an_input_error(tmp_path: Path) -> None:
    """The same ISA-L error in ``ooni import``'s bounded reader (``Invalid lookback
    distance``): a traceback instead of the whole-file "cannot read file" error."""
    f = tmp_path / "bad.jsonl.gz"
    f.write_bytes(_case("ooni", "invalid-lookback-distance.jsonl.gz"))
    with pytest.raises(InputError, match="cannot read file"):
        list(iter_records(f))


@pytest.mark.parametrize("name", ["invalid-deflate-a.csv.gz", "invalid-deflate-b.csv.gz"])
def test_tor_userstats_corrupt_deflate_data_is_an_input_error(tmp_path: Path,
                                                              name: str) -> None:
    """The same ISA-L error in ``tor import`` (``Invalid deflate symbol``, ``Invalid
    lookback distance``)."""
    f = tmp_path / "userstats.csv.gz"
    f.write_bytes(_case("tor-userstats", name))
    with pytest.raises(InputError, match="cannot read file"):
        parse_userstats(f, "skip")


def test_ris_live_envelope_type_that_is_an_object_is_malformed() -> None:
    """``{"type": {...}}``: the control-message lookup hashed the type (``TypeError:
    unhashable type: 'dict'``) and ``bgp live`` died whatever its ``--on-error``."""
    frame = _case("ris-live", "object-as-envelope-type.json")
    client = RisLiveClient(policy="skip")
    assert client.handle(frame) == []
    assert client.stats.malformed == 1
    with pytest.raises(RisLiveError, match="unexpected envelope type"):
        RisLiveClient(policy="fail").handle(frame)


def test_ooni_verdict_of_an_input_url_urlsplit_refuses() -> None:
    """A web_connectivity ``input`` such as ``http://[x`` made ``urlsplit`` raise
    ``ValueError: Invalid IPv6 URL`` out of ``verdict`` (documented never to raise on odd
    shapes) and out of ``ooni import``; it is no platform's domain."""
    for url in ("http://[x", "https://[::1/", "http://mail.]oogle.com"):
        v = verdict({"test_name": "web_connectivity", "input": url, "test_keys": {}})
        assert v.platform is None


def test_every_target_has_a_regression_folder_name_it_knows() -> None:
    assert CASES, "no regression inputs found"
    assert {p.parent.name for p in CASES} <= set(TARGETS)


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_fuzz_regression_replays_without_crash(path: Path) -> None:
    checked(path.parent.name)(path.read_bytes())
