"""Seed corpora for the fuzz targets, cut deterministically from tests/fixtures.

Seeds are small (a few records, a few KiB) because libFuzzer mutates small inputs fastest
and a target's speed is what makes the 1M-inputs goal reachable. MRT files are decompressed
and cut on record boundaries (RFC 6396 §2: a 12-byte header whose Length counts the body);
a RIB seed always starts with the file's PEER_INDEX_TABLE so its entries can be attributed.
A few small compressed fixtures are kept whole so the gzip/bzip2 front end is fuzzed too.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
MAX_SEED = 2 << 10  # bytes of one MRT seed (the MRT targets' -max_len)
PER_FILE = 12  # seeds cut from one MRT fixture
RECORDS_SCANNED = 4000  # records looked at per fixture (the first few MiB at most)


def _mrt_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    try:
        if raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        if raw[:3] == b"BZh":
            return bz2.BZ2Decompressor().decompress(raw)  # tolerates a cut stream
    except (OSError, EOFError, ValueError):
        return b""
    return raw


def _records(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, subtype, whole record) of each complete record, first RECORDS_SCANNED."""
    pos = 0
    for _ in range(RECORDS_SCANNED):
        if pos + 12 > len(data):
            return
        typ = int.from_bytes(data[pos + 4:pos + 6], "big")
        sub = int.from_bytes(data[pos + 6:pos + 8], "big")
        end = pos + 12 + int.from_bytes(data[pos + 8:pos + 12], "big")
        if end > len(data):
            return
        yield typ, sub, data[pos:end]
        pos = end


def _windows(recs: list[bytes], head: bytes = b"") -> Iterator[bytes]:
    """Up to PER_FILE runs of consecutive records, spread over the list, each ≤ MAX_SEED."""
    if not recs:
        return
    stride = max(1, len(recs) // PER_FILE)
    for i in range(0, len(recs), stride):
        out = head
        for r in recs[i:]:
            if len(out) + len(r) > MAX_SEED and len(out) > len(head):
                break
            out += r
        yield out[:MAX_SEED]


def _mrt_fixtures() -> list[Path]:
    d = FIXTURES / "mrt"
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix not in (".md", ".py",
                                                                            ".json"))


def mrt_elems() -> Iterator[bytes]:
    for path in _mrt_fixtures():
        recs = [r for _, _, r in _records(_mrt_bytes(path))]
        yield from _windows(recs)
        if path.stat().st_size <= 4096 and path.suffix in (".gz", ".bz2"):
            yield path.read_bytes()  # the decompression front end


def mrt_fastrib() -> Iterator[bytes]:
    for path in _mrt_fixtures():
        recs = list(_records(_mrt_bytes(path)))
        peers = next((r for t, s, r in recs if t == 13 and s == 1), None)
        if peers is None:
            continue
        ribs = [r for t, s, r in recs if t == 13 and s != 1]
        yield from _windows(ribs, head=peers)


def series_csv() -> Iterator[bytes]:
    text = (FIXTURES / "series" / "kz_long.csv").read_bytes()
    lines = text.splitlines(keepends=True)
    yield text
    yield gzip.compress(text, mtime=0)
    yield lines[0] + b"".join(lines[1:3])
    yield text.replace(b"\n", b"\r\n")
    yield lines[0] + b'"2022-01-05T00:00:00Z",country,KZ,"pro\nbing",1,"Kaz, ""a""",\n\n'
    yield b"\xef\xbb\xbf" + lines[0] + b"\n\n" + lines[1]


def series_ioda() -> Iterator[bytes]:
    text = (FIXTURES / "series" / "ioda_signals_raw_kz.json").read_bytes()
    yield text
    yield b" ".join(text.split())
    yield (b'{"data": [{"entityType": "region", "entityCode": "KZ-75", "datasource": '
           b'"ping-slash24", "subtype": "x", "from": 1641340800, "step": 300, '
           b'"values": [1, null, 2.5]}]}')


def ris_live() -> Iterator[bytes]:
    lines = (FIXTURES / "mrt" / "ris-live-stream.json").read_bytes().splitlines()
    yield from lines
    yield b"\n".join(lines)
    yield b"\n".join(reversed(lines))


def ooni() -> Iterator[bytes]:
    """Each fixture measurement compacted to one line (the bucket files' JSONL), a few
    pretty-printed as published by the API, two as one JSONL file, one gzipped."""
    import json

    files = sorted((FIXTURES / "ooni").glob("*.json"))
    lines = []
    for path in files:
        raw = path.read_bytes()
        try:
            lines.append(json.dumps(json.loads(raw), separators=(",", ":")).encode())
        except ValueError:
            lines.append(raw)
    yield from lines
    yield from (p.read_bytes() for p in files if p.stat().st_size < 4096)
    small = sorted(lines, key=len)[:3]
    yield b"\n".join(small)
    yield gzip.compress(b"\n".join(small), mtime=0)


def tor_userstats() -> Iterator[bytes]:
    """Tor Metrics ``userstats-relay-country.csv`` / ``userstats-bridge-country.csv`` in
    their published shapes (no copy is in tests/fixtures: these are written from the format
    the parser documents, with its comment header, the totals row and a pseudo-country)."""
    relay = (b"# (c) The Tor Project, Inc. Licensed under CC BY 3.0 US.\n"
             b"date,country,users,lower,upper,frac\n2022-01-03,,2100000,,,93\n"
             b"2022-01-03,kz,1850,1200,2400,93\n2022-01-03,??,5000,,,93\n"
             b"2022-01-04,kz,9400,7000,11800,93\n2022-01-06,kz,,,,90\n")
    bridge = b"date,country,users,frac\n2022-01-03,kz,300,90\n2022-01-04,a1,12,90\n"
    yield relay
    yield bridge
    yield gzip.compress(bridge, mtime=0)


SEEDS = {
    "mrt-elems": mrt_elems,
    "mrt-fastrib": mrt_fastrib,
    "series-csv": series_csv,
    "series-csv-import": series_csv,
    "series-ioda": series_ioda,
    "ris-live": ris_live,
    "ooni": ooni,
    "tor-userstats": tor_userstats,
}


def write_seeds(name: str, out: Path) -> int:
    """Write target ``name``'s seeds into ``out`` (named by sha1, as libFuzzer names inputs);
    return how many."""
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for data in SEEDS[name]():
        if data:
            (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
            n += 1
    return n
